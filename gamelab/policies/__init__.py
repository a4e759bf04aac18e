"""Policies behind one interface — the seam between algorithms and models (DESIGN §4).

A policy is an object of pure functions over a params pytree; algorithms never know which one
they act on:

* ``init(logp)`` — parameters representing (or, for a low-capacity family, approximating) the
  log-policy ``logp`` over the n responses (runs traced, inside the jitted driver);
* ``log_probs(params, x=0)`` — the full log-distribution over the responses of prompt x (where the
  response set is enumerable);
* ``logprob(params, y, x=0)`` — log π(y | x) of given responses;
* ``sample(params, key, shape, x=0)`` — responses drawn from π(· | x).

Implementations here: :class:`TabularPolicy` (free logits per prompt; every policy is
representable), :class:`LinearPolicy` (logits = features·θ with fewer parameters than responses)
and :class:`GaussianGridPolicy` (a discretized Gaussian (μ, σ) over a grid of responses). The
transformer backend implements the same four functions.
"""
from gamelab.policies.tabular import GaussianGridPolicy, LinearPolicy, Policy, TabularPolicy, make_policy

__all__ = ["GaussianGridPolicy", "LinearPolicy", "Policy", "TabularPolicy", "make_policy"]
