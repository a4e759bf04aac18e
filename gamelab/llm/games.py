"""Sequence games: a known general preference over token sequences, lifted from classes.

Every response y ∈ {0..V^L−1} (a token sequence, see gamelab.llm.model) belongs to a class c(y) ∈
{0..m−1} by a rule — ``sum`` (sum of tokens mod m), ``count`` (number of occurrences of token 0,
clipped to m−1), ``hash`` (a fixed random bucket) — and the preference between sequences is the
class-level one: P[y, y′] = C[c(y), c(y′)], optionally with label noise (C ← ½ + (1−2f)(C − ½)).
Class matrices: ``cyclic`` (class i beats the next ⌊(m−1)/2⌋ with ½ + margin), ``random`` (upper
triangle uniform) and ``mixed`` (transitive Bradley–Terry part plus a cyclic part). Several
prompts may each get their own class matrix.

A policy's class marginal q(π) = Σ_{y: c(y)=k} π(y) determines its win rates: (Pπ)_y = (C q)_{c(y)},
so the Nash policies are exactly those whose class marginal is a class-level Nash, and
exploitability, duality gap and KL to the class-level Nash are computed from q — exactly from an
enumerated distribution, or estimated with confidence intervals from samples when V^L is too
large to enumerate (:func:`sampled_metrics`).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

from gamelab import defaults
from gamelab.games import Game, make_game
from gamelab.games.named import cyclic as cyclic_game
from gamelab.games.named import random_matrix
from gamelab.prepare import nash_policy

RULES = ("sum", "count", "hash")
MATRICES = ("cyclic", "random", "mixed")


class SequenceGame(NamedTuple):
    vocab: int
    length: int
    classes: np.ndarray  # (V^L,) class of every sequence
    C: np.ndarray  # (prompts, m, m) class-level preference per prompt (after label noise)
    spec: str

    @property
    def n(self) -> int:
        return self.vocab ** self.length

    @property
    def m(self) -> int:
        return self.C.shape[-1]

    def matrix(self, prompt: int = 0) -> np.ndarray:
        """The lifted (V^L, V^L) preference matrix of one prompt (enumerable sizes only)."""
        return self.C[prompt][np.ix_(self.classes, self.classes)]

    def game(self, prompt: int = 0) -> Game:
        return make_game(self.matrix(prompt))

    def class_nash(self, prompt: int = 0) -> np.ndarray:
        return nash_policy(self.C[prompt])  # solved once, kept in the cache folder


def class_of(vocab: int, length: int, rule: str, m: int, seed: int = 0) -> np.ndarray:
    index = np.arange(vocab**length)
    tokens = (index[:, None] // vocab ** np.arange(length - 1, -1, -1)) % vocab
    if rule == "sum":
        return tokens.sum(1) % m
    if rule == "count":
        return np.minimum((tokens == 0).sum(1), m - 1)
    if rule == "hash":
        return np.random.default_rng(seed).integers(0, m, size=index.size)
    raise ValueError(f"class rule must be one of {', '.join(RULES)}, got {rule!r}")


def class_matrix(kind: str, m: int, *, margin: float = 0.4, seed: int = 0) -> np.ndarray:
    if kind == "cyclic":
        return np.asarray(cyclic_game(m, margin).P, dtype=np.float64)
    if kind == "random":
        return random_matrix(np.random.default_rng(seed), m)
    if kind == "mixed":  # Bradley–Terry scores plus a cyclic part, clipped into [0, 1]
        scores = np.linspace(1.0, 0.0, m)
        bt = 1 / (1 + np.exp(-(scores[:, None] - scores[None, :])))
        cyc = np.asarray(cyclic_game(m, margin).P, dtype=np.float64) - 0.5
        return np.clip(bt + cyc, 0.0, 1.0)
    raise ValueError(f"class matrix must be one of {', '.join(MATRICES)}, got {kind!r}")


def sequence_game(vocab: int = 4, length: int = 4, *, classes: int = 3, rule: str = "sum", matrix: str = "cyclic",
                  margin: float = 0.4, prompts: int = 1, flip: float = 0.0, seed: int = 0) -> SequenceGame:
    """A sequence game; with several prompts, prompt p's class matrix uses seed + p (random /
    hash), or for ``cyclic`` a class relabelling by p (so the prompts' Nash policies differ)."""
    if vocab < 2 or length < 1 or classes < 2 or prompts < 1:
        raise ValueError(f"need vocab >= 2, length >= 1, classes >= 2, prompts >= 1")
    if not 0 <= flip < 0.5:
        raise ValueError(f"label flip rate must be in [0, 0.5), got {flip}")
    if vocab**length > 2**24:
        raise ValueError(f"V^L = {vocab**length} responses: too many to index")
    cls = class_of(vocab, length, rule, classes, seed)
    mats = []
    for p in range(prompts):
        C = class_matrix(matrix, classes, margin=margin, seed=seed + p)
        if matrix != "random" and p:
            perm = np.random.default_rng(seed + p).permutation(classes)
            C = C[np.ix_(perm, perm)]
        C = 0.5 + (1 - 2 * flip) * (C - 0.5)
        mats.append(np.asarray(make_game(C).P, dtype=np.float64))
    spec = (f"seq:V={vocab},L={length},classes={classes},rule={rule},matrix={matrix},margin={margin},"
            f"prompts={prompts},flip={flip},seed={seed}")
    return SequenceGame(vocab, length, cls, np.stack(mats), spec)


def parse_sequence_game(text: str, vocab: int, length: int) -> SequenceGame:
    """'cyclic', 'random:classes=4,seed=1', 'mixed:rule=count,prompts=2,flip=0.1', …"""
    kind, _, opts = text.partition(":")
    kwargs: dict = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"sequence game option {item!r} is not KEY=VALUE")
        kwargs[key] = value if key == "rule" else (float(value) if key in ("margin", "flip") else int(value))
    unknown = set(kwargs) - {"classes", "rule", "margin", "prompts", "flip", "seed"}
    if unknown:
        raise ValueError(f"unknown sequence game option(s) {', '.join(sorted(unknown))}")
    return sequence_game(vocab, length, matrix=kind, **kwargs)


