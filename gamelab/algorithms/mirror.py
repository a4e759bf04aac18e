"""KL-proximal (mirror-descent) algorithms over the exact win-rate vector g = Pπ.

All updates are in log space: ``logp ← log_softmax(linear combination of logs + η·g)``; nothing is
exponentiated before normalization, so large steps drive probabilities to 0 without NaN.
"""
from __future__ import annotations

from typing import NamedTuple

from gamelab import losses
from gamelab.algorithms.base import Algorithm, SampledForm, register
from gamelab.lazy import jax, jnp


def log_softmax(x):
    return jax.nn.log_softmax(x)


def win_rates(game, logp):
    return game.P @ jnp.exp(logp)


def geometric(logp, ref, weight):
    """``log`` of ``π^{1−w}·ref^{w}`` for w ∈ [0, 1]; exact at both ends (π^0 = 1 even where π = 0,
    which a plain ``0·(−inf)`` would turn into NaN)."""
    mixed = (1.0 - weight) * logp + weight * ref
    return jnp.where(weight == 0, logp, jnp.where(weight == 1, ref, mixed))


# ---------------------------------------------------------------- states and hyper-parameters
class PolicyState(NamedTuple):
    logp: jax.Array


class RefState(NamedTuple):
    logp: jax.Array
    ref: jax.Array


class OptimisticState(NamedTuple):
    logp: jax.Array
    g_prev: jax.Array  # g_{t−1}; init sets it to g_0, so the first step is an MWU step


class MagnetState(NamedTuple):
    logp: jax.Array
    ref: jax.Array  # the magnet ρ
    t: jax.Array  # steps taken (MPO refreshes the magnet every K of them)


class Eta(NamedTuple):
    eta: float = 0.1


class EtaTau(NamedTuple):
    eta: float = 0.1
    tau: float = 0.1


class ExtragradientHP(NamedTuple):
    eta: float = 0.1
    tau: float = 0.0


class MPOHP(NamedTuple):
    eta: float = 0.1
    tau: float = 0.1
    refresh_every: int = 200


class NashMDPGHP(NamedTuple):
    eta: float = 0.1
    tau: float = 0.1
    mix: float = 0.125  # weight of the reference in the opponents' geometric mixture μ ∝ π^{1−mix}·ref^{mix}


class ReplicatorHP(NamedTuple):
    eta: float = 1.0


# ---------------------------------------------------------------- updates
def init_policy(game, hp, logp, ref):
    return PolicyState(logp=logp)


def init_ref(game, hp, logp, ref):
    return RefState(logp=logp, ref=ref)


def mwu_step(game, hp, s):
    return PolicyState(log_softmax(s.logp + hp.eta * win_rates(game, s.logp)))


def omwu_init(game, hp, logp, ref):
    return OptimisticState(logp=logp, g_prev=win_rates(game, logp))


def omwu_step(game, hp, s):
    g = win_rates(game, s.logp)
    return OptimisticState(log_softmax(s.logp + hp.eta * (2.0 * g - s.g_prev)), g)


def inpo_logits(game, hp, logp, ref, g):
    """``π^{1−ητ}·ref^{ητ}·exp(η g)`` in log space: INPO's update and the extragradient half-steps."""
    return log_softmax(geometric(logp, ref, hp.eta * hp.tau) + hp.eta * g)


def extragradient_step(game, hp, s):
    base = geometric(s.logp, s.ref, hp.eta * hp.tau)  # π_t^{1−ητ}·ref^{ητ}, shared by both half steps
    half = log_softmax(base + hp.eta * win_rates(game, s.logp))
    return RefState(log_softmax(base + hp.eta * win_rates(game, half)), s.ref)


def inpo_step(game, hp, s):
    return RefState(inpo_logits(game, hp, s.logp, s.ref, win_rates(game, s.logp)), s.ref)


def nash_md_step(game, hp, s):
    mu = log_softmax(geometric(s.logp, s.ref, hp.eta * hp.tau))
    return RefState(log_softmax(mu + hp.eta * win_rates(game, mu)), s.ref)


def prox_logits(anchor, magnet, g, eta, tau):
    """``(π_a·ρ^{ητ}·exp(η g))^{1/(1+ητ)}`` in log space: the exact KL-proximal step
    argmax_π ⟨π, g⟩ − τ KL(π‖ρ) − KL(π‖π_a)/η, the regularizer kept whole (not linearized). MMD,
    ONPO and Nash-MP take it. At ητ = 0 the magnet drops out, even where it is −inf (padding)."""
    et = eta * tau
    pulled = jnp.where(et == 0, 0.0, et * magnet)
    # times the reciprocal, not divided by (1 + ητ): XLA rewrites a division by a broadcast per-run
    # scalar into this product in some partitionings and not in others, which made a sweep sharded
    # over 8 devices differ from one device in the last bit (ONPO, Nash-MP: two prox steps a step)
    return log_softmax((anchor + pulled + eta * g) * (1.0 / (1.0 + et)))


def mmd_logits(game, hp, logp, magnet):
    """``(π·ρ^{ητ}·exp(η g))^{1/(1+ητ)}`` in log space."""
    return prox_logits(logp, magnet, win_rates(game, logp), hp.eta, hp.tau)


def mmd_step(game, hp, s):
    return RefState(mmd_logits(game, hp, s.logp, s.ref), s.ref)


def mpo_init(game, hp, logp, ref):
    return MagnetState(logp=logp, ref=ref, t=jnp.zeros((), jnp.int32))


