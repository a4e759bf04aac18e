"""The numbers the engine must show on the COMAL game (uniform start and reference, float64)."""
import numpy as np
import pytest

from conftest import COMAL3, COMAL3_NASH
from gamelab.games import comal3
from gamelab.metrics import duality_gap
from gamelab.nash import exact_nash, regularized_nash
from gamelab.run import run

STAR_TAU = np.array([0.33714, 0.28346, 0.37940])


def test_comal3_is_the_papers_game():
    np.testing.assert_allclose(np.asarray(comal3().P), COMAL3, atol=1e-15, rtol=0)  # lower = 1 − upperᵀ


def test_exact_nash_and_uniform_gap():
    np.testing.assert_allclose(exact_nash(COMAL3).policy, COMAL3_NASH, atol=1e-14)
    assert abs(float(duality_gap(COMAL3, np.zeros(3))) - 0.0667) < 5e-5  # = 2/30


def test_regularized_nash_value():
    star = regularized_nash(COMAL3, None, 0.1).policy
    np.testing.assert_allclose(star, STAR_TAU, atol=5e-6)
    assert abs(2 * (COMAL3 @ star).max() - 1 - 0.02449) < 5e-6


@pytest.mark.parametrize("eta", [0.05, 0.1, 0.2])
def test_inpo_converges_to_the_regularized_nash_for_every_eta(eta):
    r = run("inpo", COMAL3, steps=2000 if eta >= 0.1 else 4000, record_every=100, eta=eta, tau=0.1)
    np.testing.assert_allclose(np.asarray(r.policy), STAR_TAU, atol=5e-6)
    assert abs(float(r.final["duality_gap"]) - 0.02449) < 5e-6
    assert float(r.final["regularized_gap"]) < 1e-12


def test_comal_reaches_exact_nash_by_outer_iteration_16():
    r = run("comal", COMAL3, steps=16, eta=0.1, tau=0.1, inner=200)
    gaps = np.asarray(r.trace["duality_gap"])
    assert gaps[16] < 1e-9
    assert np.all(np.diff(np.asarray(r.trace["kl_to_target"])[:12]) < 0)


@pytest.mark.parametrize("name", ["omwu", "extragradient"])
def test_optimistic_methods_reach_1e_8_within_800_steps(name):
    r = run(name, COMAL3, steps=800, eta=1.0)
    assert np.asarray(r.trace["duality_gap"]).min() < 1e-8
    assert float(r.final["duality_gap"]) < 1e-8


def test_mwu_last_iterate_does_not_converge():
    r = run("mwu", COMAL3, steps=3000, eta=0.1)
    assert np.asarray(r.trace["duality_gap"]).min() > 0.03
    kl = np.asarray(r.trace["kl_to_target"])
    assert kl[-1] > 3 * kl[100] and np.all(np.diff(kl[1:]) > 0)  # grows at every step


def test_iterative_dpo_collapses():
    r = run("iterative_dpo", COMAL3, steps=10, beta=1.0)
    assert np.asarray(r.trace["duality_gap"]).max() >= 0.5
