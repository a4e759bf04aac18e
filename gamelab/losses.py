"""Sampled-feedback losses: pure functions of log-probabilities and a :class:`~gamelab.feedback.Feedback`.

Pairwise losses take ``(h, h2, fb)`` with h = log π_θ(y), h2 = log π_θ(y′) for the batch's pairs and
return the weighted sum Σ_k w_k·ℓ_k (weights sum to one: a *mean* over the batch). Every ℓ is
affine in the label l = P(y ≻ y′) (or, for squared losses, has a gradient affine in it), so the
expected gradient of a sampled batch is the gradient of the exact population loss.

Conventions (explicit, documented defaults):
* log-probabilities are of whole responses — a sequence model passes sums of token log-probs
  (no length normalization unless the caller divides by the length);
* DPO's β multiplies the log-ratio (β = 1/η of mirror descent); IPO's and INPO's targets are stated
  as the half-margin ``c`` of the regression (IPO: c = 1/(2τ), INPO: c = η/2);
* means over the batch, not sums (so learning rates do not depend on the batch size).

Population minimizers on tabular logits (DESIGN §3 "the key invariant"; tests/test_sampled.py):
* ``regression_loss`` with pairs from μ⊗μ is minimized by
  h = w_anchor·log π_t + w_ref·log π_ref + 2c·Pμ + const, so IPO (0, 1, 1/(2τ)) gives
  π ∝ π_ref·exp(Pμ/τ), INPO (1 − ητ, ητ, η/2) gives π ∝ π_t^{1−ητ}·π_ref^{ητ}·exp(η Pμ), MMD
  (1, ητ, η/2)/(1 + ητ) its update, Nash-MD its update when μ is the geometric mixture.
* ``dpo_loss`` is minimized by h = log ρ + r̂/β with r̂ the Bradley–Terry fit to the pairs.
* ``sppo_loss`` is minimized (for unnormalized h) by h = log π_t + η(Pμ − ½): MWU's update up to
  its normalizer, which SPPO replaces by the constant η/2; on a normalized policy the minimizer
  differs from MWU by O(η²) (measured in the tests).
"""
from __future__ import annotations

from gamelab.feedback import group_pairs_layout
from gamelab.lazy import jax, jnp


def _weighted(fb, per_pair):
    return jnp.sum(fb.weight * per_pair)


def regression_loss(h, h2, fb, w_anchor, w_ref, c):
    """Pairwise regression toward a mirror-descent target (IPO, INPO, MMD, Nash-MD, online IPO).

    Δ = (h − h2) − w_anchor·(anchor − anchor2) − w_ref·(ref − ref2);
    ℓ = l·(Δ − c)² + (1 − l)·(Δ + c)²  — the (winner, loser) form ``(Δ_{w,l} − c)²`` with the label as
    a probability."""
    delta = (h - h2) - w_anchor * (fb.anchor - fb.anchor2) - w_ref * (fb.ref - fb.ref2)
    return _weighted(fb, fb.label * (delta - c) ** 2 + (1.0 - fb.label) * (delta + c) ** 2)


def ipo_loss(h, h2, fb, tau):
    """IPO: (Δh − Δlog π_ref − 1/(2τ))² on (winner, loser) pairs."""
    return regression_loss(h, h2, fb, 0.0, 1.0, 0.5 / tau)


def inpo_loss(h, h2, fb, eta, tau):
    """INPO: (Δh − ητ·Δlog π_ref − (1 − ητ)·Δlog π_t − η/2)² on (winner, loser) pairs."""
    return regression_loss(h, h2, fb, 1.0 - eta * tau, eta * tau, 0.5 * eta)


def dpo_loss(h, h2, fb, beta, use_anchor=True):
    """DPO: −log σ(β·[Δh − Δlog ρ]) on (winner, loser) pairs; ρ = the anchor π_t (iterative /
    online DPO, default) or the fixed reference (``use_anchor`` False)."""
    rho, rho2 = jnp.where(use_anchor, fb.anchor, fb.ref), jnp.where(use_anchor, fb.anchor2, fb.ref2)
    z = beta * ((h - rho) - (h2 - rho2))
    return _weighted(fb, -(fb.label * jax.nn.log_sigmoid(z) + (1.0 - fb.label) * jax.nn.log_sigmoid(-z)))


