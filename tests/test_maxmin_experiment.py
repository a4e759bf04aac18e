"""The MaxMin-RLHF experiment (experiments/maxmin_groups.py, imported by path): at the paper's 10:1
mixture the single-reward policy serves the majority (win rate ≈ 0.71 against π_ref) and fails the
minority (≈ 0.32); the MaxMin policy (0.197, 0.197, 0.534, 0.072) gives both ≈ 0.544; the `maxmin`
solver run as a sweep reaches it; the same holds with groups learned by EM from sampled users."""

import numpy as np
import pytest

from gamelab.games import parse_game
from gamelab.nash import group_rewards, maxmin_policy, pooled_reward_policy


PAPER = 1 / 11
SHARES = (PAPER, 0.3)
from conftest import load_experiment


@pytest.fixture(scope="module")
def study():
    return load_experiment("maxmin_groups")


@pytest.fixture(scope="module")
def rows(study):
    return {r["minority"]: r for r in study.example(SHARES)}


def test_the_papers_numbers_at_ten_to_one(rows):
    r = rows[PAPER]
    np.testing.assert_allclose(r["single_win_rates"], [0.7121, 0.3215], atol=1e-3)
    np.testing.assert_allclose(r["maxmin_win_rates"], [0.5440, 0.5440], atol=1e-3)
    np.testing.assert_allclose(r["maxmin_policy"], [0.1966, 0.1966, 0.5344, 0.0723], atol=1e-3)
    assert abs(r["maxmin_win_rates"][0] - r["maxmin_win_rates"][1]) < 1e-6
    assert abs(r["maxmin_utilities"][0] - r["maxmin_utilities"][1]) < 1e-10
    gain = r["maxmin_win_rates"][1] - r["single_win_rates"][1]
    loss = r["single_win_rates"][0] - r["maxmin_win_rates"][0]
    assert gain > 0.2 and 0 < loss < 0.2


def test_the_single_reward_gap_closes_as_the_minority_grows_and_maxmin_ignores_the_shares(rows):
    small, large = rows[PAPER], rows[0.3]
    assert np.ptp(small["single_win_rates"]) > np.ptp(large["single_win_rates"]) > 0.1
    np.testing.assert_allclose(small["maxmin_policy"], large["maxmin_policy"], atol=1e-12)


def test_the_batched_pooled_fit_is_the_librarys_single_reward_policy(study, rows):
    for m in SHARES:
        expected = pooled_reward_policy(parse_game(study.example_game(m)), None, beta=study.BETA)
        np.testing.assert_allclose(rows[m]["single_policy"], expected, atol=1e-10)


def test_anchoring_at_the_reference_keeps_the_papers_maxmin_and_a_shift_would_not(study):
    """The example's two reward vectors have the same mean, so anchoring E_ref[r_u] = 0 leaves the
    exact max–min policy as it is; shifting one group alone moves it (why the anchoring matters)."""
    R, ref = group_rewards(parse_game("maxmin4")), np.full(4, 0.25)
    raw = maxmin_policy(R, ref, 0.5).policy
    np.testing.assert_allclose(maxmin_policy(study.anchored(R, ref), ref, 0.5).policy, raw, atol=1e-10)
    assert np.abs(maxmin_policy(R + np.array([[0.0], [0.5]]), ref, 0.5).policy - raw).max() > 0.05


def test_the_maxmin_sweep_reaches_the_exact_policy(study, rows, tmp_path):
    games = [study.example_game(m) for m in SHARES]
    iterated = study.iterative(games, tmp_path / "results")
    for m, g in zip(SHARES, games):
        np.testing.assert_allclose(iterated[g]["policy"], rows[m]["maxmin_policy"], atol=1e-6)
        np.testing.assert_allclose(iterated[g]["win_rates"], rows[m]["maxmin_win_rates"], atol=1e-6)
        assert abs(iterated[g]["worst_group_win_rate_vs_ref"] - 0.5440) < 1e-3


def test_random_majority_minority_games_show_the_same_pattern(study):
    specs = [study.random_game(PAPER, s) for s in range(4)]
    for r in study.exact_rows(specs):
        single, mm = r["single_win_rates"], r["maxmin_win_rates"]
        assert single[0] > single[1]  # the single reward favours the majority
        assert mm.min() > single.min()  # and MaxMin lifts the worst group


def test_learned_groups_by_em(study):
    if not study.HAS_EM:
        pytest.skip("gamelab.feedback.em_mixture is not there yet")
    r = study.learned(PAPER, seed=0)
    assert r["minority_users"] == 10 and r["em_accuracy"] >= 0.95
    single, mm = r["single_win_rates"], r["maxmin_win_rates"]
    assert single[0] > 0.68 and single[1] < 0.36  # the pooled reward on 5500 comparisons: the exact pattern
    assert mm[1] - single[1] > 0.15 and single[0] - mm[0] < 0.2
    np.testing.assert_allclose(mm, [0.5440, 0.5440], atol=0.02)  # close to the exact MaxMin policy's
