"""A judge learned from real votes over answer texts: a general preference model (GPM) over text
features, never a scalar reward by force (issue 16, item 4c).

Each answer a to a prompt x has a fixed, deterministic feature vector φ(x, a) (:func:`featurize`),
and the model is the skew-symmetric low-rank GPM of :func:`gamelab.votes.fit_gpm` with its reward
and planes linear in those features:

    P(a ≻ b | x) = σ( r(a) − r(b) + u(a)ᵀv(b) − v(a)ᵀu(b) ),   r = φᵀw, u = Aᵀφ, v = Bᵀφ  (A, B: d × k)

so P(a ≻ b) + P(b ≻ a) = 1 and P(a ≻ a) = ½ exactly (:func:`antisymmetric_expit`), and at rank
k ≥ 1 it can hold cycles; rank 0 is Bradley–Terry over texts (a reward model). It is fitted by
penalized maximum likelihood — the half-win likelihood of :mod:`gamelab.votes` (a tie is half a win
each way), ridge/2·(‖w‖² + ‖A‖² + ‖B‖²) with the ridge by rank (:data:`TEXT_GPM_RIDGE`) — by L-BFGS
with the exact gradient (:func:`gamelab.votes.fit_gpm_weights`, the code ``fit_gpm`` runs with one
embedding per item).

**Features** (:class:`FeatureSettings`; d = 2^hash_bits + 25 + 6):

* hashed word n-grams (n ≤ ``ngrams``; words are ``\\w+`` runs of the lower-cased answer): the key
  ``"n:w1 … wn"`` is hashed by ``zlib.crc32`` of its UTF-8 bytes (not Python's salted ``hash``),
  its low ``hash_bits`` bits pick the column and bit 31 the sign (signed hashing); each column's
  signed count c becomes sign(c)·log(1 + |c|), and the block is scaled to unit Euclidean norm;
* the answer's word count (whitespace-separated, as :class:`~gamelab.llm.judges.CyclicLengthJudge`
  counts) one-hot: exact for 0–15 words, then one bin per power of two (16–31, …, ≥ 4096);
* 6 dense features, each scaled to about [0, 1] by fixed constants (nothing is fitted): a constant
  1, log(1 + words)/log(1001), log(1 + newlines)/log(101), log(1 + list items)/log(101) (lines
  starting with ``-``, ``*``, ``•`` or ``1.``/``1)``), log(1 + code fences)/log(11), and the one
  feature of the prompt crossed in: the share of the prompt's distinct words that the answer uses.
  (The prompt enters only there: features of the prompt alone are the same for both answers and
  would cancel from the reward part.)

What the module gives: :func:`llmfao_answers` (the LLMFAO answer texts and prompt texts),
:func:`fit_text_gpm` (votes + answers → :class:`TextGPM`, with ``save``/``load``),
:func:`held_out_text` (per-vote held-out log-likelihood over folds by prompt or by pair, as
:func:`gamelab.votes.held_out` does for item identities), and :class:`GPMJudge`, a
:class:`~gamelab.llm.judges.PairwiseJudge` over raw texts (``gamelab.llm.judges.parse_judge``
reads ``gpm:PATH``). NumPy and SciPy only.
"""
from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from gamelab import votes as V

FORMAT = 1  # version of the saved file
HASH = "crc32"  # zlib.crc32 of the UTF-8 n-gram key
EXACT_LENGTHS = 16  # word counts 0..15 have their own bin
LENGTH_BINS = EXACT_LENGTHS + 9  # then [16, 32), [32, 64), …, [2048, 4096), ≥ 4096
DENSE = ("bias", "log_words", "log_newlines", "log_list_items", "log_code_fences", "prompt_overlap")
# ridge/2·‖weights‖² by rank: held out on the LLMFAO crowd votes (5 folds by pair and by prompt; README), rank
# 0 did best at 3 of {3, 10, 30, 100}, rank 1 at 30 — the planes want more shrinkage than the reward
TEXT_GPM_RIDGE = {0: 3.0, 1: 30.0}
HELD_OUT_RANKS = (0, 1)
WORD = re.compile(r"\w+")
LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s", re.MULTILINE)


