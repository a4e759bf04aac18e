"""Iterative preference-optimization baselines in their exact population form.

* ``iterative_dpo``: fit a Bradley–Terry reward r̂_t to the preferences on pairs drawn from π_t⊗π_t
  (weighted logistic MLE with exact label probabilities), then take DPO's population optimum
  π_{t+1} ∝ ρ_t·exp(r̂_t/β), with ρ_t = π_t (default) or the fixed reference. On non-transitive
  games a scalar reward cannot represent the preference and the policy collapses to a vertex.
* ``iterative_ipo``: the IPO population optimum π_{t+1} ∝ π_ref·exp(Pμ_t/τ) against μ_t = π_t (online
  IPO) or the geometric mixture μ_t ∝ π_t^{1−mix}·π_ref^{mix} (IPO-MD; Calandriello et al. 2024).
* ``exo``: iterative EXO (Ji et al. 2024) in a general-preference game: the target is
  π*_t ∝ π_ref·exp(g_t/β), g_t = Pπ_t, and EXO takes the reverse-KL projection of the policy onto
  it; a tabular policy represents π*_t, so the step is online IPO's with τ = β. Its sampled form
  compares groups of K candidates from π_t, each candidate's win rate estimated by a round robin
  within its group (:func:`gamelab.losses.exo_group_loss`).
"""
from __future__ import annotations

from typing import NamedTuple

from gamelab import losses
from gamelab.algorithms.base import Algorithm, SampledForm, register
from gamelab.algorithms.mirror import RefState, geometric, init_ref, win_rates
from gamelab.feedback import bradley_terry_fit
from gamelab.lazy import jax, jnp


class DPOState(NamedTuple):
    logp: jax.Array
    ref: jax.Array
    reward: jax.Array  # the last fitted Bradley–Terry reward (warm start for the next fit)


class DPOHP(NamedTuple):
    beta: float = 1.0
    fixed_ref: int = 0  # 1: anchor every step at the fixed reference instead of π_t
    ridge: float = 1e-8  # L2 penalty that keeps the fit finite when preferences are deterministic


class IPOHP(NamedTuple):
    tau: float = 0.1
    mix: float = 0.0  # the opponents μ ∝ π_t^{1−mix}·π_ref^{mix}: 0 = online IPO, > 0 = IPO-MD


class EXOHP(NamedTuple):
    beta: float = 0.1  # the KL strength (iterative_ipo's τ)


EXO_GROUP = 8  # candidates per group in EXO's sampled form (a batch of B holds B // 8 groups)


def dpo_init(game, hp, logp, ref):
    return DPOState(logp=logp, ref=ref, reward=jnp.zeros_like(logp))


def dpo_step(game, hp, s):
    p = jnp.exp(s.logp)
    reward = bradley_terry_fit(game.P, p[:, None] * p[None, :], s.reward, hp.ridge)
    anchor = jnp.where(hp.fixed_ref == 1, s.ref, s.logp)
    return DPOState(jax.nn.log_softmax(anchor + reward / hp.beta), s.ref, reward)


def ipo_step(game, hp, s):
    mu = jax.nn.log_softmax(geometric(s.logp, s.ref, hp.mix))
    return RefState(jax.nn.log_softmax(s.ref + win_rates(game, mu) / hp.tau), s.ref)


def exo_step(game, hp, s):
    """The reverse-KL projection onto π* ∝ π_ref·exp(Pπ_t/β) is π* itself (tabular policy)."""
    return ipo_step(game, IPOHP(tau=hp.beta, mix=0.0), s)


def dpo(hp, h, h2, fb):
    return losses.dpo_loss(h, h2, fb, hp.beta, use_anchor=hp.fixed_ref == 0)


def ipo(hp, h, h2, fb):
    return losses.ipo_loss(h, h2, fb, hp.tau)


def exo(hp, h, h2, fb):
    return losses.exo_group_loss(h, fb, hp.beta)


ITERATIVE_DPO = register(Algorithm(
    "iterative_dpo", DPOHP, (("beta", "positive"), ("fixed_ref", "flag"), ("ridge", "positive")),
    dpo_init, dpo_step, "none",
    "iterative DPO: Bradley–Terry fit on π_t⊗π_t pairs, then π ∝ ρ·exp(r̂/β), ρ = π_t (or fixed_ref=1: π_ref)",
    SampledForm(dpo),  # the DPO loss on pairs from π_t (its population minimizer is the BT step)
))
ITERATIVE_IPO = register(Algorithm(
    "iterative_ipo", IPOHP, (("tau", "positive"), ("mix", "fraction")), init_ref, ipo_step, "none",
    "iterative (online) IPO population optimum: π ∝ π_ref·exp(Pμ_t/τ), μ_t ∝ π_t^{1−mix}·π_ref^{mix}"
    " (mix = 0: online IPO, mix > 0: IPO-MD)",
    SampledForm(ipo, sampler=("mixture", "mixture"), mix=lambda hp: hp.mix),
))
EXO = register(Algorithm(
    "exo", EXOHP, (("beta", "positive"),), init_ref, exo_step, "none",
    "iterative EXO: reverse-KL projection onto π_ref·exp(Pπ_t/β) (tabular: online IPO with τ = β); sampled: "
    f"groups of {EXO_GROUP} candidates from π_t, win rates by round robin",
    SampledForm(exo, group=EXO_GROUP),
))
