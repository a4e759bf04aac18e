"""One configurable decoder-only transformer for real model families, in Flax NNX (DESIGN §5b).

The Llama family (Llama 2/3, SmolLM2, Mistral without a sliding window) and Qwen2 are the same
network up to a few switches of :class:`DecoderConfig`: RMSNorm before attention and MLP, rotary
position embeddings (base ``rope_theta``, optional linear / llama3 / per-frequency scaling),
grouped-query attention (``num_kv_heads`` ≤ ``num_heads``), a SwiGLU MLP, tied or separate input
and output embeddings, and — Qwen2 — biases on the q/k/v projections. Weights follow the Hugging
Face layout after transposition (rotary pairs (i, i + head_dim/2), "rotate half"), so a checkpoint
loads without reordering; :mod:`gamelab.llm.checkpoints` undoes llama.cpp's GGUF permutation.

The layers are stored stacked (a leading axis of ``num_layers`` on every block weight) and run by
``lax.scan``: one layer is compiled, whatever the depth (30 layers of SmolLM2 compile as fast as 2).

Everything here is a pure function of ``(graph, params, arrays)``: ``graph`` is the static
``nnx.GraphDef`` and ``params`` the ``nnx.State`` of the weights, so the functions jit, grad and
vmap like the rest of gamelab. Batches of prompt + response are right- or left-padded with an
attention mask (True: a real token); positions are counted over the real tokens only, so padding
never changes a real token's logits.

* :func:`forward` — next-token logits (float32) of a padded batch, optionally through a KV cache;
* :func:`token_logprobs` / :func:`sequence_logprobs` — teacher forcing over the tokens a mask
  selects (the response), nothing else;
* :func:`generate` — greedy (temperature 0), temperature and top-p sampling with a KV cache,
  a maximum of new tokens and end-of-sequence ids;
* :func:`pack` — prompt and response token lists into one padded batch with both masks.
"""
from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gamelab import defaults

ROPE_KINDS = ("linear", "llama3", "factors")
INIT_STDDEV = 0.02  # random initialization of a fresh (untrained) decoder, as Llama's initializer_range


class RopeScaling(NamedTuple):
    """Rotary frequency scaling. ``linear``: every inverse frequency divided by ``factor``;
    ``llama3``: Llama 3.1's wavelength-dependent rule (``factor``, ``low_freq_factor``,
    ``high_freq_factor``, ``original_max_position``); ``factors``: each inverse frequency divided
    by its own entry of ``freq_factors`` (what llama.cpp stores as ``rope_freqs.weight``)."""

    kind: str
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position: int = 8192
    freq_factors: tuple = ()


class DecoderConfig(NamedTuple):
    """The shape of a decoder (static, hashable): everything a checkpoint's config must say."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    tie_embeddings: bool = False
    attention_bias: bool = False  # Qwen2: biases on the q, k and v projections
    max_position: int = 2048
    family: str = "llama"


def check_config(config: DecoderConfig) -> DecoderConfig:
    """``config`` if it describes a valid decoder, else a ValueError naming the field."""
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                 "head_dim", "max_position"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"decoder config: {name} must be a positive integer, got {value!r}")
    if config.num_heads % config.num_kv_heads:
        raise ValueError(f"decoder config: num_heads ({config.num_heads}) must be a multiple of num_kv_heads "
                         f"({config.num_kv_heads})")
    if config.head_dim % 2:
        raise ValueError(f"decoder config: head_dim must be even for rotary embeddings, got {config.head_dim}")
    if not (config.rms_norm_eps > 0 and config.rope_theta > 0):
        raise ValueError(f"decoder config: rms_norm_eps and rope_theta must be positive, got "
                         f"{config.rms_norm_eps}, {config.rope_theta}")
    s = config.rope_scaling
    if s is not None:
        if s.kind not in ROPE_KINDS:
            raise ValueError(f"decoder config: rope scaling {s.kind!r} is not supported (supported: "
                             f"{', '.join(ROPE_KINDS)})")
        if s.kind == "factors" and len(s.freq_factors) != config.head_dim // 2:
            raise ValueError(f"decoder config: {len(s.freq_factors)} rope frequency factors for head_dim "
                             f"{config.head_dim} (need {config.head_dim // 2})")
        if s.kind != "factors" and not s.factor > 0:
            raise ValueError(f"decoder config: rope scaling factor must be positive, got {s.factor}")
        if s.kind == "llama3" and not s.high_freq_factor > s.low_freq_factor:
            raise ValueError("decoder config: llama3 rope scaling needs high_freq_factor > low_freq_factor")
    return config


def rope_inverse_frequencies(config: DecoderConfig) -> np.ndarray:
    """The head_dim/2 inverse frequencies θ^(−2i/d) of the rotary embedding, scaled as the config says
    (float64 on the host; the same numbers as transformers' ``ROPE_INIT_FUNCTIONS``)."""
    d = config.head_dim
    inv = 1.0 / config.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    s = config.rope_scaling
    if s is None:
        return inv
    if s.kind == "linear":
        return inv / s.factor
    if s.kind == "factors":
        return inv / np.asarray(s.freq_factors, np.float64)
    # llama3: long wavelengths slowed by `factor`, short ones kept, a smooth blend in between
    wavelen = 2 * math.pi / inv
    low_wavelen = s.original_max_position / s.low_freq_factor
    high_wavelen = s.original_max_position / s.high_freq_factor
    scaled = np.where(wavelen > low_wavelen, inv / s.factor, inv)
    smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    blended = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, blended, scaled)


