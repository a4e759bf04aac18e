"""Diverse preferences (issue 5): multi-group games, egalitarian solutions, the maxmin solver.

* The paper's 4-response example (β = 0.5, uniform reference, 10:1): the single-reward policy wins
  ≈ 0.71 against π_ref for the majority and ≈ 0.32 for the minority; the MaxMin policy is
  ≈ (0.197, 0.197, 0.534, 0.072) with equal utilities and win rates ≈ 0.54 for both groups.
* The exact max–min policy is certified by its dual (equal utilities on the adversary's support,
  no group below) and the iterative ``maxmin`` solver converges to it (hypothesis, random groups).
* The worst-group Nash LP with one group is that group's Nash; metrics per group.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import COMAL3
from gamelab.games import InvalidGameError, make_group_game, parse_game
from gamelab.games.groups import bradley_terry_matrix, group_game_from_rewards, majority_minority
from gamelab.metrics import group_metrics
from gamelab.nash import exact_nash, group_rewards, maxmin_nash, maxmin_policy, pooled_reward_policy
from gamelab.run import run, run_batch

UNIFORM4 = np.full(4, 0.25)


def win_rates_vs_ref(game, pi, ref=UNIFORM4):
    return np.einsum("i,uij,j->u", pi, np.asarray(game.groups), ref)


def test_the_papers_example_single_reward_vs_maxmin():
    game = parse_game("maxmin4")  # rewards (2, −1, 1, 0) and (−1, 2, 1, 0), pooled 10:1
    single = pooled_reward_policy(game, None, beta=0.5)
    np.testing.assert_allclose(win_rates_vs_ref(game, single), [0.7121, 0.3215], atol=1e-4)
    mm = maxmin_policy(group_rewards(game), None, beta=0.5)
    np.testing.assert_allclose(mm.policy, [0.1966, 0.1966, 0.5344, 0.0723], atol=1e-4)
    assert abs(mm.utilities[0] - mm.utilities[1]) < 1e-12
    np.testing.assert_allclose(win_rates_vs_ref(game, mm.policy), [0.5440, 0.5440], atol=1e-4)
    # the majority loses little against the single-reward policy's win rate; the minority gains a lot
    wr_single, wr_mm = win_rates_vs_ref(game, single), win_rates_vs_ref(game, mm.policy)
    assert wr_mm[1] - wr_single[1] > 0.2 and wr_single[0] - wr_mm[0] < 0.2


def test_the_maxmin_solver_reaches_the_papers_policy_through_the_runner():
    r = run("maxmin", parse_game("maxmin4"), steps=3000, record_every=3000, eta=0.5, beta=0.5, eta_w=0.5)
    np.testing.assert_allclose(np.asarray(r.policy), maxmin_policy(group_rewards(parse_game("maxmin4")), None, 0.5).policy,
                               atol=1e-10)
    assert abs(float(r.final["group0_win_rate_vs_ref"]) - float(r.final["group1_win_rate_vs_ref"])) < 1e-9
    assert abs(float(r.final["worst_group_win_rate_vs_ref"]) - 0.5440) < 1e-4


@st.composite
def group_rewards_cases(draw):
    U, n = draw(st.integers(2, 4)), draw(st.integers(3, 6))
    seed = draw(st.integers(0, 2**16))
    beta = draw(st.sampled_from([0.3, 0.5, 1.0]))
    R = np.random.default_rng(seed).normal(size=(U, n)) * 1.5
    w = np.random.default_rng(seed + 1).dirichlet(np.ones(U))
    return R, w, beta


@given(case=group_rewards_cases())
@settings(max_examples=10)
def test_maxmin_solution_is_certified_and_the_solver_converges_to_it(case):
    R, w, beta = case
    sol = maxmin_policy(R, None, beta)
    # certificate: equal utilities on the adversary's support, none lower off it; the value is the dual's
    active = sol.group_weights > 1e-9
    assert np.ptp(sol.utilities[active]) < 1e-10
    assert sol.utilities.min() >= sol.value - 1e-12
    assert np.all(sol.utilities[~active] >= sol.value - 1e-10)
    # no policy does better for the worst group: a random search never beats the value
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.dirichlet(np.ones(R.shape[1]) * 0.5)
        util = R @ p - beta * np.sum(p * np.log(np.maximum(p, 1e-300) * R.shape[1]))
        assert util.min() <= sol.value + 1e-12
    game = group_game_from_rewards(R, w)
    r = run("maxmin", game, steps=4000, record_every=4000, eta=min(1.0, 0.5 / beta), beta=beta, eta_w=0.5,
            target=None)
    np.testing.assert_allclose(np.asarray(r.policy), sol.policy, atol=1e-6)


def test_maxmin_over_win_rates_for_general_preference_groups():
    """Groups without rewards: the utilities are the win rates against the reference."""
    game = make_group_game(np.stack([COMAL3, COMAL3.T]), [0.7, 0.3])
    R = group_rewards(game)
    np.testing.assert_allclose(R, np.stack([COMAL3, COMAL3.T]) @ np.full(3, 1 / 3))
    sol = maxmin_policy(R, None, 0.2)
    r = run("maxmin", game, steps=4000, record_every=4000, eta=1.0, beta=0.2, eta_w=1.0, target=None)
    np.testing.assert_allclose(np.asarray(r.policy), sol.policy, atol=1e-8)


def test_worst_group_nash():
    one = maxmin_nash(COMAL3[None])
    assert abs(one.value - 0.5) < 1e-9
    np.testing.assert_allclose(one.policy, exact_nash(COMAL3).policy, atol=1e-8)
    two = maxmin_nash(np.stack([COMAL3, COMAL3.T]))
    # the guarantee holds against every group and response, and is at most ½
    assert np.einsum("i,uij->uj", two.policy, np.stack([COMAL3, COMAL3.T])).min() >= two.value - 1e-9
    assert two.value <= 0.5 + 1e-12


def test_group_metrics_and_pooled_game():
    game = parse_game("maxmin4")
    np.testing.assert_allclose(np.asarray(game.P), np.einsum("u,uij->ij", np.asarray(game.weights),
                                                              np.asarray(game.groups)))
    pi = np.array([0.1, 0.2, 0.3, 0.4])
    m = {k: float(v) for k, v in group_metrics(game, np.log(pi), np.log(UNIFORM4)).items()}
    wr = win_rates_vs_ref(game, pi)
    assert abs(m["group0_win_rate_vs_ref"] - wr[0]) < 1e-14 and abs(m["group1_win_rate_vs_ref"] - wr[1]) < 1e-14
    assert abs(m["worst_group_win_rate_vs_ref"] - min(wr)) < 1e-14
    assert abs(m["mean_group_win_rate_vs_ref"] - np.asarray(game.weights) @ wr) < 1e-14
    np.testing.assert_allclose([m["group0_reward"], m["group1_reward"]], np.asarray(game.rewards) @ pi)
    ex = [max(G @ pi) - 0.5 for G in np.asarray(game.groups)]
    assert abs(m["worst_group_exploitability"] - max(ex)) < 1e-14


def test_runs_record_group_metrics_for_every_algorithm_family_and_in_batches():
    game = parse_game("maxmin4")
    r = run("inpo", game, steps=50, record_every=10)  # a single-population algorithm plays the pooled game
    assert r.trace["group1_win_rate_vs_ref"].shape == (6,) and "avg_worst_group_win_rate_vs_ref" in r.trace
    b = run_batch("maxmin", [game, parse_game("maxmin4:minority=0.3")], steps=20, hparams={"beta": 0.5},
                  target=None)
    assert b.trace["worst_group_reward"].shape == (2, 21)


def test_majority_minority_generator():
    same = majority_minority(n=5, disagreement=0.0, seed=3)
    np.testing.assert_allclose(np.asarray(same.rewards[0]), np.asarray(same.rewards[1]))
    flipped = majority_minority(n=5, disagreement=1.0, seed=3)
    np.testing.assert_allclose(np.asarray(flipped.rewards[1]), -np.asarray(flipped.rewards[0]), atol=1e-12)
    half = majority_minority(n=8, disagreement=0.5, seed=3, minority=0.25)
    r = np.asarray(half.rewards)
    assert abs(r[0] @ r[1]) < 1e-9 and np.allclose(np.asarray(half.weights), [0.75, 0.25])
    np.testing.assert_allclose(np.asarray(half.groups[0]), bradley_terry_matrix(r[0]))


@pytest.mark.parametrize("groups, weights, message", [
    (np.stack([COMAL3, COMAL3 + 0.1]), [0.5, 0.5], "group 1"),
    (np.stack([COMAL3, COMAL3]), [0.5, 0.6], "sum to 1"),
    (np.stack([COMAL3, COMAL3]), [1.0], "one weight per group"),
    (COMAL3, [1.0], r"\(U, n, n\)"),
])
def test_invalid_group_games_are_named(groups, weights, message):
    with pytest.raises(InvalidGameError, match=message):
        make_group_game(groups, weights)


def test_sweeps_store_group_metrics(tmp_path):
    from gamelab.results import load_results
    from gamelab.sweep import execute, make_spec

    spec = make_spec(algorithms=["maxmin", "mwu"], games=["maxmin4", "comal3"], steps=2000, record_every=500,
                     grid={"eta": [0.5], "beta": [0.5], "eta_w": [0.5]})
    execute(spec, tmp_path, progress=False)
    df = load_results(tmp_path)
    last = df[(df.iterate == "last") & (df.step == 2000)].set_index(["algorithm", "game"])
    assert abs(last.loc[("maxmin", "maxmin4"), "worst_group_win_rate_vs_ref"] - 0.5440) < 1e-4
    assert np.isnan(last.loc[("mwu", "comal3"), "worst_group_win_rate_vs_ref"])  # a plain game has no groups