class JudgeFileError(ValueError):
    """A saved judge that is missing, damaged or does not match this code (the message names the file)."""


class AnswerFileError(ValueError):
    """An answers or prompts file that is missing or malformed (the message names the file)."""


# ------------------------------------------------------------------------------------------ features
class FeatureSettings(NamedTuple):
    """What :func:`featurize` computes: 2^``hash_bits`` hashed columns of word n-grams, n ≤ ``ngrams``."""

    hash_bits: int = 10
    ngrams: int = 2

    @property
    def dim(self) -> int:
        return 2 ** self.hash_bits + LENGTH_BINS + len(DENSE)

    def validated(self) -> "FeatureSettings":
        for name, value, lo, hi in (("hash_bits", self.hash_bits, 4, 24), ("ngrams", self.ngrams, 1, 3)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        return FeatureSettings(int(self.hash_bits), int(self.ngrams))


def length_bin(words: int) -> int:
    """The word-count bin: the count itself below 16, then 16 + ⌊log2(words)⌋ − 4, at most 24."""
    return words if words < EXACT_LENGTHS else min(EXACT_LENGTHS + words.bit_length() - 5, LENGTH_BINS - 1)


def _strings(values, what: str) -> list:
    if isinstance(values, str):
        raise ValueError(f"{what} must be a sequence of strings, not one string")
    values = list(values)
    bad = [type(v).__name__ for v in values if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{what} must be strings, got a {bad[0]}")
    return values


def featurize(prompts: Sequence[str], texts: Sequence[str], settings: FeatureSettings = FeatureSettings()):
    """φ(prompts[i], texts[i]) for every i: a SciPy CSR matrix (N, ``settings.dim``), float64 (the
    module doc says what each column is). Deterministic: the same (prompt, text) gives the same row,
    bit for bit, in any batch."""
    from scipy.sparse import csr_matrix

    settings = FeatureSettings(*settings).validated()
    prompts, texts = _strings(prompts, "prompts"), _strings(texts, "texts")
    if len(prompts) != len(texts):
        raise ValueError(f"{len(prompts)} prompts for {len(texts)} texts")
    width, mask = 2 ** settings.hash_bits, 2 ** settings.hash_bits - 1
    indptr, indices, data = [0], [], []
    for prompt, text in zip(prompts, texts):
        tokens = WORD.findall(text.lower())
        counts: dict = {}
        for n in range(1, settings.ngrams + 1):
            for i in range(len(tokens) - n + 1):
                h = zlib.crc32(f"{n}:{' '.join(tokens[i:i + n])}".encode("utf-8"))
                col = h & mask
                counts[col] = counts.get(col, 0) + (-1 if h >> 31 else 1)
        cols = sorted(c for c, v in counts.items() if v)
        vals = np.array([math.copysign(math.log1p(abs(counts[c])), counts[c]) for c in cols])
        if vals.size:
            vals /= math.sqrt(float(vals @ vals))
        words = len(text.split())
        prompt_words = set(WORD.findall(prompt.lower()))
        dense = (1.0, math.log1p(words) / math.log(1001), math.log1p(text.count("\n")) / math.log(101),
                 math.log1p(len(LIST_ITEM.findall(text))) / math.log(101),
                 math.log1p(text.count("```")) / math.log(11),
                 len(prompt_words & set(tokens)) / len(prompt_words) if prompt_words else 0.0)
        indices += cols + [width + length_bin(words)] + list(range(width + LENGTH_BINS, width + LENGTH_BINS + 6))
        data += list(vals) + [1.0] + list(dense)
        indptr.append(len(indices))
    return csr_matrix((np.array(data, dtype=np.float64), np.array(indices, dtype=np.int64),
                       np.array(indptr, dtype=np.int64)), shape=(len(texts), settings.dim))


def antisymmetric_expit(s) -> np.ndarray:
    """σ(s), computed so that antisymmetric_expit(−s) = 1 − antisymmetric_expit(s) exactly in
    floating point: σ(s) for s ≥ 0, 1 − σ(−s) below (both subtractions are exact there)."""
    from scipy.special import expit

    s = np.asarray(s, dtype=np.float64)
    return np.where(s >= 0, expit(np.abs(s)), 1.0 - expit(np.abs(s)))


# ------------------------------------------------------------------------------------------ the model
class TextGPM(NamedTuple):
    """A fitted general preference model over texts (the module doc): weights ``w`` (d,), ``A`` and
    ``B`` (d, rank) of the features ``settings``; ``ridge`` it was fitted with, the training
    ``log_likelihood`` (half-win, without the ridge), ``converged`` and the number of training ``votes``."""

    w: np.ndarray
    A: np.ndarray
    B: np.ndarray
    settings: FeatureSettings = FeatureSettings()
    ridge: float = TEXT_GPM_RIDGE[0]
    log_likelihood: float = 0.0
    converged: bool = True
    votes: int = 0

    @property
    def rank(self) -> int:
        return int(self.A.shape[1])

    def embed(self, features) -> np.ndarray:
        """(N, 1 + 2·rank) rows [r, u, v] of feature rows (N, d)."""
        return np.asarray(features @ np.column_stack([self.w, self.A, self.B]), dtype=np.float64)

    def scores(self, prompts, answers, others) -> np.ndarray:
        """s[i] = r(a) − r(b) + u(a)ᵀv(b) − v(a)ᵀu(b) for a = answers[i], b = others[i] under
        prompts[i]: each distinct (prompt, text) is featurized once, so s is exactly antisymmetric."""
        prompts, answers, others = (_strings(x, what) for x, what in
                                    ((prompts, "prompts"), (answers, "answers"), (others, "others")))
        if not len(prompts) == len(answers) == len(others):
            raise ValueError(f"prompts, answers and others must have one length, got {len(prompts)}, "
                             f"{len(answers)}, {len(others)}")
        keys = list(zip(prompts, answers)) + list(zip(prompts, others))
        index: dict = {}
        rows = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
        unique = list(index)
        E = self.embed(featurize([p for p, _ in unique], [t for _, t in unique], self.settings))
        n = len(answers)
        return V.skew_score(E[rows[:n]], E[rows[n:]])

    def prob(self, prompts, answers, others) -> np.ndarray:
        """P(answers[i] ≻ others[i] | prompts[i]), float64 (N,)."""
        return antisymmetric_expit(self.scores(prompts, answers, others))

    def save(self, path) -> Path:
        """Write the weights and a JSON header (format, hash, feature settings, fit) to one ``.npz``
        file at exactly ``path``."""
        meta = {"format": FORMAT, "kind": "gamelab.text_gpm", "hash": HASH, "settings": self.settings._asdict(),
                "dense": list(DENSE), "length_bins": LENGTH_BINS, "rank": self.rank, "ridge": float(self.ridge),
                "log_likelihood": float(self.log_likelihood), "converged": bool(self.converged),
                "votes": int(self.votes)}
        path = Path(path)
        with path.open("wb") as fh:
            np.savez(fh, w=self.w, A=self.A, B=self.B, meta=np.array(json.dumps(meta)))
        return path

    @staticmethod
    def load(path) -> "TextGPM":
        """A model :meth:`save` wrote; :class:`JudgeFileError` naming the file if it is missing, not
        such a file, damaged, or written with other feature code (format, hash, feature layout)."""
        import zipfile

        path = Path(path)
        if not path.is_file():
            raise JudgeFileError(f"no such judge file: {str(path)!r}" if not path.exists()
                                 else f"not a regular file: {str(path)!r}")
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise JudgeFileError(f"{path}: not a gamelab GPM judge file (a single array, not an .npz archive)")
            with z:
                missing = sorted({"w", "A", "B", "meta"} - set(z.files))
                if missing:
                    raise JudgeFileError(f"{path}: not a gamelab GPM judge file (no {', '.join(missing)})")
                arrays = {k: np.asarray(z[k]) for k in ("w", "A", "B")}
                meta = json.loads(str(z["meta"]))
        except JudgeFileError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise JudgeFileError(f"{path}: not a readable gamelab GPM judge file ({type(exc).__name__}: "
                                 f"{exc})") from None
        if not isinstance(meta, dict) or meta.get("kind") != "gamelab.text_gpm":
            raise JudgeFileError(f"{path}: not a gamelab GPM judge file (its header names no text GPM)")
        expected = {"format": FORMAT, "hash": HASH, "dense": list(DENSE), "length_bins": LENGTH_BINS}
        for key, want in expected.items():
            if meta.get(key) != want:
                raise JudgeFileError(f"{path}: written with {key} {meta.get(key)!r}; this gamelab reads {want!r}")
        try:
            settings = FeatureSettings(**meta["settings"]).validated()
            rank = meta["rank"]
            fit = (float(meta["ridge"]), float(meta["log_likelihood"]), bool(meta["converged"]), int(meta["votes"]))
        except (TypeError, ValueError, KeyError) as exc:
            raise JudgeFileError(f"{path}: damaged header ({exc})") from None
        w, A, B = arrays["w"], arrays["A"], arrays["B"]
        d = settings.dim
        if (w.shape != (d,) or A.shape != (d, rank) or B.shape != (d, rank) or
                not all(x.dtype == np.float64 for x in (w, A, B))):
            raise JudgeFileError(f"{path}: weights of shapes {w.shape}, {A.shape}, {B.shape} ({w.dtype}) do not match "
                                 f"its header (d = {d}, rank {rank}, float64)")
        if not all(np.isfinite(x).all() for x in (w, A, B)):
            raise JudgeFileError(f"{path}: the weights are not all finite")
        return TextGPM(w, A, B, settings, *fit)


class GPMJudge(NamedTuple):
    """A :class:`~gamelab.llm.judges.PairwiseJudge` whose probabilities are a fitted :class:`TextGPM`'s."""

    model: TextGPM

    @staticmethod
    def load(path) -> "GPMJudge":
        return GPMJudge(TextGPM.load(path))

    def prob(self, prompts, answers, others) -> np.ndarray:
        """P(answers[i] ≻ others[i] | prompts[i]), float64 (N,): exactly 1 − the swapped probability."""
        return self.model.prob(prompts, answers, others)


# ------------------------------------------------------------------------------------------ data
class Answers(NamedTuple):
    """Answer texts, ``texts[(prompt id, model)]`` (ids and model names as strings; LLMFAO's models
    under both their name and their numeric id), and the prompts' texts, ``prompts[prompt id]``."""

    texts: dict
    prompts: dict


def _jsonl(path, fields: Sequence[str]) -> list:
    path = Path(path)
    if not path.is_file():
        raise AnswerFileError(f"no such file: {str(path)!r}")
    try:
        rows, where = V.read_records(path)
    except V.VoteFileError as exc:  # not text, malformed CSV, a line that is not JSON
        raise AnswerFileError(str(exc)) from None
    if not rows:
        raise AnswerFileError(f"{path}: no rows")
    for row, at in zip(rows, where):
        missing = [f for f in fields if f not in row]
        if missing:
            raise AnswerFileError(f"{path}: {at}: no field {missing[0]!r}")
    return rows


def llmfao_answers(results_jsonl, prompts_jsonl) -> Answers:
    """The LLMFAO answers (``results.jsonl``: ``model`` id, ``name``, ``prompt`` id, ``result`` text)
    and prompts (``prompts.jsonl``: ``id``, ``text``); :class:`AnswerFileError` names a missing file,
    a bad line, a field that is missing or not text, or two answers of one model to one prompt."""
    prompts = {}
    for row in _jsonl(prompts_jsonl, ("id", "text")):
        if not isinstance(row["text"], str):
            raise AnswerFileError(f"{prompts_jsonl}: prompt {row['id']!r}: text is not a string")
        prompts[str(row["id"])] = row["text"]
    texts = {}
    for row in _jsonl(results_jsonl, ("model", "prompt", "result")):
        if not isinstance(row["result"], str):
            raise AnswerFileError(f"{results_jsonl}: model {row['model']!r}, prompt {row['prompt']!r}: result is not "
                                  "a string")
        for model in {str(row["model"]), str(row.get("name", row["model"]))}:
            key = (str(row["prompt"]), model)
            if key in texts:
                raise AnswerFileError(f"{results_jsonl}: two answers of model {model!r} to prompt {key[0]!r}")
            texts[key] = row["result"]
    return Answers(texts, prompts)


class Items(NamedTuple):
    """The distinct (prompt, model) answers the votes compare: their prompt texts and answer texts,
    and each vote's left and right item."""

    prompts: list
    texts: list
    left: np.ndarray
    right: np.ndarray


def vote_items(votes: V.Votes, answers: Answers | Mapping, prompts: Mapping | None = None) -> Items:
    """Each vote's two answers: ``answers`` maps (prompt id, model) → text (an :class:`Answers`, or a
    mapping with ``prompts`` mapping prompt id → prompt text). ValueError names missing answers."""
    if isinstance(answers, Answers):
        answers, prompts = answers.texts, answers.prompts if prompts is None else prompts
    if not isinstance(answers, Mapping):
        raise ValueError(f"answers must map (prompt id, model) to a text, got {type(answers).__name__}")
    if prompts is None or not isinstance(prompts, Mapping):
        raise ValueError("the prompts' texts are needed (a feature reads them): pass prompts={id: text}, or answers "
                         "from llmfao_answers")
    if votes.prompt is None:
        raise ValueError("these votes have no prompt column: the answer texts are looked up by (prompt, model)")
    index: dict = {}
    left = np.array([index.setdefault((str(p), votes.names[i]), len(index)) for p, i in zip(votes.prompt, votes.left)])
    right = np.array([index.setdefault((str(p), votes.names[i]), len(index)) for p, i in zip(votes.prompt, votes.right)])
    keys = list(index)
    missing = [k for k in keys if k not in answers]
    if missing:
        raise ValueError(f"no answer text for {len(missing)} (prompt, model) pair(s) of the votes, e.g. {missing[:3]}")
    missing = sorted({p for p, _ in keys if p not in prompts})
    if missing:
        raise ValueError(f"no text for prompt(s) {missing[:5]} of the votes")
    return Items([prompts[p] for p, _ in keys], [answers[k] for k in keys], left.astype(np.int64),
                 right.astype(np.int64))


def default_ridge(rank: int) -> float:
    """:data:`TEXT_GPM_RIDGE` of the rank (ranks above 1 take rank 1's)."""
    return TEXT_GPM_RIDGE[min(V.check_rank(rank), max(TEXT_GPM_RIDGE))]


def _as_votes(votes) -> V.Votes:
    return votes if isinstance(votes, V.Votes) else V.load_votes(votes)


# ------------------------------------------------------------------------------------------ fitting
def fit_features(features, items: Items, votes: V.Votes, rank: int, *, settings: FeatureSettings,
                 ridge: float | None = None, seed: int = 0, tol: float = 1e-10, max_iter: int = 5000) -> TextGPM:
    """:func:`fit_text_gpm` on features already computed (rows: ``items``)."""
    ridge = default_ridge(rank) if ridge is None else ridge
    w, A, B, ll, ok = V.fit_gpm_weights(features, items.left, items.right, votes.outcome, rank, ridge=ridge,
                                        seed=seed, tol=tol, max_iter=max_iter)
    return TextGPM(w, A, B, settings, float(ridge), ll, ok, votes.size)


def fit_text_gpm(votes, answers: Answers | Mapping, rank: int, *, prompts: Mapping | None = None,
                 ridge: float | None = None, settings: FeatureSettings = FeatureSettings(), seed: int = 0,
                 tol: float = 1e-10, max_iter: int = 5000) -> TextGPM:
    """The GPM of the given rank over the answer texts the votes compare (``votes``: a
    :class:`~gamelab.votes.Votes` with a prompt column, or a vote file :func:`~gamelab.votes.load_votes`
    reads; item names are the models, looked up in ``answers`` with the vote's prompt id); ``ridge``
    None: :func:`default_ridge` of the rank."""
    votes = _as_votes(votes)
    settings = FeatureSettings(*settings).validated()
    items = vote_items(votes, answers, prompts)
    return fit_features(featurize(items.prompts, items.texts, settings), items, votes, rank, settings=settings,
                        ridge=ridge, seed=seed, tol=tol, max_iter=max_iter)


def held_out_text(votes, answers: Answers | Mapping, *, ranks: Sequence[int] = HELD_OUT_RANKS, by: str = "prompt",
                  splits: int = V.SPLITS, seed: int = 0, prompts: Mapping | None = None,
                  ridge: float | None = None, settings: FeatureSettings = FeatureSettings(),
                  max_iter: int = 5000) -> V.HeldOut:
    """Per-vote held-out log-likelihood and accuracy (a :class:`gamelab.votes.HeldOut`) of the text
    GPM at each rank ('text0' = Bradley–Terry over texts, 'text1', …), beside the GPM of rank 0 over
    the model identities ('model_bt', :func:`gamelab.votes.fit_gpm`) and a fair coin ('coin', log ½),
    on folds of whole prompts or pairs (:func:`gamelab.votes.folds`). ``summary('text0')`` gives
    each rank's paired difference to rank 0. ``ridge`` None: each rank its :func:`default_ridge`."""
    votes = _as_votes(votes)
    ranks = tuple(ranks)
    if not ranks or len(set(ranks)) != len(ranks):
        raise ValueError(f"ranks must be distinct and at least one, got {ranks!r}")
    settings = FeatureSettings(*settings).validated()
    items = vote_items(votes, answers, prompts)
    Phi = featurize(items.prompts, items.texts, settings)
    models = (*(f"text{k}" for k in ranks), "model_bt", "coin")

    def predict(f, train, test):
        tv = V.subset(votes, train)
        t_items = Items(items.prompts, items.texts, items.left[train], items.right[train])
        p = {"model_bt": V.fit_gpm(tv, 0).matrix()[test.left, test.right], "coin": np.full(test.size, 0.5)}
        for k in ranks:
            model = fit_features(Phi, t_items, tv, k, settings=settings, ridge=ridge, seed=seed + f, max_iter=max_iter)
            E = model.embed(Phi)
            p[f"text{k}"] = antisymmetric_expit(V.skew_score(E[items.left[~train]], E[items.right[~train]]))
        return p

    return V.cross_validate(votes, models, predict, by=by, splits=splits, seed=seed)


def held_out_table(results: Sequence[V.HeldOut]) -> list:
    """Lines of a text table of held-out results (:func:`held_out_text`): per split, each model's mean
    ± s.e. over folds of the log-likelihood and accuracy per vote, and each text rank's paired
    difference to 'text0' where it is there."""
    lines = []
    for h in results:
        base = "text0" if "text0" in h.models else h.models[0]
        s = h.summary(base)
        lines.append(f"held out by {h.by} ({len(h.votes)} folds, {int(np.sum(h.votes))} votes; mean ± s.e. over folds):")
        lines.append(f"  {'model':<10} {'log-lik/vote':>20} {'accuracy':>18} {'minus ' + base:>22}")
        for m in h.models:
            r = s[m]
            diff = (f"{r[f'minus_{base}']:+.4f} ± {r[f'minus_{base}_se']:.4f}" if f"minus_{base}" in r else "")
            lines.append(f"  {m:<10} {r['log_likelihood']:>11.4f} ± {r['log_likelihood_se']:.4f} "
                         f"{r['accuracy']:>9.3f} ± {r['accuracy_se']:.3f} {diff:>22}")
    return lines
