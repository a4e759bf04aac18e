"""Judges over text: P(y ≻ y′ | x) for batches of (prompt, answer, other answer) — general
preferences, never a scalar reward by force.

* :class:`LLMJudge` — an instruct model asked which of two answers is better; the probability is
  read from the logits of the two label tokens (renormalized over them) and symmetrised over the
  two orders, so that P(a ≻ b) + P(b ≻ a) = 1 exactly and P(a ≻ a) = ½.
* :class:`CyclicLengthJudge` — a programmatic judge with a known non-transitive ground truth: an
  answer's class is its word count mod 3, and class c beats class c+1 (mod 3) with probability
  ½ + margin (rock-paper-scissors over answers); its class-level Nash is uniform over the classes.
* :class:`~gamelab.llm.preference_model.GPMJudge` (``gpm:PATH``) — a general preference model over
  answer-text features, fitted to real votes (:mod:`gamelab.llm.preference_model`).
* :func:`judged_matrix` — every pair of an enumerable list of answers judged: a valid preference
  matrix, the game whose exact Nash gap the engine computes (:func:`judged_game` lifts it to the
  sequence game of a :class:`~gamelab.llm.policy.DecoderPolicy`'s responses, one class per
  response, so :func:`gamelab.llm.train.train` runs any algorithm against the judge).
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

import jax
import numpy as np

from gamelab.llm.checkpoints import LanguageModel, load_model
from gamelab.llm.decoder import forward
from gamelab.llm.games import SequenceGame
from gamelab.llm.text import encode, render_chat

JUDGE_QUESTION = ("Question: {prompt}\n\nAnswer A: {first}\n\nAnswer B: {second}\n\n"
                  "Which answer is better? Reply with the letter A or B only.")
JUDGE_LABELS = ("A", "B")


class PairwiseJudge(Protocol):
    def prob(self, prompts, answers, others) -> np.ndarray:
        """P(answers[i] ≻ others[i] | prompts[i]) for every i, float64 (N,)."""


_last_logits = jax.jit(lambda graph, params, tokens, mask: forward(graph, params, tokens, mask)[:, -1],
                       static_argnums=0)


class LLMJudge:
    """An instruct model as a pairwise judge (see the module doc). ``question``: the user message,
    with ``{prompt}``, ``{first}``, ``{second}``; rendered through the model's chat template when it
    has one. ``labels``: the two answer letters, each one token (with the model's tokenizer)."""

    def __init__(self, lm: LanguageModel, *, question: str = JUDGE_QUESTION, labels=JUDGE_LABELS, batch: int = 8):
        ids = [encode(lm, label, add_bos=False) for label in labels]
        if len(labels) != 2 or any(len(i) != 1 for i in ids) or ids[0] == ids[1]:
            raise ValueError(f"the judge's labels {labels!r} must be two different single tokens of the model")
        self.lm, self.question, self.batch = lm, question, int(batch)
        self.label_ids = np.array([ids[0][0], ids[1][0]])

    def _text(self, prompt, first, second):
        q = self.question.format(prompt=prompt, first=first, second=second)
        return render_chat(self.lm, [{"role": "user", "content": q}]) if self.lm.chat_template else q + "\nAnswer:"

    def first_preferred(self, prompts, first, second) -> np.ndarray:
        """P(label A | the question with ``first`` shown as A), one order only: the two label tokens'
        next-token logits after the rendered question, renormalized over the two. Rows are
        left-padded in batches (positions count real tokens only, so a row's result does not
        depend on its batch); a question longer than the model's context is refused."""
        if not len(prompts) == len(first) == len(second):
            raise ValueError(f"{len(prompts)} prompts, {len(first)} first and {len(second)} second answers: need "
                             "one of each per row")
        rows = [encode(self.lm, self._text(p, a, b), add_bos=None if not self.lm.chat_template else False)
                for p, a, b in zip(prompts, first, second)]
        longest = max((len(r) for r in rows), default=0)
        if longest > self.lm.config.max_position:
            raise ValueError(f"a judge question of {longest} tokens exceeds {self.lm.source}'s context of "
                             f"{self.lm.config.max_position} tokens (shorter prompts or answers)")
        out = [np.empty(0)]
        for start in range(0, len(rows), self.batch):
            chunk = rows[start:start + self.batch]
            width = max(16, 1 << (max(len(r) for r in chunk) - 1).bit_length())  # bucketed: few compilations
            tokens = np.full((self.batch, width), self.lm.pad_id, np.int32)
            mask = np.zeros((self.batch, width), bool)
            for i, r in enumerate(chunk):
                tokens[i, width - len(r):], mask[i, width - len(r):] = r, True
            mask[len(chunk):, -1] = True  # unused rows: one pad token, ignored
            logits = np.asarray(_last_logits(self.lm.graph, self.lm.params, tokens, mask), np.float64)
            pair = logits[:len(chunk)][:, self.label_ids]
            out.append(np.exp(-np.logaddexp(0.0, pair[:, 1] - pair[:, 0])))  # 1 / (1 + e^(B − A)), no overflow
        return np.concatenate(out)

    def prob(self, prompts, answers, others) -> np.ndarray:
        """Symmetrised over the two orders: ½·(P(A | a, b) + 1 − P(A | b, a))."""
        n = len(answers)
        both = self.first_preferred(list(prompts) * 2, list(answers) + list(others), list(others) + list(answers))
        return 0.5 * (both[:n] + 1.0 - both[n:])


class CyclicLengthJudge(NamedTuple):
    """Programmatic judge: class = word count mod 3; class c beats c+1 (mod 3) w.p. ½ + margin.
    ``separator``: what separates words (None: whitespace; empty pieces are not words)."""

    margin: float = 0.4
    separator: str | None = None

    def classes(self, texts) -> np.ndarray:
        return np.array([sum(1 for w in t.split(self.separator) if w) % 3 for t in texts])

    def class_matrix(self) -> np.ndarray:
        C = np.full((3, 3), 0.5)
        for c in range(3):
            C[c, (c + 1) % 3], C[(c + 1) % 3, c] = 0.5 + self.margin, 0.5 - self.margin
        return C

    def prob(self, prompts, answers, others) -> np.ndarray:
        return self.class_matrix()[self.classes(answers), self.classes(others)]


JUDGES = ("cyclic[:margin=M,sep=S] (programmatic, non-transitive) | llm:MODEL (an instruct model asked) | "
          "gpm:PATH (a general preference model fitted to votes over texts: `gamelab llm fit-judge`)")


def parse_judge(spec: str) -> PairwiseJudge:
    """A judge by name (:data:`JUDGES`): ``cyclic`` — :class:`CyclicLengthJudge` (options
    ``margin``, ``sep``); ``llm:MODEL`` — :class:`LLMJudge` over a model ``load_model`` reads
    (smollm2-135m, a Hugging Face folder or a GGUF file); ``gpm:PATH`` —
    :class:`~gamelab.llm.preference_model.GPMJudge` of a model :meth:`~gamelab.llm.preference_model.TextGPM.save`
    wrote (a damaged file raises its JudgeFileError, a ValueError). ValueError names an unknown judge."""
    name, _, rest = spec.partition(":")
    if name == "cyclic":
        options = {}
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq or key not in ("margin", "sep"):
                raise ValueError(f"judge {spec!r}: options are margin=M and sep=S, got {item!r}")
            options[key] = value
        try:
            margin = float(options.get("margin", CyclicLengthJudge._field_defaults["margin"]))
        except ValueError:
            raise ValueError(f"judge {spec!r}: margin must be a number") from None
        if not 0 <= margin <= 0.5:
            raise ValueError(f"judge {spec!r}: margin must be in [0, 0.5], got {margin}")
        return CyclicLengthJudge(margin, options.get("sep"))
    if name == "gpm" and rest:
        from gamelab.llm.preference_model import GPMJudge

        return GPMJudge.load(rest)
    if name == "llm" and rest:
        return LLMJudge(load_model(rest))
    raise ValueError(f"unknown judge {spec!r}; judges: {JUDGES}")


def policy_game(judge: PairwiseJudge, policy, prompts, spec: str) -> SequenceGame:
    """The sequence game of a :class:`~gamelab.llm.policy.DecoderPolicy`'s V^L responses (their
    texts) under ``judge``, ``prompts`` the texts the judge reads. A programmatic judge with
    classes (``classes`` and ``class_matrix``) gives the class-level game — responses in the
    judge's classes, its class matrix for every prompt — whose exact class-level Nash gap the
    runs record; any other judge judges every pair (:func:`judged_game`, one class per response)."""
    texts = policy.response_texts()
    if hasattr(judge, "classes") and hasattr(judge, "class_matrix"):
        C = np.asarray(judge.class_matrix(), np.float64)
        return SequenceGame(policy.vocab, policy.length, np.asarray(judge.classes(texts)),
                            np.broadcast_to(C, (len(prompts),) + C.shape).copy(), spec)
    return judged_game(judge, prompts, texts, policy.vocab, policy.length, spec)


def judged_matrix(judge: PairwiseJudge, prompt: str, answers) -> np.ndarray:
    """P[i, j] = P(answers[i] ≻ answers[j] | prompt) over every pair i < j (one judge call), the
    rest by P[j, i] = 1 − P[i, j] and P[i, i] = ½: a valid preference matrix."""
    n = len(answers)
    i, j = np.triu_indices(n, 1)
    P = np.full((n, n), 0.5)
    if len(i):
        p = np.asarray(judge.prob([prompt] * len(i), [answers[k] for k in i], [answers[k] for k in j]), np.float64)
        P[i, j], P[j, i] = p, 1.0 - p
    return P


def judged_game(judge: PairwiseJudge, prompts, answers, vocab: int, length: int, spec: str = "judged") -> SequenceGame:
    """The sequence game of V^L enumerable answers (``answers[y]``: response y's text, the same for
    every prompt) under ``judge``: one class per response, C[x] = the judged matrix of prompt x."""
    if len(answers) != vocab ** length:
        raise ValueError(f"{len(answers)} answers for V^L = {vocab ** length} responses")
    C = np.stack([judged_matrix(judge, p, answers) for p in prompts])
    return SequenceGame(vocab, length, np.arange(len(answers)), C, spec)
