"""The solver interface: any algorithm with a sampled form, run on a parametric policy.

:func:`make_parametric` turns a registered algorithm (its :class:`~gamelab.algorithms.base.SampledForm`:
sampling policies × loss × reference refresh) plus a policy, a feedback mode and an optax optimizer
into an ordinary :class:`Algorithm`. Its state carries the policy parameters and ``logp`` (the
policy's full log-distribution), so the one driver in :mod:`gamelab.run` runs it unchanged, with
the same traces, metrics, sweeps and CLI. One step t of the parametric algorithm:

1. the anchor is the current policy π_t (its parameters, held fixed for the step);
2. a batch of feedback is drawn: ``batch`` pairs from the sampling policies with Bernoulli labels
   from the game's oracle (``feedback="sampled"``), or all n² pairs with exact weights and label
   probabilities (``feedback="exact"``); labels are flipped with probability ``flip``;
3. ``updates`` optimizer steps are taken on the loss over that batch (the first from π_t);
4. every K steps (MPO: ``refresh_every``) the reference is reset to the new policy.

EGPO (``extragradient``) takes the update twice: a half step gives π_{t+½}, then the full step
restarts from π_t with pairs drawn from π_{t+½}. ONPO (an ``optimistic`` form) keeps a second
policy π̂ in the state: one batch from π_t, π̂ regressed on it anchored at π̂_t, then π regressed on
the same batch anchored at the new π̂ (one preference query per step, as in the tabular form).
COMAL's step is one outer iteration: the reference is set to π_k and ``inner`` steps of its inner
algorithm's sampled form follow.

The tabular engine is the special case of a tabular policy, exact expectations and the closed-form
minimizer of the loss; ``feedback="exact"`` with enough ``updates`` reproduces it (the
population-minimizer tests in tests/test_sampled.py).

Hyper-parameters: the algorithm's own, plus ``lr`` (the optimizer's learning rate, traced, so a
sweep over it does not recompile), ``updates`` (optimizer steps per batch), ``flip`` (label noise)
and ``seed`` (the run's PRNG seed; :func:`gamelab.run.run` fills it from its ``seed``).
"""
from __future__ import annotations

import hashlib
from collections import namedtuple
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from gamelab import defaults
from gamelab.algorithms.base import Algorithm
from gamelab.algorithms.mirror import geometric
from gamelab.algorithms.prox import prox_solve
from gamelab.feedback import (MatrixOracle, NoisyOracle, exact_groups, exact_pairs, group_pairs_layout,
                              sampled_groups, sampled_pairs)
from gamelab.policies import Policy

FEEDBACK_MODES = ("exact", "sampled")

# optax transformations without the learning rate, which is applied from the traced ``lr``.
OPTIMIZERS = {
    "sgd": optax.identity,
    "adam": optax.scale_by_adam,
    "rmsprop": optax.scale_by_rms,
    "adabelief": optax.scale_by_belief,
}

EXTRA_FIELDS = ("lr", "updates", "flip", "seed")
EXTRA_CONSTRAINTS = (("lr", "positive"), ("updates", "count"), ("flip", "flip_rate"), ("seed", "seed"))
# Default learning rate per optimizer. SGD at 0.5 moves tabular logits 2/3 of the way to a
# regression's minimizer per update on 3 responses (the loss is quadratic in the logit differences
# with curvature 4·μ_y); adaptive optimizers take steps of about lr per parameter.
DEFAULT_LR = {"sgd": 0.5, "adam": 0.005, "rmsprop": 0.005, "adabelief": 0.005}


class ParametricState(NamedTuple):
    logp: jax.Array  # the policy's full log-distribution (what the metrics read; the next step's π_t)
    params: Any  # policy parameters
    ref: Any  # reference parameters (fixed, or refreshed: MPO every K steps, COMAL every outer step)
    ref_logp: jax.Array  # the reference's full log-distribution (kept, not recomputed every step)
    opt: Any  # optimizer state
    key: jax.Array  # the run's PRNG key
    t: jax.Array  # steps taken
    loss: jax.Array  # the loss on the last step's batch before its first update (recorded as "loss")
    hat: Any = None  # an optimistic form's secondary policy π̂ (its parameters); None otherwise