def rotate(x, positions, inverse_frequencies):
    """Rotary embedding of x (B, T, heads, head_dim) at integer positions (B, T), pairs (i, i + d/2)."""
    angles = positions[..., None].astype(jnp.float32) * jnp.asarray(inverse_frequencies, jnp.float32)
    cos = jnp.concatenate([jnp.cos(angles)] * 2, axis=-1)[:, :, None, :]
    sin = jnp.concatenate([jnp.sin(angles)] * 2, axis=-1)[:, :, None, :]
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return (x.astype(jnp.float32) * cos + rotated.astype(jnp.float32) * sin).astype(x.dtype)


class RMSNorm(nnx.Module):
    def __init__(self, size: int, eps: float, *, dtype):
        self.eps = eps
        self.weight = nnx.Param(jnp.ones((size,), dtype))

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return self.weight[...] * normed.astype(x.dtype)


def _linear(n_in, n_out, bias, dtype, rngs):
    return nnx.Linear(n_in, n_out, use_bias=bias, param_dtype=dtype, dtype=dtype, rngs=rngs,
                      kernel_init=nnx.initializers.normal(INIT_STDDEV), bias_init=nnx.initializers.normal(INIT_STDDEV))


class Block(nnx.Module):
    """One pre-norm layer: x + attention(norm(x)), then x + SwiGLU(norm(x))."""

    def __init__(self, c: DecoderConfig, *, dtype, rngs: nnx.Rngs):
        h, q, kv = c.hidden_size, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        self.input_norm = RMSNorm(h, c.rms_norm_eps, dtype=dtype)
        self.q = _linear(h, q, c.attention_bias, dtype, rngs)
        self.k = _linear(h, kv, c.attention_bias, dtype, rngs)
        self.v = _linear(h, kv, c.attention_bias, dtype, rngs)
        self.o = _linear(q, h, False, dtype, rngs)
        self.post_norm = RMSNorm(h, c.rms_norm_eps, dtype=dtype)
        self.gate = _linear(h, c.intermediate_size, False, dtype, rngs)
        self.up = _linear(h, c.intermediate_size, False, dtype, rngs)
        self.down = _linear(c.intermediate_size, h, False, dtype, rngs)
        self.heads, self.kv_heads, self.head_dim = c.num_heads, c.num_kv_heads, c.head_dim

    def __call__(self, x, positions, inverse_frequencies, mask, cache_k=None, cache_v=None, start=None):
        """x (B, T, hidden); mask (B, T, S) over the S keys; with a cache (B, S, kv_heads, head_dim),
        this step's keys and values are written at slots start … start+T−1 first."""
        B, T, _ = x.shape
        y = self.input_norm(x)
        q = self.q(y).reshape(B, T, self.heads, self.head_dim)
        k = self.k(y).reshape(B, T, self.kv_heads, self.head_dim)
        v = self.v(y).reshape(B, T, self.kv_heads, self.head_dim)
        q, k = rotate(q, positions, inverse_frequencies), rotate(k, positions, inverse_frequencies)
        if cache_k is not None:
            at = (0 * start, start, 0 * start, 0 * start)  # one integer type (x64 makes literals int64)
            k = jax.lax.dynamic_update_slice(cache_k, k.astype(cache_k.dtype), at)
            v = jax.lax.dynamic_update_slice(cache_v, v.astype(cache_v.dtype), at)
        group = self.heads // self.kv_heads
        qg = q.reshape(B, T, self.kv_heads, group, self.head_dim)
        scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32)
        scores = scores / math.sqrt(self.head_dim)
        scores = jnp.where(mask[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        att = jnp.einsum("bkgts,bskd->btkgd", weights, v).reshape(B, T, self.heads * self.head_dim)
        x = x + self.o(att)
        y = self.post_norm(x)
        x = x + self.down(jax.nn.silu(self.gate(y)) * self.up(y))
        return x, k, v


class Decoder(nnx.Module):
    """Token embeddings, ``num_layers`` stacked :class:`Block` s run by ``lax.scan``, a final RMSNorm and
    the output head (the embedding matrix itself when ``tie_embeddings``)."""

    def __init__(self, config: DecoderConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        c = check_config(config)
        self.config = c
        self.embed = nnx.Embed(c.vocab_size, c.hidden_size, param_dtype=dtype, dtype=dtype, rngs=rngs,
                               embedding_init=nnx.initializers.normal(INIT_STDDEV))
        blocks = [Block(c, dtype=dtype, rngs=rngs) for _ in range(c.num_layers)]
        graphs, states = zip(*(nnx.split(b) for b in blocks))
        self.layers = nnx.merge(graphs[0], jax.tree.map(lambda *xs: jnp.stack(xs), *states))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, dtype=dtype)
        self.head = None if c.tie_embeddings else _linear(c.hidden_size, c.vocab_size, False, dtype, rngs)

    def __call__(self, tokens, positions, mask, cache: KVCache | None = None, start=None):
        """Logits (B, T, vocab) in float32 and the updated cache (None without one)."""
        c = self.config
        inv = rope_inverse_frequencies(c)
        x = self.embed(tokens)
        graph, stacked = nnx.split(self.layers)

        def layer(x, xs):
            state, ck, cv = xs
            x, k, v = nnx.merge(graph, state)(x, positions, inv, mask, ck, cv, start)
            return x, ((k, v) if cache is not None else None)

        xs = (stacked, cache.k, cache.v) if cache is not None else (stacked, None, None)
        x, kv = jax.lax.scan(layer, x, xs)
        x = self.norm(x)
        logits = self.embed.attend(x) if self.head is None else self.head(x)
        new_cache = None if cache is None else cache._replace(k=kv[0], v=kv[1])
        return logits.astype(jnp.float32), new_cache


class KVCache(NamedTuple):
    """Keys and values of every layer (layers, B, S, kv_heads, head_dim), which of the S slots hold a
    real token (B, S), and how many slots are written (the same for every row: prompts are
    left-padded)."""

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    length: jax.Array


def init_decoder(config: DecoderConfig, *, seed: int = 0, dtype=jnp.float32):
    """(graph, params) of a randomly initialized decoder (normal(0.02) weights, unit norms)."""
    graph, _ = nnx.split(nnx.eval_shape(lambda: Decoder(config, dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))))
    return graph, _draw(config, jnp.dtype(dtype), seed)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _draw(config, dtype, seed):
    return nnx.split(Decoder(config, dtype=dtype, rngs=nnx.Rngs(seed)))[1]


def abstract_decoder(config: DecoderConfig, *, dtype=jnp.float32):
    """(graph, params as ShapeDtypeStructs) without allocating anything: the template a checkpoint
    fills (:mod:`gamelab.llm.checkpoints`)."""
    return nnx.split(nnx.eval_shape(lambda: Decoder(config, dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))))


