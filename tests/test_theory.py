"""Theorems of DESIGN §7, as properties over random valid games (hypothesis)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import COMAL3, games, interior_nash_games, near
from gamelab.games import rps
from gamelab.nash import exact_nash, regularized_nash
from gamelab.run import run, run_batch


@given(games(sizes=(2, 3, 5, 8, 13)))
def test_lp_nash_has_zero_gap(P):
    sol = exact_nash(P)
    assert sol.exploitability < 1e-12
    assert abs(sol.policy.sum() - 1) < 1e-12 and sol.policy.min() >= 0


@given(games(sizes=(3, 5, 8)), st.sampled_from([0.05, 0.3, 1.0]))
def test_regularized_nash_is_the_fixed_point_and_zeroes_the_regularized_gap(P, tau):
    from scipy.special import softmax

    from gamelab.metrics import regularized_gap

    n = P.shape[0]
    ref = np.random.default_rng(n).dirichlet(np.ones(n)) + 0.05
    ref /= ref.sum()
    star = regularized_nash(P, ref, tau)
    np.testing.assert_allclose(star.policy, softmax(np.log(ref) + P @ star.policy / tau), atol=1e-11)
    assert float(regularized_gap(P, star.logp, np.log(ref), tau)) < 1e-12


@pytest.mark.parametrize("name", ["inpo", "mmd"])
@given(P=games(sizes=(3, 5, 8)))
@settings(max_examples=10)
def test_inpo_and_mmd_reach_the_regularized_nash_whatever_eta(name, P):
    """Their last iterate converges to π*_τ (DG_τ → 0) and the limit does not depend on η."""
    tau = 0.5
    star = regularized_nash(P, None, tau).policy
    r = run_batch(name, [P], steps=1500, record_every=1500, hparams={"eta": [0.05, 0.2], "tau": tau}, target=None)
    for i in range(2):
        np.testing.assert_allclose(np.asarray(r.policy[i]), star, atol=1e-10)
        assert float(r.final["regularized_gap"][i]) < 1e-12


@given(P=games(sizes=(3, 5)))
@settings(max_examples=10)
def test_comal_never_increases_kl_to_nash(P):
    """Prox-point: KL(π*‖π_k) is non-increasing for every Nash π* (here the LP one)."""
    r = run("comal", P, steps=12, eta=0.2, tau=0.5, inner=400)
    kl = np.asarray(r.trace["kl_to_target"])
    assert np.all(np.diff(kl) <= 1e-12), kl
    assert kl[-1] < kl[0] or kl[0] < 1e-12


@pytest.mark.parametrize("name", ["omwu", "extragradient"])
@given(game=interior_nash_games())
def test_optimistic_methods_converge_in_the_last_iterate(name, game):
    """Local linear convergence below the linearized scale η_max (see conftest's generator for why
    the start is near the Nash)."""
    P, nash, eta_max = game
    r = run(name, P, steps=10_000, record_every=10_000, eta=0.5 * eta_max, init=near(nash), target=nash)
    assert float(r.final["duality_gap"]) < 1e-8
    np.testing.assert_allclose(np.asarray(r.policy), nash, atol=1e-7)


@given(game=interior_nash_games())
@settings(max_examples=10)
def test_mwu_last_iterate_moves_away_from_an_interior_nash(game):
    """Bailey & Piliouras (2018): MWU's KL(π*‖π_t) strictly increases in zero-sum games."""
    P, nash, eta_max = game
    init = np.random.default_rng(0).dirichlet(np.ones(P.shape[0]))
    r = run("mwu", P, steps=300, eta=0.5 * eta_max, init=init, target=nash)
    assert np.all(np.diff(np.asarray(r.trace["kl_to_target"])) > 0)


def test_mwu_cycles_on_rps_while_its_average_converges():
    r = run("mwu", rps(), steps=3000, record_every=10, eta=0.1, init=[0.5, 0.3, 0.2])
    last, avg = np.asarray(r.trace["duality_gap"]), np.asarray(r.trace["avg_duality_gap"])
    # the last iterate cycles outward: its gap (0.2 at the start, 0.1496 at its lowest) never
    # approaches 0, and it is larger late than early on average
    assert last.min() > 0.14 and last[-100:].mean() > last[:100].mean()
    assert np.all(np.diff(np.asarray(r.trace["kl_to_target"])) > 0)
    assert avg[-1] < 0.02 and avg[-1] < avg[len(avg) // 10] / 3  # the average does


def test_nash_md_bias_shrinks_with_eta():
    """Nash-MD converges to π*_τ only up to an O(η) bias."""
    star = regularized_nash(COMAL3, None, 0.1).policy
    errors = []
    for eta in (0.2, 0.1, 0.05):
        r = run("nash_md", COMAL3, steps=int(40 / eta / 0.1), record_every=100, eta=eta, tau=0.1, target=None)
        errors.append(np.abs(np.asarray(r.policy) - star).max())
    assert errors[0] > errors[1] > errors[2] > 0
    assert 1.5 < errors[0] / errors[1] < 2.5 and 1.5 < errors[1] / errors[2] < 2.5


@pytest.mark.parametrize("name", ["fictitious_play", "regret_matching", "regret_matching_plus"])
def test_classical_baselines_average_iterate_converges(name):
    r = run(name, COMAL3, steps=4000, record_every=400)
    avg = np.asarray(r.trace["avg_duality_gap"])
    assert avg[-1] < 0.02 and avg[-1] < avg[1] / 3
