"""A loaded real model as a Policy over a sequence game: the same algorithms, the same driver.

:class:`DecoderPolicy` turns a :class:`~gamelab.llm.checkpoints.LanguageModel` into π_θ(y | x)
over the V^L responses of a sequence game (:mod:`gamelab.llm.games`): prompt x is a text (token
ids), a response is L tokens drawn from a fixed list of V allowed token ids (``response_tokens``,
e.g. the model's tokens for " A", " B", " C"), and

    log π(y | x) = Σ_t log softmax_{allowed}(logits(x, y_<t))[y_t],

the model's next-token distribution renormalized over the allowed tokens, so π is a distribution
over exactly the V^L sequences the game's class rule scores (its exact Nash gap stays exact). The
response index is the base-V number of the tokens' positions in the allowed list, as for
:class:`~gamelab.llm.model.TransformerPolicy`; ``init`` returns the loaded weights (a pretrained
model is trained, not set: the run starts from, and the losses' reference is, the base model).
:func:`gamelab.llm.train.train` accepts it as ``policy=``.

``lora=LoraConfig(...)``: the parameters are ``{"base": …, "lora": …}``; only the low-rank adapters
learn (the base enters under ``stop_gradient``: no weight gradients are computed for it, and its
update is exactly zero), and a fresh adapter is exactly the base model.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gamelab.llm.checkpoints import LanguageModel
from gamelab.llm.decoder import LoraConfig, empty_cache, init_lora, positions_of, step_with_cache, with_lora
from gamelab.llm.model import MeshSharded, sequence_index, sequence_tokens
from gamelab.policies import Policy


class DecoderPolicy(MeshSharded, Policy):
    """π_θ(y | x) of a loaded decoder restricted to ``response_tokens`` (see the module doc).

    ``prompts``: one list of token ids per prompt (render text with
    :func:`gamelab.llm.text.encode` / ``render_chat`` first); ``length``: response tokens L.
    ``mesh``/``fsdp``: data parallelism over the mesh's first axis, and FSDP-style sharded weights
    (:class:`~gamelab.llm.model.MeshSharded`)."""

    reference_is_initial = True  # the reference is the base model, not the uniform distribution

    def __init__(self, lm: LanguageModel, prompts, response_tokens, length: int, *, lora: LoraConfig | None = None,
                 seed: int = 0, mesh=None, fsdp: bool = False):
        allowed = [int(t) for t in response_tokens]
        if len(allowed) < 2 or len(set(allowed)) != len(allowed):
            raise ValueError(f"need at least 2 distinct response tokens, got {allowed}")
        if not all(0 <= t < lm.config.vocab_size for t in allowed):
            raise ValueError(f"response tokens must be ids below the vocabulary size {lm.config.vocab_size}")
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("need at least one prompt, each of at least one token")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        self.lm, self.graph, self.lora = lm, lm.graph, lora
        self.mesh, self.fsdp = mesh, fsdp
        if lora is None:
            self.trainable = None  # every weight learns
        self.params0 = lm.params if lora is None else {"base": lm.params,
                                                       "lora": init_lora(lm.params, lora, jax.random.key(seed))}
        self.vocab, self.length, self.prompts = len(allowed), int(length), len(prompts)
        self.n = self.vocab ** self.length
        width = max(len(p) for p in prompts)
        if width + length > lm.config.max_position:
            raise ValueError(f"prompt ({width}) + response ({length}) tokens exceed the model's context "
                             f"({lm.config.max_position})")
        self.allowed = np.asarray(allowed, np.int32)
        self.prompt_tokens = np.full((self.prompts, width), lm.pad_id, np.int32)  # left-padded
        self.prompt_mask = np.zeros((self.prompts, width), bool)
        for i, p in enumerate(prompts):
            self.prompt_tokens[i, width - len(p):] = p
            self.prompt_mask[i, width - len(p):] = True
        self.config = dict(model=lm.source, family=lm.config.family, vocab=self.vocab, length=self.length,
                           prompts=self.prompts, response_tokens=allowed,
                           lora=None if lora is None else lora._asdict())

    def trainable(self, params):
        """Under LoRA only the adapters learn: the optimizer keeps no state for the frozen base."""
        return {"base": jax.tree.map(lambda _: False, params["base"]),
                "lora": jax.tree.map(lambda _: True, params["lora"])}

    def start_point(self, logp):
        """The loaded weights (whatever ``logp`` asks): a run's programs take them as an argument."""
        return self.params0

    def init(self, point):
        """The loaded weights (see the module doc): ``point`` itself when it is them (``start_point``'s,
        an argument of the program), else the policy's own copy, whatever ``point`` asks."""
        if jax.tree.structure(point) == jax.tree.structure(self.params0):
            return point
        return jax.tree.map(jnp.asarray, self.params0)

    def model_params(self, params):
        """The decoder's weights of policy parameters (the base with its adapters merged, under LoRA)."""
        if self.lora is None:
            return params
        return with_lora(jax.lax.stop_gradient(params["base"]), params["lora"], self.lora)

    def _next_logp(self, params, x, digits, one=None):
        """log π(· | x, y_<t) over the V allowed tokens at every response position: (N, L, V), from
        prompts ``x`` (N,) and responses as digits (N, L) (the last digit is never read)."""
        params = self.model_params(self._params(params))
        N = digits.shape[0]
        pad, (x, digits) = self._pad_rows(x, digits)
        first, cache, lengths = self._rows_cache(params, x, one)
        allowed = jnp.asarray(self.allowed)
        logits = first[:, None]  # (N, 1, vocab): the first response token's, from the prompt's last position
        if self.length > 1:  # the response's first L − 1 tokens, after the prompt's keys and values
            head = self._batch(allowed[digits[:, :-1]])
            positions = lengths[:, None] + jnp.arange(self.length - 1)[None]
            rest, _ = step_with_cache(self.graph, params, cache, head, jnp.ones(head.shape, bool), positions)
            logits = jnp.concatenate([logits, rest], axis=1)
        out = self._restricted(logits)
        return self._replicated(out)[:N] if pad else out

    def _restricted(self, logits):
        """log-softmax over the allowed tokens of (…, vocab) logits (float64 under x64)."""
        restricted = jnp.take(logits, jnp.asarray(self.allowed), axis=-1)
        dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
        return jax.nn.log_softmax(restricted.astype(dtype), axis=-1)

    def _rows_cache(self, params, x, one=None):
        """(first-token logits (N, vocab), a cache with L − 1 free slots (N rows), real-token counts
        (N,)) of the prompts ``x`` (N,) of a batch's rows: ``one`` (every row is that prompt) runs it
        once; N ≤ prompts runs the rows' own prompts; more rows run every prompt once and gather
        (so a prompt costs at most one pass per call, never one per row)."""
        N = x.shape[0]
        if one is not None:
            first, cache, lengths = self._prompt_cache(params, jnp.reshape(one, (1,)))
            x = jnp.zeros_like(x)
        elif N <= self.prompts:
            return self._prompt_cache(params, x)
        else:
            first, cache, lengths = self._prompt_cache(params, jnp.arange(self.prompts))
        k, v = jax.tree.map(lambda a: a[:, x], (cache.k, cache.v))
        return first[x], cache._replace(k=k, v=v, valid=cache.valid[x]), lengths[x]

    def _prompt_cache(self, params, which):
        """The prompts ``which`` run once: (their last position's logits (k, vocab), their keys and
        values in a cache with L − 1 free slots, their real-token counts (k,)). A response then costs
        its own L − 1 tokens, not the prompt's again."""
        tokens, mask = jnp.asarray(self.prompt_tokens)[which], jnp.asarray(self.prompt_mask)[which]
        dtype = jax.tree.leaves(params)[0].dtype
        cache = empty_cache(self.lm.config, tokens.shape[0], tokens.shape[1] + self.length - 1, dtype)
        logits, cache = step_with_cache(self.graph, params, cache, tokens, mask, positions_of(mask))
        return logits[:, -1], cache, jnp.sum(mask, axis=1)

    def logprob(self, params, y, x=0):
        """log π(y | x) of response indices ``y`` (any shape); ``x`` a prompt or one per response."""
        y = jnp.asarray(y)
        if y.size >= self.n and jnp.ndim(x) == 0:
            return self.log_probs(params, x)[y]
        digits = sequence_tokens(y.reshape(-1), self.vocab, self.length)
        xs = jnp.broadcast_to(jnp.asarray(x), y.shape).reshape(-1)
        logp = self._next_logp(params, xs, digits, one=x if jnp.ndim(x) == 0 else None)
        return jnp.sum(jnp.take_along_axis(logp, digits[..., None], axis=-1)[..., 0], axis=-1).reshape(y.shape)

    def log_probs(self, params, x=0):
        """The full distribution over the V^L responses of prompt ``x`` (one batched pass)."""
        digits = sequence_tokens(jnp.arange(self.n), self.vocab, self.length)
        logp = self._next_logp(params, jnp.broadcast_to(jnp.asarray(x), (self.n,)), digits, one=x)
        return jnp.sum(jnp.take_along_axis(logp, digits[..., None], axis=-1)[..., 0], axis=-1)

    def sample(self, params, key, shape=(), x=0, temperature: float = 1.0):
        """Responses drawn token by token with a KV cache: the prompts run once, then each drawn
        token is one more position (the same keys, one per position, as a pass per position)."""
        count = int(np.prod(shape, dtype=int))
        params = self.model_params(self._params(params))
        xs = jnp.broadcast_to(jnp.asarray(x), (count,))
        pad, (xs,) = self._pad_rows(xs)
        logits, cache, lengths = self._rows_cache(params, xs, x if jnp.ndim(x) == 0 else None)
        allowed = jnp.asarray(self.allowed)
        digits = []
        for t, k in enumerate(jax.random.split(key, self.length)):
            logp = self._replicated(self._restricted(logits))[:count]
            digits.append(jax.random.categorical(k, logp / temperature).astype(jnp.int32))
            if t + 1 < self.length:
                token = self._batch(allowed[jnp.pad(digits[-1], (0, pad))][:, None])
                logits, cache = step_with_cache(self.graph, params, cache, token, jnp.ones(token.shape, bool),
                                                (lengths + t)[:, None])
                logits = logits[:, 0]
        return sequence_index(jnp.stack(digits, axis=1), self.vocab).reshape(shape)

    def response_texts(self) -> list:
        """The text of every response y = 0 … V^L − 1 (its tokens decoded), what a judge reads."""
        digits = np.asarray(sequence_tokens(np.arange(self.n), self.vocab, self.length))
        return [self.lm.tokenizer.decode(self.allowed[d].tolist()) for d in digits]

    def __repr__(self):
        return (f"DecoderPolicy({self.lm.config.family} from {self.lm.source}, V={self.vocab}, L={self.length}, "
                f"prompts={self.prompts})")
