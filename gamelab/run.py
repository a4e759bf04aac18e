"""The only loop: one ``lax.scan`` over recording intervals, vmapped for batches.

:func:`simulate` is the pure driver for one game and one policy; :func:`run` and :func:`run_batch`
are the host-side entry points: they validate every input once, fill defaults (uniform initial
policy and reference, the LP Nash as the KL target), then call the jitted driver. Metrics come back
as stacked arrays, for the last iterate and (prefixed ``avg_``) for the average iterate
(1/(t+1))·Σ_{s≤t} π_s. Trace rows are steps 0, k, 2k, … (k = ``record_every``) and always the
final step: row 0 is the initial policy.
"""
from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gamelab.algorithms import Algorithm, get_algorithm
from gamelab.games.core import Game, make_game, make_group_game, symmetrized, validate_matrices
from gamelab.hosts import shard_runs
from gamelab.metrics import METRIC_NAMES, group_metrics, policy_metrics
from gamelab.nash import exact_nash


class RunResult(NamedTuple):
    """Outputs of a run; arrays carry a leading batch axis for :func:`run_batch`.

    ``avg_policy`` is None when the run was made with ``record_average=False``: the average
    iterate is then not tracked at all (it costs an exp and an update of n numbers per step)."""

    state: Any  # final algorithm state
    logp: jax.Array  # final last-iterate log-policy
    avg_policy: jax.Array | None  # final average-iterate policy (probabilities); None if not tracked
    steps: np.ndarray  # (R,) the step index of each trace row
    trace: dict  # metric name -> (..., R) array; 'avg_' prefix for the average iterate
    final: dict  # metric name -> (...) array at the last step

    @property
    def policy(self) -> jax.Array:
        return jnp.exp(self.logp)


def _metrics(game, carry, ref, tau, target, record_policy, record_average, names):
    state, avg, _ = carry
    out = policy_metrics(game.P, state.logp, ref, tau=tau, target_logits=target, normalized=True, names=names)
    if game.groups is not None:  # a multi-group game: per-group, worst-group and mean metrics
        out.update(group_metrics(game, state.logp, ref))
    if hasattr(state, "loss"):  # a parametric run: its last training loss (NaN before the first step)
        out["loss"] = state.loss
    if record_policy:
        out["policy"] = jnp.exp(state.logp)
    if record_average:
        mean = policy_metrics(game.P, jnp.log(avg), ref, tau=tau, target_logits=target, names=names)
        if game.groups is not None:
            mean.update(group_metrics(game, jnp.log(avg), ref))
        if record_policy:
            mean["policy"] = avg
        out.update({f"avg_{k}": v for k, v in mean.items()})
    return out


def _driver(algo: Algorithm, game: Game, hp, ref_logp, target_logp, metric_tau, *, record_every: int,
            record_policy: bool, record_average: bool, metrics, record=None):
    """(record, advance, interval) for one game: the loop body every driver below shares.
    ``record``: a function of the carry returning the row's dict, in place of the metrics of
    ``game.P`` (gamelab.llm records metrics of games too large to lift to a matrix)."""
    if record is None:
        record = partial(_metrics, game, ref=ref_logp, tau=metric_tau, target=target_logp,
                         record_policy=record_policy, record_average=record_average, names=metrics)

    def advance(carry):
        state, avg, t = carry
        state = algo.step(game, hp, state)
        t = t + 1
        if record_average:  # static: without it the average iterate is not tracked at all
            avg = avg + (jnp.exp(state.logp) - avg) / (t + 1)
        return state, avg, t

    def interval(carry, _):
        row = record(carry)
        carry = advance(carry)
        return lax.fori_loop(1, record_every, lambda _, c: advance(c), carry), row

    return record, advance, interval


