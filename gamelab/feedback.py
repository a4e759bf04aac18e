"""Preference oracles, batches of feedback, and Bradley–Terry reward fitting.

An oracle answers P(y ≻ y′) for batches of response pairs and draws Bernoulli labels from it; every
oracle is a NamedTuple of arrays (a pytree, so it can be traced, vmapped and sharded) and every
random draw is a pure function of a PRNG key. Oracles over an enumerable response set also give
their full preference matrix (``matrix()``).

* :class:`MatrixOracle` — a general preference matrix P (any game of this library).
* :class:`BradleyTerryOracle` — P(y ≻ y′) = σ(s_y − s_{y′}) from scores s.
* :class:`NoisyOracle` — any oracle whose labels are flipped with probability ``flip``.
* :class:`MixtureOracle` — U groups with their own matrices and group weights (MaxMin-RLHF): a
  label comes from a group drawn by weight; ``sample_with_groups`` also returns the group.

A :class:`Feedback` batch is the one pytree every sampled loss consumes (DESIGN §4). Exact mode
(:func:`exact_pairs`) enumerates all n² ordered pairs with weights μ_a(y)·μ_b(y′) and exact label
probabilities; sampled mode (:func:`sampled_pairs`) draws N pairs y ~ μ_a, y′ ~ μ_b with weight
1/N and Bernoulli labels. Every loss is linear in the weights and labels, so the expected sampled
loss gradient is the exact one (tests/test_sampled.py checks it statistically).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


# ---------------------------------------------------------------------------------- oracles
def _bernoulli(key, p):
    return jax.random.bernoulli(key, p).astype(p.dtype)


class MatrixOracle(NamedTuple):
    """A general preference matrix: P(y ≻ y′) = P[y, y′]."""

    P: jax.Array

    def prob(self, y, y2):
        return self.P[y, y2]

    def matrix(self):
        return self.P

    def sample(self, key, y, y2):
        return _bernoulli(key, self.prob(y, y2))


class BradleyTerryOracle(NamedTuple):
    """P(y ≻ y′) = σ(s_y − s_{y′}) (a transitive preference from scalar scores)."""

    scores: jax.Array

    def prob(self, y, y2):
        return jax.nn.sigmoid(self.scores[y] - self.scores[y2])

    def matrix(self):
        return jax.nn.sigmoid(self.scores[:, None] - self.scores[None, :])

    def sample(self, key, y, y2):
        return _bernoulli(key, self.prob(y, y2))


class NoisyOracle(NamedTuple):
    """``base`` with each label flipped with probability ``flip`` ∈ [0, ½):
    P′ = (1 − flip)·P + flip·(1 − P), still a valid preference."""

    base: object
    flip: jax.Array

    def prob(self, y, y2):
        p = self.base.prob(y, y2)
        return (1.0 - self.flip) * p + self.flip * (1.0 - p)

    def matrix(self):
        p = self.base.matrix()
        return (1.0 - self.flip) * p + self.flip * (1.0 - p)

    def sample(self, key, y, y2):
        return _bernoulli(key, self.prob(y, y2))


class MixtureOracle(NamedTuple):
    """U groups: group u has preference matrix ``P[u]`` and weight ``weights[u]`` (summing to 1).

    The pooled preference is Σ_u w_u·P_u; a sampled label first draws the annotator's group."""

    P: jax.Array  # (U, n, n)
    weights: jax.Array  # (U,)

    def prob(self, y, y2):
        return jnp.einsum("u,u...->...", self.weights, self.P[:, y, y2])

    def matrix(self):
        return jnp.einsum("u,uij->ij", self.weights, self.P)

    def group_prob(self, group, y, y2):
        return self.P[group, y, y2]

    def sample_with_groups(self, key, y, y2):
        """Labels and the group that gave each one."""
        k_group, k_label = jax.random.split(key)
        group = jax.random.categorical(k_group, jnp.log(self.weights), shape=jnp.shape(y))
        return _bernoulli(k_label, self.group_prob(group, y, y2)), group

    def sample(self, key, y, y2):
        return self.sample_with_groups(key, y, y2)[0]