def _mixture(logp, ref_logp, weight):
    return jax.nn.log_softmax(geometric(logp, ref_logp, weight))


def sampling_sides(form, hp, cur, rf):
    """The full log-distributions (last axis: responses) that y and y′ are drawn from."""
    side = {"current": cur, "mixture": cur if form.mix is None else _mixture(cur, rf, form.mix(hp))}
    return side[form.sampler[0]], side[form.sampler[1]]


def draw_feedback(form, game, hp, key, cur, anc, rf, *, feedback: str, batch: int):
    """A batch of feedback for one step of ``form``: y from ``form.sampler[0]``, y′ from
    ``form.sampler[1]`` (the policy ``cur``, or its geometric mixture with the reference),
    labelled by the game's oracle with label noise ``hp.flip``. ``cur``, ``anc`` and ``rf`` are
    the full log-distributions of the sampling policy, the anchor π_t and the reference.
    ``feedback='exact'``: all pairs with exact weights and probabilities (``key``, ``batch`` unused).
    A form with ``group`` K: batch // K groups of K candidates from ``form.sampler[0]``, every pair
    within a group labelled (exact: one group of all responses)."""
    oracle = NoisyOracle(MatrixOracle(game.P), hp.flip)
    a, b = sampling_sides(form, hp, cur, rf)
    if form.group is not None:
        if feedback == "exact":
            return exact_groups(oracle, a, anc, rf)
        k_y, k_label = jax.random.split(key)
        y = jax.random.categorical(k_y, a, shape=(batch // form.group, form.group))
        return sampled_groups(k_label, oracle, y, lambda r: anc[r], lambda r: rf[r])
    if feedback == "exact":
        return exact_pairs(oracle, a, b, anc, rf)
    k_a, k_b, k_label = jax.random.split(key, 3)
    y = jax.random.categorical(k_a, a, shape=(batch,))
    y2 = jax.random.categorical(k_b, b, shape=(batch,))
    return sampled_pairs(k_label, oracle, y, y2, lambda r: anc[r], lambda r: rf[r])


def pair_logprobs(policy, params, fb):
    """(log π(y | x), log π(y′ | x)) of the batch's pairs under ``params``, in one policy pass."""
    x = 0 if fb.x is None else jnp.concatenate([fb.x, fb.x])
    h = policy.logprob(params, jnp.concatenate([fb.y, fb.y2]), x)
    return h[: fb.y.shape[0]], h[fb.y.shape[0]:]


def reanchor(policy, params, fb):
    """The batch ``fb`` with the policy of ``params`` as its anchor (log π_a of y and y′): ONPO
    regresses twice on one batch, toward two anchors."""
    anchor, anchor2 = pair_logprobs(policy, params, fb)
    return fb._replace(anchor=anchor, anchor2=anchor2)


class EnumeratedPairs(NamedTuple):
    """Where a step's pairs come from (the default): the policy's full log-distribution over the
    n responses of its one prompt (``view``, kept in the state as ``logp``), sampled or
    enumerated by :func:`draw_feedback`. Another source (``gamelab.llm``: several prompts, or
    responses too many to enumerate) has the same two methods and says whether its game holds a
    matrix (``matrix``); ``cur``, ``anc`` and ``rf`` are (parameters, view) of the sampling
    policy, the anchor π_t and the reference."""

    feedback: str
    batch: int
    matrix = True  # the game is a Game with its matrix P (COMAL may stop its inner solve on DG_τ)

    def view(self, policy, params):
        return policy.log_probs(params)

    def draw(self, policy, form, game, hp, key, cur, anc, rf):
        return draw_feedback(form, game, hp, key, cur[1], anc[1], rf[1], feedback=self.feedback, batch=self.batch)


def _require_form(algo: Algorithm):
    if algo.sampled is None:
        from gamelab.algorithms.base import REGISTRY

        have = sorted(n for n, a in REGISTRY.items() if a.sampled is not None)
        raise ValueError(f"{algo.name} has no sampled (loss) form; algorithms with one: {', '.join(have)}")
    return algo.sampled


def recorded_loss(state) -> dict:
    """What a parametric run records beside the metrics: its last training loss (NaN before the
    first step)."""
    return {"loss": state.loss}


# The hyper-parameter classes make_parametric builds, one per (name, fields, defaults) and found by
# name (hparams_classes.<name>_<digest>): pickle stores the class of a pytree by reference, so a
# compiled program over them can be kept on disk (gamelab.executables), and equal classes let
# JAX's caches see equal programs.
hparams_classes = SimpleNamespace()


def hparams_class(name: str, fields: tuple, defaults: tuple) -> type:
    """The NamedTuple class ``name`` of ``fields`` with ``defaults``, made once per process."""
    key = f"{name}_{hashlib.sha256(repr((fields, defaults)).encode()).hexdigest()[:12]}"
    cls = getattr(hparams_classes, key, None)
    if cls is None:
        cls = namedtuple(name, fields, defaults=defaults, module=__name__)
        cls.__qualname__ = f"hparams_classes.{key}"
        setattr(hparams_classes, key, cls)
    return cls


@lru_cache(maxsize=None)  # one Algorithm per configuration, so jit caches hit across calls
def make_parametric(algo: Algorithm, policy: Policy, feedback: str = "sampled", batch: int = defaults.BATCH,
                    optimizer: str = defaults.OPTIMIZER, pairs=None) -> Algorithm:
    """``algo`` run on ``policy`` from ``feedback`` ('exact' or 'sampled' with ``batch`` pairs per
    step) with the optax ``optimizer`` ('sgd', 'adam', 'rmsprop', 'adabelief'). ``pairs``: the
    source of each step's feedback (hashable; default :class:`EnumeratedPairs` of ``feedback``
    and ``batch``). The state's ``logp``/``ref_logp`` hold ``pairs.view`` of the parameters; a
    source whose game is an oracle, not a matrix (``pairs.matrix`` false), runs COMAL's inner
    solve for exactly ``inner`` steps (``inner_tol`` needs the exact regularized gap)."""
    form = _require_form(algo)
    if feedback not in FEEDBACK_MODES:
        raise ValueError(f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {feedback!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    for f in (form, form.prox):
        if f is not None and f.group is not None and feedback == "sampled" and batch < f.group:
            raise ValueError(f"{algo.name} compares groups of {f.group} candidates: batch must be >= {f.group} "
                             f"(it holds batch // {f.group} groups), got {batch}")
    opt = OPTIMIZERS[optimizer]()
    if policy.trainable is not None:  # frozen parameters (a LoRA base): no optimizer state, no update
        opt = optax.masked(opt, policy.trainable)
    fields = algo.hparams._fields + EXTRA_FIELDS
    own = {**algo.hparams._field_defaults, **(dict(form.defaults) if feedback == "sampled" else {})}
    defaults = tuple(own[f] for f in algo.hparams._fields) + (DEFAULT_LR[optimizer], 1, 0.0, 0)
    HP = hparams_class(f"{algo.hparams.__name__}Parametric", fields, defaults)

    pairs = EnumeratedPairs(feedback, batch) if pairs is None else pairs

    def draw(f, game, hp, key, cur, anc, rf):
        return pairs.draw(policy, f, game, hp, key, cur, anc, rf)

    def optimize(f, hp, params, opt_state, fb):
        loss = f.loss
        if f.group is None:
            def objective(p):
                return loss(hp, *pair_logprobs(policy, p, fb), fb)
        else:  # group feedback (G, Q): each of a group's K candidates scored once, not once per pair
            I, J, diagonal = group_pairs_layout(fb.y.shape[-1])
            y = fb.y[:, diagonal]
            x = 0 if fb.x is None else fb.x[:, diagonal].reshape(-1)

            def objective(p):
                h = policy.logprob(p, y.reshape(-1), x).reshape(y.shape)
                return loss(hp, h[:, I], h[:, J], fb)

        def update(carry):
            i, p, o, first = carry
            value, grad = jax.value_and_grad(objective)(p)
            u, o = opt.update(grad, o, p)
            p = jax.tree.map(lambda x, d: (x - hp.lr * d).astype(x.dtype), p, u)  # keep float32 models float32
            return i + 1, p, o, jnp.where(i == 0, value, first)

        zero = jnp.zeros((), jnp.result_type(float))
        _, params, opt_state, loss = lax.while_loop(lambda c: c[0] < hp.updates, update,
                                                    (jnp.zeros((), jnp.int32), params, opt_state, zero))
        return params, opt_state, loss

    def iteration(f, game, hp, s):
        """One step of the sampled form ``f`` from state ``s`` (reference in ``s.ref``)."""
        key, k_batch, k_full = jax.random.split(s.key, 3)
        now, ref = (s.params, s.logp), (s.ref, s.ref_logp)
        fb = draw(f, game, hp, k_batch, now, now, ref)
        opt_state, start, hat = s.opt, s.params, s.hat
        if f.extragradient:  # EGPO: pairs for the full step come from the half-step policy
            half, opt_state, _ = optimize(f, hp, s.params, opt_state, fb)
            fb = draw(f, game, hp, k_full, (half, pairs.view(policy, half)), now, ref)
        if f.optimistic:  # ONPO: π̂ ← prox(π̂, g_t), then π ← prox(π̂, g_t), both on this one batch
            hat, opt_state, _ = optimize(f, hp, s.hat, opt_state, reanchor(policy, s.hat, fb))
            start, fb = hat, reanchor(policy, hat, fb)
        params, opt_state, loss = optimize(f, hp, start, opt_state, fb)
        logp = pairs.view(policy, params)
        t = s.t + 1
        ref, ref_logp = s.ref, s.ref_logp
        if f.refresh is not None:
            every = (t % jnp.asarray(getattr(hp, f.refresh), t.dtype)) == 0
            ref = jax.tree.map(lambda new, old: jnp.where(every, new, old), params, s.ref)
            ref_logp = jnp.where(every, logp, s.ref_logp)
        return ParametricState(logp, params, ref, ref_logp, opt_state, key, t, loss.astype(s.loss.dtype), hat)

    def init(game, hp, logp, ref):
        params, ref_params = policy.init(logp), policy.init(ref)  # logp, ref: what policy.start_point gave
        view = pairs.view(policy, params)
        return ParametricState(view, params, ref_params, pairs.view(policy, ref_params),
                               opt.init(params), jax.random.key(hp.seed), jnp.zeros((), jnp.int32),
                               jnp.full((), jnp.nan, view.dtype), params if form.optimistic else None)  # π̂_0 = π_0

    if form.prox is None:
        def step(game, hp, s):
            return iteration(form, game, hp, s)
    else:
        inner = form.prox

        def step(game, hp, s):
            s = s._replace(ref=s.params, ref_logp=s.logp)  # the prox centre π_k
            if not pairs.matrix:  # an oracle, no matrix: exactly hp.inner steps
                return lax.fori_loop(0, hp.inner, lambda _, st: iteration(inner, game, hp, st), s)
            return prox_solve(game, hp, s, s.logp, lambda st: iteration(inner, game, hp, st))[1]

    return Algorithm(
        algo.name, HP, algo.constraints + EXTRA_CONSTRAINTS, init, step, algo.target,
        f"{algo.description} — on {policy!r} from {feedback} feedback"
        + (f" ({batch} pairs per step)" if feedback == "sampled" else "") + f", optimizer {optimizer}",
        form, recorded_loss,
    )
