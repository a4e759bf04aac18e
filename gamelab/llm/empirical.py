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

:func:`pool_game` draws the answers itself from a policy's parameters (a
:class:`~gamelab.llm.policy.DecoderPolicy`: a base model and its trained versions) — what
``gamelab llm run --empirical K`` records at the end of a run (``_empirical.json`` in the results
folder, :func:`write_empirical`; :func:`empirical_table` prints it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gamelab import defaults
from gamelab.llm.judges import PairwiseJudge, judged_matrix
from gamelab.nash import exact_nash

EMPIRICAL_FILE = "_empirical.json"  # in a run's results folder: '_' (not a results chunk)


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


def sample_answers(policy, params, samples: int, *, seed: int = defaults.SEED) -> list:
    """``samples`` answers per prompt drawn from ``policy`` (a Policy with ``sample``, ``prompts`` and
    ``response_texts``, e.g. a DecoderPolicy) at ``params``, as texts: one list per prompt."""
    import jax

    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    texts = policy.response_texts()
    draw = jax.jit(lambda p, key, x: policy.sample(p, key, (int(samples),), x))
    keys = jax.random.split(jax.random.key(seed), policy.prompts)
    return [[texts[int(y)] for y in np.asarray(draw(params, keys[x], x))] for x in range(policy.prompts)]


def pool_game(judge: PairwiseJudge, policy, pool: dict, prompts, samples: int, *,
              bootstrap: int = defaults.BOOTSTRAP, level: float = defaults.LEVEL,
              seed: int = defaults.SEED) -> EmpiricalGame:
    """The empirical game (:func:`empirical_game`) of ``samples`` answers per prompt drawn from
    ``policy`` at each parameters of ``pool`` ({name: params}, e.g. {"base": policy.init(None),
    "final": TrainResult.params}); ``prompts``: the texts the judge reads, one per policy prompt.
    Each policy's answers come from its own key (``seed`` folded with its place in the pool)."""
    if len(prompts) != policy.prompts:
        raise ValueError(f"{len(prompts)} prompt texts for a policy of {policy.prompts} prompts")
    if not pool:
        raise ValueError("the pool needs at least one policy")
    answers = {name: sample_answers(policy, params, samples, seed=seed + 7919 * i)
               for i, (name, params) in enumerate(pool.items())}
    return empirical_game(judge, list(prompts), answers, bootstrap=bootstrap, level=level, seed=seed)


def empirical_record(game: EmpiricalGame, **about) -> dict:
    """The empirical game as a JSON-able dict: per policy its exploitability within the pool with the
    bootstrap interval and its restricted-Nash weight, the pool's win-rate matrix, and ``about``
    (e.g. samples, bootstrap, judge)."""
    return {"policies": [{"policy": str(name), "exploitability": float(e), "lo": float(lo), "hi": float(hi),
                          "nash_weight": float(w)}
                         for name, e, lo, hi, w in zip(game.policies, game.exploitability, game.lo, game.hi,
                                                       game.nash_weight)],
            "win_rate": np.asarray(game.win_rate, np.float64).tolist(), "level": float(game.level),
            "prompts": len(game.matrices), **about}


def write_empirical(record: dict, out) -> Path:
    """``record`` (:func:`empirical_record`) as ``out/_empirical.json``, written atomically."""
    from gamelab.results import atomic_write_bytes

    path = Path(out) / EMPIRICAL_FILE
    atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
    return path


def empirical_table(game: EmpiricalGame) -> str:
    """One line per policy: its exploitability within the pool [bootstrap interval] and Nash weight."""
    width = max(8, *(len(str(n)) for n in game.policies))
    head = f"{'policy':<{width}}  {'exploitability in the pool':>26} {f'[{game.level:.0%} bootstrap]':>22}  nash weight"
    rows = [f"{str(n):<{width}}  {e:>26.4f} {f'[{lo:.4f}, {hi:.4f}]':>22}  {w:>11.4f}"
            for n, e, lo, hi, w in zip(game.policies, game.exploitability, game.lo, game.hi, game.nash_weight)]
    return "\n".join([head, *rows])


def record_empirical(judge: PairwiseJudge, policy, params, prompts, samples: int, out=None, *,
                     bootstrap: int = defaults.BOOTSTRAP, level: float = defaults.LEVEL, seed: int = defaults.SEED,
                     wait: bool = False, about: dict | None = None):
    """The end of a run (``gamelab llm run --empirical K``): the empirical game of ``samples`` answers
    per prompt from the base model (``policy.init(None)``, "base") and from the trained ``params``
    ("final"), and its record (:func:`empirical_record`, with the items of ``about``), written to
    ``out/_empirical.json`` when ``out`` is given (by process 0, under the folder's writer lock).
    Returns (the EmpiricalGame, the record)."""
    import jax

    game = pool_game(judge, policy, {"base": policy.init(None), "final": params}, prompts, samples,
                     bootstrap=bootstrap, level=level, seed=seed)
    record = empirical_record(game, samples=int(samples), bootstrap=int(bootstrap), seed=int(seed), **(about or {}))
    if out is not None and jax.process_index() == 0:
        from gamelab.results import writer_lock

        with writer_lock(Path(out), wait=wait):
            write_empirical(record, out)
    return game, record
