"""Metrics of a policy in a preference game: pure, unbatched functions (callers vmap).

Policies are given as logits (any additive normalization; ``-inf`` marks a response with
probability exactly zero). Conventions (DESIGN §2):

* exploitability ``e(π) = max_y (Pπ)_y − 1/2`` ∈ [0, 1/2], zero exactly at a Nash policy;
* duality gap ``DG(π) = 2·e(π)`` — the two are reported under their own names, never mixed;
* regularized gap ``DG_τ(π) = 2·[τ·log Σ_y ref_y·exp((Pπ)_y/τ) + τ·KL(π‖ref) − 1/2]`` ≥ 0, zero only
  at the KL-regularized Nash π*_τ.
"""
from __future__ import annotations

from gamelab.lazy import jax, jnp, jsp_special


def log_normalize(logits: jax.Array) -> jax.Array:
    """Log-probabilities from logits (``-inf`` entries stay ``-inf``)."""
    return jax.nn.log_softmax(logits)


def probs(logits: jax.Array) -> jax.Array:
    return jax.nn.softmax(logits)


def win_rates(P: jax.Array, logits: jax.Array) -> jax.Array:
    """``g(π) = Pπ``: the probability that each response beats a draw from π."""
    return P @ probs(logits)


def exploitability(P: jax.Array, logits: jax.Array) -> jax.Array:
    """``max_y (Pπ)_y − 1/2``; clipped at 0 only against rounding (it is ≥ 0 in exact arithmetic)."""
    return jnp.maximum(jnp.max(win_rates(P, logits)) - 0.5, 0.0)


def duality_gap(P: jax.Array, logits: jax.Array) -> jax.Array:
    """``2·exploitability``: the gap of the symmetric zero-sum game with payoff P − 1/2."""
    return 2.0 * exploitability(P, logits)


def kl(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """``KL(p‖q)`` computed in log space; ``0·log 0 = 0``, and ``+inf`` where q = 0 < p."""
    lp, lq = log_normalize(logits_p), log_normalize(logits_q)
    p = jnp.exp(lp)
    terms = jnp.where(p > 0, p * (lp - lq), 0.0)
    return jnp.maximum(jnp.sum(terms), 0.0)


def entropy(logits: jax.Array) -> jax.Array:
    lp = log_normalize(logits)
    p = jnp.exp(lp)
    return -jnp.sum(jnp.where(p > 0, p * lp, 0.0))


def win_rate(P: jax.Array, logits: jax.Array, ref_logits: jax.Array) -> jax.Array:
    """``P(π ≻ π_ref) = πᵀ P π_ref``."""
    return probs(logits) @ P @ probs(ref_logits)


def regularized_gap(P: jax.Array, logits: jax.Array, ref_logits: jax.Array, tau) -> jax.Array:
    """``DG_τ(π)``: twice the gap of the KL-regularized game toward ``ref`` with strength ``τ > 0``.

    ``τ·log Σ ref·exp(g/τ)`` is evaluated as a log-sum-exp, so it stays finite for small τ.
    """
    return regularized_gap_from_win_rates(win_rates(P, logits), log_normalize(logits), log_normalize(ref_logits), tau)


def regularized_gap_from_win_rates(g, logp, ref_logp, tau):
    """``DG_τ`` from the win rates ``g = Pπ`` and normalized log-probabilities (for callers that
    hold ``g`` already: the driver's recording, class-level games)."""
    inv_tau = 1.0 / tau  # explicit: XLA otherwise rewrites g / τ differently in sharded programs
    best = tau * jsp_special.logsumexp(ref_logp + g * inv_tau)
    return jnp.maximum(2.0 * (best + tau * kl(logp, ref_logp) - 0.5), 0.0)


METRIC_NAMES = (
    "exploitability",
    "duality_gap",
    "regularized_gap",
    "kl_to_target",
    "entropy",
    "win_rate_vs_ref",
)


def policy_metrics(P, logits, ref_logits, *, tau=None, target_logits=None, normalized: bool = False,
                   names=None) -> dict[str, jax.Array]:
    """Every metric of one policy (or those in ``names``) as a dict of scalars, with one
    matrix–vector product.

    ``regularized_gap`` is present only when ``tau`` is given and ``kl_to_target`` (``KL(target‖π)``,
    the Lyapunov function of prox-point methods when the target is a Nash) only when a target is.
    The win rate against the reference uses ``πᵀ P ref = 1 − refᵀ (Pπ)`` (P + Pᵀ = 1), so the
    whole set costs the single product g = Pπ — the same product the next update computes.
    ``normalized=True`` promises that ``logits`` are already log-probabilities (as every
    algorithm state's are), so g is computed from exactly the expression the update uses.
    ``names``: a collection of :data:`METRIC_NAMES` to compute (default: all); the dict keeps the
    order of the full set. ``exploitability`` or ``duality_gap`` alone costs one maximum beyond g.
    """
    want = set(METRIC_NAMES if names is None else names)
    lp = logits if normalized else log_normalize(logits)
    g = P @ jnp.exp(lp)
    out = {}
    if want & {"exploitability", "duality_gap"}:
        e = jnp.maximum(jnp.max(g) - 0.5, 0.0)
        if "exploitability" in want:
            out["exploitability"] = e
        if "duality_gap" in want:
            out["duality_gap"] = 2.0 * e
    if "entropy" in want:
        out["entropy"] = entropy(lp)
    ref = log_normalize(ref_logits) if want & {"win_rate_vs_ref", "regularized_gap"} else None
    if "win_rate_vs_ref" in want:
        out["win_rate_vs_ref"] = 1.0 - jnp.exp(ref) @ g
    if tau is not None and "regularized_gap" in want:
        out["regularized_gap"] = regularized_gap_from_win_rates(g, lp, ref, tau)
    if target_logits is not None and "kl_to_target" in want:
        out["kl_to_target"] = kl(target_logits, lp)
    return out


def group_metrics(game, logits, ref_logits) -> dict[str, jax.Array]:
    """Per-group metrics of a multi-group game (``game.groups`` not None), as scalars.

    For each group u: ``group{u}_win_rate_vs_ref`` = πᵀP_u·ref, ``group{u}_exploitability`` =
    max_y (P_u π)_y − ½ (in that group's game), and with Bradley–Terry rewards ``group{u}_reward`` =
    π·r_u. Then the worst group (``worst_group_*``: the lowest win rate and reward, the highest
    exploitability) and the group-weighted average (``avg_group_*``; named so that they cannot be
    confused with the average *iterate*'s ``avg_`` metrics, which get ``avg_avg_group_…``).
    """
    p, ref = probs(logits), probs(ref_logits)
    G, w = game.groups, game.weights
    g = G @ p  # (U, n): each group's win rates of every response against π
    per = {"win_rate_vs_ref": 1.0 - g @ ref, "exploitability": jnp.maximum(jnp.max(g, axis=1) - 0.5, 0.0)}
    if game.rewards is not None:
        per["reward"] = game.rewards @ p
    out = {}
    for name, values in per.items():
        for u in range(values.shape[0]):
            out[f"group{u}_{name}"] = values[u]
        out[f"worst_group_{name}"] = jnp.max(values) if name == "exploitability" else jnp.min(values)
        out[f"mean_group_{name}"] = w @ values
    return out