# ------------------------------------------------------------------ metrics from class marginals
def class_marginal(game: SequenceGame, logp) -> jnp.ndarray:
    """q_k = Σ_{y: c(y)=k} π(y) from a full log-distribution over the V^L responses."""
    return jnp.zeros(game.m, logp.dtype).at[jnp.asarray(game.classes)].add(jnp.exp(logp))


def present_classes(game: SequenceGame) -> np.ndarray:
    """(m,) whether some sequence has the class (a best response ranges over these only)."""
    return np.bincount(game.classes, minlength=game.m) > 0


def class_level_metrics(C, star, present, q) -> dict:
    """Exploitability, duality gap and KL(star ‖ q) of a policy with class marginal ``q`` under
    the class matrix ``C`` (jittable; ``star``: the class-level Nash, ``present``: (m,) mask)."""
    e = jnp.maximum(jnp.max(jnp.where(present, C @ q, -jnp.inf)) - 0.5, 0.0)
    kl = jnp.sum(jnp.where(star > 0, star * (jnp.log(jnp.where(star > 0, star, 1.0)) - jnp.log(q)), 0.0))
    return {"exploitability": e, "duality_gap": 2 * e, "kl_to_class_nash": kl}


def class_metrics(game: SequenceGame, q, prompt: int = 0) -> dict:
    """Exploitability, duality gap and KL(class Nash ‖ q) of a policy with class marginal q."""
    return class_level_metrics(jnp.asarray(game.C[prompt]), jnp.asarray(game.class_nash(prompt)),
                               jnp.asarray(present_classes(game)), q)


SAMPLED = ("exploitability", "duality_gap", "kl_to_class_nash")
# estimated too where the responses' log-probabilities are given (:func:`_reference_intervals`)
FROM_LOG_PROBS = ("entropy", "win_rate_vs_ref")
WITH_TAU = ("regularized_gap",)  # ... and τ
FROM_REFERENCE = ("kl_to_ref",)  # ... and the reference's log-probabilities (a reference other than uniform)


