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

import jax.numpy as jnp
import numpy as np

from gamelab.games import Game, make_game
from gamelab.games.named import cyclic as cyclic_game
from gamelab.games.named import random_matrix
from gamelab.nash import exact_nash

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
        return exact_nash(self.C[prompt]).policy


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


def class_metrics(game: SequenceGame, q, prompt: int = 0) -> dict:
    """Exploitability, duality gap and KL(class Nash ‖ q) of a policy with class marginal q."""
    C = jnp.asarray(game.C[prompt])
    present = jnp.asarray(np.bincount(game.classes, minlength=game.m) > 0)
    e = jnp.maximum(jnp.max(jnp.where(present, C @ q, -jnp.inf)) - 0.5, 0.0)
    star = jnp.asarray(game.class_nash(prompt))
    kl = jnp.sum(jnp.where(star > 0, star * (jnp.log(star) - jnp.log(q)), 0.0))
    return {"exploitability": e, "duality_gap": 2 * e, "kl_to_class_nash": kl}


def sampled_metrics(game: SequenceGame, samples, prompt: int = 0, *, z: float = 1.96, bootstrap: int = 1000,
                    seed: int = 0) -> dict:
    """Estimates of the class-level metrics from sampled responses (when V^L cannot be
    enumerated), each with a percentile-bootstrap confidence interval at level ``z`` (1.96: 95%)."""
    from scipy.stats import norm

    cls = np.asarray(game.classes)[np.asarray(samples).ravel()]
    counts = np.bincount(cls, minlength=game.m)
    N = counts.sum()
    rng = np.random.default_rng(seed)
    q_hat = counts / N
    boots = rng.multinomial(N, q_hat, size=bootstrap) / N
    level = 2 * norm.cdf(z) - 1
    out = {}
    for name in ("exploitability", "duality_gap"):
        point = float(class_metrics(game, jnp.asarray(q_hat), prompt)[name])
        values = np.array([float(class_metrics(game, jnp.asarray(b), prompt)[name]) for b in boots])
        lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
        out[name] = (point, float(lo), float(hi))
    return out