def mpo_step(game, hp, s):
    logp = mmd_logits(game, hp, s.logp, s.ref)
    t = s.t + 1
    refresh = (t % jnp.asarray(hp.refresh_every, jnp.int32)) == 0
    return MagnetState(logp=logp, ref=jnp.where(refresh, logp, s.ref), t=t)


def nash_md_pg_step(game, hp, s):
    """One exact policy-gradient step on the logits: θ ← θ + η·∇_θ[π_θᵀPμ − τ·KL(π_θ‖ref)] with the
    opponents μ ∝ π_t^{1−mix}·ref^{mix} held fixed; the softmax gradient is π⊙(f − πᵀf),
    f = Pμ − τ(log π − log ref)."""
    mu = log_softmax(geometric(s.logp, s.ref, hp.mix))
    p = jnp.exp(s.logp)
    f = win_rates(game, mu) - hp.tau * jnp.where(p > 0, s.logp - s.ref, 0.0)
    return RefState(log_softmax(s.logp + hp.eta * p * (f - p @ f)), s.ref)


def replicator_step(game, hp, s):
    g = win_rates(game, s.logp)
    advantage = g - jnp.exp(s.logp) @ g
    # max(·, 0): a step so large that a factor turns negative sends that response to 0, not NaN;
    # at least one factor stays ≥ 1 since the advantages average to zero under π.
    factor = jnp.maximum(1.0 + hp.eta * advantage, 0.0)
    return PolicyState(log_softmax(s.logp + jnp.log(factor)))


# ---------------------------------------------------------------- sampled (loss) forms
def sppo(hp, h, h2, fb):
    return losses.sppo_loss(h, h2, fb, hp.eta)


def inpo(hp, h, h2, fb):
    return losses.inpo_loss(h, h2, fb, hp.eta, hp.tau)


def mmd(hp, h, h2, fb):
    et = hp.eta * hp.tau
    return losses.regression_loss(h, h2, fb, 1.0 / (1.0 + et), et / (1.0 + et), 0.5 * hp.eta / (1.0 + et))


def nash_md_pg(hp, h, h2, fb):
    return losses.nash_md_pg_loss(h, h2, fb, hp.tau)


def eta_tau(hp):
    return hp.eta * hp.tau


POS, NONNEG, COUNT = "positive", "nonnegative", "count"
ETA_TAU = (("eta", POS), ("tau", POS))
GEOMETRIC = (("eta*tau", "at_most_one"),)  # updates with π^{1−ητ}

MWU = register(Algorithm(
    "mwu", Eta, (("eta", POS),), init_policy, mwu_step, "none",
    "Hedge / multiplicative weights: π ∝ π·exp(η Pπ) (= SPPO, DNO, iterative IPO with reference π_t)",
    SampledForm(sppo),
))
OMWU = register(Algorithm(
    "omwu", Eta, (("eta", POS),), omwu_init, omwu_step, "nash",
    "optimistic MWU: π ∝ π·exp(η(2g_t − g_{t−1})), g_{−1} = g_0",
))
EXTRAGRADIENT = register(Algorithm(
    "extragradient", ExtragradientHP, (("eta", POS), ("tau", NONNEG)) + GEOMETRIC, init_ref, extragradient_step, "nash",
    "mirror-prox / EGPO: a half step from π_t, then the full step from π_t with the half step's win rates"
    " (τ > 0: the regularized game, converging to π*_τ)",
    SampledForm(inpo, extragradient=True),  # EGPO: both mirror steps as INPO-type regressions
))
INPO = register(Algorithm(
    "inpo", EtaTau, ETA_TAU + GEOMETRIC, init_ref, inpo_step, "regularized_nash",
    "INPO: π ∝ π^{1−ητ}·ref^{ητ}·exp(η Pπ)",
    SampledForm(inpo),
))
NASH_MD = register(Algorithm(
    "nash_md", EtaTau, ETA_TAU + GEOMETRIC, init_ref, nash_md_step, "biased_regularized_nash",
    "Nash-MD: μ ∝ π^{1−ητ}·ref^{ητ}, π ∝ μ·exp(η Pμ) (π*_τ up to an O(η) bias)",
    SampledForm(inpo, sampler=("mixture", "mixture"), mix=eta_tau),  # the regression form
))
NASH_MD_PG = register(Algorithm(
    "nash_md_pg", NashMDPGHP, ETA_TAU + (("mix", "fraction"),), init_ref, nash_md_pg_step, "biased_regularized_nash",
    "Nash-MD-PG: a policy-gradient step on the logits toward P(π ≻ μ) − τ·KL(π‖ref), μ ∝ π^{1−mix}·ref^{mix}",
    SampledForm(nash_md_pg, sampler=("current", "mixture"), mix=lambda hp: hp.mix),
))
MMD = register(Algorithm(
    "mmd", EtaTau, ETA_TAU, init_ref, mmd_step, "regularized_nash",
    "magnetic mirror descent: π ∝ (π·ρ^{ητ}·exp(η Pπ))^{1/(1+ητ)}, magnet ρ = reference",
    SampledForm(mmd),
))
MPO = register(Algorithm(
    "mpo", MPOHP, ETA_TAU + (("refresh_every", COUNT),), mpo_init, mpo_step, "nash",
    "magnetic preference optimization: MMD whose magnet is reset to π every refresh_every steps",
    SampledForm(mmd, refresh="refresh_every"),
))
REPLICATOR = register(Algorithm(
    "replicator", ReplicatorHP, (("eta", POS),), init_policy, replicator_step, "average_only",
    "discrete replicator dynamics: π ∝ π·max(1 + η(Pπ − πᵀPπ), 0)",
))