def sampled_metric_names(with_tau: bool, with_reference: bool = False) -> tuple[str, ...]:
    """What a sampled recording with log-probabilities holds (:func:`class_intervals`; with the
    reference's log-probabilities of the same responses, also :data:`FROM_REFERENCE`)."""
    return SAMPLED + FROM_LOG_PROBS + (FROM_REFERENCE if with_reference else ()) + (WITH_TAU if with_tau else ())


def class_intervals(counts, C, star, present, key, levels=(defaults.LEVEL,), draws: int = 4000, *, logp=None, ref_q=None,
                    log_n=None, tau=None, ref_logp=None) -> dict:
    """Estimates of the class-level metrics from the class ``counts`` (m,) of K responses sampled
    from a policy, each with simultaneous confidence intervals at each of ``levels`` (jittable,
    no loop: one Gaussian draw of (draws, m)).

    Returns {name: (point, lo (len(levels),), hi (len(levels),))} for :data:`SAMPLED`, and
    ``class_marginal`` (the estimate q̂ = counts / K). Given ``logp`` (K,), the policy's
    log-probabilities of the same K responses, ``ref_q`` (m,), the class marginal of the uniform
    reference over all N responses, and ``log_n`` = log N, also ``entropy``, ``win_rate_vs_ref``
    and, with ``tau``, ``regularized_gap`` (:func:`_reference_intervals`). A reference other than
    uniform (a base model): ``ref_q`` its class marginal and ``ref_logp`` (K,) its log-probabilities
    of the same K responses; then also ``kl_to_ref``, and the regularized gap is toward it.

    The intervals hold wherever the policy is, the Nash included: the metrics are not smooth
    in q (exploitability is a maximum, zero exactly at a Nash, where a percentile bootstrap of
    the plug-in never covers 0). So the intervals are built from *simultaneous* intervals for
    the class win rates v = C·q and for q itself: v_k ∈ v̂_k ± c_v·se(v̂_k) for every k at once,
    with c_v the ``level`` quantile of max_k |Z_k|/se_k under the Gaussian limit Z ~ N(0, Cov v̂)
    (a multiplier bootstrap of the max-t statistic, so the correlation of the v̂_k is used, not
    Bonferroni). Then max_k v_k lies in [max_k lo_k, max_k hi_k], which gives exploitability
    and duality gap (over the classes ``present``); KL(star ‖ q) is decreasing in each q_k, so
    q's simultaneous box gives [Σ star·log(star/hi), Σ star·log(star/lo)] (clipped at 0; +inf
    once some lo_k ≤ 0). Coverage is at least ``level`` asymptotically (near nominal for the
    exploitability at and near a Nash, a little above it far from one). Standard errors are
    floored at 1/K so that a class never seen gets a rule-of-three-like interval, not a point.
    """
    dtype = jnp.result_type(float)
    counts = jnp.asarray(counts, dtype)
    K = jnp.sum(counts)
    q = counts / K
    v = C @ q
    floor = 1.0 / K**2
    se_q = jnp.sqrt(jnp.maximum(q * (1 - q) / K, floor))
    cov_v = (C * q) @ C.T - jnp.outer(v, v)  # Cov of C[k, c(Y)] over one draw Y ~ π
    se_v = jnp.sqrt(jnp.maximum(jnp.diag(cov_v) / K, floor))
    g = jax.random.normal(key, (draws, q.shape[0]), dtype)
    a = jnp.sqrt(q) * g
    z = (a - jnp.sum(a, axis=1, keepdims=True) * q) / jnp.sqrt(K)  # rows ~ N(0, (diag q − q qᵀ)/K)
    t_q = jnp.max(jnp.abs(z) / se_q, axis=1)
    t_v = jnp.max(jnp.where(present, jnp.abs(z @ C.T) / se_v, 0.0), axis=1)
    levels = jnp.asarray(levels, dtype)
    c_q, c_v = jnp.quantile(t_q, levels)[:, None], jnp.quantile(t_v, levels)[:, None]
    point = class_level_metrics(C, star, present, q)
    best = lambda w: jnp.max(jnp.where(present, w, -jnp.inf), axis=-1)  # noqa: E731
    e_lo = jnp.maximum(best(v - c_v * se_v) - 0.5, 0.0)
    e_hi = jnp.clip(best(v + c_v * se_v) - 0.5, 0.0, 0.5)
    support = star > 0
    safe_star = jnp.where(support, star, 1.0)

    def kl_at(bound):
        terms = safe_star * (jnp.log(safe_star) - jnp.log(bound))
        return jnp.sum(jnp.where(support, terms, 0.0), axis=-1)

    kl_lo = jnp.maximum(kl_at(jnp.minimum(q + c_q * se_q, 1.0)), 0.0)
    kl_hi = kl_at(jnp.maximum(q - c_q * se_q, 0.0))
    out = {"exploitability": (point["exploitability"], e_lo, e_hi),
           "duality_gap": (point["duality_gap"], 2 * e_lo, 2 * e_hi),
           "kl_to_class_nash": (point["kl_to_class_nash"], kl_lo, kl_hi),
           "class_marginal": q}
    if logp is not None:
        half = 1 - (1 - levels) / 2  # the regularized gap's two pieces, each at this level
        c_half = jnp.quantile(t_v, half)[:, None]
        out.update(_reference_intervals(q, C, logp, ref_q, log_n, tau, levels, v, c_half * se_v, half, ref_logp,
                                        present))
    return out


