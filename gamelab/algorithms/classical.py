"""Classical game-dynamics baselines whose *average* iterate converges to a Nash policy.

Their last iterates are pure or sparse policies; probabilities that are exactly zero appear as
``-inf`` log-probabilities (KL toward such a policy is then honestly ``+inf``).
"""
from __future__ import annotations

from typing import NamedTuple

from gamelab.algorithms.base import Algorithm, register
from gamelab.lazy import jax, jnp


class NoHP(NamedTuple):
    pass


class FictitiousState(NamedTuple):
    logp: jax.Array
    total: jax.Array  # Σ of the policies played so far (π_0 included)
    count: jax.Array


class RegretState(NamedTuple):
    logp: jax.Array
    regret: jax.Array  # cumulative regrets (clipped at 0 for RM+)


def fp_init(game, hp, logp, ref):
    return FictitiousState(logp=logp, total=jnp.exp(logp), count=jnp.ones((), logp.dtype))


def fp_step(game, hp, s):
    """Best response to the empirical average of past play (first index on ties)."""
    g = game.P @ (s.total / s.count)
    play = jax.nn.one_hot(jnp.argmax(g), g.shape[0], dtype=g.dtype)
    return FictitiousState(jnp.log(play), s.total + play, s.count + 1.0)


def rm_init(game, hp, logp, ref):
    return RegretState(logp=logp, regret=jnp.zeros_like(logp))


def regret_policy(regret, mask=None):
    """π ∝ positive regrets; uniform (over the game's responses: ``mask``, padding excluded) when
    no regret is positive."""
    positive = jnp.maximum(regret, 0.0)
    total = jnp.sum(positive)
    uniform = jnp.full_like(regret, 1.0 / regret.shape[0]) if mask is None else mask / jnp.sum(mask)
    return jnp.log(jnp.where(total > 0, positive / jnp.where(total > 0, total, 1.0), uniform))


def regret_vector(game, p):
    """The instantaneous regret r(p) = Pp − (pᵀPp)·1 of a policy given as probabilities."""
    g = game.P @ p
    return g - p @ g


def instant_regret(game, logp):
    return regret_vector(game, jnp.exp(logp))


def rm_step(game, hp, s):
    regret = s.regret + instant_regret(game, s.logp)
    return RegretState(regret_policy(regret, game.mask), regret)


def rm_plus_step(game, hp, s):
    regret = jnp.maximum(s.regret + instant_regret(game, s.logp), 0.0)
    return RegretState(regret_policy(regret, game.mask), regret)


FICTITIOUS_PLAY = register(Algorithm(
    "fictitious_play", NoHP, (), fp_init, fp_step, "average_only",
    "fictitious play: best response to the average of past play",
))
REGRET_MATCHING = register(Algorithm(
    "regret_matching", NoHP, (), rm_init, rm_step, "average_only",
    "regret matching: π ∝ positive part of cumulative regrets",
))
REGRET_MATCHING_PLUS = register(Algorithm(
    "regret_matching_plus", NoHP, (), rm_init, rm_plus_step, "average_only",
    "regret matching+: cumulative regrets clipped at zero every step",
))
