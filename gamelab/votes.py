"""Real preference data: pairwise votes in, a preference game (and its maximal lottery) out.

A *vote* compares two items (models, answers, policies) and names a winner — ``left``, ``right`` or
``tie`` — optionally with the annotator who gave it and the prompt it was about. This module reads
votes from CSV or JSON-lines files (:func:`load_votes`; the defaults read the LLMFAO files of
``../shared/data/llmfao/`` as they are), filters them (:func:`select`), and estimates the preference
matrix ``P[i, j] = Pr(i ≻ j)`` in three ways (DESIGN §5b):

* :func:`empirical_matrix` — the default and the one anyone can recompute: votes pooled over prompts,
  a tie half a win to each side, ``P[i, j]`` = i's share of the (i, j) votes, ½ for a pair never
  compared and on the diagonal;
* :func:`bradley_terry` — P = σ(r_i − r_j), the reward fitted by :func:`gamelab.feedback.bradley_terry_fit`
  to the same pair counts (ties as half-wins, a small ridge: one model that won every vote would
  otherwise have an infinite reward);
* :func:`fit_gpm` — a *general preference model* that can hold cycles, the skew-symmetric low-rank
  ("blade-chest") embedding ``P(i ≻ j) = σ(r_i − r_j + Σ_k u_ik v_jk − v_ik u_jk)``, fitted by
  maximum likelihood (L-BFGS with the exact gradient) with a ridge; rank 0 is Bradley–Terry, and
  :func:`select_rank` picks the rank by held-out likelihood.

Every likelihood here treats a vote with outcome o ∈ {1, ½, 0} (left won, tie, right won) as the
half-win log-likelihood ``o·log p + (1 − o)·log(1 − p)``, p the model's Pr(left ≻ right).
:func:`held_out` compares the estimators on votes left out by prompt or by pair; :func:`count_cycles`
and :func:`confident_cycles` count the intransitive triples a matrix or the votes assert;
:func:`bootstrap_lottery` gives the maximal lottery (the Nash policy of P, by :func:`gamelab.nash.exact_nash`)
with bootstrap intervals over resampled votes or resampled annotators, and
:func:`rankings` the Bradley–Terry and win-rate rankings beside it.

Everything is NumPy/SciPy on the host except the Bradley–Terry fit, which is gamelab's own (JAX).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np

from gamelab import defaults

# Column names of a vote file (gamelab.defaults); they read ../shared/data/llmfao/*-comparisons.csv directly.
LEFT, RIGHT, WINNER, ANNOTATOR, PROMPT = (defaults.VOTE_COLUMNS[k] for k in ("left", "right", "winner", "annotator",
                                                                            "prompt"))
OUTCOMES = {"left": 1.0, "right": 0.0, "tie": 0.5}  # winner → the left item's share of the vote
ESTIMATORS = ("empirical", "bt", "gpm")
BT_RIDGE = 1e-2  # ridge/2·‖r‖² on the Bradley–Terry reward (pairs counted in both orders)
# ridge/2·(‖r‖² + ‖U‖² + ‖V‖²) of the GPM: 3 beat 1 held out on the LLMFAO votes (README), GPT-4's at ranks 0–1
# excepted
GPM_RIDGE = 3.0
GPM_RANKS = (0, 1, 2, 3, 4, 6)  # ranks select_rank tries (0 = Bradley–Terry, fitted as a GPM)
SPLITS = defaults.VOTE_SPLITS  # folds of held_out / select_rank
SUPPORT_TOL = 1e-9  # a probability above this is in the support
LEVEL = defaults.LEVEL  # bootstrap intervals and confident_cycles' one-sided tests


class VoteFileError(ValueError):
    """A vote file that is missing, unreadable or malformed (the message names where)."""


class Votes(NamedTuple):
    """Pairwise votes over the items ``names``.

    ``left``/``right`` (N,) item indices; ``outcome`` (N,) the left item's share (1 won, ½ tie, 0
    lost); ``annotator``/``prompt`` (N,) strings, or None where the file has no such column."""

    names: tuple
    left: np.ndarray
    right: np.ndarray
    outcome: np.ndarray
    annotator: np.ndarray | None = None
    prompt: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def size(self) -> int:
        """The number of votes."""
        return int(self.left.shape[0])


# ------------------------------------------------------------------------------------------ loading
def make_votes(left, right, winner, *, annotator=None, prompt=None, names=None) -> Votes:
    """Votes from item names and winners (``'left'``/``'right'``/``'tie'``, or the left item's share
    1/0/½). Items are numbered in sorted order of their names unless ``names`` fixes the list (it
    may hold items that no vote mentions; a vote naming an item not in it is an error)."""
    left = np.asarray(left, dtype=object).astype(str)
    right = np.asarray(right, dtype=object).astype(str)
    winner = np.asarray(winner, dtype=object)
    if left.ndim != 1 or left.shape != right.shape or left.shape != winner.shape:
        raise ValueError(f"left, right and winner must be 1-D of one length, got {left.shape}, {right.shape}, "
                         f"{winner.shape}")
    if left.size == 0:
        raise ValueError("no votes")
    outcome = np.empty(left.size)
    for k, w in enumerate(winner):
        if isinstance(w, str):
            key = w.strip().lower()
            if key not in OUTCOMES:
                raise ValueError(f"vote {k}: winner {w!r} is not one of {', '.join(OUTCOMES)}")
            outcome[k] = OUTCOMES[key]
        elif isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(w, bool) and w in (0, 0.5, 1):
            outcome[k] = float(w)
        else:
            raise ValueError(f"vote {k}: winner {w!r} is not one of {', '.join(OUTCOMES)} (or 1, 0.5, 0)")
    if names is None:
        names = tuple(sorted(set(left) | set(right)))
    else:
        names = tuple(str(x) for x in names)
        if len(set(names)) != len(names):
            raise ValueError("names must be distinct")
        unknown = sorted((set(left) | set(right)) - set(names))
        if unknown:
            raise ValueError(f"votes name items not in names: {unknown[:5]}")
    if len(names) < 2:
        raise ValueError(f"votes must involve at least 2 items, got {list(names)}")
    index = {name: i for i, name in enumerate(names)}
    extra = {}
    for field, values in (("annotator", annotator), ("prompt", prompt)):
        if values is not None:
            values = np.asarray(values, dtype=object).astype(str)
            if values.shape != left.shape:
                raise ValueError(f"{field} must have one entry per vote ({left.size}), got shape {values.shape}")
        extra[field] = values
    return Votes(names, np.array([index[x] for x in left], dtype=np.int64),
                 np.array([index[x] for x in right], dtype=np.int64), outcome, **extra)


def read_records(path: Path):
    """(rows as dicts, 'line N' labels) of a CSV (with a header) or JSON-lines file; a file that is
    not text, malformed CSV or a line that is not a JSON object raises :class:`VoteFileError`
    naming the file (and line)."""
    try:
        return _read_records(path)
    except UnicodeDecodeError as exc:
        raise VoteFileError(f"{path}: not a text file ({exc.reason})") from None
    except csv.Error as exc:
        raise VoteFileError(f"{path}: malformed CSV ({exc})") from None


def _read_records(path: Path):
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows, where = [], []
        with path.open(encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise VoteFileError(f"{path}: line {lineno}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise VoteFileError(f"{path}: line {lineno}: expected a JSON object per line")
                rows.append(row)
                where.append(f"line {lineno}")
        return rows, where
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise VoteFileError(f"{path}: file is empty (a CSV vote file starts with a header row)")
        rows = list(reader)
    return rows, [f"line {k + 2}" for k in range(len(rows))]


def load_votes(path, *, left: str = LEFT, right: str = RIGHT, winner: str = WINNER,
               annotator: str | None = ANNOTATOR, prompt: str | None = PROMPT, names=None) -> Votes:
    """Read votes from a CSV file with a header row, or a JSON-lines file (``.jsonl``).

    ``left``/``right`` name the columns of the two items, ``winner`` the column holding ``left``,
    ``right`` or ``tie``. ``annotator`` and ``prompt`` name optional columns: a file without the
    default column (``worker``, ``prompt``) simply has none; None ignores the column. A missing
    required column, an empty file or a bad winner raises :class:`VoteFileError` naming the line."""
    p = Path(path)
    if not p.is_file():
        raise VoteFileError(f"no such vote file: {str(p)!r}" if not p.exists() else f"not a regular file: {str(p)!r}")
    rows, where = read_records(p)
    if not rows:
        raise VoteFileError(f"{p}: no votes in the file")
    columns = set(rows[0])
    for role, col in (("left", left), ("right", right), ("winner", winner)):
        if col not in columns:
            raise VoteFileError(f"{p}: no {role} column {col!r} (columns: {', '.join(map(str, rows[0]))})")
    optional = {}
    for role, col, default in (("annotator", annotator, ANNOTATOR), ("prompt", prompt, PROMPT)):
        if col is None or (col not in columns and col == default):
            optional[role] = None
        elif col not in columns:
            raise VoteFileError(f"{p}: no {role} column {col!r} (columns: {', '.join(map(str, rows[0]))})")
        else:
            optional[role] = col
    values = {role: [] for role in ("left", "right", "winner", "annotator", "prompt")}
    for row, at in zip(rows, where):
        for role, col in (("left", left), ("right", right), ("winner", winner), *optional.items()):
            if col is None:
                continue
            v = row.get(col)
            if v is None or (isinstance(v, str) and not v.strip()):
                raise VoteFileError(f"{p}: {at}: empty {role} ({col!r})")
            values[role].append(v)
        w = values["winner"][-1]
        if not (isinstance(w, str) and w.strip().lower() in OUTCOMES):
            raise VoteFileError(f"{p}: {at}: winner {w!r} is not one of {', '.join(OUTCOMES)}")
    try:
        return make_votes(values["left"], values["right"], values["winner"], names=names,
                          annotator=values["annotator"] if optional["annotator"] else None,
                          prompt=values["prompt"] if optional["prompt"] else None)
    except ValueError as exc:
        raise VoteFileError(f"{p}: {exc}") from None


def select(votes: Votes, *, prompts: Sequence | None = None, annotators: Sequence | None = None,
           exclude_annotators: Sequence | None = None) -> Votes:
    """The votes on the given prompts and by the given annotators (or all but ``exclude_annotators``).
    Values are compared as strings; the item list is kept, so matrices keep their shape."""
    keep = np.ones(votes.size, dtype=bool)
    for field, wanted, exclude in (("prompt", prompts, None), ("annotator", annotators, exclude_annotators)):
        column = getattr(votes, field)
        for values, inside in ((wanted, True), (exclude, False)):
            if values is None:
                continue
            if column is None:
                raise ValueError(f"these votes have no {field} column to filter on")
            values = {str(v) for v in values}
            unknown = sorted(values - set(column))
            if unknown:
                raise ValueError(f"no votes with {field} {unknown[:5]}")
            keep &= np.isin(column, list(values)) == inside
    if not keep.any():
        raise ValueError("the filters leave no votes")
    return subset(votes, keep)


def subset(votes: Votes, rows) -> Votes:
    """The votes at ``rows`` (a boolean mask or indices), items unchanged."""
    take = lambda a: None if a is None else a[rows]
    return Votes(votes.names, votes.left[rows], votes.right[rows], votes.outcome[rows], take(votes.annotator),
                 take(votes.prompt))


# ------------------------------------------------------------------------------------ pair counts
class PairCounts(NamedTuple):
    """Sufficient statistics of the votes: ``N[i, j] = N[j, i]`` votes between i and j, and
    ``wins[i, j]`` i's share of them (ties half each, so wins + winsᵀ = N); both (..., n, n), with a
    leading batch axis when weights are batched."""

    N: np.ndarray
    wins: np.ndarray


def pair_counts(votes: Votes, weights=None) -> PairCounts:
    """Count the votes, each with weight ``weights[k]`` (default 1; an array (B, N) gives B sets of
    counts at once — bootstrap resamples). Self-comparisons count half a win to each side."""
    n, m = votes.n, votes.size
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape[-1] != m or w.ndim > 2:
        raise ValueError(f"weights must have shape ({m},) or (B, {m}), got {w.shape}")
    fwd = votes.left * n + votes.right
    bwd = votes.right * n + votes.left
    flat = lambda idx, vals: _scatter(idx, vals, n * n)
    N = flat(fwd, w) + flat(bwd, w)
    wins = flat(fwd, w * votes.outcome) + flat(bwd, w * (1.0 - votes.outcome))
    shape = w.shape[:-1] + (n, n)
    return PairCounts(N.reshape(shape), wins.reshape(shape))


def _scatter(idx, vals, size):
    """Sums of ``vals[..., k]`` into bins ``idx[k]`` along the last axis (a sparse matrix product)."""
    from scipy.sparse import csr_matrix

    M = csr_matrix((np.ones(idx.size), (np.arange(idx.size), idx)), shape=(idx.size, size))
    return np.asarray((M.T @ vals.T).T) if vals.ndim == 2 else M.T @ vals


def matrix_from_counts(counts: PairCounts) -> np.ndarray:
    """The empirical preference matrix of pair counts: wins / N, ½ where N = 0 and on the diagonal."""
    N, wins = counts
    P = np.where(N > 0, wins / np.where(N > 0, N, 1.0), 0.5)
    i = np.arange(P.shape[-1])
    P[..., i, i] = 0.5
    return P


def empirical_matrix(votes: Votes) -> np.ndarray:
    """``P[i, j]`` = i's share of the votes between i and j (ties half a win each side), pooled over
    prompts and annotators; ½ for a pair never compared (no evidence) and on the diagonal."""
    return matrix_from_counts(pair_counts(votes))


# ----------------------------------------------------------------------------- Bradley–Terry
def bradley_terry_rewards(votes: Votes, *, ridge: float = BT_RIDGE, counts: PairCounts | None = None) -> np.ndarray:
    """Bradley–Terry rewards (mean zero) maximizing the half-win likelihood of the votes minus
    ridge/2·‖r‖², by :func:`gamelab.feedback.bradley_terry_fit` on the pair counts."""
    import jax.numpy as jnp

    from gamelab.feedback import bradley_terry_fit

    if not (np.isfinite(ridge) and ridge > 0):
        raise ValueError(f"ridge must be positive, got {ridge!r}")
    counts = pair_counts(votes) if counts is None else counts
    P = matrix_from_counts(counts)
    # The fit counts each ordered pair once, so N (both orders) halves to one count per vote.
    r = bradley_terry_fit(jnp.asarray(P), jnp.asarray(counts.N / 2.0), jnp.zeros(votes.n), ridge)
    return np.asarray(r, dtype=np.float64)


def bt_matrix(rewards) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    from scipy.special import expit

    return expit(r[:, None] - r[None, :])


def bradley_terry(votes: Votes, *, ridge: float = BT_RIDGE) -> np.ndarray:
    """The Bradley–Terry preference matrix σ(r_i − r_j) of the votes."""
    return bt_matrix(bradley_terry_rewards(votes, ridge=ridge))


# --------------------------------------------------------------- general preference model
class GPM(NamedTuple):
    """``P(i ≻ j) = σ(r_i − r_j + u_iᵀv_j − v_iᵀu_j)``: a Bradley–Terry reward plus ``rank``
    skew-symmetric planes (U, V of shape (n, rank))."""

    r: np.ndarray
    U: np.ndarray
    V: np.ndarray
    log_likelihood: float  # of the training votes (half-win), without the ridge
    converged: bool

    @property
    def rank(self) -> int:
        return int(self.U.shape[1])

    def scores(self) -> np.ndarray:
        """The skew-symmetric logit matrix S, P = σ(S)."""
        return self.r[:, None] - self.r[None, :] + self.U @ self.V.T - self.V @ self.U.T

    def matrix(self) -> np.ndarray:
        from scipy.special import expit

        return expit(self.scores())


def gpm_objective(features, left, right, outcome, rank: int, ridge: float, weight=None):
    """The penalized negative half-win log-likelihood of a general preference model whose reward and
    planes are linear in item features, with its exact gradient: a function ``x → (value, grad)``.

    Item t has features ``features[t]`` ((T, d), a NumPy array or a SciPy sparse matrix; the identity
    gives every item its own embedding, as :func:`fit_gpm` does); ``x`` = [w (d), A (d·rank),
    B (d·rank)] gives r = Φw, U = ΦA, V = ΦB and comparison m the skew-symmetric score
    s = r_l − r_r + u_lᵀv_r − v_lᵀu_r (l = ``left[m]``, r = ``right[m]``). It adds
    −weight_m·(o·log σ(s) + (1 − o)·log σ(−s)), o = ``outcome[m]`` the left item's share (1, ½, 0;
    weights default 1); the penalty is ridge/2·‖x‖²."""
    from scipy.sparse import csr_matrix
    from scipy.special import expit, log_expit

    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    outcome = np.asarray(outcome, dtype=np.float64)
    T, d = features.shape
    m = left.size
    w = np.ones(m) if weight is None else np.asarray(weight, dtype=np.float64)
    if left.ndim != 1 or right.shape != left.shape or outcome.shape != left.shape or w.shape != left.shape:
        raise ValueError(f"left, right, outcome and weight must be 1-D of one length, got {left.shape}, "
                         f"{right.shape}, {outcome.shape}, {w.shape}")
    if m and (min(left.min(), right.min()) < 0 or max(left.max(), right.max()) >= T):
        raise ValueError(f"comparisons must index the {T} items (the rows of features)")
    one_hot = lambda idx: csr_matrix((np.ones(m), (np.arange(m), idx)), shape=(m, T))
    L, R = one_hot(left), one_hot(right)  # comparison → item incidence
    k = rank

    def objective(x):
        E = np.asarray(features @ x.reshape(1 + 2 * k, d).T)  # (T, 1 + 2k): r, U, V of every item
        El, Er = np.asarray(L @ E), np.asarray(R @ E)
        Ul, Vl, Ur, Vr = El[:, 1:1 + k], El[:, 1 + k:], Er[:, 1:1 + k], Er[:, 1 + k:]
        s = skew_score(El, Er)
        nll = -np.sum(w * (outcome * log_expit(s) + (1.0 - outcome) * log_expit(-s)))
        g = (w * (expit(s) - outcome))[:, None]  # d nll / d s
        G = np.asarray(L.T @ np.hstack([g, g * Vr, -g * Ur]) + R.T @ np.hstack([-g, -g * Vl, g * Ul]))
        grad = np.asarray(features.T @ G).T.ravel()  # d nll / d (w, A, B), in x's layout
        return nll + 0.5 * ridge * x @ x, grad + ridge * x

    return objective


def skew_score(El, Er) -> np.ndarray:
    """s = r_l − r_r + u_lᵀv_r − v_lᵀu_r from rows [r, u (k), v (k)] of the left (``El``) and right
    (``Er``) items' embeddings, (M, 1 + 2k) each: swapping El and Er negates s bit for bit, and equal
    rows give exactly 0."""
    k = (El.shape[1] - 1) // 2
    Ul, Vl, Ur, Vr = El[:, 1:1 + k], El[:, 1 + k:], Er[:, 1:1 + k], Er[:, 1 + k:]
    return El[:, 0] - Er[:, 0] + (np.sum(Ul * Vr, axis=1) - np.sum(Vl * Ur, axis=1))


def check_rank(rank) -> int:
    """A GPM rank (an integer ≥ 0) as an int, or ValueError naming it."""
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 0:
        raise ValueError(f"rank must be an integer ≥ 0, got {rank!r}")
    return int(rank)


def fit_gpm_weights(features, left, right, outcome, rank: int, *, ridge: float, weight=None, seed: int = 0,
                    tol: float = 1e-10, max_iter: int = 5000):
    """(w (d,), A (d, rank), B (d, rank), the log-likelihood without the ridge, converged) maximizing
    the penalized likelihood of :func:`gpm_objective`, by L-BFGS with the exact gradient from a small
    random start (``seed``: w = 0, A and B 0.1·N(0, 1); the zero start is a saddle point for A, B)."""
    from scipy.optimize import minimize

    rank = check_rank(rank)
    if not (np.isfinite(ridge) and ridge > 0):
        raise ValueError(f"ridge must be positive, got {ridge!r}")
    d = features.shape[1]
    objective = gpm_objective(features, left, right, outcome, rank, ridge, weight)
    rng = np.random.default_rng(seed)
    x0 = np.concatenate([np.zeros(d), 0.1 * rng.standard_normal(2 * d * rank)])
    res = minimize(objective, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-9, "maxcor": 30})
    x = res.x
    log_likelihood = -(res.fun - 0.5 * ridge * x @ x)  # the objective at x, as L-BFGS returned it
    return x[:d], x[d:d + d * rank].reshape(d, rank), x[d + d * rank:].reshape(d, rank), float(log_likelihood), \
        bool(res.success)


def fit_gpm(votes: Votes, rank: int, *, ridge: float = GPM_RIDGE, seed: int = 0, counts: PairCounts | None = None,
            tol: float = 1e-10, max_iter: int = 5000) -> GPM:
    """Maximum-likelihood general preference model of the given rank (a penalized MLE: the ridge
    ridge/2·(‖r‖² + ‖U‖² + ‖V‖²) keeps it finite on sparse votes), by L-BFGS with the exact gradient
    from a small random start (``seed``; the zero start is a saddle point for U, V):
    :func:`fit_gpm_weights` with one free embedding per item (identity features) and the votes as
    weighted wins of ordered pairs."""
    from scipy.sparse import identity

    counts = pair_counts(votes) if counts is None else counts
    C = counts.wins / 2.0  # ordered wins, each vote once: C[i, j] + C[j, i] = votes between i and j
    np.fill_diagonal(C, 0.0)
    i, j = np.nonzero(C)
    r, U, V, log_likelihood, converged = fit_gpm_weights(identity(votes.n, format="csr"), i, j, np.ones(i.size),
                                                         rank, ridge=ridge, weight=C[i, j], seed=seed, tol=tol,
                                                         max_iter=max_iter)
    return GPM(r - r.mean(), U, V, log_likelihood, converged)


# ------------------------------------------------------------------------------ likelihoods
def half_win_log_likelihood(p, outcome) -> np.ndarray:
    """o·log p + (1 − o)·log(1 − p) elementwise, p (the left item's win probability) clipped away
    from 0 and 1, o the left item's share of the vote (1 won, ½ tie, 0 lost)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return outcome * np.log(p) + (1.0 - outcome) * np.log1p(-p)


def decided_accuracy(p, outcome) -> float:
    """The fraction of decided (non-tie) votes whose winner the left item's win probability p favours
    (p of exactly ½ counts half); NaN if every vote is a tie."""
    p, outcome = np.asarray(p, dtype=np.float64), np.asarray(outcome, dtype=np.float64)
    decided = outcome != 0.5
    if not decided.any():
        return float("nan")
    p = p[decided]
    hit = np.where(p == 0.5, 0.5, (p > 0.5) == (outcome[decided] == 1.0))
    return float(np.mean(hit))


def folds(votes: Votes, by: str, splits: int = SPLITS, seed: int = 0) -> np.ndarray:
    """(N,) the fold (0..splits−1) of each vote: whole prompts (``by='prompt'``), whole unordered
    pairs (``'pair'``), or single votes (``'vote'``) are assigned to folds at random."""
    rng = np.random.default_rng(seed)
    if by == "prompt":
        if votes.prompt is None:
            raise ValueError("these votes have no prompt column: split by 'pair' or 'vote'")
        _, key = np.unique(votes.prompt, return_inverse=True)
    elif by == "pair":
        lo, hi = np.minimum(votes.left, votes.right), np.maximum(votes.left, votes.right)
        _, key = np.unique(lo * votes.n + hi, return_inverse=True)
    elif by == "vote":
        key = np.arange(votes.size)
    else:
        raise ValueError(f"split by 'prompt', 'pair' or 'vote', got {by!r}")
    groups = int(key.max()) + 1
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or not 2 <= splits <= groups:
        raise ValueError(f"splits must be an integer in [2, {groups}] (the number of {by}s), got {splits!r}")
    order = rng.permutation(groups)
    fold_of = np.empty(groups, dtype=np.int64)
    fold_of[order] = np.arange(groups) % splits
    return fold_of[key]


class HeldOut(NamedTuple):
    """Held-out scores of each model over the folds of one split: ``log_likelihood[m]`` and
    ``accuracy[m]`` (folds,) the mean per held-out vote in each fold; ``rank`` the GPM rank used."""

    by: str
    models: tuple
    log_likelihood: dict
    accuracy: dict
    votes: np.ndarray  # (folds,) held-out votes per fold

    def summary(self, base: str | None = None) -> dict:
        """Per model: mean and standard error (over folds) of the per-vote log-likelihood and accuracy,
        and for every other model the paired (same folds) difference to ``base`` (default: the first,
        'bt'; 'gpm0' compares every rank at one ridge)."""
        out = {}
        base = self.models[0] if base is None else base
        if base not in self.models:
            raise ValueError(f"base must be one of {', '.join(self.models)}, got {base!r}")
        for m in self.models:
            ll, acc = np.asarray(self.log_likelihood[m]), np.asarray(self.accuracy[m])
            se = lambda a: float(np.std(a, ddof=1) / np.sqrt(a.size))
            row = {"log_likelihood": float(ll.mean()), "log_likelihood_se": se(ll), "accuracy": float(acc.mean()),
                   "accuracy_se": se(acc)}
            if m != base:
                d = ll - np.asarray(self.log_likelihood[base])
                row[f"minus_{base}"] = float(d.mean())
                row[f"minus_{base}_se"] = se(d)
            out[m] = row
        return out


def held_out(votes: Votes, *, by: str = "pair", splits: int = SPLITS, ranks: Sequence[int] = GPM_RANKS,
             seed: int = 0, bt_ridge: float = BT_RIDGE, gpm_ridge: float = GPM_RIDGE) -> HeldOut:
    """Cross-validated per-vote log-likelihood and accuracy of Bradley–Terry ('bt'), the general
    preference model of each rank in ``ranks`` ('gpm1', 'gpm2', …; rank 0 is the same model class as
    'bt' with :data:`GPM_RIDGE`), the empirical matrix ('empirical': ½ on pairs unseen in training)
    and a fair coin ('coin', log ½). Folds of ``by`` ∈ {'prompt', 'pair', 'vote'}."""
    models = ("bt", *(f"gpm{k}" for k in ranks), "empirical", "coin")

    def predict(f, train, test):
        train = subset(votes, train)
        counts = pair_counts(train)
        matrices = {"bt": bt_matrix(bradley_terry_rewards(train, ridge=bt_ridge, counts=counts)),
                    "empirical": matrix_from_counts(counts), "coin": np.full((votes.n, votes.n), 0.5)}
        for k in ranks:
            matrices[f"gpm{k}"] = fit_gpm(train, k, ridge=gpm_ridge, seed=seed + f, counts=counts).matrix()
        return {m: P[test.left, test.right] for m, P in matrices.items()}

    return cross_validate(votes, models, predict, by=by, splits=splits, seed=seed)


def cross_validate(votes: Votes, models: Sequence[str], predict: Callable, *, by: str = "pair",
                   splits: int = SPLITS, seed: int = 0) -> HeldOut:
    """The held-out scores of ``models`` over folds of ``by`` (:func:`folds`):
    ``predict(fold, train_mask, held_out_votes)`` -> {model: the left item's win probability of each
    held-out vote}, scored by the half-win log-likelihood and the decided votes' accuracy."""
    fold = folds(votes, by, splits, seed)
    ll = {m: [] for m in models}
    acc = {m: [] for m in models}
    sizes = []
    for f in range(splits):
        test = subset(votes, fold == f)
        p = predict(f, fold != f, test)
        for m in models:
            ll[m].append(float(np.mean(half_win_log_likelihood(p[m], test.outcome))))
            acc[m].append(decided_accuracy(p[m], test.outcome))
        sizes.append(test.size)
    return HeldOut(by, tuple(models), {m: np.array(v) for m, v in ll.items()},
                   {m: np.array(v) for m, v in acc.items()}, np.array(sizes))


def select_rank(votes: Votes, *, ranks: Sequence[int] = GPM_RANKS, by: str = "vote", splits: int = SPLITS,
                seed: int = 0, ridge: float = GPM_RIDGE) -> tuple[int, dict]:
    """The GPM rank with the highest mean held-out log-likelihood per vote (folds of ``by``), and
    every rank's mean."""
    def predict(f, train, test):
        train = subset(votes, train)
        counts = pair_counts(train)
        return {f"gpm{k}": fit_gpm(train, k, ridge=ridge, seed=seed + f, counts=counts).matrix()[test.left, test.right]
                for k in ranks}

    scores = cross_validate(votes, [f"gpm{k}" for k in ranks], predict, by=by, splits=splits, seed=seed)
    means = {k: float(np.mean(scores.log_likelihood[f"gpm{k}"])) for k in ranks}
    return max(means, key=means.get), means


def estimate(votes: Votes, estimator: str = defaults.VOTE_ESTIMATOR, *, rank: int | None = None,
             seed: int = 0) -> np.ndarray:
    """The preference matrix of the votes by ``estimator`` ∈ :data:`ESTIMATORS`; for 'gpm' the rank
    is chosen by :func:`select_rank` unless given."""
    if estimator == "empirical":
        return empirical_matrix(votes)
    if estimator == "bt":
        return bradley_terry(votes)
    if estimator == "gpm":
        if rank is None:
            rank, _ = select_rank(votes, seed=seed)
        return fit_gpm(votes, rank, seed=seed).matrix()
    raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")


# ---------------------------------------------------------------------------------- cycles
def count_cycles(P: np.ndarray, threshold: float = 0.5) -> int:
    """Directed 3-cycles i ≻ j ≻ k ≻ i in which every edge has P > ``threshold`` (≥ ½), each cycle
    counted once: trace(A³)/3 for the edge matrix A."""
    if not 0.5 <= threshold < 1:
        raise ValueError(f"threshold must be in [0.5, 1), got {threshold!r}")
    A = (np.asarray(P) > threshold).astype(np.int64)
    np.fill_diagonal(A, 0)
    return int(np.trace(A @ A @ A) // 3)


def confident_edges(votes: Votes, level: float = LEVEL) -> np.ndarray:
    """(n, n) booleans: i beats j with confidence — among the decided (non-tie) votes between them, a
    one-sided exact binomial (sign) test rejects 'i wins at most half' at ``level``."""
    from scipy.stats import binom

    n = votes.n
    decided = votes.outcome != 0.5
    win = np.zeros((n, n))
    np.add.at(win, (votes.left[decided], votes.right[decided]), votes.outcome[decided])
    np.add.at(win, (votes.right[decided], votes.left[decided]), 1.0 - votes.outcome[decided])
    total = win + win.T
    p_value = binom.sf(win - 1, total, 0.5)  # Pr(X ≥ wins) under a fair coin
    return (total > 0) & (p_value < 1 - level)


def confident_cycles(votes: Votes, level: float = LEVEL) -> int:
    """3-cycles whose three edges are each :func:`confident_edges` (sign tests on the votes)."""
    A = confident_edges(votes, level).astype(np.int64)
    return int(np.trace(A @ A @ A) // 3)


# ------------------------------------------------------------------ rankings and the lottery
def win_rates(votes: Votes) -> np.ndarray:
    """(n,) each item's share of the votes it took part in (ties half); NaN for an item with none."""
    n = votes.n
    share = np.bincount(votes.left, votes.outcome, n) + np.bincount(votes.right, 1.0 - votes.outcome, n)
    seen = np.bincount(votes.left, minlength=n) + np.bincount(votes.right, minlength=n)
    return np.where(seen > 0, share / np.maximum(seen, 1), np.nan)


def ranks_of(scores) -> np.ndarray:
    """1 for the highest score, 2 for the next… (ties in order of index; NaN scores last)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    order = np.argsort(-s, kind="stable")
    out = np.empty(s.size, dtype=np.int64)
    out[order] = np.arange(1, s.size + 1)
    return out


class Rankings(NamedTuple):
    bt_reward: np.ndarray
    bt_rank: np.ndarray
    win_rate: np.ndarray
    win_rate_rank: np.ndarray


def rankings(votes: Votes, *, ridge: float = BT_RIDGE) -> Rankings:
    r = bradley_terry_rewards(votes, ridge=ridge)
    w = win_rates(votes)
    return Rankings(r, ranks_of(r), w, ranks_of(w))


class Lottery(NamedTuple):
    """The maximal lottery (Nash policy) of a vote matrix and its bootstrap distribution.

    ``policy``/``exploitability`` of the point estimate; ``samples`` (B, n) the lottery of each
    resample; ``low``/``high`` the (1 − level)/2 and (1 + level)/2 quantiles; ``in_support`` the
    fraction of resamples giving the item probability > :data:`SUPPORT_TOL`; ``resample`` what was
    resampled ('votes' or 'annotators'); ``seconds`` the bootstrap's wall time."""

    policy: np.ndarray
    exploitability: float
    samples: np.ndarray
    low: np.ndarray
    high: np.ndarray
    in_support: np.ndarray
    max_exploitability: float  # the largest exploitability of a resample's lottery in its own game
    resample: str
    seconds: float


def resample_weights(votes: Votes, resamples: int, resample: str = defaults.VOTE_RESAMPLE, seed: int = 0) -> np.ndarray:
    """(B, N) vote weights of ``resamples`` bootstrap resamples: multinomial counts over the votes
    ('votes'), or over the annotators, each drawn annotator bringing all its votes ('annotators')."""
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be an integer ≥ 1, got {resamples!r}")
    rng = np.random.default_rng(seed)
    m = votes.size
    if resample == "votes":
        return rng.multinomial(m, np.full(m, 1.0 / m), size=resamples).astype(np.float64)
    if resample == "annotators":
        if votes.annotator is None:
            raise ValueError("these votes have no annotator column: resample 'votes'")
        _, who = np.unique(votes.annotator, return_inverse=True)
        a = int(who.max()) + 1
        return rng.multinomial(a, np.full(a, 1.0 / a), size=resamples).astype(np.float64)[:, who]
    raise ValueError(f"resample must be 'votes' or 'annotators', got {resample!r}")


def bootstrap_lottery(votes: Votes, resamples: int = defaults.BOOTSTRAP, *,
                      resample: str = defaults.VOTE_RESAMPLE, seed: int = 0,
                      level: float = LEVEL) -> Lottery:
    """The maximal lottery of the empirical matrix with bootstrap intervals: each resample's pair
    counts are computed at once (one sparse product), then its lottery by :func:`gamelab.nash.exact_nash`."""
    import time

    from gamelab.nash import exact_nash

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    start = time.perf_counter()
    point = exact_nash(empirical_matrix(votes))
    Ps = matrix_from_counts(pair_counts(votes, resample_weights(votes, resamples, resample, seed)))
    sols = [exact_nash(P) for P in Ps]
    samples = np.stack([s.policy for s in sols])
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return Lottery(point.policy, point.exploitability, samples, lo, hi, np.mean(samples > SUPPORT_TOL, axis=0),
                   max(s.exploitability for s in sols), resample, time.perf_counter() - start)


def write_matrix(path, P: np.ndarray, names: Sequence[str]) -> None:
    """A preference matrix as CSV: a header row of the names, then one row of P per name (what
    :func:`gamelab.games.load_named_matrix` and ``gamelab nash FILE`` read back)."""
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (len(names), len(names)):
        raise ValueError(f"a {P.shape} matrix needs {P.shape[0]} names, got {len(names)}")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in P:
            writer.writerow([repr(float(x)) for x in row])


# ------------------------------------------------------------------------------ annotators as groups
class AnnotatorGroups(NamedTuple):
    """A mixture of Bradley–Terry models over the annotators (MaxMin-RLHF's groups) found by EM.

    ``rewards`` (G, n) mean-zero group rewards; ``weights`` (G,) the groups' shares of annotators;
    ``annotators`` the annotator ids in order and ``assignment`` (A,) each one's group;
    ``votes_per_group`` (G,); ``objective`` the EM objective of the best restart and ``restarts``
    every restart's."""

    rewards: np.ndarray
    weights: np.ndarray
    annotators: tuple
    assignment: np.ndarray
    votes_per_group: np.ndarray
    objective: float
    restarts: np.ndarray


def annotator_groups(votes: Votes, groups: int, *, restarts: int = 5, iterations: int = 30, seed: int = 0,
                     ridge: float = BT_RIDGE) -> AnnotatorGroups:
    """Hard EM (:func:`gamelab.feedback.em_mixture`: annotators identified, groups hidden) from
    ``restarts`` random starts; the restart with the highest classification objective is kept.
    Ties are half-wins (the EM's labels are probabilities)."""
    import jax

    from gamelab.feedback import Comparisons, em_mixture

    if votes.annotator is None:
        raise ValueError("these votes have no annotator column")
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"restarts must be an integer ≥ 1, got {restarts!r}")
    annotators, user = np.unique(votes.annotator, return_inverse=True)
    data = Comparisons(user.astype(np.int64), votes.left, votes.right, votes.outcome)
    best, scores = None, []
    for key in jax.random.split(jax.random.PRNGKey(seed), restarts):
        res = em_mixture(data, votes.n, groups, users=len(annotators), hard=True, iterations=iterations, key=key,
                         ridge=ridge)
        scores.append(float(res.objective[-1]))
        if best is None or scores[-1] > max(scores[:-1]):
            best = res
    assignment = np.asarray(best.assignment)
    per_vote = assignment[user]
    return AnnotatorGroups(np.asarray(best.rewards), np.asarray(best.weights), tuple(annotators), assignment,
                           np.bincount(per_vote, minlength=groups), max(scores), np.array(scores))
