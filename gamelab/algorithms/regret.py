"""Regret matching with last-iterate guarantees (Cai, Farina, Grand-Clément, Kroer, Lee, Luo &
Zheng 2023, arXiv 2311.00676).

RM-type methods move an aggregate regret vector z ∈ ℝⁿ₊ and play its normalization x(z) = z/‖z‖₁;
the regret operator is r(x) = Px − (xᵀPx)·1 (the instantaneous regret of each response against
x, :func:`gamelab.algorithms.classical.regret_vector`). RM+ itself is
z_{t+1} = [z_t + r(x_t)]⁺ (``regret_matching_plus``; its last iterate does not converge).

``predictive_rm_plus`` — predictive RM+ (Farina, Kroer & Sandholm 2021), prediction = the last
instantaneous regret; scale-free, no step size:

    ẑ_{t+1} = [ẑ_t + r(x_t)]⁺            x_{t+1} = x([ẑ_{t+1} + r(x_t)]⁺)            ẑ_0 = 0

(uniform over the responses when that vector is 0). Cai et al. show numerically that its last
iterate need not converge (target ``average_only``).

The smooth variants keep z in the truncated orthant C = {z ≥ 0, ‖z‖₁ ≥ 1} (Farina et al. 2023),
where x(z) is Lipschitz; Π_C(y) = [y]⁺ if ‖[y]⁺‖₁ ≥ 1, else the Euclidean projection of y onto the
simplex (the constraint ‖z‖₁ ≥ 1 is then active). The floor R₀ = 1 loses no generality: x(z) is
scale-free, so (η, R₀) and (η/R₀, 1) give the same policies. z_0 = x_0 (the initial policy).

``extragradient_rm_plus`` — ExRM+:

    z_{t+½} = Π_C(z_t + η r(x(z_t)))            z_{t+1} = Π_C(z_t + η r(x(z_{t+½})))

``smooth_predictive_rm_plus`` — smooth predictive RM+ (SPRM+), optimistic in two sequences:

    ẑ_{t+1} = Π_C(ẑ_t + η r(x(z_t)))            z_{t+1} = Π_C(ẑ_{t+1} + η r(x(z_t)))            ẑ_0 = z_0

Both converge in the last iterate (asymptotically, no rate; 1/√t best iterate) for η ≤ 1/(8L).

``rm_plus_restarts`` — restarted ExRM+ (RS-ExRM+): ExRM+ steps; whenever the step moved little,
‖z_{t+½} − z_t‖₂ + ‖z_{t+1} − z_{t+½}‖₂ ≤ δ·2^{−k}, restart at the normalized point
z_{t+1} ← z_{t+1}/‖z_{t+1}‖₁ (the same policy) and k ← k + 1. Linear last-iterate rate. The paper
fixes the restart threshold's constant; here it is the hyper-parameter δ (``delta``).
"""
from __future__ import annotations

from typing import NamedTuple

from gamelab.algorithms.base import Algorithm, register
from gamelab.algorithms.classical import NoHP, RegretState, regret_policy, regret_vector, rm_init
from gamelab.algorithms.euclidean import log_of, project_simplex
from gamelab.lazy import jax, jnp


def project_truncated_orthant(y, mask=None):
    """The Euclidean projection of ``y`` onto C = {z ≥ 0, ‖z‖₁ ≥ 1} over the responses where
    ``mask`` is 1 (padding exactly 0)."""
    real = jnp.ones(y.shape[0], bool) if mask is None else mask > 0
    positive = jnp.where(real, jnp.maximum(y, 0.0), 0.0)
    return jnp.where(jnp.sum(positive) >= 1.0, positive, project_simplex(y, mask))


def normalized(z):
    return z / jnp.sum(z)


class SmoothRMHP(NamedTuple):
    eta: float = 0.1


class RestartRMHP(NamedTuple):
    eta: float = 0.1
    delta: float = 1.0  # the restart threshold is delta·2^{−k} after k restarts


