"""Egalitarian (MaxMin-RLHF) alignment over a multi-group game.

``maxmin`` solves max_π min_u U_u(π), U_u(π) = π·r_u − β·KL(π‖ref), as the saddle point of the
convex–concave game  L(π, w) = Σ_u w_u·π·r_u − β·KL(π‖ref)  between the policy and an adversary
mixing the groups (w ∈ Δ_U), by mirror-prox (extragradient) on both players: the policy's mirror
step is the KL-regularized one π ∝ π^{1−ηβ}·ref^{ηβ}·exp(η·Σ_u w_u r_u), the adversary's an
exponentiated-gradient step w ∝ w·exp(−η_w·(π·r_u)_u). L is strongly concave in π, so π_t converges
in the last iterate to the unique egalitarian policy (gamelab.nash.maxmin_policy).

Rewards r_u are the groups' Bradley–Terry rewards when the game has them, otherwise each group's
win rates against the reference, P_u·ref ("max–min over groups of win rates against a reference").
A game without groups is one group: the policy then converges to ref·exp(P·ref/β)/Z.
"""
from __future__ import annotations

from typing import NamedTuple

from gamelab.algorithms.base import Algorithm, register
from gamelab.algorithms.mirror import geometric
from gamelab.lazy import jax, jnp


def log_softmax(x):
    return jax.nn.log_softmax(x)


class MaxMinState(NamedTuple):
    logp: jax.Array
    ref: jax.Array
    logw: jax.Array  # the adversary's log-mixture over groups


class MaxMinHP(NamedTuple):
    eta: float = 0.1  # the policy's step size
    beta: float = 1.0  # KL strength of each group's utility
    eta_w: float = 0.1  # the adversary's step size


def group_rewards(game, ref):
    """(U, n): Bradley–Terry rewards if the game has them, else the win rates P_u·ref."""
    if game.rewards is not None:
        return game.rewards
    groups = game.P[None] if game.groups is None else game.groups
    return groups @ jnp.exp(ref)


def maxmin_init(game, hp, logp, ref):
    U = 1 if game.groups is None else game.groups.shape[0]
    return MaxMinState(logp, ref, jnp.full((U,), -jnp.log(U), dtype=logp.dtype))


def maxmin_step(game, hp, s):
    R = group_rewards(game, s.ref)
    base = geometric(s.logp, s.ref, hp.eta * hp.beta)

    def policy(logw):
        return log_softmax(base + hp.eta * (jnp.exp(logw) @ R))

    def adversary(logp):
        return log_softmax(s.logw - hp.eta_w * (R @ jnp.exp(logp)))

    half_p, half_w = policy(s.logw), adversary(s.logp)
    return MaxMinState(policy(half_w), s.ref, adversary(half_p))


MAXMIN = register(Algorithm(
    "maxmin", MaxMinHP, (("eta", "positive"), ("beta", "positive"), ("eta_w", "positive"),
                         ("eta*beta", "at_most_one")),
    maxmin_init, maxmin_step, "maxmin",
    "MaxMin-RLHF egalitarian policy: mirror-prox on max_π min_u π·r_u − β·KL(π‖ref) against an adversary"
    " over groups (r_u: Bradley–Terry rewards, or win rates P_u·ref)",
))
