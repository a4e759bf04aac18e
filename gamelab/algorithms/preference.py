"""Iterative preference-optimization baselines in their exact population form.

* ``iterative_dpo``: fit a Bradley–Terry reward r̂_t to the preferences on pairs drawn from π_t⊗π_t
  (weighted logistic MLE with exact label probabilities), then take DPO's population optimum
  π_{t+1} ∝ ρ_t·exp(r̂_t/β), with ρ_t = π_t (default) or the fixed reference. On non-transitive
  games a scalar reward cannot represent the preference and the policy collapses to a vertex.
* ``iterative_ipo``: the offline IPO population optimum π_{t+1} ∝ π_ref·exp(Pπ_t/τ).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gamelab.algorithms.base import Algorithm, register
from gamelab.algorithms.mirror import RefState, init_ref, win_rates

NEWTON_STEPS = 30  # Newton iterations of the Bradley–Terry fit per step (warm-started)
MAX_NEWTON_MOVE = 4.0  # trust region on each Newton step (in reward units, ∞-norm)


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


def bradley_terry_fit(P, weights, reward0, ridge):
    """argmin_r Σ_ij w_ij·[−P_ij·log σ(r_i − r_j)] + ridge/2·‖r‖² by damped Newton.

    The gradient is ``Σ_j w_ij (σ(r_i − r_j) − P_ij) + ridge·r`` and the Hessian a weighted graph
    Laplacian plus ``ridge·I`` (w symmetric, P + Pᵀ = 1), so each Newton step is one n×n solve.
    """
    n = P.shape[0]

    def newton(_, r):
        s = jax.nn.sigmoid(r[:, None] - r[None, :])
        grad = jnp.sum(weights * (s - P), axis=1) + ridge * r
        c = weights * s * (1.0 - s)
        hess = jnp.diag(jnp.sum(c, axis=1)) - c + ridge * jnp.eye(n, dtype=P.dtype)
        d = -jnp.linalg.solve(hess, grad)
        return r + d * jnp.minimum(1.0, MAX_NEWTON_MOVE / jnp.maximum(jnp.max(jnp.abs(d)), 1e-300))

    r = lax.fori_loop(0, NEWTON_STEPS, newton, reward0)
    return r - jnp.mean(r)


def dpo_init(game, hp, logp, ref):
    return DPOState(logp=logp, ref=ref, reward=jnp.zeros_like(logp))


def dpo_step(game, hp, s):
    p = jnp.exp(s.logp)
    reward = bradley_terry_fit(game.P, p[:, None] * p[None, :], s.reward, hp.ridge)
    anchor = jnp.where(hp.fixed_ref == 1, s.ref, s.logp)
    return DPOState(jax.nn.log_softmax(anchor + reward / hp.beta), s.ref, reward)


def ipo_step(game, hp, s):
    return RefState(jax.nn.log_softmax(s.ref + win_rates(game, s.logp) / hp.tau), s.ref)


ITERATIVE_DPO = register(Algorithm(
    "iterative_dpo", DPOHP, (("beta", "positive"), ("fixed_ref", "flag"), ("ridge", "positive")),
    dpo_init, dpo_step, "none",
    "iterative DPO: Bradley–Terry fit on π_t⊗π_t pairs, then π ∝ ρ·exp(r̂/β), ρ = π_t (or fixed_ref=1: π_ref)",
))
ITERATIVE_IPO = register(Algorithm(
    "iterative_ipo", IPOHP, (("tau", "positive"),), init_ref, ipo_step, "none",
    "iterative (online) IPO population optimum: π ∝ π_ref·exp(Pπ_t/τ)",
))
