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
import numpy as np
from jax import lax

from gamelab.algorithms.base import Algorithm, register
from gamelab.algorithms.mirror import RefState, init_ref, win_rates

NEWTON_STEPS = 30  # Newton iterations of the Bradley–Terry fit per step (warm-started)
STEP_LENGTHS = 0.5 ** np.arange(12.0)  # line search: the best of these multiples of each Newton step


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
    """argmin_r Σ_ij w_ij·[−P_ij·log σ(r_i − r_j)] + ridge/2·‖r‖² by Newton with a line search.

    The gradient is ``Σ_j w_ij (σ(r_i − r_j) − P_ij) + ridge·r`` and the Hessian a weighted graph
    Laplacian plus ``ridge·I`` (w symmetric, P + Pᵀ = 1), so each Newton step is one n×n solve and
    always a descent direction. Each step takes the largest of the step lengths 1, 1/2, …, 1/2¹¹
    that passes Armijo's test (with a rounding-level slack, so that near the optimum full Newton
    steps pass and convergence stays quadratic); undamped Newton can fall into a 2-cycle on this
    loss from a far warm start.
    """
    n = P.shape[0]

    def objective(r):
        return -jnp.sum(weights * P * jax.nn.log_sigmoid(r[:, None] - r[None, :])) + 0.5 * ridge * r @ r

    def newton(_, r):
        s = jax.nn.sigmoid(r[:, None] - r[None, :])
        grad = jnp.sum(weights * (s - P), axis=1) + ridge * r
        c = weights * s * (1.0 - s)
        hess = jnp.diag(jnp.sum(c, axis=1)) - c + ridge * jnp.eye(n, dtype=P.dtype)
        d = -jnp.linalg.solve(hess, grad)
        alphas = jnp.asarray(STEP_LENGTHS, r.dtype)
        candidates = r[None, :] + alphas[:, None] * d[None, :]
        values = jax.vmap(objective)(candidates)
        f0 = objective(r)
        slack = 8 * jnp.finfo(r.dtype).eps * jnp.abs(f0)
        passes = values <= f0 + 1e-4 * alphas * (grad @ d) + slack  # NaN/inf values never pass
        first = jnp.argmax(passes)  # the largest passing step length
        return jnp.where(passes[first], candidates[first], r)

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
