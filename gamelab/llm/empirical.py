"""The Nash gap at LLM scale, where no response set can be enumerated: an empirical game.

K answers per prompt from each policy of a pool (checkpoints of a run, baselines), every pair of
the pooled answers judged once (:func:`gamelab.llm.judges.judged_matrix`), and each policy taken as
the uniform mixture of its K answers. Within that restricted game a policy's exploitability is
max_y P(y ≻ π_p | x) − ½ over the pooled answers y, averaged over prompts; the restricted game's
Nash (the engine's LP, :func:`gamelab.nash.exact_nash`) says how much of its mass lies on each
policy's answers. A percentile bootstrap — prompts resampled, and within a prompt each policy's
answers — gives intervals without judging anything again. Exploitability is a maximum and is 0 at
the restricted Nash: resampled answers can only move a policy away from it there, so for a policy
at (or near) the pool's Nash the interval lies above the point estimate — read it as how far
sampling noise alone carries the estimate, not as a symmetric error bar.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gamelab.llm.judges import PairwiseJudge, judged_matrix
from gamelab.nash import exact_nash


class EmpiricalGame(NamedTuple):
    policies: tuple  # names, in the order of every array below
    exploitability: np.ndarray  # (policies,) mean over prompts, within the pooled answers
    lo: np.ndarray  # (policies,) bootstrap interval at ``level``
    hi: np.ndarray
    nash_weight: np.ndarray  # (policies,) mean over prompts of the restricted Nash's mass on each policy's answers
    win_rate: np.ndarray  # (policies, policies) mean over prompts of P(π_p ≻ π_q)
    matrices: list  # per prompt: the judged (N, N) matrix of the pooled answers (policy by policy, K each)
    level: float


def _exploitability(P, owner, policies):
    """(policies,) max_y (P π_p)_y − ½ with π_p uniform over the rows ``owner`` assigns to p."""
    out = np.empty(policies)
    for p in range(policies):
        mine = owner == p
        out[p] = np.max(P[:, mine].mean(axis=1)) - 0.5
    return out


def empirical_game(judge: PairwiseJudge, prompts, answers: dict, *, bootstrap: int = 1000, level: float = 0.95,
                   seed: int = 0) -> EmpiricalGame:
    """``answers``: {policy name: one list of K answers per prompt} (K may differ between policies,
    each at least 1). See the module doc."""
    names = tuple(answers)
    if not names or not prompts:
        raise ValueError("need at least one policy and one prompt")
    for name in names:
        if len(answers[name]) != len(prompts) or any(len(a) == 0 for a in answers[name]):
            raise ValueError(f"policy {name!r}: need a non-empty list of answers for each of the {len(prompts)} "
                             "prompts")
    if not 0 < level < 1 or bootstrap < 1:
        raise ValueError(f"need 0 < level < 1 and bootstrap >= 1, got {level}, {bootstrap}")
    matrices, owners = [], []
    for x, prompt in enumerate(prompts):
        pooled = [a for name in names for a in answers[name][x]]
        owners.append(np.concatenate([np.full(len(answers[name][x]), p) for p, name in enumerate(names)]))
        matrices.append(judged_matrix(judge, prompt, pooled))
    Q = len(names)
    per_prompt = np.stack([_exploitability(P, o, Q) for P, o in zip(matrices, owners)])
    weight = np.zeros(Q)
    wins = np.zeros((Q, Q))
    for P, o in zip(matrices, owners):
        pi = exact_nash(P).policy
        weight += np.bincount(o, weights=pi, minlength=Q) / len(prompts)
        member = np.stack([(o == p) / np.sum(o == p) for p in range(Q)])  # (Q, N) uniform mixtures
        wins += member @ P @ member.T / len(prompts)
    rng = np.random.default_rng(seed)
    draws = np.empty((bootstrap, Q))
    for b in range(bootstrap):
        total = np.zeros(Q)
        for x in rng.integers(0, len(prompts), len(prompts)):
            o = owners[x]
            rows = np.concatenate([rng.choice(np.flatnonzero(o == p), np.sum(o == p)) for p in range(Q)])
            total += _exploitability(matrices[x][np.ix_(rows, rows)], o[rows], Q)
        draws[b] = total / len(prompts)
    tail = (1 - level) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail], axis=0)
    return EmpiricalGame(names, per_prompt.mean(axis=0), lo, hi, weight, wins, matrices, level)