def bounded_mean_interval(mean, var, n, z, lower=0.0, upper=1.0):
    """A confidence interval for the mean μ of a variable with values in [``lower``, ``upper``]
    (default [0, 1]) from ``n`` samples with sample ``mean`` and (1/n) sample variance ``var``, at
    the normal quantile ``z`` (jittable, broadcasting). On the variable rescaled to [0, 1], it is a
    score interval, {μ : (mean − μ)² ≤ z²·V(μ)/n}, whose variance at a candidate mean μ is the
    smaller of two upper bounds —

    - μ(1 − μ), the largest variance any [0, 1] variable with mean μ has (alone: the Wilson score
      interval; exactly Wilson's interval when the samples are 0/1), and
    - var + |μ − mean|·b, b = 1 − mean above the mean and b = mean below it: the variance of the
      sample's distribution after moving enough of its mass to the bound on μ's side to put its
      mean at μ (at most var + |μ − mean|·b).

    Each bound gives a closed-form interval, and the score interval of their minimum is the
    intersection of the two. With spread samples it is the normal interval mean ± z·√(var/n) up to
    O(1/n); with every sample equal to c it is not a point but [c − z²(c − lower)/n,
    c + z²(upper − c)/n] — the mass a sample of n can miss (rule-of-three-like); with samples at
    the two bounds only it is Wilson's interval, whose coverage is close to nominal. A variable
    known to be constant (``upper`` = ``lower``) gets the point. Returns (lo, hi) within
    [lower, upper]; lo ≤ mean ≤ hi."""
    span = upper - lower
    scale = jnp.where(span > 0, span, 1.0)
    mean, var = jnp.clip((mean - lower) / scale, 0.0, 1.0), jnp.where(span > 0, var / scale**2, 0.0)
    a = z**2 / n
    centre = (mean + a / 2) / (1 + a)
    half = jnp.sqrt(a * jnp.maximum(mean * (1 - mean), 0.0) + a**2 / 4) / (1 + a)
    up, down = (a * b / 2 + jnp.sqrt((a * b / 2) ** 2 + a * var) for b in (1 - mean, mean))
    lo = jnp.maximum(centre - half, mean - down)
    hi = jnp.minimum(centre + half, mean + up)
    lo, hi = jnp.where(span > 0, jnp.minimum(lo, mean), mean), jnp.where(span > 0, jnp.maximum(hi, mean), mean)
    return lower + scale * jnp.clip(lo, 0.0, 1.0), lower + scale * jnp.clip(hi, 0.0, 1.0)


