"""A causal transformer policy π_θ(y | x) over token sequences, in Flax NNX, behind the Policy interface.

A response is a sequence y = (y_1, …, y_L) over a vocabulary of V tokens, indexed as the base-V
number y_1·V^{L−1} + … + y_L (so the tabular engine's response index and the transformer's
sequence are the same thing). The prompt x ∈ {0, …, X−1} is the first input position; position
t+1 reads y_t (teacher forcing). log π(y | x) = Σ_t log softmax(logits_t)[y_t]: always normalized
over all V^L sequences.

The output head is zero-initialized, so a fresh model is *exactly* the uniform policy — the
runner's default initial policy and reference — and the frozen initial parameters serve as the
reference. Parameters are a pytree (``nnx.State`` of the ``nnx.Param`` leaves); the policy's pure
functions merge them with the static graph inside jit, so the one driver (gamelab.run) trains a
transformer exactly as it trains tabular logits.
"""
from __future__ import annotations

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gamelab import defaults
from gamelab.executables import Program
from gamelab.policies import Policy


class CausalSelfAttention(nnx.Module):
    def __init__(self, d: int, heads: int, *, dtype, rngs: nnx.Rngs):
        if d % heads:
            raise ValueError(f"d_model ({d}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.qkv = nnx.Linear(d, 3 * d, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(d, d, param_dtype=dtype, dtype=dtype, rngs=rngs)

    def __call__(self, h):
        T, d = h.shape[-2], h.shape[-1]
        q, k, v = jnp.split(self.qkv(h), 3, axis=-1)
        split = lambda z: z.reshape(*z.shape[:-1], self.heads, d // self.heads).swapaxes(-2, -3)
        q, k, v = split(q), split(k), split(v)
        scores = q @ k.swapaxes(-1, -2) / math.sqrt(d // self.heads)
        causal = jnp.tril(jnp.ones((T, T), bool))
        scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
        att = jax.nn.softmax(scores, axis=-1) @ v
        return self.out(att.swapaxes(-2, -3).reshape(*h.shape[:-1], d))


class Block(nnx.Module):
    def __init__(self, d: int, heads: int, *, dtype, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(d, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.attn = CausalSelfAttention(d, heads, dtype=dtype, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.up = nnx.Linear(d, 4 * d, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.down = nnx.Linear(4 * d, d, param_dtype=dtype, dtype=dtype, rngs=rngs)

    def __call__(self, h):
        h = h + self.attn(self.ln1(h))
        return h + self.down(jax.nn.gelu(self.up(self.ln2(h))))


class Transformer(nnx.Module):
    """Logits (..., L, V) of the next token at every position, from the prompt and y_1..y_{L−1}."""

    def __init__(self, vocab: int, length: int, prompts: int, d_model: int, heads: int, layers: int, *,
                 dtype, rngs: nnx.Rngs):
        self.prompt = nnx.Embed(prompts, d_model, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.token = nnx.Embed(vocab, d_model, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.position = nnx.Embed(length, d_model, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([Block(d_model, heads, dtype=dtype, rngs=rngs) for _ in range(layers)])
        self.ln = nnx.LayerNorm(d_model, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(d_model, vocab, kernel_init=nnx.initializers.zeros, param_dtype=dtype, dtype=dtype,
                               rngs=rngs)

    def __call__(self, x, tokens):
        """x: (...,) prompt ids; tokens: (..., L) responses; returns next-token logits (..., L, V)."""
        first = self.prompt(x)[..., None, :]
        rest = self.token(tokens[..., :-1])
        h = jnp.concatenate([first, rest], axis=-2) + self.position(jnp.arange(tokens.shape[-1]))
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))


def sequence_tokens(index, vocab: int, length: int):
    """Tokens (..., L) of response indices (base-V digits, most significant first)."""
    powers = vocab ** jnp.arange(length - 1, -1, -1)
    return (jnp.asarray(index)[..., None] // powers) % vocab


def sequence_index(tokens, vocab: int):
    """The response index of tokens (..., L)."""
    length = tokens.shape[-1]
    return jnp.sum(tokens * vocab ** jnp.arange(length - 1, -1, -1), axis=-1)


@lru_cache(maxsize=None)
def _graph(vocab, length, prompts, d_model, heads, layers, dtype, seed):
    """The nnx graph of a Transformer (the structure its parameters merge into), from an abstract
    evaluation of its construction (0.15 s of tracing): built where a program that applies the
    model is traced, so a run whose programs are read from the store of executables never builds it."""
    def build():
        return Transformer(vocab, length, prompts, d_model, heads, layers, dtype=dtype, rngs=nnx.Rngs(seed))

    return nnx.split(nnx.eval_shape(build), nnx.Param)[0]


def _parameters(vocab, length, prompts, d_model, heads, layers, dtype, seed):
    model = Transformer(vocab, length, prompts, d_model, heads, layers, dtype=dtype, rngs=nnx.Rngs(seed))
    return nnx.split(model, nnx.Param)[1]


# the drawn weights kept across processes (gamelab.executables, keep="result"): a warm start reads
# them, neither tracing the model nor loading the 1 MB program that draws them
_draw_parameters = Program(_parameters, static_argnums=tuple(range(8)), keep="result")


class MeshSharded:
    """Data parallelism (and FSDP) for a policy over token sequences: ``self.mesh`` (None: one
    device) shards every batch of sequences over its first axis, and with ``self.fsdp`` each
    weight's largest axis divisible by the mesh size too. Shared by the toy transformer and the
    real decoder."""

    mesh = None
    fsdp = False

    def _batch(self, z):
        if self.mesh is None:
            return z
        from jax.sharding import NamedSharding, PartitionSpec

        spec = PartitionSpec(self.mesh.axis_names[0], *([None] * (z.ndim - 1)))
        return jax.lax.with_sharding_constraint(z, NamedSharding(self.mesh, spec))

    def _replicated(self, z):
        if self.mesh is None:
            return z
        from jax.sharding import NamedSharding, PartitionSpec

        return jax.lax.with_sharding_constraint(z, NamedSharding(self.mesh, PartitionSpec()))

    def param_sharding(self, params, mesh=None):
        """Replicated, or (``fsdp``) each weight's largest axis divisible by the mesh size sharded
        (over the policy's own mesh; ``mesh`` is used only by a policy built without one)."""
        from jax.sharding import NamedSharding, PartitionSpec

        if self.mesh is None:
            return super().param_sharding(params, mesh)
        axis, size = self.mesh.axis_names[0], self.mesh.size

        def spec(leaf):
            if not self.fsdp:
                return NamedSharding(self.mesh, PartitionSpec())
            dims = [i for i in np.argsort(leaf.shape)[::-1] if leaf.shape[i] % size == 0]
            parts = [None] * leaf.ndim
            if dims:
                parts[dims[0]] = axis
            return NamedSharding(self.mesh, PartitionSpec(*parts))

        return jax.tree.map(spec, params)

    def _params(self, params):
        if self.mesh is None:
            return params
        return jax.lax.with_sharding_constraint(params, self.param_sharding(params))

    def _pad_rows(self, *arrays):
        """The arrays padded along their first axis to a multiple of the mesh size (with their
        first row): XLA's SPMD partitioner aborts the process on the gradient of an unevenly split
        batch (jax 0.10.2); padding keeps every batch size data parallel. Returns (padding, arrays)."""
        N = arrays[0].shape[0]
        pad = 0 if self.mesh is None else (-N) % self.mesh.size
        if not pad:
            return 0, arrays
        return pad, tuple(jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad,) + a.shape[1:])]) for a in arrays)


class TransformerPolicy(MeshSharded, Policy):
    """π_θ(y | x) of a causal transformer over V^L responses (Policy interface; see module doc).

    ``log_probs`` enumerates all V^L sequences in one batched teacher-forced pass (keep V^L in
    the thousands); ``logprob`` and ``sample`` touch only the sequences asked for (``logprob``
    enumerates instead when that is cheaper), so sampled training scales to response sets far
    too large to enumerate.
    ``mesh``: an optional ``jax.sharding.Mesh`` whose first axis shards every batch of sequences
    (data parallelism under jit; the parameters are replicated unless ``fsdp`` shards the largest
    axis of each weight over that axis too).
    """

    def __init__(self, vocab: int, length: int, *, prompts: int = 1, d_model: int = defaults.TRANSFORMER["d_model"],
                 heads: int = defaults.TRANSFORMER["heads"], layers: int = defaults.TRANSFORMER["layers"],
                 seed: int = defaults.SEED, dtype=jnp.float32, mesh=None, fsdp: bool = False):
        if vocab < 2 or length < 1 or prompts < 1:
            raise ValueError(f"need vocab >= 2, length >= 1, prompts >= 1; got {vocab}, {length}, {prompts}")
        for name, value in (("d_model", d_model), ("heads", heads), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"the transformer's {name} must be a positive integer, got {value!r}")
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
        self.vocab, self.length, self.prompts, self.dtype = int(vocab), int(length), int(prompts), jnp.dtype(dtype)
        self.n = self.vocab ** self.length
        # one program, not one eager operation (a start-up of its own) per weight; kept on disk
        self.params0 = _draw_parameters(self.vocab, self.length, self.prompts, d_model, heads, layers, self.dtype, seed)
        self.config = dict(vocab=vocab, length=length, prompts=prompts, d_model=d_model, heads=heads, layers=layers,
                           seed=seed, dtype=str(self.dtype))
        self.mesh, self.fsdp = mesh, fsdp

    @property
    def graph(self):
        """The transformer's nnx graph, built on first use (:func:`_graph`)."""
        c = self.config
        return _graph(self.vocab, self.length, self.prompts, c["d_model"], c["heads"], c["layers"], self.dtype,
                      c["seed"])

    # ------------------------------------------------------------------ the Policy interface
    def init(self, logp):
        """The initial parameters (the uniform policy, whatever ``logp`` asks: a transformer is
        trained, not set; gamelab.llm checks on the host that the run starts uniform)."""
        return jax.tree.map(jnp.asarray, self.params0)

    def token_logprobs(self, params, x, tokens):
        model = nnx.merge(self.graph, self._params(params))
        logits = model(x, tokens).astype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]

    def logprob(self, params, y, x=0):
        """log π(y | x) of response indices ``y`` (any shape). When ``y`` holds at least as many
        responses as there are (V^L ≤ y.size, one prompt), the whole distribution is computed
        once and indexed: a batch of 2·256 sampled pairs over 4^4 sequences costs one pass over
        256 sequences, not 512 (the same values up to rounding)."""
        y = jnp.asarray(y)
        if y.size >= self.n and jnp.ndim(x) == 0:
            return self._replicated(self.log_probs(params, x))[y]
        tokens = sequence_tokens(y.reshape(-1), self.vocab, self.length)
        xs = jnp.broadcast_to(jnp.asarray(x), y.shape).reshape(-1)
        return self._sequences(params, xs, tokens).reshape(y.shape)

    def log_probs(self, params, x=0):
        tokens = sequence_tokens(jnp.arange(self.n), self.vocab, self.length)
        return self._sequences(params, jnp.broadcast_to(jnp.asarray(x), (self.n,)), tokens)

    def _sequences(self, params, x, tokens):
        """Σ_t log π(y_t | x, y_<t) of a flat batch ``tokens`` (N, L). Over a mesh the batch is
        split over its first axis, padded to a multiple of the mesh size with dummy sequences
        that are dropped again: XLA's SPMD partitioner aborts the process on the gradient of an
        unevenly split batch (jax 0.10.2), and padding keeps every batch size data parallel."""
        N = tokens.shape[0]
        pad, (tokens, x) = self._pad_rows(tokens, x)
        out = jnp.sum(self.token_logprobs(params, self._batch(x), self._batch(tokens)), axis=-1)
        return self._replicated(out)[:N] if pad else out

    def sample(self, params, key, shape=(), x=0, temperature: float = 1.0):
        """Autoregressive sampling (one forward per position; causal masking makes the padded
        future positions irrelevant); returns response indices of ``shape``."""
        model = nnx.merge(self.graph, self._params(params))
        count = int(np.prod(shape, dtype=int))
        tokens = jnp.zeros((count, self.length), jnp.int32)
        xs = jnp.broadcast_to(jnp.asarray(x), (count,))
        for t, k in enumerate(jax.random.split(key, self.length)):
            logits = model(xs, self._batch(tokens))[:, t, :] / temperature
            tokens = tokens.at[:, t].set(jax.random.categorical(k, logits.astype(jnp.float32)).astype(jnp.int32))
        return sequence_index(tokens, self.vocab).reshape(shape)

    def __repr__(self):
        c = self.config
        return (f"TransformerPolicy(V={c['vocab']}, L={c['length']}, prompts={c['prompts']}, d={c['d_model']}, "
                f"heads={c['heads']}, layers={c['layers']})")