class LoraConfig(NamedTuple):
    """Low-rank adapters on the layers' projections: kernel W + (alpha / rank)·A·B, with A (in, rank)
    drawn N(0, 1/in) and B (rank, out) zero, so a fresh adapter leaves the model unchanged.
    ``targets``: which projections of each layer (q, k, v, o, gate, up, down)."""

    rank: int = 8
    alpha: float = 16.0
    targets: tuple = ("q", "v")


def init_lora(params, lora: LoraConfig, key) -> dict:
    """Adapter parameters {target: {"a": (layers, in, rank), "b": (layers, rank, out)}} for ``params``."""
    if isinstance(lora.rank, bool) or not isinstance(lora.rank, (int, np.integer)) or lora.rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {lora.rank!r}")
    out = {}
    for target, k in zip(lora.targets, jax.random.split(key, len(lora.targets))):
        if target not in ("q", "k", "v", "o", "gate", "up", "down"):
            raise ValueError(f"LoRA target {target!r} is not a layer projection (q, k, v, o, gate, up, down)")
        kernel = params["layers"][target]["kernel"][...]
        layers, n_in, n_out = kernel.shape
        a = jax.random.normal(k, (layers, n_in, lora.rank), jnp.float32) / math.sqrt(n_in)
        out[target] = {"a": a.astype(kernel.dtype), "b": jnp.zeros((layers, lora.rank, n_out), kernel.dtype)}
    return out


