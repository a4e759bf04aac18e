"""Euclidean-geometry methods on the simplex: projected optimistic gradient, projected
extragradient and the extra-anchored gradient.

The iterates live in probability space; Π is the exact Euclidean projection onto the simplex
(:func:`project_simplex`, sort-based, over the game's responses only: padding keeps probability
exactly 0). A state's ``logp`` is the log of the projected point, ``-inf`` where it is exactly 0
(the boundary of the simplex is reached in finitely many steps, unlike with KL steps). The
operator is the win-rate vector g(x) = Px; its negation is monotone (P − ½ is skew), and the
Nash policies are the solutions of the variational inequality ⟨g(x*), x − x*⟩ ≤ 0 on the simplex.

``ogda`` — projected optimistic gradient ascent in its two-sequence form (Popov's method; its
linear last-iterate rate on polytopes: Wei, Lee, Zhang & Luo 2021, arXiv 2006.09517):

    x̂_{t+1} = Π(x̂_t + η g(x_t))            x_{t+1} = Π(x̂_{t+1} + η g(x_t))           x̂_0 = x_0

``projected_extragradient`` — Korpelevich's extragradient with projections:

    x_{t+½} = Π(x_t + η g(x_t))            x_{t+1} = Π(x_t + η g(x_{t+½}))

``eag`` — extra-anchored gradient (Yoon & Ryu 2021, EAG-C) with projections, anchored at the
initial point x_0 with weight β_t = 1/(t + 2):

    y_t = x_t + β_t (x_0 − x_t)
    x_{t+½} = Π(y_t + η g(x_t))            x_{t+1} = Π(y_t + η g(x_{t+½}))

O(1/T) last-iterate gap (Yoon & Ryu 2021 unconstrained; Cai, Oikonomou & Zheng 2022 with
projections). Anchoring costs the linear rate: the pull toward x_0 fades only like 1/t, so the
gap decays like 1/T even on games with a unique interior Nash.

All three target ``nash``; their theory asks η ≤ 1/(8L) (OGDA, EAG) or η < 1/L (extragradient),
L = ‖P − ½‖₂ on the simplex's tangent space.
"""
from __future__ import annotations

from typing import NamedTuple

from gamelab.algorithms.base import Algorithm, register
from gamelab.algorithms.mirror import Eta, PolicyState, init_policy, win_rates
from gamelab.lazy import jax, jnp


def project_simplex(x, mask=None):
    """The Euclidean projection of ``x`` onto the simplex {p ≥ 0, Σp = 1} of the responses where
    ``mask`` is 1 (all of them when None); masked-out entries are exactly 0.

    Sort-based (Held, Wolfe & Crowder 1974; Duchi et al. 2008): sort the responses' entries in
    decreasing order u_1 ≥ … ≥ u_m, ρ = max{k : u_k > (Σ_{i≤k} u_i − 1)/k}, θ = (Σ_{i≤ρ} u_i − 1)/ρ,
    p = max(x − θ, 0). Branch-free."""
    n = x.shape[0]
    real = jnp.ones(n, bool) if mask is None else mask > 0
    u = -jnp.sort(-jnp.where(real, x, -jnp.inf))  # decreasing, padding (−inf) last
    live = u > -jnp.inf
    u0 = jnp.where(live, u, 0.0)
    cumulative = jnp.cumsum(u0)
    k = jnp.arange(1, n + 1, dtype=x.dtype)
    rho = jnp.max(jnp.where(live & (u0 * k > cumulative - 1.0), k, 1.0))
    theta = (jnp.take(cumulative, rho.astype(jnp.int32) - 1) - 1.0) / rho
    return jnp.where(real, jnp.maximum(x - theta, 0.0), 0.0)


def log_of(p):
    """``log p`` with ``-inf`` for exact zeros (no warning, no NaN)."""
    return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


def gradient_step(game, x, g, eta):
    """Π(x + η g) over the game's responses."""
    return project_simplex(x + eta * g, game.mask)


class OGDAState(NamedTuple):
    logp: jax.Array  # log x_t (the played point)
    hat: jax.Array  # x̂_t, in probability space


class AnchoredState(NamedTuple):
    logp: jax.Array  # log x_t
    anchor: jax.Array  # x_0, in probability space
    t: jax.Array  # steps taken


def ogda_init(game, hp, logp, ref):
    return OGDAState(logp=logp, hat=jnp.exp(logp))


def ogda_step(game, hp, s):
    g = win_rates(game, s.logp)
    hat = gradient_step(game, s.hat, g, hp.eta)
    return OGDAState(log_of(gradient_step(game, hat, g, hp.eta)), hat)


def projected_extragradient_step(game, hp, s):
    x = jnp.exp(s.logp)
    half = gradient_step(game, x, game.P @ x, hp.eta)
    return PolicyState(log_of(gradient_step(game, x, game.P @ half, hp.eta)))


def eag_init(game, hp, logp, ref):
    return AnchoredState(logp=logp, anchor=jnp.exp(logp), t=jnp.zeros((), jnp.int32))


def eag_step(game, hp, s):
    x = jnp.exp(s.logp)
    y = x + (s.anchor - x) / (s.t + 2).astype(x.dtype)
    half = gradient_step(game, y, game.P @ x, hp.eta)
    return AnchoredState(log_of(gradient_step(game, y, game.P @ half, hp.eta)), s.anchor, s.t + 1)


OGDA = register(Algorithm(
    "ogda", Eta, (("eta", "positive"),), ogda_init, ogda_step, "nash",
    "projected optimistic gradient ascent: x̂ ← Π(x̂ + η g(x)), x ← Π(x̂ + η g(x)) (Euclidean projection)",
))
PROJECTED_EXTRAGRADIENT = register(Algorithm(
    "projected_extragradient", Eta, (("eta", "positive"),), init_policy, projected_extragradient_step, "nash",
    "projected extragradient: x_½ = Π(x + η g(x)), x ← Π(x + η g(x_½)) (Euclidean projection)",
))
EAG = register(Algorithm(
    "eag", Eta, (("eta", "positive"),), eag_init, eag_step, "nash",
    "extra-anchored gradient: y = x + (x_0 − x)/(t+2), x_½ = Π(y + η g(x)), x ← Π(y + η g(x_½)); O(1/T) gap",
))