def simulate(algo: Algorithm, game: Game, hp, init_logp, ref_logp, target_logp, metric_tau, *, steps: int,
             record_every: int, record_policy: bool = False, record_average: bool = True,
             metrics: tuple[str, ...] | None = None):
    """Run ``steps`` steps of ``algo`` on one game; record metrics every ``record_every`` steps.

    Pure and unbatched. ``target_logp`` (KL target) and ``metric_tau`` (for the regularized gap)
    may be None, in which case those metrics are absent. ``record_policy`` adds the policies
    themselves (``policy`` and ``avg_policy``, shape (R, n)) to the trace; ``record_average=False``
    drops the average-iterate metrics (each costs one more product with P per recording) and does
    not track the average iterate at all (the returned average policy is then None).
    ``metrics``: the names (of :data:`gamelab.metrics.METRIC_NAMES`) to record, a static tuple;
    None records every metric available. Recording only ``exploitability`` / ``duality_gap``
    costs one maximum per recording beyond the update.

    A recording and the step after it share one loop body, so the product Pπ_t that the metrics
    need is the one the update computes (XLA merges them): recording every step costs about one
    matrix–vector product per step, not two.
    """
    record, advance, interval = _driver(algo, game, hp, ref_logp, target_logp, metric_tau, record_every=record_every,
                                        record_policy=record_policy, record_average=record_average, metrics=metrics)
    carry = start(algo, game, hp, init_logp, ref_logp, record_average=record_average)
    carry, rows = lax.scan(interval, carry, None, length=steps // record_every)
    tail = []
    if steps % record_every:  # the row at (steps // k)·k, then the remaining steps
        tail.append(record(carry))
        carry = lax.fori_loop(0, steps % record_every, lambda _, c: advance(c), carry)
    final = record(carry)
    trace = {k: jnp.concatenate([rows[k]] + [t[k][None] for t in tail] + [final[k][None]]) for k in final}
    state, avg, _ = carry
    final = {k: v for k, v in final.items() if not k.endswith("policy")}
    return state, avg, trace, final


def start(algo: Algorithm, game: Game, hp, init_logp, ref_logp, *, record_average: bool = True):
    """The driver's carry at step 0: (algorithm state, running average or None, step count)."""
    state = algo.init(game, hp, init_logp, ref_logp)
    return state, jnp.exp(state.logp) if record_average else None, jnp.zeros((), jnp.int32)


def segment(algo: Algorithm, game: Game, hp, carry, ref_logp, target_logp, metric_tau, *, intervals: int,
            record_every: int, record_policy: bool = False, record_average: bool = True, metrics=None,
            record=None):
    """Continue a run from ``carry`` for ``intervals`` × ``record_every`` steps, with the same loop
    body as :func:`simulate`: returns (carry, rows recorded at the start of each interval). A run
    cut into segments — checkpointed and resumed between them (gamelab.llm) — has exactly the
    trace of one :func:`simulate` call once :func:`final_row` is appended. ``record``: see
    :func:`_driver` (``game`` need then only be what ``algo.step`` reads)."""
    _, _, interval = _driver(algo, game, hp, ref_logp, target_logp, metric_tau, record_every=record_every,
                             record_policy=record_policy, record_average=record_average, metrics=metrics,
                             record=record)
    return lax.scan(interval, carry, None, length=intervals)


def final_row(algo: Algorithm, game: Game, hp, carry, ref_logp, target_logp, metric_tau, *,
              record_policy: bool = False, record_average: bool = True, metrics=None, record=None):
    """The metrics of ``carry`` (the last row of a segmented run's trace); ``record``: as in
    :func:`segment`."""
    record, _, _ = _driver(algo, game, hp, ref_logp, target_logp, metric_tau, record_every=1,
                           record_policy=record_policy, record_average=record_average, metrics=metrics,
                           record=record)
    return record(carry)


def simulate_batch(algo, *args, steps: int, record_every: int, record_policy: bool = False,
                   record_average: bool = True, metrics: tuple[str, ...] | None = None):
    """:func:`simulate` vmapped over a leading batch axis of every array argument."""
    return jax.vmap(partial(simulate, algo, steps=steps, record_every=record_every, record_policy=record_policy,
                            record_average=record_average, metrics=metrics))(*args)


_STATIC = ("algo", "steps", "record_every", "record_policy", "record_average", "metrics")
_simulate_jit = jax.jit(simulate, static_argnames=_STATIC)
_simulate_batch_jit = jax.jit(simulate_batch, static_argnames=_STATIC)


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """The step index of each trace row: 0, k, 2k, … and the final step."""
    rows = np.arange(steps // record_every + 1) * record_every
    return rows if steps % record_every == 0 else np.append(rows, steps)


# ------------------------------------------------------------------------------ host side
def _float_dtype(dtype):
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
    return tuple(None if x is None else np.asarray(x, dtype=np.float64) for x in checked[1:])


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


def _target(target, P: np.ndarray, solve: bool = True) -> np.ndarray | None:
    """The KL target's log-probabilities (None for none). ``solve=False``: validate the spec but
    skip the LP (and return None) — the run records no ``kl_to_target``."""
    if target is None:
        return None
    if isinstance(target, str):
        if target != "nash":
            raise ValueError(f"target must be 'nash', None or a policy, got {target!r}")
        return policy_logits(exact_nash(P).policy, P.shape[0], name="target") if solve else None
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
        raise ValueError("metric 'kl_to_target' needs a target (got target=None)")


def _wants(names, metric: str) -> bool:
    return names is None or metric in names


def _metric_tau(algo: Algorithm, hp, metric_tau):
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


def _device_args(P, hp, init_logp, ref_logp, target_logp, tau, dtype, groups=None) -> tuple:
    """The driver's array arguments in ``dtype`` (integer hyper-parameters keep their type)."""
    as_dtype = partial(jnp.asarray, dtype=dtype)
    parts = (None, None, None) if groups is None else tuple(None if x is None else as_dtype(x) for x in groups)
    return (Game(as_dtype(P), *parts), _cast(hp, dtype), as_dtype(init_logp), as_dtype(ref_logp),
            None if target_logp is None else as_dtype(target_logp), None if tau is None else as_dtype(tau))


def _check_steps(steps: int, record_every: int) -> None:
    for label, v in (("steps", steps), ("record_every", record_every)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{label} must be a positive integer, got {v!r}")


def _cast(hp, dtype):
    return type(hp)(*(jnp.asarray(v, dtype) if jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating) else jnp.asarray(v) for v in hp))


def _is_random(spec) -> bool:
    return isinstance(spec, str) and spec == "random"


def _init_and_ref(init, ref, n, seed):
    # the keys only where a policy is drawn ('random'): splitting one costs a device call
    k_init, k_ref = jax.random.split(jax.random.key(int(seed))) if _is_random(init) or _is_random(ref) else (None, None)
    ref_l = policy_logits(ref, n, name="reference", key=k_ref, positive=True)
    if isinstance(init, str) and init == "ref":
        return ref_l, ref_l
    return policy_logits(init, n, name="initial policy", key=k_init), ref_l


def run(algorithm, game, *, steps: int, record_every: int = 1, init=None, ref=None, target="nash",
        metric_tau=None, seed: int = 0, dtype=None, jit: bool = True, record_policy: bool = False,
        record_average: bool = True, metrics=None, feedback: str | None = None, policy=None,
        batch: int | None = None, optimizer: str | None = None, **hparams) -> RunResult:
    """Run one algorithm on one game.

    ``init``: None (uniform), 'random' (logits ~ N(0, 1) from ``seed``), 'ref' (start at the
    reference) or a weight vector; ``ref`` likewise (but not 'ref'). ``record_policy`` adds the
    policies to the trace. ``target``:
    'nash' (the LP Nash, for ``kl_to_target``), None, or a policy. ``metric_tau``: τ of the recorded
    regularized gap (default: the algorithm's own τ, if it has one). Hyper-parameters are keywords
    (``eta=0.1, tau=0.1``); the rest take the algorithm's defaults.

    ``metrics``: which metrics to record (names of :data:`gamelab.metrics.METRIC_NAMES`, or one
    name); None (the default) records every metric the run can compute. A name the run cannot
    compute raises (``regularized_gap`` without a τ, ``kl_to_target`` with ``target=None``); without
    ``kl_to_target`` the target's LP is not solved. Recording only ``exploitability`` /
    ``duality_gap`` costs one maximum per recorded step beyond the update. ``record_average=False``:
    no average-iterate metrics, and the average iterate is not tracked (``avg_policy`` is None).

    ``feedback``: None or 'closed' (the tabular closed-form update), 'exact' or 'sampled' — the
    algorithm's loss minimized by ``optimizer`` ('adam', 'sgd', …; its ``lr`` and ``updates`` per
    step are hyper-parameters) on ``policy`` ('tabular', 'linear:d=K' or a
    :class:`gamelab.policies.Policy`) from exact expectations or ``batch`` sampled pairs per step
    (:mod:`gamelab.algorithms.parametric`); ``seed`` then also seeds the sampling.
    """
    _check_steps(steps, record_every)
    names = metric_names(metrics)
    dtype = _float_dtype(dtype)
    P = _as_game(game)
    n = P.shape[0]
    algo = resolve_algorithm(algorithm, n, learning_options(feedback, policy, batch, optimizer))
    if "seed" in algo.hparams._fields:
        hparams.setdefault("seed", int(seed))
    hp = algo.make_hparams(**hparams)
    init_l, ref_l = _init_and_ref(init, ref, n, seed)
    tgt = _target(target, P, solve=_wants(names, "kl_to_target"))
    tau = _metric_tau(algo, hp, metric_tau)
    tau = tau if _wants(names, "regularized_gap") else None
    _check_available(names, tau, tgt, algo)
    args = _device_args(P, hp, init_l, ref_l, tgt, tau, dtype, _group_arrays(game))
    fn = _simulate_jit if jit else simulate
    state, avg, trace, final = fn(algo, *args, steps=steps, record_every=record_every, record_policy=record_policy,
                                  record_average=record_average, metrics=names)
    return RunResult(state, state.logp, avg, recorded_steps(steps, record_every), trace, final)


def run_batch(algorithm, games, *, steps: int, record_every: int = 1, hparams: dict | None = None,
              init=None, ref=None, target="nash", metric_tau=None, seeds: Sequence[int] | int = 0,
              dtype=None, jit: bool = True, record_policy: bool = False, record_average: bool = True,
              metrics=None, mesh=None, feedback: str | None = None, policy=None, batch: int | None = None,
              optimizer: str | None = None) -> RunResult:
    """Run one algorithm over a batch of B runs as one vmapped computation.

    ``games``: a list of games / matrices, a (B, n, n) array or a batched :class:`Game`; one game
    is broadcast. The stack is validated on the host as one vectorized check (an invalid game
    raises naming its index: ``game 3: …``). ``hparams``: name -> scalar or length-B sequence.
    ``seeds``: int or length-B sequence (used by 'random' init/ref). ``init``/``ref``/``target``:
    as in :func:`run`, or a (B, n) array. ``metrics``, ``record_average``: as in :func:`run`.
    Values of hyper-parameters are traced: changing them never recompiles. ``mesh``: a one-axis
    ``jax.sharding.Mesh``; the runs are sharded over its devices (B must be a multiple of its size),
    each device computing B / size runs with no communication — ``gamelab.hosts.local_mesh(B)``
    takes every local device (on a CPU host, one per core after ``gamelab.hosts.use_cpu_cores()``).
    The iterates are those of one device bit for bit; a metric that is a dot product over the
    responses may differ in the last bit (XLA vectorizes it by the per-device batch shape; a sweep
    keeps the shape and is bit-identical). ``feedback``, ``policy``, ``batch``,
    ``optimizer``: as in :func:`run` (each run's sampling is seeded by its entry of ``seeds``).
    """
    _check_steps(steps, record_every)
    names = metric_names(metrics)
    dtype = _float_dtype(dtype)
    if isinstance(games, Game) and games.groups is not None:  # a batched multi-group Game: one per run
        batched = jax.tree.map(np.asarray, games if games.P.ndim == 3 else jax.tree.map(lambda x: x[None], games))
        games = [Game(*(None if x is None else x[i] for x in batched)) for i in range(batched.P.shape[0])]
    group_parts = [_group_arrays(g) for g in games] if isinstance(games, (list, tuple)) else [None]
    games_given = _as_games(games)
    n = games_given.shape[-1]
    algo = resolve_algorithm(algorithm, n, learning_options(feedback, policy, batch, optimizer))
    hparams = dict(hparams or {})
    seeds_arr = np.atleast_1d(np.asarray(seeds))
    if "seed" in algo.hparams._fields:
        hparams.setdefault("seed", seeds_arr)
    lengths = {len(games_given), len(seeds_arr)} | {np.size(v) for v in hparams.values()}
    for spec in (init, ref, target):
        if _per_run(spec):
            lengths.add(len(spec))
    B = max(lengths)
    if lengths - {1, B}:
        raise ValueError(f"batch inputs have incompatible lengths {sorted(lengths)}: each must be 1 or B")
    hp = algo.make_hparams(**{k: np.broadcast_to(np.asarray(v), (B,)) for k, v in hparams.items()})
    hp = type(hp)(*(np.broadcast_to(np.asarray(v), (B,)) for v in hp))
    mats = np.broadcast_to(games_given, (B, n, n))
    groups = _stack_groups(group_parts * B if len(group_parts) == 1 else group_parts)
    seeds_arr = np.broadcast_to(seeds_arr, (B,))

    def per_run(spec, i):
        if _per_run(spec):
            return spec[0] if len(spec) == 1 else spec[i]
        return spec

    if _per_run(init) or _per_run(ref) or _is_random(init) or _is_random(ref):
        inits, refs = zip(*(_init_and_ref(per_run(init, i), per_run(ref, i), n, seeds_arr[i]) for i in range(B)))
        inits, refs = np.stack(inits), np.stack(refs)
    else:  # the same for every run: computed once
        init_l, ref_l = _init_and_ref(init, ref, n, seeds_arr[0])
        inits, refs = np.broadcast_to(init_l, (B, n)), np.broadcast_to(ref_l, (B, n))
    solve = _wants(names, "kl_to_target")
    if isinstance(target, str) and len(games_given) < B:  # one LP per game given, not one per run
        solved = [_target(target, m, solve) for m in games_given]
        targets = [solved[0 if len(solved) == 1 else i] for i in range(B)]
    else:
        targets = [_target(per_run(target, i), mats[i], solve) for i in range(B)]
    tau = _metric_tau(algo, hp, metric_tau)
    tau = tau if _wants(names, "regularized_gap") else None
    _check_available(names, tau, targets[0], algo)
    args = _device_args(mats, hp, inits, refs, None if targets[0] is None else np.stack(targets),
                        None if tau is None else np.broadcast_to(np.asarray(tau), (B,)), dtype, groups)
    if mesh is not None:
        if B % mesh.size:
            raise ValueError(f"a batch of {B} runs cannot be split evenly over {mesh.size} devices")
        args = shard_runs(args, mesh)
    fn = _simulate_batch_jit if jit else simulate_batch
    state, avg, trace, final = fn(algo, *args, steps=steps, record_every=record_every, record_policy=record_policy,
                                  record_average=record_average, metrics=names)
    return RunResult(state, state.logp, avg, recorded_steps(steps, record_every), trace, final)


def _per_run(spec) -> bool:
    """Whether an init/ref/target spec is a (B, n) array: one policy per run."""
    return isinstance(spec, (np.ndarray, jax.Array, list)) and np.ndim(spec) == 2
