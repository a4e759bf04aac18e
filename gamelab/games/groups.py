"""Multi-group games (diverse preferences, MaxMin-RLHF): generators.

Each group u has its own preference over the n responses — Bradley–Terry from rewards r_u, or a
general matrix — and a weight w_u (its share of the annotators). The pooled preference
Σ_u w_u·P_u is what a single reward model fitted to all the data sees.
"""
from __future__ import annotations

import numpy as np

from gamelab.games.core import Game, InvalidGameError, make_group_game


def bradley_terry_matrix(rewards) -> np.ndarray:
    """P[i, j] = σ(r_i − r_j)."""
    from scipy.special import expit

    r = np.asarray(rewards, dtype=np.float64)
    return expit(r[:, None] - r[None, :])


def group_game_from_rewards(rewards, weights) -> Game:
    """Groups with Bradley–Terry preferences from ``rewards`` (U, n) and ``weights`` (U,)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2 or rewards.shape[0] < 1:
        raise InvalidGameError(f"rewards must be a (groups, responses) array, got shape {rewards.shape}")
    return make_group_game(np.stack([bradley_terry_matrix(r) for r in rewards]), weights, rewards)


def _minority_weights(minority: float) -> np.ndarray:
    if not 0 < minority < 1:
        raise InvalidGameError(f"minority must be a fraction in (0, 1), got {minority}")
    return np.array([1.0 - minority, minority])


def maxmin_example(minority: float = 1 / 11) -> Game:
    """MaxMin-RLHF's 4-response example: majority reward (2, −1, 1, 0), minority (−1, 2, 1, 0);
    ``minority`` is the minority's share (1/11: the 10:1 mixture)."""
    return group_game_from_rewards([[2.0, -1.0, 1.0, 0.0], [-1.0, 2.0, 1.0, 0.0]], _minority_weights(minority))


def majority_minority(n: int = 6, minority: float = 0.1, disagreement: float = 0.5, scale: float = 1.0,
                      seed: int = 0) -> Game:
    """Two Bradley–Terry groups with a controllable share and disagreement.

    Majority rewards z ~ N(0, scale²)^n; the minority's are (1 − 2d)·z + 2·sqrt(d(1 − d))·z⊥ with
    z⊥ an independent draw of the same norm orthogonal to z — correlation 1 − 2d with the majority:
    d = 0 agrees, d = ½ is unrelated, d = 1 reverses every preference."""
    if not 0 <= disagreement <= 1:
        raise InvalidGameError(f"disagreement must be in [0, 1], got {disagreement}")
    if n < 2:
        raise InvalidGameError(f"a game needs at least 2 responses, got n={n}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    z -= z.mean()
    other = rng.standard_normal(n)
    other -= other.mean()
    other -= (other @ z) / (z @ z) * z
    other *= np.linalg.norm(z) / max(np.linalg.norm(other), 1e-300)
    d = float(disagreement)
    minority_r = (1 - 2 * d) * z + 2 * np.sqrt(d * (1 - d)) * other
    return group_game_from_rewards(scale * np.stack([z, minority_r]), _minority_weights(minority))