class SmoothRMState(NamedTuple):
    logp: jax.Array  # log x(z_t)
    z: jax.Array  # z_t ∈ C (ExRM+) or ẑ_t ∈ C (SPRM+)


class RestartRMState(NamedTuple):
    logp: jax.Array
    z: jax.Array
    restarts: jax.Array  # k


def predictive_rm_plus_step(game, hp, s):
    r = regret_vector(game, jnp.exp(s.logp))
    regret = jnp.maximum(s.regret + r, 0.0)
    return RegretState(regret_policy(regret + r, game.mask), regret)


def smooth_rm_init(game, hp, logp, ref):
    return SmoothRMState(logp=logp, z=jnp.exp(logp))


def exrm_half_and_full(game, hp, z):
    """ExRM+'s two projected steps from z: (z_{t+½}, z_{t+1})."""
    half = project_truncated_orthant(z + hp.eta * regret_vector(game, normalized(z)), game.mask)
    return half, project_truncated_orthant(z + hp.eta * regret_vector(game, normalized(half)), game.mask)


def extragradient_rm_plus_step(game, hp, s):
    _, z = exrm_half_and_full(game, hp, s.z)
    return SmoothRMState(log_of(normalized(z)), z)


def smooth_predictive_rm_plus_step(game, hp, s):
    r = regret_vector(game, jnp.exp(s.logp))
    hat = project_truncated_orthant(s.z + hp.eta * r, game.mask)
    played = project_truncated_orthant(hat + hp.eta * r, game.mask)
    return SmoothRMState(log_of(normalized(played)), hat)


def rm_restart_init(game, hp, logp, ref):
    return RestartRMState(logp=logp, z=jnp.exp(logp), restarts=jnp.zeros((), logp.dtype))


def rm_plus_restarts_step(game, hp, s):
    half, z = exrm_half_and_full(game, hp, s.z)
    moved = jnp.linalg.norm(half - s.z) + jnp.linalg.norm(z - half)
    restart = moved <= hp.delta * jnp.exp2(-s.restarts)
    z = jnp.where(restart, normalized(z), z)
    return RestartRMState(log_of(normalized(z)), z, s.restarts + restart)


POS = "positive"
PREDICTIVE_RM_PLUS = register(Algorithm(
    "predictive_rm_plus", NoHP, (), rm_init, predictive_rm_plus_step, "average_only",
    "predictive RM+: ẑ ← [ẑ + r(x)]⁺, x ∝ [ẑ + r(x)]⁺ (prediction = last instantaneous regret)",
))
EXTRAGRADIENT_RM_PLUS = register(Algorithm(
    "extragradient_rm_plus", SmoothRMHP, (("eta", POS),), smooth_rm_init, extragradient_rm_plus_step, "nash",
    "extragradient RM+: z_½ = Π_C(z + η r(z)), z ← Π_C(z + η r(z_½)), C = {z ≥ 0, ‖z‖₁ ≥ 1}, x = z/‖z‖₁",
))
SMOOTH_PREDICTIVE_RM_PLUS = register(Algorithm(
    "smooth_predictive_rm_plus", SmoothRMHP, (("eta", POS),), smooth_rm_init, smooth_predictive_rm_plus_step, "nash",
    "smooth predictive RM+: ẑ ← Π_C(ẑ + η r(z)), z ← Π_C(ẑ + η r(z)), C = {z ≥ 0, ‖z‖₁ ≥ 1}, x = z/‖z‖₁",
))
RM_PLUS_RESTARTS = register(Algorithm(
    "rm_plus_restarts", RestartRMHP, (("eta", POS), ("delta", POS)), rm_restart_init, rm_plus_restarts_step, "nash",
    "restarted extragradient RM+: ExRM+ steps, z ← z/‖z‖₁ whenever a step moved ≤ δ·2^{−k} (k restarts so far)",
))