def with_lora(params, adapters: dict, lora: LoraConfig):
    """``params`` with each adapted kernel replaced by W + (alpha / rank)·A·B (pure; a new state)."""
    scale = lora.alpha / lora.rank

    def merge(path, w):
        keys = [getattr(k, "key", None) for k in path]
        if keys[0] == "layers" and keys[1] in adapters and keys[2] == "kernel":
            ad = adapters[keys[1]]
            return w + (scale * jnp.einsum("lir,lro->lio", ad["a"], ad["b"])).astype(w.dtype)
        return w

    return jax.tree_util.tree_map_with_path(merge, params)


def positions_of(mask):
    """Positions (B, T) counted over the real tokens of a padded batch (padding: the next real
    token's position, irrelevant since padding keys are masked)."""
    return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)


def forward(graph, params, tokens, mask):
    """Next-token logits (B, T, vocab), float32, of a padded batch: tokens (B, T) int, mask (B, T) bool
    (True: a real token). Each real token attends to the real tokens at or before it."""
    tokens, mask = jnp.asarray(tokens, jnp.int32), jnp.asarray(mask, bool)
    T = tokens.shape[-1]
    causal = jnp.tril(jnp.ones((T, T), bool))
    attend = causal[None] & mask[:, None, :]
    return nnx.merge(graph, params)(tokens, positions_of(mask), attend)[0]


def token_logprobs(graph, params, tokens, mask):
    """log p(tokens[:, t] | tokens[:, <t]) for t ≥ 1, shape (B, T−1), float32."""
    logits = forward(graph, params, tokens, mask)[:, :-1]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, jnp.asarray(tokens, jnp.int32)[:, 1:, None], axis=-1)[..., 0]


def sequence_logprobs(graph, params, tokens, mask, response_mask):
    """Σ_t log p(y_t | x, y_<t) over the tokens ``response_mask`` selects (B,) — teacher forcing over
    the response only (a token at position 0 has no context and is never scored)."""
    lp = token_logprobs(graph, params, tokens, mask)
    return jnp.sum(jnp.where(jnp.asarray(response_mask, bool)[:, 1:], lp, 0.0), axis=-1)


class PackedBatch(NamedTuple):
    tokens: np.ndarray  # (B, T) int32, each row prompt then response then padding
    mask: np.ndarray  # (B, T) bool: a real token
    response_mask: np.ndarray  # (B, T) bool: a response token


