"""The only loop: one loop over recording intervals (for a batch, its body vmapped over the games).

:func:`simulate` is the pure driver for one game and one policy; :func:`run` and :func:`run_batch`
are the host-side entry points: :func:`gamelab.prepare.prepare` validates every input once and
fills defaults (uniform initial policy and reference, the LP Nash as the KL target), then
:func:`execute` calls the jitted driver. Metrics come back
as stacked arrays, for the last iterate and (prefixed ``avg_``) for the average iterate
(1/(t+1))·Σ_{s≤t} π_s. Trace rows are steps 0, k, 2k, … (k = ``record_every``) and always the
final step: row 0 is the initial policy.
"""
from __future__ import annotations

import sys
from functools import partial
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gamelab import defaults
from gamelab.algorithms import Algorithm
from gamelab.executables import Program
from gamelab.games.core import Game
from gamelab.hosts import release_programs
from gamelab.metrics import group_metrics, policy_metrics
from gamelab.prepare import Prepared, prepare, row_bucket


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


def _metrics(algo, game, carry, ref, tau, target, record_policy, record_average, names):
    state, avg, _ = carry
    out = policy_metrics(game.P, state.logp, ref, tau=tau, target_logits=target, normalized=True, names=names)
    if game.groups is not None:  # a multi-group game: per-group, worst-group and mean metrics
        out.update(group_metrics(game, state.logp, ref))
    if algo.recorded is not None:  # what the algorithm records of its state (a parametric run's loss)
        out.update(algo.recorded(state))
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
        record = partial(_metrics, algo, game, ref=ref_logp, tau=metric_tau, target=target_logp,
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
        # record_every is static; the step is traced once either way
        if record_every == 1:  # the step in the recording's loop body, as in _row_loop: XLA shares their Pπ_t
            return advance(carry), row
        return lax.fori_loop(0, record_every, lambda _, c: advance(c), carry), row

    return record, advance, interval


def simulate(algo: Algorithm, game: Game, hp, init_logp, ref_logp, target_logp, metric_tau, steps, record_every, *,
             rows: int, record_policy: bool = False, record_average: bool = True,
             metrics: tuple[str, ...] | None = None):
    """Run ``steps`` steps of ``algo`` on one game; record metrics every ``record_every`` steps.

    Pure and unbatched. ``steps`` and ``record_every`` are (traced) integers: any values run in
    the same compiled program. ``rows`` (static) is the length of the returned trace, at least
    ⌈steps / record_every⌉ + 1: row j holds the metrics at step min(j·k, steps); rows beyond
    that are left zero (the host cuts them: :func:`gamelab.prepare.row_bucket`). Returns
    (final state, final average policy or None, trace).

    ``target_logp`` (KL target) and ``metric_tau`` (for the regularized gap) may be None, in which
    case those metrics are absent. ``record_policy`` adds the policies themselves (``policy`` and
    ``avg_policy``, shape (rows, n)) to the trace; ``record_average=False`` drops the
    average-iterate metrics (each costs one more product with P per recording) and does not track
    the average iterate at all. ``metrics``: the names (of :data:`gamelab.metrics.METRIC_NAMES`)
    to record, a static tuple; None records every metric available. Recording only
    ``exploitability`` / ``duality_gap`` costs one maximum per recording beyond the update.

    A recording and the step after it share one loop body, so the product Pπ_t that the metrics
    need is the one the update computes (XLA merges them): recording every step costs about one
    matrix–vector product per step, not two.
    """
    carry = start(algo, game, hp, init_logp, ref_logp, record_average=record_average)
    carry, trace = simulate_rows(algo, game, hp, ref_logp, target_logp, metric_tau, carry, steps, record_every, 0,
                                 rows=rows, record_policy=record_policy, record_average=record_average,
                                 metrics=metrics)
    state, avg, _ = carry
    return state, avg, trace


def simulate_rows(algo: Algorithm, game: Game, hp, ref_logp, target_logp, metric_tau, carry, steps, record_every,
                  first, *, rows: int, record_policy: bool = False, record_average: bool = True,
                  metrics: tuple[str, ...] | None = None):
    """Rows ``first``, ``first + 1``, … of :func:`simulate`'s trace — at most ``rows`` of them, up
    to the final one — continuing the run from ``carry`` (the carry at row ``first``): returns
    (carry, trace of ``rows`` rows). :func:`simulate` is this from :func:`start` with ``first``
    0; a run cut into several calls (to show progress) has the same trace bit for bit."""
    record, advance, _ = _driver(algo, game, hp, ref_logp, target_logp, metric_tau, record_every=1,
                                 record_policy=record_policy, record_average=record_average, metrics=metrics)
    return _row_loop(record, advance, carry, steps, record_every, first, rows)


def _row_loop(record, advance, carry, steps, record_every, first, rows: int):
    """:func:`simulate_rows`' loop, for ``record`` and ``advance`` of one game's carry or (vmapped)
    of a batch's: a while loop over exactly the rows to record — the traced count, one loop body,
    no conditional — writing row j of the result's leading axis (rows past the final one stay
    zero). The loop stays outside any vmap, so a batch's rows are written whole and contiguous:
    a vmapped loop writes each batched row as a strided column, and a static scan over the bucket
    with the rows past the final one skipped by a conditional cost 20–35 % more per step with
    every metric recorded (measured at 64 × 100 and 1024 × 1000 games × steps)."""
    intervals = (steps + record_every - 1) // record_every  # then one more row: the final step
    shapes = jax.eval_shape(record, carry)
    trace = {k: jnp.zeros((rows,) + v.shape, v.dtype) for k, v in shapes.items()}

    def body(loop):
        j, carry, trace = loop
        row = record(carry)
        todo = jnp.clip(steps - (first + j) * record_every, 0, record_every)  # 0 in the final row only
        stepped = advance(carry)  # in the loop body of the recording: XLA shares their Pπ_t
        carry = jax.tree.map(lambda new, old: jnp.where(todo > 0, new, old), stepped, carry)
        carry = lax.fori_loop(1, todo, lambda _, c: advance(c), carry)
        trace = {k: lax.dynamic_update_index_in_dim(trace[k], row[k], j, 0) for k in trace}
        return j + 1, carry, trace

    count = jnp.clip(intervals + 1 - first, 0, rows)
    _, carry, trace = lax.while_loop(lambda loop: loop[0] < count, body, (jnp.zeros((), jnp.int32), carry, trace))
    return carry, trace


def start(algo: Algorithm, game: Game, hp, init_logp, ref_logp, *, record_average: bool = True):
    """The driver's carry at step 0: (algorithm state, running average or None, step count)."""
    state = algo.init(game, hp, init_logp, ref_logp)
    return state, jnp.exp(state.logp) if record_average else None, jnp.zeros((), jnp.int32)


def segment(algo: Algorithm, game: Game, hp, carry, ref_logp, target_logp, metric_tau, *, intervals: int,
            record_every: int, record_policy: bool = False, record_average: bool = True, metrics=None,
            record=None):
    """Continue a run from ``carry`` for ``intervals`` × ``record_every`` steps, with the recording
    and step of :func:`simulate`: returns (carry, rows recorded at the start of each interval). A
    run cut into segments — checkpointed and resumed between them (gamelab.llm) — has the trace of
    one :func:`simulate` call once :func:`final_row` is appended (bit for bit in tests/test_llm.py's
    tabular runs). An interval is a recording and a loop of ``record_every`` steps (static), so the
    step — a whole parametric update, for a model — is traced once. ``record``: see
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


def simulate_batch(algo, game, hp, init_logp, ref_logp, target_logp, metric_tau, steps, record_every, *,
                   rows: int, record_policy: bool = False, record_average: bool = True,
                   metrics: tuple[str, ...] | None = None):
    """:func:`simulate` for a leading batch axis of every array argument but ``steps`` and
    ``record_every`` (one pair for the whole batch), with the loop over rows outside the vmap (see
    :func:`_row_loop`). Each run's trace is :func:`simulate`'s to rounding: a batched product sums
    in another order (at most 3e-13 apart over 37 steps for every registered algorithm, measured).
    Against ``jax.vmap(simulate)``, which this replaced, it is bit for bit for every registered
    algorithm but Nash-MP (1–4 ulp)."""
    carry = start_batch(algo, game, hp, init_logp, ref_logp, record_average=record_average)
    carry, trace = simulate_rows_batch(algo, game, hp, ref_logp, target_logp, metric_tau, carry, steps, record_every,
                                       0, rows=rows, record_policy=record_policy, record_average=record_average,
                                       metrics=metrics)
    state, avg, _ = carry
    return state, avg, trace


def start_batch(algo, game, hp, init_logp, ref_logp, *, record_average: bool = True):
    """:func:`start` vmapped over a leading batch axis."""
    return jax.vmap(partial(start, algo, record_average=record_average))(game, hp, init_logp, ref_logp)


def simulate_rows_batch(algo, game, hp, ref_logp, target_logp, metric_tau, carry, steps, record_every, first, *,
                        rows: int, record_policy: bool = False, record_average: bool = True,
                        metrics: tuple[str, ...] | None = None):
    """:func:`simulate_rows` for a leading batch axis (``steps``, ``record_every`` and ``first``
    shared): each row's recording and steps vmapped, the loop over rows not."""
    context = (game, hp, ref_logp, target_logp, metric_tau)

    def vmapped(part):  # 0: the recording, 1: one step — of every game in the batch
        def one(game, hp, ref_logp, target_logp, metric_tau, carry):
            return _driver(algo, game, hp, ref_logp, target_logp, metric_tau, record_every=1,
                           record_policy=record_policy, record_average=record_average, metrics=metrics)[part](carry)
        return lambda carry: jax.vmap(one)(*context, carry)

    carry, trace = _row_loop(vmapped(0), vmapped(1), carry, steps, record_every, first, rows)
    return carry, {k: jnp.moveaxis(v, 0, 1) for k, v in trace.items()}  # (batch, rows, …)


STATIC = ("algo", "rows", "record_policy", "record_average", "metrics")
# jitted, and their executables kept across processes (gamelab.executables): a warm process finds
# the driver without tracing it
simulate_jit = Program(simulate, static_argnames=STATIC)
simulate_batch_jit = Program(simulate_batch, static_argnames=STATIC)
_PIECES = {False: (Program(start, static_argnames=("algo", "record_average")),
                   Program(simulate_rows, static_argnames=STATIC)),
           True: (Program(start_batch, static_argnames=("algo", "record_average")),
                  Program(simulate_rows_batch, static_argnames=STATIC))}
PROGRESS_CALLS = 50  # a run shown with progress is cut into about this many calls of the driver


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """The step index of each trace row: 0, k, 2k, … and the final step."""
    rows = np.arange(steps // record_every + 1) * record_every
    return rows if steps % record_every == 0 else np.append(rows, steps)


# ------------------------------------------------------------------------------ host side
def execute(prep: Prepared, *, jit: bool = True, compiled=None, progress: bool = False) -> RunResult:
    """Run a :class:`gamelab.prepare.Prepared` batch through the one driver (jitted, or op by op
    with ``jit=False``, or through ``compiled``: :func:`lower`'s program for a batch of the same
    shapes, compiled ahead of time); the trace comes back as NumPy arrays with one row per
    recording. ``progress``: a progress bar on stderr, the run cut into about
    :data:`PROGRESS_CALLS` calls of the driver (the same trace bit for bit; two more programs to
    compile)."""
    release_programs()  # far from the kernel's limit on memory mappings before loading another program
    rows = prep.rows
    counts = (np.int32(prep.steps), np.int32(prep.record_every))
    if progress:
        state, avg, trace = _in_pieces(prep)
    elif compiled is not None:
        state, avg, trace = compiled(*prep.args, *counts)
    else:
        if prep.batched:
            fn = simulate_batch_jit if jit else simulate_batch
        else:
            fn = simulate_jit if jit else simulate
        state, avg, trace = fn(prep.algo, *prep.args, *counts, **_static(prep))
    trace = {k: _rows(v, rows, prep.batched) for k, v in trace.items()}
    final = {k: v[:, rows - 1] if prep.batched else v[rows - 1] for k, v in trace.items() if not k.endswith("policy")}
    return RunResult(state, state.logp, avg, recorded_steps(prep.steps, prep.record_every), trace, final)


def _in_pieces(prep: Prepared):
    """:func:`execute`'s run cut into calls of :func:`simulate_rows`, with a tqdm bar."""
    from tqdm.auto import tqdm

    begin, continue_ = _PIECES[prep.batched]
    game, hp, init_logp, ref_logp, target_logp, tau = prep.args
    rows, k = prep.rows, prep.record_every
    size = row_bucket(max(1, -(-rows // PROGRESS_CALLS)))
    carry = begin(prep.algo, game, hp, init_logp, ref_logp, record_average=prep.record_average)
    parts = []
    with tqdm(total=prep.steps, unit="step", file=sys.stderr, dynamic_ncols=True, desc=prep.algo.name) as bar:
        for first in range(0, rows, size):
            carry, part = continue_(prep.algo, game, hp, ref_logp, target_logp, tau, carry, np.int32(prep.steps),
                                    np.int32(k), np.int32(first), **_static(prep, rows=size))
            parts.append(jax.tree.map(np.asarray, part))  # waits for it: the bar follows the computation
            bar.update(min(prep.steps, (first + size) * k) - min(prep.steps, first * k))
    axis = 1 if prep.batched else 0
    state, avg, _ = carry
    return state, avg, {key: np.concatenate([p[key] for p in parts], axis=axis) for key in parts[0]}


def driver_call(prep: Prepared) -> tuple:
    """(the driver's Program, its positional and keyword arguments for ``prep``)."""
    fn = simulate_batch_jit if prep.batched else simulate_jit
    return fn, (prep.algo, *prep.args, np.int32(prep.steps), np.int32(prep.record_every)), _static(prep)


def program(prep: Prepared, *, compile: bool = True):
    """The driver's executable for ``prep``, which :func:`execute` takes as ``compiled``: held
    by this process, read from the store of compiled programs (:mod:`gamelab.executables`), or
    (``compile``) compiled now and kept there; None if not held and not ``compile``. Independent
    programs can compile at once, on several cores."""
    fn, args, kwargs = driver_call(prep)
    return fn.find(args, kwargs, compile=compile)


def program_key(prep: Prepared) -> tuple:
    """What decides the compiled program of ``prep``: equal keys, one program."""
    leaves = tuple((x.shape, str(x.dtype), getattr(x, "sharding", None)) for x in jax.tree.leaves(prep.args))
    return prep.algo, prep.batched, jax.tree.structure(prep.args), leaves, tuple(sorted(_static(prep).items()))


def _static(prep: Prepared, rows: int | None = None) -> dict:
    return dict(rows=row_bucket(prep.rows) if rows is None else rows, record_policy=prep.record_policy,
                record_average=prep.record_average, metrics=prep.metrics)


def _rows(values, rows: int, batched: bool) -> np.ndarray:
    """The first ``rows`` rows of a trace array (rows are its first axis after the batch axis)."""
    values = np.asarray(values)
    return values[:, :rows] if batched else values[:rows]


def run(algorithm, game, *, steps: int, record_every: int = defaults.RECORD_EVERY, init=None, ref=None, target="auto",
        metric_tau=None, seed: int = defaults.SEED, dtype=None, jit: bool = True, record_policy: bool = False,
        record_average: bool = True, metrics=None, feedback: str | None = None, policy=None,
        batch: int | None = None, optimizer: str | None = None, **hparams) -> RunResult:
    """Run one algorithm on one game: a :class:`Game`, an (n, n) matrix or a game's name as the
    command line takes it (``'rps'``, ``'random:n=5,seed=0'``: :func:`gamelab.games.parse_game`).

    ``init``: None (uniform), 'random' (logits ~ N(0, 1) from ``seed``), 'ref' (start at the
    reference) or a weight vector; ``ref`` likewise (but not 'ref'). ``record_policy`` adds the
    policies to the trace. ``target``:
    'nash' (the LP Nash, for ``kl_to_target``), 'auto' (the default: 'nash' up to
    ``gamelab.defaults.EXACT_NASH_MAX_N`` responses, None beyond), None, or a policy. ``metric_tau``: τ of the recorded
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

    The trace is a dict of NumPy arrays, one row per recording (steps 0, k, 2k, … and the last).
    """
    prep = prepare(algorithm, game, steps=steps, record_every=record_every, hparams=hparams, init=init, ref=ref,
                   target=target, metric_tau=metric_tau, seeds=seed, dtype=dtype, record_policy=record_policy,
                   record_average=record_average, metrics=metrics, feedback=feedback, policy=policy, batch=batch,
                   optimizer=optimizer, batched=False)
    return execute(prep, jit=jit)


def run_batch(algorithm, games, *, steps: int, record_every: int = defaults.RECORD_EVERY, hparams: dict | None = None,
              init=None, ref=None, target="auto", metric_tau=None, seeds: Sequence[int] | int = defaults.SEED,
              dtype=None, jit: bool = True, record_policy: bool = False, record_average: bool = True,
              metrics=None, mesh=None, feedback: str | None = None, policy=None, batch: int | None = None,
              optimizer: str | None = None, pad_to: int | None = None) -> RunResult:
    """Run one algorithm over a batch of B runs as one vmapped computation.

    ``games``: a list of games / matrices / game names (as :func:`run` takes them), a (B, n, n)
    array or a batched :class:`Game`; one game is broadcast. The stack is validated on the host as
    one vectorized check (an invalid game raises naming its index: ``game 3: …``). ``hparams``: name -> scalar or length-B sequence.
    ``seeds``: int or length-B sequence (used by 'random' init/ref). ``init``/``ref``/``target``:
    as in :func:`run`, or a (B, n) array. ``metrics``, ``record_average``: as in :func:`run`.
    Values of hyper-parameters, ``steps`` and ``record_every`` are traced: changing them never
    recompiles (the trace length is bucketed to a power of two). ``mesh``: a one-axis
    ``jax.sharding.Mesh``; the runs are sharded over its devices (B must be a multiple of its size),
    each device computing B / size runs with no communication — ``gamelab.hosts.local_mesh(B)``
    takes every local device (on a CPU host, one per core after ``gamelab.hosts.use_cpu_cores()``).
    The iterates are those of one device bit for bit; a metric that is a dot product over the
    responses may differ in the last bit (XLA vectorizes it by the per-device batch shape; a sweep
    keeps the shape and is bit-identical). ``feedback``, ``policy``, ``batch``,
    ``optimizer``: as in :func:`run` (each run's sampling is seeded by its entry of ``seeds``).
    ``pad_to``: games of several sizes, each padded to ``pad_to`` responses that keep probability
    exactly 0 (one compiled program for all sizes; :func:`gamelab.prepare.prepare`).
    """
    prep = prepare(algorithm, games, steps=steps, record_every=record_every, hparams=hparams, init=init, ref=ref,
                   target=target, metric_tau=metric_tau, seeds=seeds, dtype=dtype, record_policy=record_policy,
                   record_average=record_average, metrics=metrics, mesh=mesh, feedback=feedback, policy=policy,
                   batch=batch, optimizer=optimizer, pad_to=pad_to)
    return execute(prep, jit=jit)