def _reference_intervals(q, C, logp, ref_q, log_n, tau, levels, v, v_margin, half, ref_logp=None,
                         present=None) -> dict:
    """Entropy, win rate against the uniform reference ρ and regularized gap toward it, estimated
    from K responses y_i ~ π with their log-probabilities ``logp`` and class marginal ``q``.

    - entropy H(π) = E[−log π(Y)]: the sample mean, a normal interval (CLT) at each level.
    - win rate P(π ≻ ρ) = Σ_k q_k (C ρ_q)_k: the sample mean of (C ρ_q)_{c(y_i)} ∈ [0, 1], with
      :func:`bounded_mean_interval` between the least and the greatest (C ρ_q)_k of the classes
      ``present`` (not the normal interval, which has zero width once every response falls in one
      class).
    - regularized gap DG_τ(π) = 2[τ·log Σ_k ρ_q,k·exp(v_k/τ) + τ·(log N − H(π)) − ½] (v = C q, and
      KL(π‖ρ) = log N − H for the uniform ρ over N responses). It is smooth but zero at π*_τ, where
      the plug-in's first-order noise cancels, so an interval from its own standard error would be
      too narrow there. Instead both pieces get intervals at level ``half`` = 1 − (1 − level)/2 —
      the class win rates v their simultaneous box (``v ± v_margin``), H its normal interval — and
      DG_τ, increasing in each v_k and decreasing in H, is bounded by its values at the corners:
      both hold with probability ≥ level, wherever π is. Point and bounds are clipped at 0.
    - a reference ρ other than uniform, with ``ref_logp`` = log ρ(y_i): KL(π‖ρ) = E[log π(Y) − log ρ(Y)],
      the Monte-Carlo mean of the K differences with its normal interval (``kl_to_ref``, clipped
      at 0), takes the place of log N − H(π) in the regularized gap.
    """
    dtype = q.dtype
    K = logp.shape[0]
    logp = logp.astype(dtype)
    z = norm.ppf(0.5 + levels / 2)
    H = -jnp.mean(logp)
    se_H = jnp.std(logp) / jnp.sqrt(K)
    w = C @ ref_q
    win = q @ w
    seen = present if present is not None else jnp.ones(w.shape, bool)  # the values a response's w can take
    win_lo, win_hi = bounded_mean_interval(win, jnp.maximum(q @ w**2 - win**2, 0.0), K, z,
                                           jnp.min(jnp.where(seen, w, jnp.inf)), jnp.max(jnp.where(seen, w, -jnp.inf)))
    out = {"entropy": (H, H - z * se_H, H + z * se_H), "win_rate_vs_ref": (win, win_lo, win_hi)}
    z_h = norm.ppf(0.5 + half / 2)
    if ref_logp is None:  # uniform ρ: KL(π‖ρ) = log N − H(π)
        kl = (log_n - H, log_n - (H + z_h * se_H), log_n - (H - z_h * se_H))
    else:
        d = logp - ref_logp.astype(dtype)
        mean, se = jnp.mean(d), jnp.std(d) / jnp.sqrt(K)
        out["kl_to_ref"] = (jnp.maximum(mean, 0.0), jnp.maximum(mean - z * se, 0.0), jnp.maximum(mean + z * se, 0.0))
        kl = (jnp.maximum(mean, 0.0), jnp.maximum(mean - z_h * se, 0.0), jnp.maximum(mean + z_h * se, 0.0))
    if tau is not None:
        def gap(v_, kl_):
            soft = tau * logsumexp(v_ / tau, axis=-1, b=ref_q)
            return jnp.maximum(2.0 * (soft + tau * kl_ - 0.5), 0.0)

        out["regularized_gap"] = (gap(v, kl[0]), gap(v - v_margin, kl[1]), gap(v + v_margin, kl[2]))
    return out


def sampled_metrics(game: SequenceGame, samples, prompt: int = 0, *, level: float = defaults.LEVEL,
                    seed: int = defaults.SEED) -> dict:
    """The class-level metrics estimated from sampled responses (when V^L cannot be enumerated)
    with confidence intervals at ``level`` (:func:`class_intervals`): {name: (point, lo, hi)}."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    samples = np.asarray(samples).ravel()
    if samples.size == 0 or samples.min() < 0 or samples.max() >= game.n:
        raise ValueError(f"samples must be a non-empty array of responses in [0, {game.n})")
    counts = np.bincount(np.asarray(game.classes)[samples], minlength=game.m)
    out = class_intervals(jnp.asarray(counts), jnp.asarray(game.C[prompt]), jnp.asarray(game.class_nash(prompt)),
                          jnp.asarray(present_classes(game)), jax.random.key(seed), (level,))
    return {k: (float(p), float(lo[0]), float(hi[0])) for k, (p, lo, hi) in out.items() if k in SAMPLED}