def pack(prompts, responses, *, pad_id: int = 0, length: int | None = None) -> PackedBatch:
    """Right-padded prompt + response rows (host). ``length``: the padded width (default the
    longest row; pass a fixed bucket to avoid compiling once per batch width)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    rows = [list(p) + list(r) for p, r in zip(prompts, responses)]
    width = max((len(r) for r in rows), default=0) if length is None else length
    if any(len(r) > width for r in rows):
        raise ValueError(f"a prompt + response of {max(len(r) for r in rows)} tokens exceeds length {width}")
    tokens = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), bool)
    response = np.zeros((len(rows), width), bool)
    for i, (p, row) in enumerate(zip(prompts, rows)):
        tokens[i, :len(row)] = row
        mask[i, :len(row)] = True
        response[i, len(p):len(row)] = True
    return PackedBatch(tokens, mask, response)


def empty_cache(config: DecoderConfig, batch: int, slots: int, dtype) -> KVCache:
    shape = (config.num_layers, batch, slots, config.num_kv_heads, config.head_dim)
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.zeros((batch, slots), bool),
                   jnp.zeros((), jnp.int32))


def step_with_cache(graph, params, cache: KVCache, tokens, mask, positions):
    """Run T new tokens (B, T) through the decoder, appending them to ``cache``: (logits (B, T, V), cache)."""
    T, S = tokens.shape[1], cache.valid.shape[1]
    start = cache.length
    valid = jax.lax.dynamic_update_slice(cache.valid, mask, (0 * start, start))
    slot_causal = jnp.arange(S)[None, :] <= (start + jnp.arange(T))[:, None]
    attend = slot_causal[None] & valid[:, None, :]
    logits, cache = nnx.merge(graph, params)(tokens, positions, attend, cache._replace(valid=valid), start)
    return logits, cache._replace(length=start + T)


def choose_tokens(logits, key, temperature, top_p):
    """The next token of each row (B,) from logits (B, V): greedy where temperature is 0, else a draw
    from softmax(logits / temperature) restricted to the smallest set of tokens whose probability
    reaches top_p (the nucleus; top_p = 1 keeps every token)."""
    greedy = jnp.argmax(logits, axis=-1)
    scaled = logits / jnp.maximum(temperature, 1e-6)
    ordered = jnp.sort(scaled, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # probability of the strictly better tokens
    kept = jnp.sum(before < top_p, axis=-1)  # ≥ 1: the best token is always kept
    threshold = jnp.take_along_axis(ordered, (kept - 1)[:, None], axis=-1)
    drawn = jax.random.categorical(key, jnp.where(scaled >= threshold, scaled, -jnp.inf), axis=-1)
    return jnp.where(temperature > 0, drawn, greedy).astype(jnp.int32)


@partial(jax.jit, static_argnums=(0, 1, 7))
def _generate(config, graph, params, tokens, mask, key, settings, max_new):
    temperature, top_p, eos, pad_id = settings
    B, P = tokens.shape
    dtype = jax.tree.leaves(params)[0].dtype
    cache = empty_cache(config, B, P + max_new, dtype)
    logits, cache = step_with_cache(graph, params, cache, tokens, mask, positions_of(mask))
    position = jnp.sum(mask, axis=-1).astype(jnp.int32)
    out = jnp.full((B, max_new), pad_id, jnp.int32)

    def cond(carry):
        i, _, _, _, done, _, _ = carry
        return (i < max_new) & ~jnp.all(done)

    def body(carry):
        i, last, cache, position, done, out, key = carry
        key, sub = jax.random.split(key)
        token = jnp.where(done, pad_id, choose_tokens(last, sub, temperature, top_p))
        out = out.at[:, i].set(token)
        done = done | jnp.any(token[:, None] == eos[None, :], axis=-1)
        logits, cache = step_with_cache(graph, params, cache, token[:, None], jnp.ones((B, 1), bool),
                                        position[:, None])
        return i + 1, logits[:, -1], cache, position + 1, done, out, key

    carry = (jnp.zeros((), jnp.int32), logits[:, -1], cache, position, jnp.zeros((B,), bool), out, key)
    return jax.lax.while_loop(cond, body, carry)[5]


class Generation(NamedTuple):
    tokens: list  # per prompt: the new tokens, up to and including the first end-of-sequence id
    finished: list  # per prompt: whether an end-of-sequence id was produced


def generate(config: DecoderConfig, graph, params, prompts, key, *, max_new_tokens: int = defaults.LLM_MAX_NEW_TOKENS,
             temperature: float = defaults.LLM_TEMPERATURE, top_p: float = defaults.LLM_TOP_P, eos_ids=(),
             pad_id: int = 0, bucket: int = 16) -> Generation:
    """Continue each prompt (a list of token ids) by at most ``max_new_tokens`` tokens with a KV cache:
    greedy at temperature 0, else temperature / top-p sampling with ``key``. A row stops at its first
    end-of-sequence id (kept in its output). Prompts are left-padded to a multiple of ``bucket``."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, each of at least one token")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not temperature >= 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    width = -(-max(len(p) for p in prompts) // bucket) * bucket
    tokens = np.full((len(prompts), width), pad_id, np.int32)
    mask = np.zeros((len(prompts), width), bool)
    for i, p in enumerate(prompts):
        tokens[i, width - len(p):] = p
        mask[i, width - len(p):] = True
    eos = jnp.asarray(list(eos_ids) or [-1], jnp.int32)
    settings = (jnp.float32(temperature), jnp.float32(top_p), eos, jnp.int32(pad_id))
    out = np.asarray(_generate(config, graph, params, jnp.asarray(tokens), jnp.asarray(mask), key, settings,
                               int(max_new_tokens)))
    eos_set = set(int(e) for e in eos_ids)
    result, finished = [], []
    for row in out.tolist():
        stop = next((i for i, t in enumerate(row) if t in eos_set), None)
        result.append(row if stop is None else row[:stop + 1])
        finished.append(stop is not None)
    return Generation(result, finished)
