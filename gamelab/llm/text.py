"""Text in and out of a loaded :class:`~gamelab.llm.checkpoints.LanguageModel`: encoding, the chat
template, greedy / sampled continuation and perplexity."""
from __future__ import annotations

import json
import math
from pathlib import Path

import jax

from gamelab import defaults
from gamelab.llm.checkpoints import LanguageModel
from gamelab.llm.decoder import generate, pack, sequence_logprobs

SCORE_WINDOW = 512  # tokens per forward pass when scoring a text (longer texts: consecutive windows)


def encode(lm: LanguageModel, text: str, *, add_bos: bool | None = None) -> list:
    """Token ids of ``text`` (special tokens such as <|im_start|> recognized); the model's BOS first
    when it asks for one (``add_bos`` overrides)."""
    ids = lm.tokenizer.encode(text, add_special_tokens=False).ids
    bos = lm.add_bos if add_bos is None else add_bos
    return ([lm.bos_id] if bos and lm.bos_id is not None else []) + list(ids)


def decode(lm: LanguageModel, ids, *, skip_special: bool = True) -> str:
    return lm.tokenizer.decode(list(ids), skip_special_tokens=skip_special)


def render_chat(lm: LanguageModel, messages, *, add_generation_prompt: bool = True) -> str:
    """The model's chat template applied to ``messages`` ([{"role", "content"}, …]) — jinja2 in a
    sandbox, as transformers renders it. ValueError if the model has no template."""
    if not lm.chat_template:
        raise ValueError(f"{lm.source}: the model has no chat template")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ValueError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    token = lambda i: None if i is None else lm.tokenizer.id_to_token(i)  # noqa: E731
    return env.from_string(lm.chat_template).render(
        messages=list(messages), add_generation_prompt=add_generation_prompt, bos_token=token(lm.bos_id) or "",
        eos_token=token(lm.eos_ids[0] if lm.eos_ids else None) or "")


def complete(lm: LanguageModel, prompts, *, max_new_tokens: int = defaults.LLM_MAX_NEW_TOKENS,
             temperature: float = defaults.LLM_TEMPERATURE, top_p: float = defaults.LLM_TOP_P,
             seed: int = defaults.SEED, chat: bool = False) -> list:
    """The continuation text of each prompt (greedy at temperature 0). ``chat``: each prompt is a user
    message rendered through the chat template (which then supplies any BOS)."""
    texts = [render_chat(lm, [{"role": "user", "content": p}]) if chat else p for p in prompts]
    ids = [encode(lm, t, add_bos=False if chat else None) for t in texts]
    if any(len(i) == 0 for i in ids):
        raise ValueError("an empty prompt (no tokens) cannot be continued")
    out = generate(lm.config, lm.graph, lm.params, ids, jax.random.key(seed), max_new_tokens=max_new_tokens,
                   temperature=temperature, top_p=top_p, eos_ids=lm.eos_ids, pad_id=lm.pad_id)
    return [decode(lm, t) for t in out.tokens]


_scored = jax.jit(sequence_logprobs, static_argnums=0)


def text_logprob(lm: LanguageModel, text: str, *, window: int = SCORE_WINDOW):
    """(Σ log p of the text's tokens, number of tokens scored): every token after the first is scored
    given the tokens before it in its window of ``window`` tokens (consecutive windows overlap by
    one token, so every token but the first is scored exactly once)."""
    ids = encode(lm, text)
    if len(ids) < 2:
        raise ValueError("a text of fewer than two tokens has no perplexity")
    window = min(window, lm.config.max_position)
    total = 0.0
    for start in range(0, len(ids) - 1, window - 1):
        chunk = ids[start:start + window]
        width = min(window, max(64, 1 << (len(chunk) - 1).bit_length()))  # a few bucketed widths: few compilations
        batch = pack([chunk[:1]], [chunk[1:]], pad_id=lm.pad_id, length=width)
        total += float(_scored(lm.graph, lm.params, batch.tokens, batch.mask, batch.response_mask)[0])
    return total, len(ids) - 1


def perplexity(lm: LanguageModel, text: str, *, window: int = SCORE_WINDOW) -> float:
    """exp(−mean log p) over the text's tokens (see :func:`text_logprob`)."""
    total, count = text_logprob(lm, text, window=window)
    return math.exp(-total / count)


def read_prompts(path) -> list:
    """Prompts from a file: ``.jsonl`` — one JSON object a line with ``"prompt"`` (a string) or
    ``"messages"`` (a chat: [{"role", "content"}, …]); anything else — one prompt a line. Blank
    lines are skipped. Each prompt is returned as a chat (a list of messages), ready for
    :func:`render_chat`; ValueError names the line that is neither."""
    path = Path(path)
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix != ".jsonl":
            prompts.append([{"role": "user", "content": line.strip()}])
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if isinstance(row, dict) and isinstance(row.get("prompt"), str):
            prompts.append([{"role": "user", "content": row["prompt"]}])
        elif isinstance(row, dict) and isinstance(row.get("messages"), list) and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in row["messages"]) and row["messages"]:
            prompts.append(row["messages"])
        else:
            raise ValueError(f'{path}:{number}: need {{"prompt": TEXT}} or {{"messages": [{{"role", "content"}}, …]}}')
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts
