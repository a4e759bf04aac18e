"""The one preparation step: everything a run needs, resolved, defaulted and validated on the host.

:func:`prepare` turns (algorithm, games, feedback backend, hyper-parameters, seeds, initial and
reference policies, KL target, steps, recording, dtype, metrics, mesh) into a :class:`Prepared`
batch: the device arguments of the one driver (:func:`gamelab.run.simulate`) and the static
choices that decide what compiles. ``run``, ``run_batch``, the sweep and the CLI all go through it;
the transformer trainer uses its pieces (:func:`check_steps`, :func:`float_dtype`,
:func:`device_args`, :func:`metric_tau_of`). Nothing here is jitted; an invalid input raises a
``ValueError`` that names it before anything is traced.

What compiles: ``steps`` and ``record_every`` are traced (any value reuses the program); the
number of trace rows is rounded up to a power of two (:func:`row_bucket`), so runs of 900 or 1000
steps share one program; hyper-parameter values are traced (a sweep over η is one program).
"""
from __future__ import annotations

from functools import lru_cache, partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gamelab import defaults
from gamelab.algorithms import Algorithm, get_algorithm
from gamelab.games.core import Game, make_game, make_group_game, symmetrized, validate_matrices
from gamelab.games.named import parse_game
from gamelab.hosts import shard_runs
from gamelab.metrics import METRIC_NAMES
from gamelab.nash import exact_nash, maxent_nash

MAX_STEPS = 2**31 - 1  # steps and record_every are traced as int32


class Prepared(NamedTuple):
    """A validated batch, ready for the driver: ``args`` = (game, hparams, init, ref, target, τ)
    as device arrays (with a leading batch axis when ``batched``); the rest are static choices."""

    algo: Algorithm
    args: tuple
    steps: int
    record_every: int
    batched: bool
    record_policy: bool
    record_average: bool
    metrics: tuple[str, ...] | None

    @property
    def hparams(self):
        """The resolved hyper-parameters (defaults filled, validated; arrays in the run's dtype)."""
        return self.args[1]

    @property
    def rows(self) -> int:
        """Trace rows: steps 0, k, 2k, … and the final step."""
        return -(-self.steps // self.record_every) + 1


def row_bucket(rows: int) -> int:
    """The compiled trace length for ``rows`` rows: the next power of two (rows beyond ``rows``
    are never written and are cut on the host), so nearby step counts share one program."""
    return 1 << max(0, (rows - 1).bit_length())


def float_dtype(dtype):
    dtype = jnp.dtype(dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32))
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def policy_logits(spec, n: int, *, name: str, key=None, positive: bool = False) -> np.ndarray:
    """Log-probabilities from a policy spec: None/'uniform', 'random' (logits ~ N(0, 1) from
    ``key``), or a vector of n non-negative weights (normalized here). (The initial policy may
    also be 'ref', resolved by the caller.)"""
    if spec is None or (isinstance(spec, str) and spec == "uniform"):
        return np.full(n, -np.log(n))
    if isinstance(spec, str) and spec == "random":
        if key is None:
            raise ValueError(f"a random {name} needs a seed")
        z = np.asarray(jax.random.normal(key, (n,), dtype=jnp.float64))
        return z - np.logaddexp.reduce(z)
    if isinstance(spec, str):
        extra = ", 'ref'" if name == "initial policy" else ""
        raise ValueError(f"{name} must be 'uniform', 'random'{extra} or a vector of {n} weights, got {spec!r}")
    w = np.asarray(spec, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must have {n} entries (one per response), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"{name} must be finite, non-negative weights with a positive sum, got {w.tolist()}")
    if positive and w.min() == 0:
        raise ValueError(f"{name} must give every response positive probability (a KL reference)")
    with np.errstate(divide="ignore"):
        return np.log(w / w.sum())


def _as_game(game) -> np.ndarray:
    """The validated (n, n) float64 matrix of a Game or array-like (validated in its own
    precision: a float32 matrix is held to float32 rounding)."""
    return np.asarray(make_game(np.asarray(game.P if isinstance(game, Game) else game)).P, dtype=np.float64)


def _group_arrays(game) -> tuple | None:
    """(groups, weights, rewards-or-None) of a multi-group Game, re-validated; None for a plain game."""
    if not isinstance(game, Game) or game.groups is None:
        return None
    checked = make_group_game(np.asarray(game.groups), np.asarray(game.weights),
                              None if game.rewards is None else np.asarray(game.rewards))
    return tuple(None if x is None else np.asarray(x, dtype=np.float64) for x in checked[1:4])


def _stack_groups(parts: list) -> tuple | None:
    """Stack per-game group arrays for a batch: all games plain, or all with the same group shapes."""
    kinds = {None if p is None else tuple(None if x is None else x.shape for x in p) for p in parts}
    if len(kinds) != 1:
        raise ValueError("games in one batch must all be plain or all have the same groups (count, rewards or not)")
    if parts[0] is None:
        return None
    return tuple(None if parts[0][k] is None else np.stack([p[k] for p in parts]) for k in range(3))


def _as_games(games) -> np.ndarray:
    """The validated (B, n, n) float64 stack of a batched Game, a (B, n, n) array or a list of
    games / matrices — checked as one vectorized operation, each game exactly as :func:`_as_game`
    would (an error names the offending game's index), then symmetrized and rounded to the default
    float precision like :func:`gamelab.games.make_game`."""
    if isinstance(games, Game) or (isinstance(games, (np.ndarray, jax.Array)) and np.ndim(games) == 3):
        P = np.asarray(games.P if isinstance(games, Game) else games)
        stack = P[None] if P.ndim == 2 else P
    else:
        mats = [np.asarray(g.P if isinstance(g, Game) else g) for g in games]
        if not mats:
            raise ValueError("run_batch needs at least one game")
        shapes, dtypes = {m.shape for m in mats}, {m.dtype for m in mats}
        if len(shapes) != 1 or len(dtypes) != 1 or mats[0].ndim != 2:  # validate one by one, then compare sizes
            checked = []
            for i, m in enumerate(mats):
                try:
                    checked.append(_as_game(m))
                except ValueError as exc:
                    raise type(exc)(f"game {i}: {exc}") from None
            sizes = sorted({m.shape[0] for m in checked})
            if len(sizes) != 1:
                raise ValueError(f"games in one batch must have the same number of responses, got {sizes}")
            return np.stack(checked)
        stack = np.stack(mats)
    if len(stack) == 0:
        raise ValueError("run_batch needs at least one game")
    P = symmetrized(validate_matrices(stack))
    default = jnp.dtype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return P if default == np.float64 else P.astype(default).astype(np.float64)


# Bump when exact_nash's result can change for the same matrix (its solver, options or polishing):
# the key of the solutions kept on disk.
NASH_SOLVER_VERSION = b"exact_nash highs 1e-10 polished v1"


@lru_cache(maxsize=1)
def _solver_key() -> bytes | None:
    """What besides the matrix decides the LP's last bits: the solver settings and SciPy's version
    (read once per process: parsing SciPy's metadata costs 2.5 ms, once per distinct matrix before).
    None: SciPy without its metadata, whose version is unknown."""
    from importlib import metadata

    try:
        return NASH_SOLVER_VERSION + metadata.version("scipy").encode()
    except metadata.PackageNotFoundError:
        return None


def _solution_file(data: bytes, n: int):
    """Where the LP solution of the matrix with bytes ``data`` is kept (None: no cache folder)."""
    import hashlib

    from gamelab.defaults import compilation_cache_dir

    folder, solver = compilation_cache_dir(), _solver_key()
    if folder is None or solver is None:
        return None
    key = hashlib.sha256(solver + n.to_bytes(4, "little") + data)
    return folder / "nash" / f"{key.hexdigest()}.npy"


def _is_nash(P: np.ndarray, pi, tol: float = 1e-8) -> bool:
    """``pi`` a distribution from which no response of ``P`` gains more than ``tol``."""
    return (isinstance(pi, np.ndarray) and pi.shape == (P.shape[0],) and pi.dtype == np.float64
            and bool(np.all(np.isfinite(pi)) and np.all(pi >= 0)) and abs(pi.sum() - 1.0) <= 1e-12
            and float(np.max(P @ pi)) - 0.5 <= tol)


