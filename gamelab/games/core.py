"""The Game pytree and its host-side validation."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gamelab.lazy import jax


class InvalidGameError(ValueError):
    """A preference matrix that is not a valid general-preference game."""


class Game(NamedTuple):
    """A symmetric two-player preference game over n responses.

    ``P[i, j] = Pr(i beats j)``; a valid matrix has entries in [0, 1], ``P + P.T = 1`` and a
    diagonal of 1/2. The pytree holds arrays only, so games stack and vmap: a batch of games is a
    ``Game`` whose ``P`` has shape ``(B, n, n)``.

    A *multi-group* game (MaxMin-RLHF's diverse preferences; :func:`make_group_game`) also holds
    each group's preference ``groups`` (U, n, n), the group weights ``weights`` (U,) with
    ``P = Σ_u weights_u·groups_u`` the pooled preference, and, when the groups' preferences come
    from Bradley–Terry rewards, those ``rewards`` (U, n). Single-population algorithms play the
    pooled P; group-aware ones (``maxmin``) and the per-group metrics read the groups.

    A *padded* game (:func:`gamelab.prepare.pad_matrix`: games of several sizes run as one
    compiled program) has ``mask`` (n,): 1 for a response, 0 for a padding response, which loses
    to every response with certainty and has probability exactly 0 throughout; algorithms that
    fall back to a uniform policy (regret matching) spread it over the masked responses only.
    """

    P: jax.Array
    groups: jax.Array | None = None
    weights: jax.Array | None = None
    rewards: jax.Array | None = None
    mask: jax.Array | None = None

    @property
    def n(self) -> int:
        return self.P.shape[-1]


DEFAULT_ATOL = 1e-9


def _where(mask: np.ndarray) -> tuple[int, int]:
    i, j = np.argwhere(mask)[0]
    return int(i), int(j)


def validate_matrix(P, *, atol: float = DEFAULT_ATOL) -> np.ndarray:
    """Check that ``P`` is a valid preference matrix; return it as a float64 NumPy array.

    Each violation raises :class:`InvalidGameError` naming the first offending entry and how far
    off it is. ``atol`` is the tolerance for ``P + P.T = 1`` and the diagonal; for input of lower
    precision than float64 it is at least 8 ulps of that precision (a float32 matrix that sums to
    1 in float32 is valid).
    """
    try:
        arr = np.asarray(P)
    except Exception as exc:  # ragged nested lists and the like
        raise InvalidGameError(f"preference matrix is not an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidGameError(f"preference matrix must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise InvalidGameError("preference matrix must be real, got complex entries")
    if arr.ndim != 2:
        raise InvalidGameError(f"preference matrix must be 2-D, got shape {arr.shape}")
    n, m = arr.shape
    if n != m:
        raise InvalidGameError(f"preference matrix must be square, got shape {arr.shape}")
    if n < 2:
        raise InvalidGameError(f"a game needs at least 2 responses, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and np.finfo(arr.dtype).bits < 64:
        atol = max(atol, 8 * float(np.finfo(arr.dtype).eps))
    arr = arr.astype(np.float64)
    if _valid(arr[None], atol)[0]:  # the fast path; the checks below name what is wrong
        return arr
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = _where(bad)
        raise InvalidGameError(
            f"preference matrix has {int(bad.sum())} non-finite entries, first P[{i}, {j}] = {float(arr[i, j])}"
        )
    out = (arr < 0) | (arr > 1)
    if out.any():
        i, j = _where(out)
        raise InvalidGameError(
            f"entries must lie in [0, 1]: P[{i}, {j}] = {float(arr[i, j])!r} ({int(out.sum())} entries outside)"
        )
    diag = np.abs(np.diag(arr) - 0.5)
    if diag.max() > atol:
        i = int(np.argmax(diag))
        raise InvalidGameError(
            f"diagonal must be 1/2: P[{i}, {i}] = {float(arr[i, i])!r} (off by {diag[i]:.3g} > atol {atol:g})"
        )
    sym = np.abs(arr + arr.T - 1.0)
    if sym.max() > atol:
        i, j = np.unravel_index(int(np.argmax(sym)), sym.shape)
        raise InvalidGameError(
            f"P + P.T must equal 1: P[{i}, {j}] + P[{j}, {i}] = {float(arr[i, j] + arr[j, i])!r} "
            f"(off by {sym[i, j]:.3g} > atol {atol:g}; largest violation)"
        )
    return arr


VALIDATE_BLOCK_BYTES = 64 * 2**20  # games checked at once by validate_matrices (bounds its temporaries)


def validate_matrices(Ps, *, atol: float = DEFAULT_ATOL) -> np.ndarray:
    """Check a stack of preference matrices, shape (B, n, n), at once; return it as float64.

    The same checks and tolerances as :func:`validate_matrix`, vectorized over the stack (in
    blocks of at most ``VALIDATE_BLOCK_BYTES``). The first invalid game (lowest index) raises
    :class:`InvalidGameError` with exactly :func:`validate_matrix`'s message for it, prefixed by
    ``game b:``.
    """
    arr = np.asarray(Ps)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr) \
            or arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < 2:
        for b in (range(len(arr)) if arr.ndim >= 1 else ()):  # the per-game check names the problem
            _validate_one(arr[b], b, atol)
        raise InvalidGameError(f"a stack of preference matrices must have shape (B, n, n), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and np.finfo(arr.dtype).bits < 64:
        atol = max(atol, 8 * float(np.finfo(arr.dtype).eps))
    out = arr.astype(np.float64)
    B, n, _ = out.shape
    block = max(1, VALIDATE_BLOCK_BYTES // (8 * n * n))
    for lo in range(0, B, block):
        ok = _valid(out[lo:lo + block], atol)
        if not ok.all():
            b = lo + int(np.argmin(ok))
            _validate_one(arr[b], b, atol)
            raise InvalidGameError(f"game {b}: not a valid preference matrix")  # pragma: no cover (checks agree)
    return out


def _valid(a: np.ndarray, atol: float) -> np.ndarray:
    """Which games of a float64 (B, n, n) stack pass every check of :func:`validate_matrix`."""
    ok = np.isfinite(a).all(axis=(1, 2))
    with np.errstate(invalid="ignore"):  # games with NaN already fail; their bounds need no warning
        ok &= (a.min(axis=(1, 2)) >= 0) & (a.max(axis=(1, 2)) <= 1)
        ok &= (np.abs(np.diagonal(a, axis1=1, axis2=2) - 0.5) <= atol).all(axis=1)
        ok &= _max_asymmetry(a) <= atol
    return ok


TILE = 256  # square tiles for the transposed accesses of large matrices (cache-friendly)


def _tiles(n: int):
    return [(i, j) for i in range(0, n, TILE) for j in range(0, n, TILE)]


def _max_asymmetry(a: np.ndarray) -> np.ndarray:
    """``max |P + Pᵀ − 1|`` of each game of a (B, n, n) stack, tile by tile over the upper half."""
    worst = np.zeros(a.shape[0])
    for i, j in _tiles(a.shape[-1]):
        if j >= i:
            blk = a[:, i:i + TILE, j:j + TILE] + a[:, j:j + TILE, i:i + TILE].swapaxes(1, 2)
            blk -= 1.0
            worst = np.maximum(worst, np.abs(blk, out=blk).max(axis=(1, 2)))
    return worst


def _validate_one(P, index: int, atol: float) -> None:
    try:
        validate_matrix(P, atol=atol)
    except InvalidGameError as exc:
        raise InvalidGameError(f"game {index}: {exc}") from None


def symmetrized(arr: np.ndarray) -> np.ndarray:
    """A validated matrix (or a stack of them) with the lower triangle set to exactly ``1 − P.T``
    and the diagonal to 1/2; the upper triangle is kept bit for bit (but a −0 becomes +0).
    Tile by tile, so that the transposed reads stay in cache."""
    arr = np.asarray(arr, dtype=np.float64)
    n = arr.shape[-1]
    out = np.empty_like(arr)
    for i, j in _tiles(n):
        rows, cols = slice(i, i + TILE), slice(j, j + TILE)
        if j > i:  # strictly upper: kept (+0.0 turns a −0 into +0, as the sum of the triangles did)
            np.add(arr[..., rows, cols], 0.0, out=out[..., rows, cols])
        elif j < i:  # strictly lower: 1 − the mirrored upper tile
            np.subtract(1.0, np.swapaxes(arr[..., cols, rows], -1, -2), out=out[..., rows, cols])
        else:
            blk = arr[..., rows, cols]
            m = blk.shape[-1]
            upper = np.arange(m)[:, None] < np.arange(m)[None, :]
            out[..., rows, cols] = np.where(upper, blk + 0.0, 1.0 - np.swapaxes(blk, -1, -2))
    idx = np.arange(n)
    out[..., idx, idx] = 0.5
    return out


def make_game(P, *, atol: float = DEFAULT_ATOL, dtype=None) -> Game:
    """Validate ``P`` on the host and wrap it as a :class:`Game`.

    After validation the lower triangle is set to exactly ``1 − P.T`` and the diagonal to 1/2, so
    that tiny violations within ``atol`` do not leak into the dynamics (the upper triangle is kept
    bit for bit).
    """
    import jax.numpy as jnp

    arr = symmetrized(validate_matrix(P, atol=atol))
    return Game(P=jnp.asarray(arr, dtype=dtype or _default_float()))


def make_group_game(groups, weights, rewards=None, *, atol: float = DEFAULT_ATOL, dtype=None) -> Game:
    """A multi-group game: each group's matrix is validated (errors name the group), the weights
    must be positive and sum to 1, ``rewards`` (optional, (U, n)) must be finite; the pooled P is
    Σ_u weights_u·groups_u."""
    import jax.numpy as jnp

    mats = np.asarray(groups, dtype=np.float64)
    if mats.ndim != 3:
        raise InvalidGameError(f"groups must be a (U, n, n) stack of preference matrices, got shape {mats.shape}")
    checked = []
    for u, m in enumerate(mats):
        try:
            checked.append(np.asarray(make_game(m, atol=atol, dtype=jnp.float64).P))
        except InvalidGameError as exc:
            raise InvalidGameError(f"group {u}: {exc}") from None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(checked),):
        raise InvalidGameError(f"need one weight per group ({len(checked)}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0) or abs(w.sum() - 1.0) > 1e-9:
        raise InvalidGameError(f"group weights must be positive and sum to 1, got {w.tolist()}")
    stack = np.stack(checked)
    if rewards is not None:
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape != stack.shape[:2] or not np.all(np.isfinite(rewards)):
            raise InvalidGameError(f"rewards must be finite with shape {stack.shape[:2]}, got {rewards.shape}")
    dtype = dtype or _default_float()
    pooled = np.asarray(make_game(np.einsum("u,uij->ij", w, stack), atol=atol, dtype=jnp.float64).P)
    return Game(P=jnp.asarray(pooled, dtype), groups=jnp.asarray(stack, dtype), weights=jnp.asarray(w, dtype),
                rewards=None if rewards is None else jnp.asarray(rewards, dtype))


def _default_float():
    import jax.numpy as jnp

    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def stack_games(games) -> Game:
    """Stack games of equal size into one batched :class:`Game` (leading batch axis)."""
    import jax.numpy as jnp

    games = list(games)
    if not games:
        raise InvalidGameError("cannot stack an empty list of games")
    sizes = {g.n for g in games}
    if len(sizes) != 1:
        raise InvalidGameError(f"games in a batch must have the same size, got sizes {sorted(sizes)}")
    shapes = {tuple(None if x is None else x.shape for x in g) for g in games}
    if len(shapes) != 1:
        raise InvalidGameError("games in a batch must have the same groups (number, rewards or not) or none")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *games)
