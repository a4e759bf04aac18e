"""Training a policy on a sequence game: the same algorithms, the same driver, checkpointed segments.

:func:`train` runs a registered algorithm's loss form (``gamelab.algorithms.parametric``) on a
:class:`~gamelab.llm.model.TransformerPolicy` — or on tabular logits over the same enumerated
sequences, which must give the tabular engine's numbers — through the generic checkpointed
segment loop (:func:`gamelab.segments.run_segments`: the driver's own loop body, orbax
checkpoints, resume bit for bit, the config guard, progress). This module only builds the policy,
the oracle and the recorder.

Metrics (``metrics=``; default: exact up to :data:`MAX_ENUMERATED` responses, sampled beyond):

* ``exact``: the policy's distribution over all V^L sequences is enumerated each recording:
  exploitability, duality gap, regularized gap against the reference (the initial, frozen
  transformer: the uniform policy), entropy, win rate against the reference, and — from the class
  marginal — KL(class-level Nash ‖ class marginal). One prompt: the driver's own metrics on the
  lifted (V^L, V^L) matrix (the tabular engine's numbers); several prompts: the same metrics per
  prompt from its class marginal (P lifted from classes: (Pπ)_y = (C q)_{c(y)}, O(V^L) each).
* ``sampled``: nothing of size V^L is enumerated (:mod:`gamelab.llm.pairs`: pairs from the
  policy's sampler, labels from the class oracle). Each recording draws ``eval_samples``
  responses per prompt from the policy and estimates exploitability, duality gap and KL to the
  class Nash with simultaneous confidence intervals at ``level``, and, from the same responses'
  log-probabilities (one teacher-forced pass), entropy, win rate against the reference and the
  regularized gap toward it (:func:`gamelab.llm.games.class_intervals`): columns ``<metric>``,
  ``<metric>_lo``, ``<metric>_hi``.

The reference is the policy at its initial parameters, as the losses see it: uniform for the toy
transformer and tabular logits; for a pretrained policy (``policy.reference_is_initial``, e.g. a
:class:`~gamelab.llm.policy.DecoderPolicy`: the frozen base model) its distribution is enumerated
once on the host, win rate and regularized gap are taken against it, and ``kl_to_ref`` is recorded
too (exact; or the Monte-Carlo mean of log π(y) − log π_ref(y) over the sampled responses, with a
normal interval).

Several prompts (each with its own class matrix): every step draws ``batch`` prompts from
``prompt_weights`` (default uniform) and a pair per prompt; the trace's ``<metric>`` is the
prompt-weighted mean and ``prompt{k}_<metric>`` prompt k's value (a mean's interval combines the
prompts' intervals at the Bonferroni level 1 − (1 − level)/prompts, so it too holds at ``level``).
The trace is stored like a sweep's (``out/_manifest.json``, ``out/chunks/*.parquet``), so
``gamelab plot`` and ``gamelab report`` read it.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gamelab import defaults
from gamelab.algorithms import get_algorithm
from gamelab.algorithms.parametric import make_parametric
from gamelab.llm.games import SequenceGame, class_intervals, class_level_metrics, class_marginal, \
    present_classes, sampled_metric_names
from gamelab.llm.model import TransformerPolicy
from gamelab.llm.pairs import ClassOracle, PromptPairs, check_streamable
from gamelab.metrics import regularized_gap_from_win_rates
from gamelab.policies import Policy, TabularPolicy
from gamelab.prepare import cast_hparams, device_args, metric_tau_of
from gamelab.results import check_kind, writer_lock
from gamelab.run import recorded_steps
from gamelab.segments import run_segments, to_global, to_host

METRICS = ("exploitability", "duality_gap", "regularized_gap", "entropy", "win_rate_vs_ref")
# The exact metrics (and the driver's oracle) enumerate all V^L responses and hold the lifted
# (V^L, V^L) preference matrix in float64 — 2.1 GB at 16384, on the host and again on the device;
# beyond this, metrics are sampled by default and metrics='exact' is refused rather than exhaust
# memory (raise it on a large accelerator).
MAX_ENUMERATED = 16384
METRIC_MODES = ("exact", "sampled")


class TrainResult(NamedTuple):
    steps: np.ndarray  # (R,) recorded steps
    trace: dict  # metric -> (R,) arrays, plus kl_to_class_nash and class_marginal (R, m) or (R, prompts, m)
    logp: np.ndarray | None  # final log-distribution over the V^L sequences ((prompts, V^L) for several
    # prompts; None with sampled metrics: never enumerated)
    config: dict  # everything that defines the run (also written to out/_run.json)
    seconds: float  # wall time of this call (a resumed run: since the resume)
    resumed_from: int  # recorded intervals restored from a checkpoint (0: fresh)
    params: object = None  # the final policy parameters (host arrays): what a later evaluation samples from


def make_policy(kind: str, game: SequenceGame, *, seed: int = 0, mesh=None, fsdp: bool = False, **model) -> Policy:
    """The policy of a run; one object per configuration (so a second run of the same
    configuration in this process hits the jit caches instead of compiling again)."""
    if kind == "transformer":
        return _transformer(game.vocab, game.length, game.C.shape[0], seed, mesh, fsdp, tuple(sorted(model.items())))
    if kind == "tabular":
        return _tabular(game.n, game.C.shape[0])
    raise ValueError(f"policy must be 'transformer' or 'tabular', got {kind!r}")


@lru_cache(maxsize=16)
def _transformer(vocab, length, prompts, seed, mesh, fsdp, model) -> TransformerPolicy:
    return TransformerPolicy(vocab, length, prompts=prompts, seed=seed, mesh=mesh, fsdp=fsdp, **dict(model))


@lru_cache(maxsize=16)
def _tabular(n: int, prompts: int) -> TabularPolicy:
    return TabularPolicy(n, prompts)


class CarryLayout(NamedTuple):
    """The carry in one fixed layout over ``mesh`` (static: the segment loop's layout hook):
    parameters, reference and every parameter-shaped part of the optimizer state as
    ``policy.param_sharding`` says (FSDP: sharded), the rest replicated. Both the start and every
    segment return it, so the segment's input shardings never change and it compiles once
    (otherwise FSDP's sharded output would compile a second program)."""

    policy: Policy
    mesh: object

    def __call__(self, carry):
        from jax.sharding import NamedSharding, PartitionSpec

        state, avg, t = carry
        replicated = NamedSharding(self.mesh, PartitionSpec())
        wsc = jax.lax.with_sharding_constraint
        spec = self.policy.param_sharding(state.params, self.mesh)
        shape = jax.tree.structure(state.params)
        like_params = lambda x: jax.tree.structure(x) == shape  # noqa: E731
        rep = lambda tree: jax.tree.map(lambda x: wsc(x, replicated), tree)  # noqa: E731
        opt = jax.tree.map(lambda x: wsc(x, spec) if like_params(x) else rep(x), state.opt, is_leaf=like_params)
        hat = None if state.hat is None else wsc(state.hat, spec)  # ONPO's second policy: as the parameters
        state = state._replace(params=wsc(state.params, spec), ref=wsc(state.ref, spec), opt=opt, hat=hat,
                               **{f: rep(getattr(state, f)) for f in ("logp", "ref_logp", "key", "t", "loss")})
        return state, rep(avg), rep(t)


class FrozenBase(NamedTuple):
    """The carry's leaves no step changes (the segment loop's ``frozen`` hook): the policy's
    untrainable parameters (``policy.trainable``, e.g. a LoRA run's base weights) in the state's
    parameters, in its reference, which only ever copies the parameters, and in ONPO's π̂. A checkpoint then
    holds the adapters and the optimizer, not the base model twice."""

    policy: Policy

    def __call__(self, carry):
        marks = jax.tree.map(lambda _: False, carry)
        if self.policy.trainable is None:
            return marks
        fixed = jax.tree.map(lambda t: not t, self.policy.trainable(carry[0].params))
        hat = None if carry[0].hat is None else fixed  # ONPO's π̂ starts as the parameters, trains the same leaves
        return (marks[0]._replace(params=fixed, ref=fixed, hat=hat),) + tuple(marks[1:])


# The path of several prompts or sampled metrics: the parametric step draws from PromptPairs on
# the class oracle, and the recordings are computed from class marginals (below), not from the
# lifted matrix; the loop body is the driver's (a recording, then record_every steps).
class Evaluation(NamedTuple):
    """What the recordings read besides the oracle (a pytree of arrays)."""

    star: jax.Array  # (prompts, m) class-level Nash per prompt
    present: jax.Array  # (m,) classes that have a sequence
    ref_q: jax.Array  # (prompts, m) class marginal of the reference (uniform, or the base model's)
    tau: jax.Array | None  # τ of the regularized gap toward the reference, or None
    ref_logp: jax.Array | None = None  # (prompts, V^L) the base model's distribution (exact metrics), or None: uniform
    ref_params: object = None  # the base model's parameters (sampled metrics: its log-probabilities of the
    # sampled responses give the Monte-Carlo KL to it), or None: uniform


class ClassRecorder(NamedTuple):
    """The recorder of the segment loop (static) for several prompts or sampled metrics:
    ``recorder(oracle, evaluation, carry)`` -> per-prompt arrays (prompts, …) of the metrics,
    and the last loss."""

    mode: str  # 'exact' or 'sampled'
    samples: int  # responses drawn per prompt and recording (sampled)
    levels: tuple  # (per prompt, for the prompt mean) confidence levels (sampled)
    policy: Policy

    def __call__(self, game: ClassOracle, ev: Evaluation, carry) -> dict:
        return _record(self, self.policy, game, ev, carry)


def _record(rec: ClassRecorder, policy, game: ClassOracle, ev: Evaluation, carry) -> dict:
    state = carry[0]
    prompts, m = game.C.shape[0], game.C.shape[-1]
    keys = jax.random.split(jax.random.fold_in(state.key, 1), 2 * prompts)  # never a training draw's key
    rows = []
    for x in range(prompts):
        C = game.C[x]
        if rec.mode == "exact":
            logp = policy.log_probs(state.params, x)
            p = jnp.exp(logp)
            q = jnp.zeros(m, p.dtype).at[game.classes].add(p)
            row = class_level_metrics(C, ev.star[x], ev.present, q)
            row.update(entropy=-jnp.sum(jnp.where(p > 0, p * logp, 0.0)), win_rate_vs_ref=q @ C @ ev.ref_q[x],
                       class_marginal=q)
            if ev.ref_logp is None:
                ref_logp = jnp.full(logp.shape, -jnp.log(logp.shape[0]), logp.dtype)
            else:
                ref_logp = ev.ref_logp[x]
                row["kl_to_ref"] = jnp.sum(jnp.where(p > 0, p * (logp - ref_logp), 0.0))
            if ev.tau is not None:
                row["regularized_gap"] = regularized_gap_from_win_rates((C @ q)[game.classes], logp, ref_logp, ev.tau)
        else:
            y = policy.sample(state.params, keys[2 * x], (rec.samples,), x)
            counts = jnp.zeros(m, ev.ref_q.dtype).at[game.classes[y]].add(1.0)
            out = class_intervals(counts, C, ev.star[x], ev.present, keys[2 * x + 1], rec.levels,
                                  logp=policy.logprob(state.params, y, x), ref_q=ev.ref_q[x],
                                  log_n=math.log(game.classes.shape[0]), tau=ev.tau,
                                  ref_logp=None if ev.ref_params is None else policy.logprob(ev.ref_params, y, x))
            row = {"class_marginal": out.pop("class_marginal")}
            for name, (point, lo, hi) in out.items():
                row.update({name: point, f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    stacked = {k: jnp.stack([r[k] for r in rows]) for k in rows[0]}
    stacked["loss"] = state.loss
    return stacked


def reference_log_probs(pol: Policy, prompts: int) -> np.ndarray:
    """(prompts, V^L) float64: the policy's distribution at its initial parameters (the losses'
    reference), enumerated once on the host (so its class marginal, and with exact metrics its
    log-probabilities, are exact in every recording)."""
    if pol.n > MAX_ENUMERATED:
        raise ValueError(f"V^L = {pol.n} responses: the reference's class marginal is enumerated once, at most "
                         f"gamelab.llm.train.MAX_ENUMERATED = {MAX_ENUMERATED} responses")
    return enumerated_log_probs(pol, pol.init(None), prompts)


def enumerated_log_probs(pol: Policy, params, prompts: int) -> np.ndarray:
    """(prompts, V^L) float64: the policy's distribution at ``params`` over every response, one
    compiled pass per prompt on the host (e.g. a run's final parameters, ``TrainResult.params``)."""
    return np.stack([np.asarray(_log_probs(pol, params, x), np.float64) for x in range(prompts)])


_log_probs = jax.jit(lambda pol, params, x: pol.log_probs(params, x), static_argnums=0)


def _per_prompt_trace(stacked: dict, weights: np.ndarray, mode: str) -> dict:
    """Trace columns from stacked recordings (R, prompts, …): ``<metric>`` the prompt-weighted mean
    (its ``_lo``/``_hi`` from the Bonferroni-level intervals, index 1) and, with several prompts,
    ``prompt{k}_<metric>`` (per-prompt intervals at ``level``, index 0)."""
    trace = {"loss": stacked["loss"]}
    prompts = len(weights)
    q = stacked["class_marginal"]
    trace["class_marginal"] = q[:, 0] if prompts == 1 else q
    for name, v in stacked.items():
        if name in ("loss", "class_marginal"):
            continue
        bound = name.endswith(("_lo", "_hi"))
        mean_of = v[..., 1] if bound else v
        with np.errstate(invalid="ignore"):  # an infinite KL bound stays infinite
            trace[name] = np.where(weights > 0, mean_of, 0.0) @ weights
        if prompts > 1:
            for k in range(prompts):
                trace[f"prompt{k}_{name}"] = v[:, k, 0] if bound else v[:, k]
    return trace


def _check_metrics_mode(metrics, game: SequenceGame, feedback: str, eval_samples, level) -> str:
    mode = metrics if metrics is not None else ("exact" if game.n <= MAX_ENUMERATED else "sampled")
    if mode not in METRIC_MODES:
        raise ValueError(f"metrics must be one of {', '.join(METRIC_MODES)} (or None: exact up to "
                         f"MAX_ENUMERATED = {MAX_ENUMERATED} responses), got {metrics!r}")
    if mode == "exact" and game.n > MAX_ENUMERATED:
        raise ValueError(f"V^L = {game.n} responses: exact metrics enumerate every response (one prompt: and the "
                         f"lifted {game.n}×{game.n} preference matrix, {8 * game.n**2 / 2**30:.0f} GiB); at most "
                         f"gamelab.llm.train.MAX_ENUMERATED = {MAX_ENUMERATED} responses; use metrics='sampled'")
    if mode == "sampled":
        if feedback == "exact":
            raise ValueError("feedback 'exact' weighs all V^L² pairs by the full distribution: not with sampled "
                             "metrics (use feedback='sampled')")
        if isinstance(eval_samples, bool) or not isinstance(eval_samples, (int, np.integer)) or eval_samples < 1:
            raise ValueError(f"eval_samples must be a positive integer, got {eval_samples!r}")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return mode


def _prompt_weights(weights, prompts: int) -> np.ndarray:
    if weights is None:
        return np.full(prompts, 1.0 / prompts)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (prompts,) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"prompt_weights must be {prompts} finite non-negative weights with a positive sum, got "
                         f"{np.asarray(weights).tolist()}")
    return w / w.sum()


def train(algorithm: str, game: SequenceGame, *, steps: int, record_every: int = defaults.LLM_RECORD_EVERY,
          policy: str | Policy = "transformer", feedback: str = "sampled", batch: int = defaults.BATCH,
          optimizer: str = defaults.LLM_OPTIMIZER, hparams: dict | None = None, seed: int = defaults.SEED, out=None,
          checkpoint_every: int = defaults.LLM_CHECKPOINT_EVERY, progress: bool = True, mesh=None, fsdp: bool = False,
          model: dict | None = None, metrics: str | None = None, eval_samples: int = defaults.EVAL_SAMPLES,
          level: float = defaults.LEVEL,
          prompt_weights=None, wait: bool = False) -> TrainResult:
    """Train ``algorithm`` (a registered name with a loss form; comal's steps are outer iterations)
    on the sequence game (all its prompts) for ``steps`` steps, recording every ``record_every``.

    ``policy``: 'transformer' (``model``: d_model, heads, layers, dtype), 'tabular' (logits per
    prompt), or a Policy.
    ``out``: a folder for the run's config, checkpoints and results (None: nothing written, no
    resume). ``checkpoint_every``: recordings per segment (one checkpoint each). ``mesh``: a device
    mesh; the transformer shards its batches over its first axis (data parallel), and with
    ``fsdp`` its weights too. The mesh may span several processes (``jax.distributed``): each
    process then calls ``train`` with the same arguments and gets the same result; process 0
    writes the files. An ``out`` that holds a different run (another config) raises ValueError.
    ``metrics``: 'exact', 'sampled' or None (exact up to :data:`MAX_ENUMERATED` responses);
    ``eval_samples`` responses per prompt and recording, intervals at ``level`` (sampled).
    ``prompt_weights``: the distribution of a batch's prompts (default uniform; see module doc).
    A folder holding a sweep's results is refused; ``out``'s writer lock is held throughout (another
    writer: refused at once, or waited for with ``wait``).
    """
    mode = _check_metrics_mode(metrics, game, feedback, eval_samples, level)
    prompts = game.C.shape[0]
    weights = _prompt_weights(prompt_weights, prompts)
    hparams = dict(hparams or {})
    if isinstance(policy, TransformerPolicy) or policy == "transformer":
        hparams.setdefault("lr", defaults.TRANSFORMER_LR)
    pol = policy if isinstance(policy, Policy) else make_policy(policy, game, seed=seed, mesh=mesh, fsdp=fsdp,
                                                                **(model or {}))
    if pol.reference_is_initial:
        hparams.setdefault("lr", defaults.DECODER_LR)
    if pol.n != game.n or getattr(pol, "prompts", 1) < prompts:
        raise ValueError(f"the policy ({pol!r}) does not fit the game: {game.n} responses, {prompts} prompt(s)")
    # the driver's own metrics on the lifted matrix (one prompt, exact) measure against the uniform
    # reference: a pretrained policy's metrics are against the base model, from class marginals
    driver = mode == "exact" and prompts == 1 and not pol.reference_is_initial
    pairs = None if driver else PromptPairs(feedback, batch, prompts, mode == "exact")
    algo = make_parametric(get_algorithm(algorithm), pol, feedback, batch, optimizer, pairs)
    hp = algo.make_hparams(**{"seed": seed, **hparams})
    if not driver:
        if mode == "sampled":
            check_streamable(algo, hp)
        if float(getattr(hp, "inner_tol", 0.0)) > 0:
            raise ValueError("inner_tol > 0 stops COMAL's inner solve on the exact regularized gap of the lifted "
                             "matrix: only with one prompt and exact metrics (use inner_tol=0)")
    tau = metric_tau_of(algo, hp, None)
    config = {"algorithm": algorithm, "game": game.spec, "steps": steps, "record_every": record_every,
              "policy": repr(pol), "model": getattr(pol, "config", None), "feedback": feedback, "batch": batch,
              "optimizer": optimizer, "hparams": {k: float(v) for k, v in hp._asdict().items()}, "seed": seed,
              "checkpoint_every": checkpoint_every, "devices": None if mesh is None else int(mesh.size),
              "fsdp": fsdp, "metrics": mode}
    if mode == "sampled":  # what a recording holds: a run folder from before a metric was added is refused
        config.update(eval_samples=int(eval_samples), level=float(level),
                      recorded=list(sampled_metric_names(tau is not None, pol.reference_is_initial)))
    if pol.reference_is_initial:
        config["reference"] = "initial"
    if prompts > 1:
        config["prompt_weights"] = weights.tolist()
    n = game.n
    uniform = np.full(n, -np.log(n))
    star = np.stack([game.class_nash(x) for x in range(prompts)])  # one LP per prompt, not one per row
    rec = ev = None  # the driver's own recordings
    if driver:
        args = device_args(game.matrix(0), hp, uniform, uniform, None, tau, jnp.float64)
        G, hp_dev, init_l, ref_l, _, tau_dev = to_global(args, mesh)
    else:
        dt = jnp.float64
        oracle = ClassOracle(jnp.asarray(game.classes, jnp.int32), jnp.asarray(game.C, dt), jnp.asarray(weights, dt))
        ref_logp = reference_log_probs(pol, prompts) if pol.reference_is_initial else None
        if ref_logp is None:
            ref_q = np.tile(np.bincount(game.classes, minlength=game.m) / n, (prompts, 1))
        else:
            ref_q = np.stack([np.bincount(game.classes, weights=np.exp(r), minlength=game.m) for r in ref_logp])
        point = pol.start_point(jnp.asarray(uniform, dt))  # a pretrained policy's weights: one copy, shared
        ev = Evaluation(jnp.asarray(star, dt), jnp.asarray(present_classes(game)), jnp.asarray(ref_q, dt),
                        None if tau is None else jnp.asarray(tau, dt),
                        None if ref_logp is None or mode == "sampled" else jnp.asarray(ref_logp, dt),
                        point if ref_logp is not None and mode == "sampled" else None)
        rec = ClassRecorder(mode, int(eval_samples), (float(level), 1 - (1 - float(level)) / prompts), pol)
        G, ev, hp_dev, init_l = to_global((oracle, ev, cast_hparams(hp, dt), point), mesh)
        ref_l, tau_dev = init_l, None
    writer = out is not None and jax.process_index() == 0
    if writer:  # a folder of another kind (a sweep's) is refused before anything is written
        check_kind(Path(out), "llm")
    with writer_lock(Path(out), wait=wait) if writer else nullcontext():
        seg = run_segments(algo, G, hp_dev, init_l, ref_l, tau_dev, steps=steps, record_every=record_every,
                           checkpoint_every=checkpoint_every, recorder=rec, aux=ev,
                           layout=None if mesh is None else CarryLayout(pol, mesh), frozen=FrozenBase(pol),
                           out=out, config=config, mesh=mesh, progress=progress,
                           desc=f"{algorithm} on {game.spec}")
        result = _result(seg, game, driver, star, weights, mode, mesh, steps, record_every, config)
        if writer:
            write_results(result, Path(out).resolve(), n)
    return result


def _result(seg, game, driver, star, weights, mode, mesh, steps, record_every, config) -> TrainResult:
    """The run's trace from the segment loop's rows (class marginals and KL to the class Nash)."""
    stacked, carry = seg.rows, seg.carry
    if driver:
        trace = stacked
        q = np.asarray(jax.vmap(lambda p: class_marginal(game, jnp.log(p)))(jnp.asarray(trace["policy"])))
        trace["class_marginal"] = q
        support = star[0] > 0
        with np.errstate(divide="ignore"):
            terms = star[0] * (np.log(np.where(support, star[0], 1.0)) - np.log(q))
        trace["kl_to_class_nash"] = np.sum(np.where(support, terms, 0.0), axis=-1)
        logp = to_host(carry[0].logp, mesh)
    else:
        trace = _per_prompt_trace(stacked, weights, mode)
        logp = None if mode == "sampled" else to_host(carry[0].logp, mesh)
    return TrainResult(recorded_steps(steps, record_every), trace, logp, config, seg.seconds, seg.resumed,
                       to_host(carry[0].params, mesh))


def write_results(result: TrainResult, out: Path, n: int) -> None:
    """The trace as a one-run results folder (manifest + one Parquet chunk), like a sweep's: every
    scalar column of the trace (per-prompt values and interval bounds included)."""
    from gamelab.results import trace_to_frame, write_chunk, write_manifest

    c = result.config
    run_row = {"run": 0, "algorithm": c["algorithm"], "game": c["game"], "n": int(n), "seed": c["seed"],
               **c["hparams"]}
    scalars = {k: v[None] for k, v in result.trace.items() if np.ndim(v) == 1}
    frame = trace_to_frame(scalars, result.steps, [run_row], "llm")
    frame = frame[frame.iterate == "last"].reset_index(drop=True)  # no average iterate is tracked
    for key, v in scalars.items():  # the columns trace_to_frame does not know (bounds, prompts)
        if key not in frame:
            frame[key] = v[0]
    write_manifest(out, {"kind": "llm", "spec": c, "chunks": ["llm"]})
    write_chunk(out, "llm", frame)