@lru_cache(maxsize=1024)
def _nash_of(data: bytes, n: int) -> np.ndarray:
    """The LP solution, read from the cache folder when an earlier process solved the same matrix
    (SciPy's import and the LP cost more than a cached one-off run; a file that is unreadable or no
    Nash of this matrix is solved again), else solved and written there atomically."""
    P = np.frombuffer(data, dtype=np.float64).reshape(n, n)
    path = _solution_file(data, n)
    if path is not None:
        try:
            pi = np.load(path, allow_pickle=False)
            if _is_nash(P, pi):
                return pi
        except (OSError, ValueError, EOFError):
            pass
    pi = exact_nash(P).policy
    if path is not None:
        import io

        from gamelab.results import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, pi, allow_pickle=False)
        try:  # another process may write the same file meanwhile: each renames a whole file into place
            atomic_write_bytes(path, buf.getvalue())
        except OSError:  # a read-only or full cache folder: solved, just not kept
            pass
    return pi


def nash_policy(P: np.ndarray) -> np.ndarray:
    """The LP Nash policy of a validated matrix, solved once per distinct matrix (a sweep runs each
    game under many algorithms, step sizes and seeds) and kept in the cache folder for later
    processes (``GAMELAB_CACHE_DIR``, under ``nash/``)."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    return _nash_of(P.tobytes(), P.shape[0]).copy()


def pad_matrix(P: np.ndarray, size: int) -> np.ndarray:
    """``P`` (n×n) as a ``size``×``size`` game whose extra responses lose to every response with
    certainty (``P[pad, y] = 0``, ``P[y, pad] = 1``, ½ among themselves): a valid game in which a
    policy that gives them probability 0 has the same win rates, gaps and updates as in ``P``."""
    n = P.shape[0]
    out = np.full((size, size), 0.5)
    out[:n, :n] = P
    out[:n, n:] = 1.0
    out[n:, :n] = 0.0
    return out


def pad_logits(logits: np.ndarray | None, size: int) -> np.ndarray | None:
    """Log-probabilities with ``-inf`` (probability exactly 0) for the padding responses."""
    if logits is None:
        return None
    return np.concatenate([logits, np.full(size - len(logits), -np.inf)])


@lru_cache(maxsize=256)
def _maxent_nash_of(data: bytes, n: int) -> np.ndarray:
    return maxent_nash(np.frombuffer(data, dtype=np.float64).reshape(n, n)).policy


def maxent_nash_policy(P: np.ndarray) -> np.ndarray:
    """The maximum-entropy Nash policy of a validated matrix (:func:`gamelab.nash.maxent_nash`), solved
    once per distinct matrix in a process: the target 'maxent_nash', whose ``kl_to_target`` is
    KL(maximum-entropy Nash ‖ π) — which Nash a last iterate selects, where the Nash is not unique."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    return _maxent_nash_of(P.tobytes(), P.shape[0]).copy()


def _target(target, P: np.ndarray, solve: bool = True) -> np.ndarray | None:
    """The KL target's log-probabilities (None for none). ``solve=False``: validate the spec but
    skip the LP (and return None) — the run records no ``kl_to_target``."""
    if target is None:
        return None
    if isinstance(target, str):
        if target not in ("nash", "auto", "maxent_nash"):
            raise ValueError(f"target must be 'nash', 'maxent_nash', 'auto', None or a policy, got {target!r}")
        if target == "maxent_nash":
            return policy_logits(maxent_nash_policy(P), P.shape[0], name="target") if solve else None
        if target == "auto" and P.shape[0] > defaults.EXACT_NASH_MAX_N:
            return None  # the dense LP's time and memory grow like n^2 and worse: only when asked for
        return policy_logits(nash_policy(P), P.shape[0], name="target") if solve else None
    logits = policy_logits(target, P.shape[0], name="target")
    return logits if solve else None


def metric_names(metrics) -> tuple[str, ...] | None:
    """The canonical static form of a ``metrics`` argument: None (every metric) or a tuple of
    names of :data:`gamelab.metrics.METRIC_NAMES` in that order (a single name may be a string),
    so that the same set in another order does not compile again."""
    if metrics is None:
        return None
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    for name in names:
        if not isinstance(name, str) or name not in METRIC_NAMES:
            raise ValueError(f"unknown metric {name!r}; the metrics are {', '.join(METRIC_NAMES)}")
    return tuple(m for m in METRIC_NAMES if m in names)


