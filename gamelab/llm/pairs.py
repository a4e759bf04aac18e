"""Feedback for sequence games with several prompts, or with responses too many to enumerate.

The parametric solver (:func:`gamelab.algorithms.parametric.make_parametric`) takes its pairs
from a source; :class:`PromptPairs` is the one for :mod:`gamelab.llm`. Each step draws ``batch``
prompts x from the game's prompt weights, a pair (y, y′) per prompt from the sampling policies
given x, and a Bernoulli label from the class-level oracle :class:`ClassOracle`
(P(y ≻ y′ | x) = C[x, c(y), c(y′)], the class of a response read from the game's (V^L,) class
array — never the lifted (V^L, V^L) matrix), with label noise ``flip``.

* ``enumerate=True``: the state keeps each prompt's full log-distribution (prompts, V^L); pairs
  are drawn from it (either sampler, the geometric mixture included) or, with
  ``feedback='exact'``, all prompts × V^L² pairs are weighted exactly.
* A loss over groups of K candidates (EXO, ``form.group``): batch // K prompts, K candidates each,
  every pair within a group labelled (:func:`gamelab.feedback.sampled_groups`); exact: one group
  of all V^L responses per prompt.
* ``enumerate=False``: nothing of size V^L is built. y, y′ come from the policy's own sampler
  (the transformer: autoregressively) and log π_t, log π_ref of them from ``policy.logprob``.
  Only the current policy can be sampled so: an algorithm whose pairs come from the geometric
  mixture π_t^{1−w}·π_ref^{w} with w > 0 needs the full distributions (the host checks,
  :func:`check_streamable`).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gamelab.algorithms.parametric import sampling_sides
from gamelab.feedback import NoisyOracle, bernoulli, exact_groups, exact_pairs, sampled_groups, sampled_pairs


class ClassOracle(NamedTuple):
    """P(y ≻ y′ | x) = C[x, c(y), c(y′)]: a pytree (the parametric step's ``game``).

    ``x`` is the prompt of each pair (bound with :meth:`given`; None: prompt 0)."""

    classes: jax.Array  # (V^L,) int32 class of every response
    C: jax.Array  # (prompts, m, m) class-level preference per prompt (label noise of the game included)
    weights: jax.Array  # (prompts,) the distribution prompts are drawn from
    x: jax.Array | None = None

    def given(self, x):
        return self._replace(x=x)

    def prob(self, y, y2):
        return self.C[0 if self.x is None else self.x, self.classes[y], self.classes[y2]]

    def sample(self, key, y, y2):
        return bernoulli(key, self.prob(y, y2))


class PromptPairs(NamedTuple):
    """The pair source of :mod:`gamelab.llm` (see the module doc); hashable, static."""

    feedback: str
    batch: int
    prompts: int
    enumerate: bool
    matrix = False  # the game is a ClassOracle: COMAL's inner solve runs exactly its inner steps

    def view(self, policy, params):
        """(prompts, V^L) log-distributions, or (enumerate False) an empty placeholder."""
        if not self.enumerate:
            return jnp.zeros((0,), jnp.result_type(float))
        return jnp.stack([policy.log_probs(params, x) for x in range(self.prompts)])

    def draw(self, policy, form, game, hp, key, cur, anc, rf):
        k_x, k_a, k_b, k_label = jax.random.split(key, 4)
        if self.enumerate:
            a, b = sampling_sides(form, hp, cur[1], rf[1])
            if self.feedback == "exact":
                return self._exact(game, hp, a, b, anc[1], rf[1], form.group is not None)
        if form.group is not None:
            return self._groups(policy, form.group, game, hp, (k_x, k_a, k_label), cur, anc, rf,
                                a if self.enumerate else None)
        x = jax.random.categorical(k_x, jnp.log(game.weights), shape=(self.batch,))
        if self.enumerate:
            y, y2 = jax.random.categorical(k_a, a[x]), jax.random.categorical(k_b, b[x])
            anchor, ref = (lambda r: anc[1][x, r]), (lambda r: rf[1][x, r])
        else:  # the current policy's own sampler; the mixture is checked away on the host (mix = 0)
            y, y2 = policy.sample(cur[0], k_a, (self.batch,), x), policy.sample(cur[0], k_b, (self.batch,), x)
            anchor, ref = (lambda r: policy.logprob(anc[0], r, x)), (lambda r: policy.logprob(rf[0], r, x))
        fb = sampled_pairs(k_label, NoisyOracle(game.given(x), hp.flip), y, y2, anchor, ref)
        return fb._replace(x=x)

    def _groups(self, policy, K, game, hp, keys, cur, anc, rf, a):
        """Group feedback: batch // K prompts, K candidates per prompt from the sampling policy
        (``a``: the full log-distributions of sampler[0]; None: the current policy's own sampler),
        every pair within a group labelled."""
        k_x, k_y, k_label = keys
        G = self.batch // K
        x = jax.random.categorical(k_x, jnp.log(game.weights), shape=(G,))
        xk = jnp.repeat(x, K)  # one prompt per candidate, flat (what every policy's sampler takes)
        if self.enumerate:
            y = jax.random.categorical(k_y, a[xk]).reshape(G, K)
            anchor, ref = (lambda r: anc[1][x[:, None], r]), (lambda r: rf[1][x[:, None], r])
        else:
            y = policy.sample(cur[0], k_y, (G * K,), xk).reshape(G, K)
            anchor = lambda r: policy.logprob(anc[0], r.reshape(-1), xk).reshape(G, K)  # noqa: E731
            ref = lambda r: policy.logprob(rf[0], r.reshape(-1), xk).reshape(G, K)  # noqa: E731
        fb = sampled_groups(k_label, NoisyOracle(game.given(x[:, None]), hp.flip), y, anchor, ref)
        return fb._replace(x=jnp.broadcast_to(x[:, None], fb.y.shape))

    def _exact(self, game, hp, a, b, anc, rf, group=False):
        """Every (prompt, y, y′) with weight w_x·μ_a(y | x)·μ_b(y′ | x) and its exact probability
        (``group``: one group of all responses per prompt, weighted w_x, fields (prompts, Q))."""
        xs = jnp.arange(self.prompts)
        if group:
            fb = jax.vmap(lambda x, *d: exact_groups(NoisyOracle(game.given(x), hp.flip), *d))(xs, a, anc, rf)
        else:
            fb = jax.vmap(lambda x, *d: exact_pairs(NoisyOracle(game.given(x), hp.flip), *d))(xs, a, b, anc, rf)
        per_prompt = xs.reshape((-1,) + (1,) * (fb.y.ndim - 1))
        fb = fb._replace(weight=fb.weight * game.weights[per_prompt], x=jnp.broadcast_to(per_prompt, fb.y.shape))
        return jax.tree.map(lambda z: z.reshape((-1,) + z.shape[2:]), fb)  # groups (prompts, Q); pairs flat


def check_streamable(algo, hp) -> None:
    """Raise if ``algo`` (a parametric Algorithm) needs full distributions to draw its pairs:
    a geometric-mixture sampler with a weight other than 0 (Nash-MD, IPO-MD with mix > 0)."""
    forms = [algo.sampled] + ([algo.sampled.prox] if algo.sampled.prox is not None else [])
    for form in forms:
        if form.loss is None or "mixture" not in form.sampler or form.mix is None:
            continue
        w = np.asarray(form.mix(hp), dtype=np.float64)
        if np.any(w != 0):
            raise ValueError(f"{algo.name} draws its pairs from the geometric mixture π_t^(1-w)·π_ref^w (w = "
                             f"{float(np.max(w)):g}), which needs the full distribution over all responses: not "
                             f"with sampled metrics (use metrics='exact' at V^L <= the enumeration limit"
                             + (", or mix=0)" if "mix" in hp._fields else ")"))
