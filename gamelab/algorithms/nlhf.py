"""KL-proximal last-iterate methods of Nash learning from human feedback (2025): ONPO and Nash-MP.

Both take the *exact* KL-proximal step of the τ-regularized game (the regularizer kept whole, as
in MMD, not linearized as in INPO), which has a closed form for every η, τ ≥ 0:

    prox(π_a, g) = argmax_π ⟨π, g⟩ − τ·KL(π‖ρ) − KL(π‖π_a)/η  ∝  (π_a·ρ^{ητ}·exp(η g))^{1/(1+ητ)}

(ρ = π_ref; :func:`gamelab.algorithms.mirror.prox_logits`, in log space).

``onpo`` — optimistic Nash policy optimization (ONPO, arXiv 2502.16852): optimistic online mirror
descent in its two-sequence form, a secondary iterate π̂ and the played policy π, with the
prediction M_{t+1} = g_t = Pπ_t (the last win-rate vector):

    π̂_{t+1} = prox(π̂_t, g_t)            π_{t+1} = prox(π̂_{t+1}, g_t)           π̂_0 = π_0

One preference query (g_t) per step. τ = 0 is its unregularized form, an optimistic MWU
(log π_{t+1} = log π_t + η(2g_t − g_{t−1}) from step 1 on; only the first step differs from
``omwu``: π_1 ∝ π_0·exp(2η g_0), the prediction before any feedback being 0). Its last iterate
converges to a Nash policy for τ = 0 and to π*_τ for τ > 0 (target ``nash``, as ``extragradient``).

``nash_mp`` — Nash mirror prox (Nash-MP, Tiapkin et al., arXiv 2505.19731): mirror prox on the
β-regularized game (β = ``tau``), two preference queries per step:

    π_{k+½} = prox(π_k, Pπ_k)            π_{k+1} = prox(π_k, Pπ_{k+½})

The mirror-prox analysis with the regularizer in the prox (relative strong monotonicity β, the
operator Pπ ½-Lipschitz from ℓ₁ to ℓ∞ since P's columns differ by at most 1 and Σ(π − π′) = 0)
gives, for η ≤ 2,

    KL(π*_β‖π_{k+1}) ≤ KL(π*_β‖π_k) / (1 + ηβ),

so with the default η = 2 (the largest step the bound allows) KL contracts by at least
1/(1 + 2β) per step = (1 + 2β)^{−N/2} per preference query N = 2k: the paper's constant. That is
a worst case: near π*_β the map linearizes to δ ← (I + (η/c)M(I + ηM))δ/c on log-ratios δ
(c = 1 + ηβ, M = P·(diag π* − π*π*ᵀ), whose spectrum is imaginary), so KL, quadratic in δ, falls
by at most (1 + ηβ)^{−2} per step, the square of the bound; measured on random games: within 4 %
of the linearized factor and of (1 + 2β)^{−2} at η = 2 (tests/test_last_iterate_methods.py).
Target ``regularized_nash``. Sampled form: each prox step is the exact-prox regression of MMD
(:func:`gamelab.algorithms.mirror.mmd`, whose population minimizer is ``prox(π_k, Pμ)`` for pairs
drawn from μ), taken twice from π_k — the half step with pairs from π_k, the full step with pairs
from π_{k+½} — as EGPO takes INPO's regression twice.

ONPO's sampled form (``SampledForm(mmd, optimistic=True)``): the parametric state carries π̂ as a
second policy. Each step draws one batch of pairs from π_t (one round of preference queries, as
the tabular step evaluates g_t = Pπ_t once) and takes the same exact-prox regression twice on it:
π̂ from π̂_t anchored at π̂_t, whose population minimizer is prox(π̂_t, Pπ_t) = π̂_{t+1}; then π from
π̂_{t+1} anchored at π̂_{t+1}, whose minimizer is prox(π̂_{t+1}, Pπ_t) = π_{t+1}. At τ = 0 the
regression is SPPO-like with the anchor π̂ in place of π_t (tests/test_sampled.py checks both
minimizers and the exact-feedback trajectory against the tabular step).
"""
from __future__ import annotations

from typing import NamedTuple

from gamelab.algorithms.base import Algorithm, SampledForm, register
from gamelab.algorithms.mirror import RefState, init_ref, mmd, prox_logits, win_rates
from gamelab.lazy import jax


class OptimisticProxState(NamedTuple):
    logp: jax.Array  # the played policy π_t
    hat: jax.Array  # the secondary iterate π̂_t (log-probabilities)
    ref: jax.Array  # ρ = π_ref


class ONPOHP(NamedTuple):
    eta: float = 0.1
    tau: float = 0.0  # 0: the unregularized game (exact Nash)


class NashMPHP(NamedTuple):
    eta: float = 2.0  # the bound's largest step: KL contracts by ≥ 1/(1 + 2τ) per step
    tau: float = 0.1  # β of the paper


def onpo_init(game, hp, logp, ref):
    return OptimisticProxState(logp=logp, hat=logp, ref=ref)


def onpo_step(game, hp, s):
    g = win_rates(game, s.logp)
    hat = prox_logits(s.hat, s.ref, g, hp.eta, hp.tau)
    return OptimisticProxState(prox_logits(hat, s.ref, g, hp.eta, hp.tau), hat, s.ref)


def nash_mp_step(game, hp, s):
    half = prox_logits(s.logp, s.ref, win_rates(game, s.logp), hp.eta, hp.tau)
    return RefState(prox_logits(s.logp, s.ref, win_rates(game, half), hp.eta, hp.tau), s.ref)


ONPO = register(Algorithm(
    "onpo", ONPOHP, (("eta", "positive"), ("tau", "nonnegative")), onpo_init, onpo_step, "nash",
    "ONPO, optimistic OMD on the τ-regularized game: π̂ ← prox(π̂, g_t), π ← prox(π̂, g_t), prox(a, g) ∝"
    " (a·ref^{ητ}·exp(η g))^{1/(1+ητ)} (τ > 0: converges to π*_τ)",
    # both prox steps are MMD's exact-prox regression on one batch drawn from π_t: π̂ anchored at
    # π̂_t, then π anchored at the new π̂ (a second policy in the parametric state)
    SampledForm(mmd, optimistic=True),
))
NASH_MP = register(Algorithm(
    "nash_mp", NashMPHP, (("eta", "positive"), ("tau", "positive")), init_ref, nash_mp_step,
    "regularized_nash",
    "Nash mirror prox: π_½ = prox(π, Pπ), π ← prox(π, Pπ_½), prox(a, g) ∝ (a·ref^{ητ}·exp(η g))^{1/(1+ητ)};"
    " KL(π*_τ‖π) contracts by ≥ 1/(1+ητ) per step for η ≤ 2",
    # both prox steps are MMD's exact-prox regression from π_k: the half step with pairs from π_k,
    # the full step with pairs from π_{k+½} (the paper's practical form, as EGPO is INPO's)
    SampledForm(mmd, extragradient=True),
))