def _check_available(names, tau, target, algo: Algorithm) -> None:
    """A metric asked for by name must be computable: say what is missing."""
    if names is None:
        return
    if "regularized_gap" in names and tau is None:
        raise ValueError(f"metric 'regularized_gap' needs a τ: {algo.name} has no positive tau; pass metric_tau")
    if "kl_to_target" in names and target is None:
        raise ValueError("metric 'kl_to_target' needs a target (target=None, or 'auto' on a game of more than "
                         f"{defaults.EXACT_NASH_MAX_N} responses: pass target='nash' to solve its LP)")


def _wants(names, metric: str) -> bool:
    return names is None or metric in names


def metric_tau_of(algo: Algorithm, hp, metric_tau):
    if metric_tau is not None:
        metric_tau = float(metric_tau)
        if not np.isfinite(metric_tau) or metric_tau <= 0:
            raise ValueError(f"metric_tau must be a positive number, got {metric_tau}")
        return metric_tau
    if algo.uses_tau and float(np.min(np.asarray(hp.tau))) > 0:
        return hp.tau
    return None


def resolve_algorithm(algorithm, n: int, learning: dict | None = None) -> Algorithm:
    """The algorithm to run: registered by name (or given), made parametric when ``learning``
    (feedback, policy, batch, optimizer) asks for a feedback mode."""
    algo = algorithm if isinstance(algorithm, Algorithm) else get_algorithm(algorithm)
    learning = dict(learning or {})
    feedback = learning.pop("feedback", None)
    if feedback in (None, "closed"):
        if learning:
            raise ValueError(f"{', '.join(sorted(learning))}: only with feedback 'exact' or 'sampled' (the closed-form"
                             " tabular update has no batch, optimizer or policy)")
        return algo
    from gamelab.algorithms.parametric import make_parametric
    from gamelab.policies import make_policy

    policy = make_policy(learning.pop("policy", "tabular"), n)
    return make_parametric(algo, policy, feedback, **learning)


def learning_options(feedback=None, policy=None, batch=None, optimizer=None) -> dict:
    """The options of a parametric run that were given (None = not given)."""
    given = {"feedback": feedback, "policy": policy, "batch": batch, "optimizer": optimizer}
    return {k: v for k, v in given.items() if v is not None}


def device_args(P, hp, init_logp, ref_logp, target_logp, tau, dtype, groups=None, mask=None, mesh=None) -> tuple:
    """The driver's array arguments in ``dtype`` (integer hyper-parameters keep their type), cast
    on the host and placed with one transfer: on the default device, or split by run over
    ``mesh`` (:func:`gamelab.hosts.shard_runs`). One ``jnp.asarray`` per array was one device
    transfer each: half of ``run_batch``'s host time at 64 games of 10 responses."""
    cast = partial(_cast, dtype=dtype)
    parts = (None, None, None) if groups is None else tuple(None if x is None else cast(x) for x in groups)
    args = (Game(cast(P), *parts, None if mask is None else cast(mask)), cast_hparams(hp, dtype), cast(init_logp),
            cast(ref_logp), None if target_logp is None else cast(target_logp), None if tau is None else cast(tau))
    return shard_runs(args, mesh)


def _cast(x, dtype):
    """``x`` in ``dtype``: host values stay on the host (for one transfer of them all); a JAX array
    is cast where it is."""
    return x.astype(dtype) if isinstance(x, jax.Array) else np.asarray(x, dtype)