def sppo_loss(h, h2, fb, eta):
    """SPPO: (h(y) − log π_t(y) − η(ĝ_y − ½))², with the pair's label as the one-sample estimate
    ĝ_y of P(y ≻ π_t) (and 1 − l for y′); averaged over the pair's two responses. The estimate is
    unbiased, so the gradient is too (the loss value carries the estimate's variance)."""
    a = h - fb.anchor - eta * (fb.label - 0.5)
    b = h2 - fb.anchor2 - eta * (0.5 - fb.label)
    return _weighted(fb, 0.5 * (a**2 + b**2))


def nash_md_pg_loss(h, h2, fb, tau):
    """Nash-MD-PG (Munos et al. 2024): a REINFORCE surrogate whose gradient is
    ∇_θ [P(π_θ ≻ μ) − τ·KL(π_θ‖π_ref)] at θ = the anchor, with y ~ π_t and y′ ~ μ (the geometric
    mixture): −(l − ½ − τ·(log π_t(y) − log π_ref(y)))·h(y); the ½ is a baseline (zero-mean
    score function) and the anchor is the current policy, so the weight carries no gradient."""
    advantage = jax.lax.stop_gradient(fb.label - 0.5 - tau * (fb.anchor - fb.ref))
    return _weighted(fb, -advantage * h)


# ---------------------------------------------------------------- K candidates with rewards
def exo_loss(h, ref, reward, beta=1.0, beta_r=1.0, weight=None):
    """EXO (Ji et al. 2024) over K candidates per prompt, shapes (..., K): the reverse KL
    KL(p_θ ‖ p_r) with p_θ = softmax(β·(h − log π_ref)) and p_r = softmax(r/β_r); mean over prompts
    (or the sum weighted by ``weight``, shape (...)).
    Minimizing it drives π_θ toward π_ref·exp(r/β_r)^{1/β} mode-seekingly (reverse KL)."""
    log_p_theta = jax.nn.log_softmax(beta * (h - ref), axis=-1)
    log_p_r = jax.nn.log_softmax(reward / beta_r, axis=-1)
    kl = jnp.sum(jnp.exp(log_p_theta) * (log_p_theta - log_p_r), axis=-1)
    return jnp.mean(kl) if weight is None else jnp.sum(weight * kl)


def exo_group_loss(h, fb, beta):
    """Iterative EXO on group feedback (:func:`gamelab.feedback.sampled_groups` /
    :func:`~gamelab.feedback.exact_groups`, fields (G, Q)): per group, the EXO loss toward
    π* ∝ π_ref·exp(ĝ/β) with the candidates' proposal π_t (self-normalized importance weights),
    KL(softmax(h − log π_t) ‖ softmax(log π_ref − log π_t + ĝ/β)) over its K candidates, summed with
    the groups' weights. ĝ_k = the weighted mean of candidate k's wins over the pairs it is in (a
    round robin over the other K − 1 candidates: unbiased for P(y_k ≻ π_t), and the loss consistent
    as K → ∞). Exact groups weigh candidate k's pairs 2·π_t(y_k), so the importance weights become
    the population itself: ĝ = Pπ_t and the loss is KL(π_θ ‖ π_ref·exp(Pπ_t/β)/Z), minimized by
    online IPO's step with τ = β. ``h``: log π_θ of the pairs' first responses (G, Q)."""
    G, Q = fb.y.shape
    I, J, diagonal = group_pairs_layout(Q)
    w = fb.weight
    zeros = jnp.zeros((G, diagonal.size), w.dtype)
    wins = zeros.at[:, I].add(w * fb.label).at[:, J].add(w * (1.0 - fb.label))
    seen = zeros.at[:, I].add(w).at[:, J].add(w)  # Σ of the weights of candidate k's pairs
    safe = jnp.where(seen > 0, seen, 1.0)
    # log-density each candidate was drawn with, per unit of its weight (+1e30: a candidate of weight 0)
    proposal = jnp.where(seen > 0, fb.anchor[:, diagonal] - jnp.log(safe), 1e30)
    reward = beta * (fb.ref[:, diagonal] - proposal) + wins / safe
    return exo_loss(h[:, diagonal], proposal, reward, 1.0, beta, weight=0.5 * jnp.sum(seen, axis=-1))


def dpo_k_loss(h, ref, reward, beta=1.0, beta_r=1.0):
    """DPO with K candidates (the forward direction of EXO): the cross-entropy −Σ p_r·log p_θ,
    i.e. KL(p_r ‖ p_θ) up to a constant — mass-covering. With K = 2 and p_r = (l, 1 − l) it is DPO."""
    log_p_theta = jax.nn.log_softmax(beta * (h - ref), axis=-1)
    p_r = jax.nn.softmax(reward / beta_r, axis=-1)
    return jnp.mean(-jnp.sum(p_r * log_p_theta, axis=-1))
