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
* :func:`sample_user_comparisons` — comparisons by identified users with hidden groups
  (:class:`Comparisons`); :func:`em_mixture` — hard or soft EM over a mixture of Bradley–Terry
  models from such data (:class:`EMResult`); :func:`cluster_accuracy` — group recovery.

A :class:`Feedback` batch is the one pytree every sampled loss consumes (DESIGN §4). Exact mode
(:func:`exact_pairs`) enumerates all n² ordered pairs with weights μ_a(y)·μ_b(y′) and exact label
probabilities; sampled mode (:func:`sampled_pairs`) draws N pairs y ~ μ_a, y′ ~ μ_b with weight
1/N and Bernoulli labels. Every loss is linear in the weights and labels, so the expected sampled
loss gradient is the exact one (tests/test_sampled.py checks it statistically).

*Group* feedback (EXO, whose loss compares K candidates at once) has fields shaped (G, Q): G groups,
each the Q = K(K+1)/2 unordered pairs i ≤ j of its K candidates in ``numpy.triu_indices(K)``
order (:func:`group_layout`). :func:`sampled_groups` labels the K(K−1)/2 pairs i < j of candidates
drawn by the caller (a round robin; the K pairs (i, i) carry weight 0 and are there so that every
candidate's own log-probabilities sit at a fixed index); :func:`exact_groups` is the population as
one group of all n responses, each unordered pair weighted by its probability under μ⊗μ.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gamelab import lazy
from gamelab.lazy import jax, jnp, lax


# ---------------------------------------------------------------------------------- oracles
def bernoulli(key, p):
    """A 0/1 label with probability ``p`` of 1, in ``p``'s dtype (what every oracle's ``sample`` draws)."""
    return jax.random.bernoulli(key, p).astype(p.dtype)


class MatrixOracle(NamedTuple):
    """A general preference matrix: P(y ≻ y′) = P[y, y′]."""

    P: jax.Array

    def prob(self, y, y2):
        return self.P[y, y2]

    def matrix(self):
        return self.P

    def sample(self, key, y, y2):
        return bernoulli(key, self.prob(y, y2))


class BradleyTerryOracle(NamedTuple):
    """P(y ≻ y′) = σ(s_y − s_{y′}) (a transitive preference from scalar scores)."""

    scores: jax.Array

    def prob(self, y, y2):
        return jax.nn.sigmoid(self.scores[y] - self.scores[y2])

    def matrix(self):
        return jax.nn.sigmoid(self.scores[:, None] - self.scores[None, :])

    def sample(self, key, y, y2):
        return bernoulli(key, self.prob(y, y2))


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
        return bernoulli(key, self.prob(y, y2))


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
        return bernoulli(k_label, self.group_prob(group, y, y2)), group

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
    ``x``: the prompt of each pair (None: a game with one prompt); the losses never read it, the
    policy's log-probabilities are taken given it.
    """

    y: jax.Array
    y2: jax.Array
    label: jax.Array
    weight: jax.Array
    anchor: jax.Array
    anchor2: jax.Array
    ref: jax.Array
    ref2: jax.Array
    x: jax.Array | None = None


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


def group_layout(K: int):
    """(I, J, diagonal) of group feedback over K candidates: pair q compares candidates I[q] ≤ J[q]
    (``numpy.triu_indices(K)`` order) and pair ``diagonal[k]`` is (k, k). Static (numpy)."""
    I, J = np.triu_indices(K)
    return I, J, np.flatnonzero(I == J)


def group_pairs_layout(Q: int):
    """:func:`group_layout` of group feedback with Q = K(K+1)/2 pairs per group (K from Q)."""
    return group_layout(int(round((np.sqrt(8 * Q + 1) - 1) / 2)))


def sampled_groups(key, oracle, y, anchor_fn, ref_fn) -> Feedback:
    """Group feedback on candidates ``y`` (G, K) drawn by the caller: every pair i < j of a group
    gets a Bernoulli label and weight 1/(G·K(K−1)/2); the pairs (i, i) weight 0 and label ½.
    ``anchor_fn``/``ref_fn`` map the (G, K) candidates to log π_t / log π_ref (once per candidate)."""
    G, K = y.shape
    I, J, _ = group_layout(K)
    off = jnp.asarray(I != J)
    label = jnp.where(off, oracle.sample(key, y[:, I], y[:, J]), 0.5)
    weight = jnp.broadcast_to(jnp.where(off, 2.0 / (G * K * (K - 1)), 0.0).astype(label.dtype), label.shape)
    anchor, ref = anchor_fn(y), ref_fn(y)
    return Feedback(y[:, I], y[:, J], label, weight, anchor[:, I], anchor[:, J], ref[:, I], ref[:, J])


def exact_groups(oracle, logp, anchor, ref) -> Feedback:
    """The population as one group (fields (1, n(n+1)/2)): every unordered pair {y, y′} of the n
    responses with its probability under μ⊗μ (2·μ(y)·μ(y′) for y < y′, μ(y)² for y = y′, so a
    response's pairs weigh 2·μ(y) in all) and exact label probabilities."""
    I, J, _ = group_layout(logp.shape[-1])
    p = jnp.exp(logp)
    weight = jnp.where(jnp.asarray(I == J), 1.0, 2.0) * p[I] * p[J]
    fb = Feedback(jnp.asarray(I), jnp.asarray(J), oracle.prob(I, J), weight, anchor[I], anchor[J], ref[I], ref[J])
    return jax.tree.map(lambda z: z[None], fb)


# ---------------------------------------------------------------------------------- Bradley–Terry
NEWTON_STEPS = 30  # Newton iterations of the Bradley–Terry fit (warm-started by callers that can)
STEP_LENGTHS = 0.5 ** np.arange(12.0)  # line search: the best of these multiples of each Newton step


@lazy.jit  # compiled once per shape: host callers (the pooled baseline, EM) would otherwise retrace it
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


# ---------------------------------------------------------------------------------- mixture EM
class Comparisons(NamedTuple):
    """Flat comparisons from identified users: user ``user[k]`` compared ``y[k]`` with ``y2[k]``
    and ``label[k]`` is 1 when it preferred ``y[k]`` (or a probability)."""

    user: jax.Array
    y: jax.Array
    y2: jax.Array
    label: jax.Array


def sample_user_comparisons(key, P_groups, user_groups, comparisons: int, sampling=None) -> Comparisons:
    """Every user makes ``comparisons`` comparisons; user u belongs to the (hidden) group
    ``user_groups[u]`` and labels Bernoulli(``P_groups[g, y, y′]``).

    Pairs are i.i.d. from ``sampling``: ``None`` is uniform over the n(n − 1) ordered pairs with
    y ≠ y′ (a self-comparison is a fair coin under every model and carries no information); an
    (n,) distribution π draws y, y′ ~ π ⊗ π independently (the on-policy pairs of DESIGN §3); an
    (n, n) array is a distribution over ordered pairs. Returns :class:`Comparisons` with arrays
    of length users·comparisons, user-major (user k's rows are k·comparisons, …). A pure function
    of ``key``; jit-able with ``comparisons`` static."""
    P_groups = jnp.asarray(P_groups)
    user_groups = jnp.asarray(user_groups)
    n = P_groups.shape[-1]
    users = user_groups.shape[0]
    if sampling is None:
        Q = 1.0 - jnp.eye(n, dtype=P_groups.dtype)
    else:
        sampling = jnp.asarray(sampling, P_groups.dtype)
        Q = jnp.outer(sampling, sampling) if sampling.ndim == 1 else sampling
    k_pair, k_label = jax.random.split(key)
    flat = jax.random.categorical(k_pair, jnp.log(Q).ravel(), shape=(users * comparisons,))
    y, y2 = flat // n, flat % n
    user = jnp.repeat(jnp.arange(users), comparisons)
    label = bernoulli(k_label, P_groups[user_groups[user], y, y2])
    return Comparisons(user, y, y2, label)


class EMResult(NamedTuple):
    """The result of :func:`em_mixture` (G groups, U users, T iterations).

    ``rewards`` (G, n) mean-zero Bradley–Terry rewards; ``weights`` (G,) mixture weights;
    ``responsibilities`` (U, G) the memberships of the last E-step (one-hot for hard EM);
    ``assignment`` (U,) their argmax; ``log_likelihood`` (T + 1,) the observed-data log-likelihood
    Σ_u log Σ_g w_g·p(user u's comparisons | r_g) after the initial M-step and after each
    iteration; ``objective`` (T + 1,) the quantity the variant never decreases (see
    :func:`em_mixture`); ``assignments`` (T + 1, U) the assignment before each M-step (row 0 is
    the random start), so recovery accuracy can be traced per iteration; ``iterations`` the
    iteration at which the final assignment was first reached (T if it still changed at the end).
    """

    rewards: jax.Array
    weights: jax.Array
    responsibilities: jax.Array
    assignment: jax.Array
    log_likelihood: jax.Array
    objective: jax.Array
    assignments: jax.Array
    iterations: jax.Array


def _user_log_likelihood(data, rewards, users):
    """(U, G): Σ over user u's comparisons of log p(label | r_g) (Bradley–Terry)."""
    d = rewards[:, data.y] - rewards[:, data.y2]  # (G, N)
    ll = data.label * jax.nn.log_sigmoid(d) + (1.0 - data.label) * jax.nn.log_sigmoid(-d)
    return jax.ops.segment_sum(ll.T, data.user, num_segments=users)


def _log_weights(weights):
    return jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)


def _m_step(data, n, resp, rewards, ridge):
    """Refit each group's reward on the comparisons weighted by their user's membership
    (warm-started at the previous reward); a group with no membership keeps its previous reward."""
    w = resp[data.user]  # (N, G)
    fit = jax.vmap(lambda wg, r0: fit_bradley_terry(data.y, data.y2, data.label, n, weight=wg, ridge=ridge, reward0=r0),
                   in_axes=(1, 0))(w, rewards)
    empty = jnp.sum(w, axis=0) <= 0
    rewards = jnp.where(empty[:, None], rewards, fit)
    return rewards, jnp.sum(resp, axis=0) / resp.shape[0]


def _em_run_impl(data, resp0, ridge, *, n, users, hard, iterations):
    groups = resp0.shape[1]
    penalty = lambda r: 0.5 * ridge * jnp.sum(r * r)  # the ridge is a Gaussian prior on each reward

    def evaluate(rewards, weights, resp):
        joint = _log_weights(weights)[None, :] + _user_log_likelihood(data, rewards, users)  # (U, G)
        observed = jnp.sum(jax.nn.logsumexp(joint, axis=1))
        # hard EM: the classification likelihood at the assignment the M-step just used
        classified = jnp.sum(jnp.where(resp > 0, resp * joint, 0.0))
        objective = (classified if hard else observed) - penalty(rewards)
        return joint, observed, objective

    def e_step(joint):
        if hard:
            return jax.nn.one_hot(jnp.argmax(joint, axis=1), groups, dtype=joint.dtype)
        return jax.nn.softmax(joint, axis=1)

    def step(carry, t):
        rewards, weights, resp, joint = carry
        resp = jnp.where(t == 0, resp, e_step(joint))  # iteration 0 is the M-step from the start
        rewards, weights = _m_step(data, n, resp, rewards, ridge)
        joint, ll, obj = evaluate(rewards, weights, resp)
        return (rewards, weights, resp, joint), (ll, obj, jnp.argmax(resp, axis=1))

    carry = (jnp.zeros((groups, n), resp0.dtype), jnp.zeros(groups, resp0.dtype), resp0,
             jnp.zeros((users, groups), resp0.dtype))
    (rewards, weights, resp, _), (ll, obj, assignments) = lax.scan(step, carry, jnp.arange(iterations + 1))
    changed = jnp.any(assignments[1:] != assignments[:-1], axis=1)  # (T,): iteration t changed it
    last = jnp.max(jnp.where(changed, jnp.arange(1, iterations + 1), 0), initial=0)
    return EMResult(rewards, weights, resp, assignments[-1], ll, obj, assignments, last)


_em_run = lazy.jit(_em_run_impl, static_argnames=("n", "users", "hard", "iterations"))


def em_mixture(data, n: int, groups: int, *, users=None, hard: bool = True, iterations: int = 10,
               key=None, ridge: float = 1e-8, init=None) -> EMResult:
    """EM over a mixture of ``groups`` Bradley–Terry models from comparisons whose group is hidden
    but whose user is known (all of a user's comparisons come from one group; MaxMin-RLHF,
    Chakraborty et al. 2024).

    ``data``: :class:`Comparisons` (user ids in [0, users), responses in [0, n), labels in [0, 1]);
    ``users`` defaults to max(user) + 1.

    * Start: ``init`` — an assignment (U,) of users to groups or responsibilities (U, G) — or, from
      ``key``, a random balanced hard assignment (a random permutation of 0, 1, …, G−1, 0, 1, …,
      so no group starts empty) for hard EM, or Dirichlet(1, …, 1) responsibilities for soft EM.
    * M-step: each group's reward is :func:`fit_bradley_terry` on all comparisons weighted by the
      membership of their user (warm-started at its previous reward), and w_g = mean membership.
      A group with no members keeps its previous reward and gets weight 0 (it is then never
      chosen again by hard EM: the fit goes on with fewer groups).
    * E-step: the joint log-score of user u in group g is log w_g + Σ_k log p(label_k | r_g) over
      u's comparisons; hard EM assigns u to its argmax (ties: the lowest g), soft EM takes the
      posterior softmax.

    Monotone quantities (``EMResult.objective``, non-decreasing up to rounding): soft EM is EM for
    the MAP estimate, so it never decreases the observed-data log-likelihood minus the ridge
    penalty ridge/2·Σ_g‖r_g‖². Hard EM is classification EM (CEM): the E-step maximizes over
    assignments and the M-step over rewards and weights the *classification* log-likelihood
    Σ_u [log w_{z_u} + log p(u's comparisons | r_{z_u})] − penalty, which is what it never
    decreases; its observed-data log-likelihood (``log_likelihood``) usually rises but need not.
    Iterations are a ``lax.scan`` of a fixed length (no early stop); ``EMResult.iterations``
    says when the assignment stopped changing.
    """
    data = Comparisons(*(np.asarray(a) for a in data))
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an integer ≥ 1, got {groups!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n (the number of responses) must be an integer ≥ 2, got {n!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be an integer ≥ 1, got {iterations!r}")
    if not (np.isfinite(ridge) and ridge > 0):
        raise ValueError(f"ridge must be positive (it keeps each group's fit well posed), got {ridge!r}")
    lengths = {name: a.shape for name, a in zip(Comparisons._fields, data)}
    if any(len(s) != 1 for s in lengths.values()) or len(set(lengths.values())) != 1:
        raise ValueError(f"user, y, y2 and label must be 1-D arrays of one length, got shapes {lengths}")
    if lengths["user"][0] == 0:
        raise ValueError("no comparisons")
    for name in ("user", "y", "y2"):
        a = getattr(data, name)
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must hold integer ids, got dtype {a.dtype}")
    if data.user.min() < 0:
        raise ValueError(f"user ids must be ≥ 0, got {data.user.min()}")
    if users is None:
        users = int(data.user.max()) + 1
    elif isinstance(users, bool) or not isinstance(users, (int, np.integer)) or users < 1:
        raise ValueError(f"users must be an integer ≥ 1, got {users!r}")
    if data.user.max() >= users:
        raise ValueError(f"user ids must be < users = {users}, got {data.user.max()}")
    for name in ("y", "y2"):
        a = getattr(data, name)
        if a.min() < 0 or a.max() >= n:
            raise ValueError(f"responses {name} must lie in [0, n) = [0, {n}), got range [{a.min()}, {a.max()}]")
    label = data.label.astype(np.float64)
    if not np.all(np.isfinite(label)) or label.min() < 0 or label.max() > 1:
        raise ValueError(f"labels must lie in [0, 1], got range [{label.min()}, {label.max()}]")

    if init is not None:
        init = np.asarray(init)
        if init.shape == (users,) and np.issubdtype(init.dtype, np.integer):
            if init.min() < 0 or init.max() >= groups:
                raise ValueError(f"an initial assignment must lie in [0, groups) = [0, {groups})")
            resp0 = np.eye(groups)[init]
        elif init.shape == (users, groups):
            resp0 = init.astype(np.float64)
            if not np.all(np.isfinite(resp0)) or resp0.min() < 0 or np.any(np.abs(resp0.sum(1) - 1) > 1e-9):
                raise ValueError("initial responsibilities must be non-negative rows summing to 1")
        else:
            raise ValueError(f"init must be an integer assignment of shape ({users},) or responsibilities of shape "
                             f"({users}, {groups}), got {init.dtype} {init.shape}")
        resp0 = jnp.asarray(resp0)
    elif key is None:
        raise ValueError("a random start needs a PRNG key (or pass init)")
    elif hard:
        resp0 = jax.nn.one_hot(jax.random.permutation(key, jnp.arange(users) % groups), groups, dtype=jnp.float64)
    else:
        e = jax.random.exponential(key, (users, groups), jnp.float64)  # normalized: Dirichlet(1, …, 1)
        resp0 = e / jnp.sum(e, axis=1, keepdims=True)

    jdata = Comparisons(jnp.asarray(data.user), jnp.asarray(data.y), jnp.asarray(data.y2), jnp.asarray(label))
    return _em_run(jdata, resp0, jnp.asarray(ridge, jnp.float64), n=int(n), users=int(users), hard=bool(hard),
                   iterations=int(iterations))


def cluster_accuracy(assignment, truth, groups: int) -> float:
    """The fraction of users whose cluster matches their true group under the best one-to-one
    relabelling of the clusters (a maximum-weight matching on the G×G confusion matrix — the same
    as the best of the G! permutations)."""
    from scipy.optimize import linear_sum_assignment

    a, t = np.asarray(assignment), np.asarray(truth)
    if a.shape != t.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"assignment and truth must be non-empty 1-D arrays of one length, got {a.shape} and {t.shape}")
    for name, x in (("assignment", a), ("truth", t)):
        if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() >= groups:
            raise ValueError(f"{name} must hold integer group ids in [0, {groups})")
    confusion = np.zeros((groups, groups), np.int64)
    np.add.at(confusion, (a, t), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    return float(confusion[rows, cols].sum() / a.size)