def check_steps(steps: int, record_every: int) -> None:
    for label, v in (("steps", steps), ("record_every", record_every)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 1 <= v <= MAX_STEPS:
            raise ValueError(f"{label} must be a positive integer of at most {MAX_STEPS} (2^31 − 1), got {v!r}")


def cast_hparams(hp, dtype):
    """The floating hyper-parameters in ``dtype``, the others in their own type (see :func:`_cast`:
    host values stay on the host, integers too, for the one transfer of :func:`device_args`)."""
    return type(hp)(*(_cast(v, dtype if np.issubdtype(np.result_type(v), np.floating) else np.result_type(v))
                      for v in hp))


def is_random(spec) -> bool:
    return isinstance(spec, str) and spec == "random"


def _init_and_ref(init, ref, n, seed):
    # the keys only where a policy is drawn ('random'): splitting one costs a device call
    k_init, k_ref = jax.random.split(jax.random.key(int(seed))) if is_random(init) or is_random(ref) else (None, None)
    ref_l = policy_logits(ref, n, name="reference", key=k_ref, positive=True)
    if isinstance(init, str) and init == "ref":
        return ref_l, ref_l
    return policy_logits(init, n, name="initial policy", key=k_init), ref_l




def _per_run(spec) -> bool:
    """Whether an init/ref/target spec is a (B, n) array: one policy per run."""
    return isinstance(spec, (np.ndarray, jax.Array, list)) and np.ndim(spec) == 2


def prepare(algorithm, games, *, steps: int, record_every: int = defaults.RECORD_EVERY, hparams: dict | None = None, init=None,
            ref=None, target="auto", metric_tau=None, seeds: Sequence[int] | int = defaults.SEED, dtype=None,
            record_policy: bool = False, record_average: bool = True, metrics=None, mesh=None,
            feedback: str | None = None, policy=None, batch: int | None = None, optimizer: str | None = None,
            batched: bool = True, pad_to: int | None = None) -> Prepared:
    """Resolve, default and validate one batch of runs (see :func:`gamelab.run.run_batch` for
    the arguments). ``batched=False``: one run on one game (``games`` is that game, ``hparams``
    scalars, ``seeds`` one seed); the arguments then carry no batch axis.

    ``pad_to``: run a list of plain games of several sizes (at most ``pad_to`` responses) as one
    batch of ``pad_to``×``pad_to`` games (:func:`pad_matrix`; closed-form feedback only): each
    run's initial policy, reference and target are those of its own game, with probability exactly
    0 on the padding, which keeps it there; the iterates and metrics are the unpadded run's up to
    rounding (a product over more responses is summed in another order). The result's policies
    have ``pad_to`` entries."""
    check_steps(steps, record_every)
    names = metric_names(metrics)
    dtype = float_dtype(dtype)
    if not batched:
        for k, v in (hparams or {}).items():
            if np.ndim(v) != 0:
                raise ValueError(f"{k}: one run takes one value, got {v!r} (run_batch runs several)")
        games = [games]
        seeds = [int(seeds)] if not isinstance(seeds, (list, tuple, np.ndarray)) else seeds
        hparams = {k: [v] for k, v in (hparams or {}).items()}
    for k, v in (hparams or {}).items():
        if np.ndim(v) > 1:
            raise ValueError(f"{k}: a number or one number per run, got an array of shape {np.shape(v)}")
        init, ref, target = ([s] if _per_run([s]) else s for s in (init, ref, target))
    if isinstance(games, str):
        games = [games]
    if isinstance(games, (list, tuple)) and not isinstance(games, Game):  # a name, as the command line takes it
        games = [parse_game(g) if isinstance(g, str) else g for g in games]
    if isinstance(games, Game) and games.groups is not None:  # a batched multi-group Game: one per run
        stacked = jax.tree.map(np.asarray, games if games.P.ndim == 3 else jax.tree.map(lambda x: x[None], games))
        games = [Game(*(None if x is None else x[i] for x in stacked)) for i in range(stacked.P.shape[0])]
    learning = learning_options(feedback, policy, batch, optimizer)
    if pad_to is None:
        group_parts = [_group_arrays(g) for g in games] if isinstance(games, (list, tuple)) else [None]
        games_given = _as_games(games)
        sizes = [games_given.shape[-1]]
    else:
        games_given, sizes = _padding(games, pad_to, learning)
        group_parts = [None]
    n = games_given.shape[-1]
    algo = resolve_algorithm(algorithm, n, learning)
    hparams = dict(hparams or {})
    seeds_arr = np.atleast_1d(np.asarray(seeds))
    if "seed" in algo.hparams._fields:  # a run's seed also seeds its sampling
        hparams.setdefault("seed", seeds_arr)
    given = {"games": len(games_given), "seeds": len(seeds_arr), **{k: np.size(v) for k, v in hparams.items()}}
    given.update({name: len(spec) for name, spec in (("init", init), ("ref", ref), ("target", target))
                  if _per_run(spec)})
    lengths = set(given.values())
    B = max(lengths)
    if lengths - {1, B}:
        raise ValueError("batch inputs have incompatible lengths: each must be 1 or the batch size, got "
                         + ", ".join(f"{k} {v}" for k, v in given.items()))
    hp = algo.make_hparams(**{k: np.broadcast_to(np.asarray(v), (B,)) for k, v in hparams.items()})
    hp = type(hp)(*(np.broadcast_to(np.asarray(v), (B,)) for v in hp))
    groups = _stack_groups(group_parts * B if len(group_parts) == 1 else group_parts)
    seeds_arr = np.broadcast_to(seeds_arr, (B,))

    def per_run(spec, i):
        if _per_run(spec):
            return spec[0] if len(spec) == 1 else spec[i]
        return spec

    solve = _wants(names, "kl_to_target")
    if pad_to is not None:  # every run at its own size, then padded
        size_of = [sizes[0 if len(sizes) == 1 else i] for i in range(B)]
        game_of = [games_given[0 if len(games_given) == 1 else i][:m, :m] for i, m in enumerate(size_of)]
        pieces = [(*_init_and_ref(per_run(init, i), per_run(ref, i), size_of[i], seeds_arr[i]),
                   _target(per_run(target, i), game_of[i], solve)) for i in range(B)]
        inits, refs = (np.stack([pad_logits(p[k], n) for p in pieces]) for k in (0, 1))
        targets = [pad_logits(p[2], n) for p in pieces]
        mask = np.stack([np.arange(n) < m for m in size_of]).astype(np.float64)
    elif _per_run(init) or _per_run(ref) or is_random(init) or is_random(ref):
        inits, refs = zip(*(_init_and_ref(per_run(init, i), per_run(ref, i), n, seeds_arr[i]) for i in range(B)))
        inits, refs = np.stack(inits), np.stack(refs)
    else:  # the same for every run: computed once
        init_l, ref_l = _init_and_ref(init, ref, n, seeds_arr[0])
        inits, refs = np.broadcast_to(init_l, (B, n)), np.broadcast_to(ref_l, (B, n))
    mats = np.broadcast_to(games_given, (B, n, n))
    if pad_to is None:
        mask = None
        if isinstance(target, str) and len(games_given) < B:  # one LP per game given, not one per run
            solved = [_target(target, m, solve) for m in games_given]
            targets = [solved[0 if len(solved) == 1 else i] for i in range(B)]
        else:
            targets = [_target(per_run(target, i), mats[i], solve) for i in range(B)]
    tau = metric_tau_of(algo, hp, metric_tau)
    tau = tau if _wants(names, "regularized_gap") else None
    _check_available(names, tau, targets[0], algo)
    host = (mats, hp, inits, refs, None if targets[0] is None else np.stack(targets),
            None if tau is None else np.broadcast_to(np.asarray(tau), (B,)), groups, mask)
    if not batched:  # strip the batch axis of one run
        host = jax.tree.map(lambda x: x[0], host)
    if mesh is not None and (not batched or B % mesh.size):
        raise ValueError(f"a batch of {B} runs cannot be split evenly over {mesh.size} devices")
    args = device_args(*host[:6], dtype, *host[6:], mesh=mesh)
    return Prepared(algo, args, int(steps), int(record_every), batched, bool(record_policy), bool(record_average),
                    names)


def _padding(games, size, learning: dict) -> tuple[np.ndarray, list[int]]:
    """(the games padded to ``size`` as a (G, size, size) stack, each game's own size)."""
    if learning:
        raise ValueError("pad_to: only the closed-form update pads games (not feedback 'exact' or 'sampled')")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"pad_to must be a positive integer, got {size!r}")
    if not isinstance(games, (list, tuple)) or not games:
        raise ValueError("pad_to needs a non-empty list of games")
    mats, checked = [], {}  # each game object checked once: a sweep's runs share their game's object
    for i, g in enumerate(games):
        if isinstance(g, Game) and g.groups is not None:
            raise ValueError(f"game {i}: a multi-group game cannot be padded")
        if id(g) not in checked:
            try:
                checked[id(g)] = _as_game(g)
            except ValueError as exc:
                raise type(exc)(f"game {i}: {exc}") from None
        mats.append(checked[id(g)])
    sizes = [m.shape[0] for m in mats]
    if max(sizes) > size:
        raise ValueError(f"pad_to = {size} is smaller than a game of the batch ({max(sizes)} responses)")
    return np.stack([pad_matrix(m, size) for m in mats]), sizes
