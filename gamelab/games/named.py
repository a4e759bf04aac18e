"""Named games, random generators, and the registry behind game specs like ``random:n=10,seed=3``.

Every builder is a pure function returning a validated :class:`~gamelab.games.core.Game`
(through :func:`~gamelab.games.core.make_game`). Random games are pure functions of a JAX PRNG
key; their raw matrices (:func:`random_matrix`, :func:`disc_matrix`) are traceable, so a batch of
games can be drawn with ``jax.vmap`` over keys.

Convention: ``P[i, j] = Pr(i beats j)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from gamelab.executables import Program
from gamelab.games.core import Game, InvalidGameError, make_game
import gamelab.games.groups as groups  # the submodule itself, not through the package (no import circle)
from gamelab.lazy import jax, jnp
from gamelab.suggest import did_you_mean


class GameSpecError(InvalidGameError):
    """A game spec string that names no game, an unknown parameter or an unparsable value."""


# ---------------------------------------------------------------------------------------------
# fixed games


def rps() -> Game:
    """Rock-paper-scissors as a preference matrix: response i beats i+1 (mod 3) with probability 1.

    ``P = [[.5, 1, 0], [0, .5, 1], [1, 0, .5]]``; the unique Nash is uniform. Equals
    ``cyclic(3, margin=0.5)``.
    """
    return cyclic(3, margin=0.5)


BIASED_RPS_PAYOFF = ((0.0, -0.25, 0.5), (0.25, 0.0, -0.05), (-0.5, 0.05, 0.0))


def biased_rps() -> Game:
    """OpenSpiel's biased rock-paper-scissors, mapped to preferences by ``P = 1/2 + A/2``.

    ``A`` is the zero-sum payoff ``[[0, -0.25, 0.5], [0.25, 0, -0.05], [-0.5, 0.05, 0]]``
    (entries in [-1, 1], so ``P`` lies in [0, 1]; here [0.25, 0.75]). The mapping keeps the Nash
    set; the unique Nash is interior, ``(1, 10, 5) / 16``.
    """
    A = np.asarray(BIASED_RPS_PAYOFF)
    return make_game(0.5 + 0.5 * A)


def comal3() -> Game:
    """The 3-response game of the COMAL paper over (a, b, c).

    ``P(b ≻ a) = 0.9``, ``P(c ≻ b) = 0.9``, ``P(a ≻ c) = 0.8``, so
    ``P = [[.5, .1, .8], [.9, .5, .1], [.2, .9, .5]]``; the unique Nash is ``(4, 3, 4) / 11``.
    """
    return make_game([[0.5, 0.1, 0.8], [0.9, 0.5, 0.1], [0.2, 0.9, 0.5]])


# ---------------------------------------------------------------------------------------------
# parametric families


def _check_n(n: int, *, least: int = 2) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InvalidGameError(f"n must be an integer, got {n!r}")
    if n < least:
        raise InvalidGameError(f"n must be at least {least}, got {n}")
    return int(n)


def cyclic(n: int, margin: float = 0.5) -> Game:
    """n responses on a cycle: i beats i+d (mod n) for d = 1..floor((n-1)/2).

    ``P[i, i+d] = 1/2 + margin`` and ``P[i+d, i] = 1/2 - margin``; at distance n/2 (even n) the
    pair ties at 1/2. ``margin`` in (0, 1/2]. For odd n the unique Nash is uniform.
    """
    n = _check_n(n)
    margin = float(margin)
    if not 0.0 < margin <= 0.5:
        raise InvalidGameError(f"margin must lie in (0, 1/2], got {margin!r}")
    d = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n  # d[i, j] = (j - i) mod n
    win = (d >= 1) & (d <= (n - 1) // 2)
    P = np.full((n, n), 0.5) + margin * win - margin * win.T
    return make_game(P)


def bradley_terry(scores) -> Game:
    """Transitive game from Bradley–Terry scores: ``P[i, j] = sigmoid(s_i - s_j)``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size < 2:
        raise InvalidGameError(f"scores must be a 1-D array of length >= 2, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise InvalidGameError(f"scores must be finite, got {s.tolist()}")
    diff = s[:, None] - s[None, :]
    P = 0.5 * (1.0 + np.tanh(0.5 * diff))  # sigmoid without overflow
    return make_game(P)


def transitive(n: int = 5, gap: float = 1.0) -> Game:
    """Bradley–Terry game with scores ``gap * (n-1, ..., 1, 0)``: response 0 is best.

    The Nash is the pure policy on response 0.
    """
    n = _check_n(n)
    gap = float(gap)
    if not np.isfinite(gap) or gap <= 0:
        raise InvalidGameError(f"gap must be positive and finite, got {gap!r}")
    return bradley_terry(gap * np.arange(n)[::-1])


def random_matrix(key, n: int) -> jax.Array:
    """Traceable core of :func:`random_game` (``n`` static): an unvalidated (n, n) matrix."""
    U = jax.random.uniform(key, (n, n))
    upper = jnp.triu(U, k=1)
    return upper + jnp.tril(1.0 - U.T, k=-1) + 0.5 * jnp.eye(n, dtype=U.dtype)


def random_game(key, n: int) -> Game:
    """Random game as in the EGPO simulations: ``P[i, j] ~ U(0, 1)`` i.i.d. for i < j.

    ``P[j, i] = 1 - P[i, j]``, diagonal 1/2. A pure function of the PRNG ``key``.
    """
    n = _check_n(n)
    return make_game(np.asarray(_RANDOM_MATRIX(key, n)))


def _seeded_random_matrix(seed, n: int) -> jax.Array:
    return random_matrix(jax.random.key(seed), n)


# :func:`random_matrix` as one compiled program (from a key, or from the seed: the key made in the
# program too), kept across processes (gamelab.executables): a warm process reads it without
# tracing, where eager operations would compile one program each (0.3 s of a one-off run). Its
# operations are exact selects and one subtraction, so the matrix is bit-identical to the eager one
# (the disc game's sin/cos are not, under fusion: it stays eager).
_RANDOM_MATRIX = Program(random_matrix, static_argnums=1)
_SEEDED_RANDOM_MATRIX = Program(_seeded_random_matrix, static_argnums=1)


def disc_matrix(key, n: int) -> jax.Array:
    """Traceable core of :func:`disc_game` (``n`` static): an unvalidated (n, n) matrix."""
    kr, kt = jax.random.split(key)
    r = jnp.sqrt(jax.random.uniform(kr, (n,)))  # sqrt: uniform in area
    theta = 2.0 * jnp.pi * jax.random.uniform(kt, (n,))
    x, y = r * jnp.cos(theta), r * jnp.sin(theta)
    A = x[:, None] * y[None, :] - y[:, None] * x[None, :]
    return 0.5 * (1.0 + A)


def disc_game(key, n: int) -> Game:
    """Balduzzi et al.'s disc game: points ``u_i`` uniform in the unit disc.

    ``A[i, j] = u_i[0] u_j[1] - u_i[1] u_j[0]`` (in [-1, 1]) and ``P = (1 + A) / 2``. A pure
    function of the PRNG ``key``.
    """
    n = _check_n(n)
    return make_game(np.asarray(disc_matrix(key, n)))


# ---------------------------------------------------------------------------------------------
# registry


class Param(NamedTuple):
    """One parameter of a named game: its name, type (``int`` or ``float``) and default."""

    name: str
    type: type
    default: Any


class GameEntry(NamedTuple):
    """A registered game: ``build(**params)`` returns a :class:`Game`."""

    build: Callable[..., Game]
    params: tuple[Param, ...]
    description: str


def _key_checked(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidGameError(f"seed must be an integer, got {seed!r}")
    if not 0 <= seed < 2**63:
        raise InvalidGameError(f"seed must lie in [0, 2**63), got {seed}")


def _key(seed: int) -> jax.Array:
    """``jax.random.key(seed)`` for a seed in [0, 2**63)."""
    _key_checked(seed)
    return jax.random.key(int(seed))


def _random_from_seed(n: int, seed: int) -> Game:
    _key_checked(seed)
    return make_game(np.asarray(_SEEDED_RANDOM_MATRIX(np.int64(seed), _check_n(n))))


def _disc_from_seed(n: int, seed: int) -> Game:
    return disc_game(_key(seed), n)


GAMES: dict[str, GameEntry] = {
    "rps": GameEntry(rps, (), "rock-paper-scissors: i beats i+1 (mod 3) with probability 1"),
    "biased_rps": GameEntry(
        biased_rps, (), "OpenSpiel's biased RPS payoff A as P = 1/2 + A/2; unique interior Nash"
    ),
    "comal3": GameEntry(comal3, (), "COMAL paper's 3-response game; Nash (4, 3, 4)/11"),
    "cyclic": GameEntry(
        cyclic,
        (Param("n", int, 5), Param("margin", float, 0.5)),
        "n responses on a cycle: i beats the next floor((n-1)/2) with P = 1/2 + margin",
    ),
    "transitive": GameEntry(
        transitive,
        (Param("n", int, 5), Param("gap", float, 1.0)),
        "Bradley-Terry with scores gap*(n-1, ..., 0); response 0 is best",
    ),
    "random": GameEntry(
        _random_from_seed,
        (Param("n", int, 10), Param("seed", int, 0)),
        "upper triangle i.i.d. U(0, 1), P + P.T = 1 (EGPO simulations)",
    ),
    "disc": GameEntry(
        _disc_from_seed,
        (Param("n", int, 10), Param("seed", int, 0)),
        "Balduzzi et al.'s disc game: points uniform in the unit disc",
    ),
    "maxmin4": GameEntry(
        lambda minority: groups.maxmin_example(minority),
        (Param("minority", float, 1 / 11),),
        "2 groups (MaxMin-RLHF's example): rewards (2,-1,1,0) and (-1,2,1,0), minority share 1/11",
    ),
    "majority_minority": GameEntry(
        groups.majority_minority,
        (Param("n", int, 6), Param("minority", float, 0.1), Param("disagreement", float, 0.5),
         Param("scale", float, 1.0), Param("seed", int, 0)),
        "2 Bradley-Terry groups; reward correlation 1 - 2*disagreement; minority share",
    ),
}


def game_names() -> list[str]:
    """Names of the registered games, in registry order."""
    return list(GAMES)


def unknown_game(name: str) -> GameSpecError:
    """The error for a name that is not a registered game (every valid name, and the closest)."""
    return GameSpecError(f"unknown game {name!r}; valid names: {', '.join(GAMES)}" + did_you_mean(name, GAMES))


def _params_str(params: tuple[Param, ...]) -> str:
    return ", ".join(f"{p.name}:{p.type.__name__}={p.default}" for p in params)


def describe_games() -> list[tuple[str, str, str]]:
    """``(name, parameters, description)`` for each registered game, for a listing command."""
    return [(name, _params_str(e.params), e.description) for name, e in GAMES.items()]


def _parse_value(name: str, param: Param, text: str):
    try:
        return param.type(text)
    except ValueError:
        raise GameSpecError(
            f"game {name!r}: parameter {param.name}={text!r} is not a valid {param.type.__name__}"
        ) from None


def parse_params(name: str, text: str) -> dict[str, Any]:
    """Parse ``k=v,k=v`` against the registered parameters of game ``name``."""
    entry = GAMES[name]
    valid = {p.name: p for p in entry.params}
    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key not in valid:
            allowed = ", ".join(valid) if valid else "none"
            raise GameSpecError(
                f"game {name!r} has no parameter {key!r}; valid parameters: {allowed}"
            )
        if not eq or not value:
            raise GameSpecError(f"game {name!r}: parameter {key!r} needs a value, as in {key}=...")
        if key in out:
            raise GameSpecError(f"game {name!r}: parameter {key!r} given twice")
        out[key] = _parse_value(name, valid[key], value)
    return out


def build_game(name: str, **params) -> Game:
    """Build registered game ``name`` with ``params`` over its defaults."""
    if name not in GAMES:
        raise unknown_game(name)
    entry = GAMES[name]
    valid = {p.name for p in entry.params}
    unknown = sorted(set(params) - valid)
    if unknown:
        allowed = ", ".join(p.name for p in entry.params) or "none"
        raise GameSpecError(
            f"game {name!r} has no parameter {unknown[0]!r}; valid parameters: {allowed}"
        )
    kwargs = {p.name: p.default for p in entry.params} | params
    return entry.build(**kwargs)


_SEPARATORS = tuple(s for s in (os.sep, os.altsep, "/") if s)


# A run holds a few dense n×n float64 copies while a game is generated, validated, symmetrized and
# moved to the device: measured 4.6–4.9 copies (n = 4000, 8000) above about 0.45 GB for the
# interpreter, JAX and the libraries.
RUN_MATRIX_COPIES = 5
RUN_BASE_BYTES = 450 * 2**20


def spec_size(spec: str) -> int | None:
    """The number of responses of a named game spec, read from its parameters without building it
    (None for a file, or a game whose size is not a parameter)."""
    if not isinstance(spec, str) or _is_path_spec(spec.strip()):
        return None
    name, _, rest = spec.strip().partition(":")
    if name.strip() not in GAMES:
        return None
    params = {p.name: p.default for p in GAMES[name.strip()].params}
    params.update(parse_params(name.strip(), rest))
    return int(params["n"]) if "n" in params else None


def run_memory(n: int) -> int:
    """Bytes a run on an n-response game needs at its peak (see RUN_MATRIX_COPIES)."""
    return RUN_BASE_BYTES + RUN_MATRIX_COPIES * 8 * n * n


def _is_path_spec(spec: str) -> bool:
    """Paths: anything with a separator; else an existing file or a suffixed name, unless a game."""
    if any(s in spec for s in _SEPARATORS):
        return True
    if spec.partition(":")[0].strip() in GAMES:
        return False
    return Path(spec).is_file() or Path(spec).is_symlink() or (":" not in spec and "=" not in spec
                                                               and bool(Path(spec).suffix))


def parse_game(spec: str, *, antisymmetrize: bool = False) -> Game:
    """Build a game from a spec: ``name``, ``name:k=v,k=v`` or a file path.

    Examples: ``rps``, ``comal3``, ``cyclic:n=5``, ``random:n=10,seed=3`` (``seed`` becomes
    ``jax.random.key(seed)``). A spec with a path separator, an existing file, or a name with a
    suffix (``table.csv``) is loaded with :func:`~gamelab.games.io.load_game_file`, where
    ``antisymmetrize`` applies; a registered name wins over a file of the same name (write
    ``./rps`` for the file). Raises :class:`GameSpecError` for an unknown name or parameter or an
    unparsable value, and :class:`~gamelab.games.io.GameFileError` for a missing file.
    """
    from gamelab.games.io import load_game_file

    if not isinstance(spec, str) or not spec.strip():
        raise GameSpecError(f"game spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if _is_path_spec(spec):
        return load_game_file(spec, antisymmetrize=antisymmetrize)
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in GAMES:
        raise unknown_game(name)
    return build_game(name, **parse_params(name, rest))
