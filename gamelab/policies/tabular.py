"""Enumerable policies: tabular logits, linear-feature logits, a discretized Gaussian."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class Policy:
    """Defaults for enumerable response sets: everything follows from ``log_probs``.

    Subclasses set ``n`` (responses) and define ``init`` and ``log_probs``. Policies compare and
    hash by identity (they are static configuration of a compiled run)."""

    n: int
    # Whether the losses' reference — the policy at ``init``'s parameters — is a distribution of its
    # own (a pretrained model: the metrics then measure win rate and KL against it), rather than
    # the uniform distribution ``init`` reproduces for the tabular and toy transformer policies.
    reference_is_initial: bool = False
    # None: every parameter learns; else params -> a pytree of bools, False where a parameter is
    # frozen (the optimizer keeps no state for it and never moves it).
    trainable = None

    def init(self, logp):
        raise NotImplementedError

    def start_point(self, logp):
        """What a run's first program passes to ``init``: the log-probabilities ``logp`` themselves,
        or — a pretrained policy — its loaded weights, so that they enter the program as an argument
        instead of being compiled into it as constants (half a gigabyte for SmolLM2)."""
        return logp

    def log_probs(self, params, x=0):
        raise NotImplementedError

    def logprob(self, params, y, x=0):
        return self.log_probs(params, x)[y]

    def sample(self, params, key, shape=(), x=0):
        return jax.random.categorical(key, self.log_probs(params, x), shape=shape)

    def param_sharding(self, params, mesh):
        """Each parameter's sharding over ``mesh``: replicated (a policy that shards its weights,
        like the FSDP transformer, says otherwise)."""
        from jax.sharding import NamedSharding, PartitionSpec

        return jax.tree.map(lambda _: NamedSharding(mesh, PartitionSpec()), params)


class TabularPolicy(Policy):
    """Free logits, one row per prompt: params (prompts, n); the full simplex is representable."""

    def __init__(self, n: int, prompts: int = 1):
        if n < 2 or prompts < 1:
            raise ValueError(f"a tabular policy needs n >= 2 responses and >= 1 prompt, got n={n}, prompts={prompts}")
        self.n, self.prompts = int(n), int(prompts)

    def init(self, logp):
        logp = jnp.asarray(logp)
        # a response of probability exactly 0 gets a large finite negative logit (gradients stay finite)
        finite = jnp.where(jnp.isfinite(logp), logp, jnp.finfo(logp.dtype).min / 4)
        return jnp.broadcast_to(finite, (self.prompts, self.n))

    def log_probs(self, params, x=0):
        return jax.nn.log_softmax(params[x])

    def logprob(self, params, y, x=0):
        """log π(y | x); ``x`` a prompt or one prompt per response (normalizes each prompt's row
        once, never a row per response)."""
        return jax.nn.log_softmax(params, axis=-1)[x, y]

    def sample(self, params, key, shape=(), x=0):
        """Responses by inverse CDF: O(prompts·n + count·log n) work and memory (a Gumbel draw
        over all n responses per sample would be count·n). ``x``: a prompt or one per sample."""
        cdf = jnp.cumsum(jax.nn.softmax(params.astype(jnp.result_type(float)), axis=-1), axis=-1)
        x = jnp.broadcast_to(jnp.asarray(x), shape)
        u = jax.random.uniform(key, shape, cdf.dtype) * cdf[x, -1]
        # each row shifted by its prompt: one sorted array, one search
        flat = (cdf + jnp.arange(self.prompts, dtype=cdf.dtype)[:, None]).ravel()
        index = jnp.searchsorted(flat, x + u, side="right") - x * self.n
        return jnp.clip(index, 0, self.n - 1)

    def __repr__(self):
        return f"TabularPolicy(n={self.n}, prompts={self.prompts})"


class LinearPolicy(Policy):
    """Low-capacity logits = F·θ with features F (n, d), d < n typically: only policies whose
    log-probabilities lie in span(F) + constants are representable. ``init`` projects a log-policy
    onto that span by least squares."""

    def __init__(self, features):
        F = np.asarray(features, dtype=np.float64)
        if F.ndim != 2 or F.shape[0] < 2 or not np.all(np.isfinite(F)):
            raise ValueError(f"features must be a finite (n, d) matrix with n >= 2, got shape {F.shape}")
        self.features, self.n, self.dim = F, F.shape[0], F.shape[1]

    def init(self, logp):
        F = jnp.asarray(self.features, logp.dtype)
        finite = jnp.where(jnp.isfinite(logp), logp, jnp.log(jnp.finfo(logp.dtype).tiny))
        centred, Fc = finite - jnp.mean(finite), F - jnp.mean(F, axis=0)
        return jnp.linalg.lstsq(Fc, centred)[0]

    def log_probs(self, params, x=0):
        return jax.nn.log_softmax(jnp.asarray(self.features, params.dtype) @ params)

    def __repr__(self):
        return f"LinearPolicy(n={self.n}, d={self.dim})"


class GaussianGridPolicy(Policy):
    """A discretized Gaussian over a grid of responses: π(y) ∝ exp(−(x_y − μ)²/(2σ²)), params
    (μ, log σ). ``init`` matches the mean and standard deviation of the given policy."""

    def __init__(self, grid):
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 1 or g.size < 2 or not np.all(np.diff(g) > 0):
            raise ValueError("the grid must be an increasing vector of at least 2 points")
        self.grid, self.n = g, g.size

    def init(self, logp):
        x, p = jnp.asarray(self.grid, logp.dtype), jnp.exp(logp)
        mu = p @ x
        return jnp.stack([mu, 0.5 * jnp.log(p @ (x - mu) ** 2)])

    def log_probs(self, params, x=0):
        mu, log_sigma = params[0], params[1]
        z = -0.5 * ((jnp.asarray(self.grid, params.dtype) - mu) * jnp.exp(-log_sigma)) ** 2
        return jax.nn.log_softmax(z)

    def __repr__(self):
        return f"GaussianGridPolicy(n={self.n})"


def make_policy(spec, n: int) -> Policy:
    """A policy from a CLI-style spec: 'tabular' or 'linear:d=K' (K random Gaussian features from a
    fixed seed, plus nothing else: K < n leaves the Nash typically unrepresentable)."""
    if isinstance(spec, Policy):
        if spec.n != n:
            raise ValueError(f"the policy has {spec.n} responses but the game has {n}")
        return spec
    name, _, opts = str(spec).partition(":")
    kwargs = dict(kv.split("=", 1) for kv in opts.split(",") if "=" in kv)
    if name == "tabular" and not kwargs:
        return TabularPolicy(n)
    if name == "linear" and set(kwargs) <= {"d", "seed"} and "d" in kwargs:
        d, seed = int(kwargs["d"]), int(kwargs.get("seed", 0))
        if not 1 <= d:
            raise ValueError(f"linear policy: d must be >= 1, got {d}")
        return LinearPolicy(np.random.default_rng(seed).standard_normal((n, d)))
    raise ValueError(f"unknown policy {spec!r}: use 'tabular' or 'linear:d=K[,seed=S]'")