def validate_oracle(oracle) -> None:
    """Host-side checks (raise ``ValueError`` naming the problem); run once before tracing."""
    if isinstance(oracle, NoisyOracle):
        flip = np.asarray(oracle.flip, dtype=np.float64)
        if not np.all(np.isfinite(flip)) or np.any(flip < 0) or np.any(flip >= 0.5):
            raise ValueError(f"label flip rate must be in [0, 0.5), got {flip.tolist()}")
        return validate_oracle(oracle.base)
    if isinstance(oracle, MixtureOracle):
        w = np.asarray(oracle.weights, dtype=np.float64)
        if w.ndim != 1 or w.shape[0] != np.shape(oracle.P)[0]:
            raise ValueError(f"a mixture needs one weight per group: {np.shape(oracle.P)[0]} groups, weights {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
            raise ValueError(f"group weights must be non-negative and sum to 1, got {w.tolist()}")
        from gamelab.games import make_game  # validates each group's matrix

        for u, P in enumerate(np.asarray(oracle.P)):
            try:
                make_game(P)
            except ValueError as e:
                raise ValueError(f"group {u}: {e}") from None
        return
    if isinstance(oracle, BradleyTerryOracle):
        s = np.asarray(oracle.scores, dtype=np.float64)
        if s.ndim != 1 or not np.all(np.isfinite(s)):
            raise ValueError("Bradley–Terry scores must be a finite vector")
        return
    if isinstance(oracle, MatrixOracle):
        from gamelab.games import make_game

        make_game(np.asarray(oracle.P))
        return
    raise TypeError(f"not a preference oracle: {type(oracle).__name__}")


# ---------------------------------------------------------------------------------- feedback
class Feedback(NamedTuple):
    """A batch of preference feedback over N pairs (y, y′) — what every sampled loss consumes.

    ``label`` is P(y ≻ y′): a 0/1 draw (sampled) or the exact probability (exact mode);
    ``weight`` sums to one. ``anchor``/``anchor2`` and ``ref``/``ref2`` are log π_t and log π_ref of
    y and y′ (the anchor is the policy the step starts from; the reference is the KL centre).
    """

    y: jax.Array
    y2: jax.Array
    label: jax.Array
    weight: jax.Array
    anchor: jax.Array
    anchor2: jax.Array
    ref: jax.Array
    ref2: jax.Array


def exact_pairs(oracle, logp_a, logp_b, anchor, ref) -> Feedback:
    """All n² ordered pairs, weights μ_a(y)·μ_b(y′), exact label probabilities.

    ``logp_a``/``logp_b``: full log-distributions the two sides are drawn from; ``anchor``/``ref``:
    full log-distributions of the anchor and the reference."""
    n = logp_a.shape[-1]
    y, y2 = jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij")
    y, y2 = y.ravel(), y2.ravel()
    weight = jnp.exp(logp_a[y] + logp_b[y2])
    return Feedback(y, y2, oracle.prob(y, y2), weight, anchor[y], anchor[y2], ref[y], ref[y2])


def sampled_pairs(key, oracle, y, y2, anchor_fn, ref_fn) -> Feedback:
    """Feedback on given pairs (drawn by the caller from its sampling policies), Bernoulli labels.

    ``anchor_fn``/``ref_fn`` map responses to log π_t / log π_ref."""
    n_pairs = y.shape[0]
    label = oracle.sample(key, y, y2)
    weight = jnp.full((n_pairs,), 1.0 / n_pairs, dtype=label.dtype)
    return Feedback(y, y2, label, weight, anchor_fn(y), anchor_fn(y2), ref_fn(y), ref_fn(y2))


# ---------------------------------------------------------------------------------- Bradley–Terry
NEWTON_STEPS = 30  # Newton iterations of the Bradley–Terry fit (warm-started by callers that can)
STEP_LENGTHS = 0.5 ** np.arange(12.0)  # line search: the best of these multiples of each Newton step


def bradley_terry_fit(P, weights, reward0, ridge):
    """argmin_r Σ_ij w_ij·[−P_ij·log σ(r_i − r_j)] + ridge/2·‖r‖² by Newton with a line search.

    ``weights`` (n, n) are the pair weights and ``P`` the (empirical or exact) probability that i
    beats j. The gradient is ``Σ_j w_ij (σ(r_i − r_j) − P_ij) + ridge·r`` and the Hessian a weighted
    graph Laplacian plus ``ridge·I`` (for symmetric w and P + Pᵀ = 1), so each Newton step is one
    n×n solve and always a descent direction. Each step takes the largest of the step lengths 1,
    1/2, …, 1/2¹¹ that passes Armijo's test (with a rounding-level slack, so that near the optimum
    full Newton steps pass and convergence stays quadratic); undamped Newton can fall into a
    2-cycle on this loss from a far warm start. Returns the centred reward (mean zero).
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


def pair_statistics(y, y2, label, weight, n: int):
    """Aggregate comparisons into symmetric pair weights W (each comparison counted in both
    orders) and win fractions P̂ (P̂ + P̂ᵀ = 1; ½ where a pair was never compared): the sufficient
    statistics of the logistic likelihood, Σ_k loss_k = Σ_ij W_ij·P̂_ij·(−log σ(r_i − r_j))."""
    W = jnp.zeros((n, n), weight.dtype).at[y, y2].add(weight).at[y2, y].add(weight)
    wins = jnp.zeros((n, n), weight.dtype).at[y, y2].add(weight * label).at[y2, y].add(weight * (1.0 - label))
    P_hat = jnp.where(W > 0, wins / jnp.where(W > 0, W, 1.0), 0.5)
    return W, P_hat


def fit_bradley_terry(y, y2, label, n: int, *, weight=None, ridge: float = 1e-8, reward0=None):
    """The Bradley–Terry reward r̂ (mean zero) maximizing the weighted logistic likelihood
    Σ_k w_k·[l_k·log σ(r_{y_k} − r_{y′_k}) + (1 − l_k)·log σ(r_{y′_k} − r_{y_k})] − ridge/2·‖r‖².

    Labels may be 0/1 draws or probabilities; ``weight`` defaults to one per comparison. This is
    the reward model of iterative DPO and of each group in the multi-group (MaxMin) setting; it
    aggregates the comparisons into pair counts and runs :func:`bradley_terry_fit`."""
    y, y2 = jnp.asarray(y), jnp.asarray(y2)
    label = jnp.asarray(label, dtype=jnp.result_type(float))
    weight = jnp.ones_like(label) if weight is None else jnp.asarray(weight, label.dtype)
    W, P_hat = pair_statistics(y, y2, label, weight, n)
    r0 = jnp.zeros(n, label.dtype) if reward0 is None else jnp.asarray(reward0, label.dtype)
    return bradley_terry_fit(P_hat, W, r0, ridge)
