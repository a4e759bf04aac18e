"""Checks of tests/reference.py against known facts (closed forms, published numbers, theorems).

The reference is what the JAX engine is cross-checked against, so it must itself be checked
against something other than itself: the COMAL game's known equilibria, hand-computed first steps,
equilibrium conditions, and properties that are theorems.  Plain NumPy; no gamelab, no jax.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference as R  # noqa: E402

COMAL_NASH = np.array([4.0, 3.0, 4.0]) / 11.0
COMAL_REG_NASH_01 = np.array([0.33714, 0.28346, 0.37940])   # τ = 0.1, ref uniform (COMAL paper)
RPS_NASH = np.full(3, 1.0 / 3.0)


def _random_game(seed, n):
    return R.random_preference(n, np.random.default_rng(seed))


def _interior(rng, n, conc=2.0):
    return rng.dirichlet(np.full(n, conc))


# --------------------------------------------------------------------------------------------
# games and metrics
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_random_preference_is_valid(n):
    P = _random_game(n, n)
    R.validate_preference(P)
    assert np.all(np.diag(P) == 0.5)
    np.testing.assert_allclose(P + P.T, 1.0, atol=0)


def test_validate_preference_rejects_invalid():
    with pytest.raises(ValueError):
        R.validate_preference(np.array([[0.5, 0.3], [0.3, 0.5]]))
    with pytest.raises(ValueError):
        R.validate_preference(np.ones((2, 3)))


def test_metric_facts():
    P = R.comal3()
    u = R.uniform(3)
    # uniform: Pu = (1.4, 1.5, 1.6)/3, so e = 1.6/3 − 1/2 = 1/30 and DG = 2/30
    np.testing.assert_allclose(R.win_rates(P, u), [1.4 / 3, 1.5 / 3, 1.6 / 3], atol=1e-15)
    assert R.exploitability(P, u) == pytest.approx(1 / 30, abs=1e-14)
    assert R.duality_gap(P, u) == pytest.approx(0.0667, abs=5e-5)
    assert R.duality_gap(P, u) == pytest.approx(2 / 30, abs=1e-14)
    assert R.entropy(u) == pytest.approx(math.log(3), abs=1e-15)
    assert R.entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    assert R.kl(p, q) == pytest.approx(math.log(2), abs=1e-15)
    assert R.kl(q, p) == math.inf
    assert R.kl(q, q) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(5):
        pi = _interior(rng, 3)
        assert R.win_rate(P, pi, pi) == pytest.approx(0.5, abs=1e-15)   # P(π ≻ π) = 1/2
    for i in range(3):
        for j in range(3):
            assert R.win_rate(P, np.eye(3)[i], np.eye(3)[j]) == P[i, j]
    assert R.win_rate(P, COMAL_NASH) == pytest.approx(0.5, abs=1e-14)    # Nash vs anything ≥ 1/2


def test_regularized_gap_is_nonnegative_and_reduces_to_known_forms():
    rng = np.random.default_rng(1)
    for seed in range(5):
        P = _random_game(seed, 6)
        ref = _interior(rng, 6)
        for tau in (0.05, 0.3, 2.0):
            for _ in range(5):
                assert R.regularized_gap(P, _interior(rng, 6, 0.5), ref, tau) >= -1e-14
    # at π = ref the KL term vanishes and, for a valid P, DG_τ ≥ 2(Σ ref·Pref − 1/2) = 0 (Jensen)
    P = R.comal3()
    u = R.uniform(3)
    tau = 0.1
    expected = 2 * (tau * math.log(np.mean(np.exp(P @ u / tau))) - 0.5)
    assert R.regularized_gap(P, u, u, tau) == pytest.approx(expected, abs=1e-15)
    # large arguments must not overflow (stable log-sum-exp)
    assert np.isfinite(R.regularized_gap(P, u, u, 1e-4))
    # τ → 0: DG_τ(π) → DG(π) for interior π
    pi = np.array([0.2, 0.5, 0.3])
    assert R.regularized_gap(P, pi, u, 1e-6) == pytest.approx(R.duality_gap(P, pi), abs=1e-4)


# --------------------------------------------------------------------------------------------
# solutions
# --------------------------------------------------------------------------------------------

def test_exact_nash_known_games():
    np.testing.assert_allclose(R.exact_nash(R.comal3()), COMAL_NASH, atol=1e-10)
    np.testing.assert_allclose(R.exact_nash(R.rps()), RPS_NASH, atol=1e-10)
    # 2×2 with a Condorcet winner: the winner's vertex
    np.testing.assert_allclose(R.exact_nash(np.array([[0.5, 0.3], [0.7, 0.5]])), [0.0, 1.0],
                               atol=1e-12)
    # transitive 4×4 (0 beats everybody): vertex 0
    P = np.full((4, 4), 0.5)
    for i in range(4):
        for j in range(i + 1, 4):
            P[i, j], P[j, i] = 0.6 + 0.1 * j, 0.4 - 0.1 * j
    np.testing.assert_allclose(R.exact_nash(P), np.eye(4)[0], atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_exact_nash_random_games_has_zero_exploitability(seed):
    for n in range(2, 13):
        P = _random_game(100 * seed + n, n)
        pi = R.exact_nash(P)
        assert np.all(pi >= 0) and pi.sum() == pytest.approx(1.0, abs=1e-15)
        assert R.exploitability(P, pi) < 1e-9
        # Nash wins at least half the time against every pure response (and hence every policy)
        assert np.all(pi @ P >= 0.5 - 1e-9)


def test_regularized_nash_comal3_matches_paper():
    P = R.comal3()
    pi, res = R.regularized_nash(P, R.uniform(3), 0.1, full_output=True)
    assert res < 1e-10
    np.testing.assert_allclose(pi, COMAL_REG_NASH_01, atol=1e-5)
    assert R.duality_gap(P, pi) == pytest.approx(0.02449, abs=1e-5)
    assert abs(R.regularized_gap(P, pi, R.uniform(3), 0.1)) < 1e-12
    # it is the fixed point π ∝ ref·exp(Pπ/τ), written out by hand
    w = np.exp(P @ pi / 0.1)
    np.testing.assert_allclose(pi, w / w.sum(), atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_regularized_nash_random_games(seed):
    rng = np.random.default_rng(seed)
    for n in (2, 4, 7, 12):
        P = _random_game(1000 + 10 * seed + n, n)
        ref = _interior(rng, n, 0.7)
        for tau in (0.05, 0.2, 1.0):
            pi, res = R.regularized_nash(P, ref, tau, full_output=True)
            assert res < 1e-10
            assert abs(R.regularized_gap(P, pi, ref, tau)) < 1e-12
            # DG_τ is minimized (= 0) at π*_τ: random other points do worse
            for _ in range(3):
                assert R.regularized_gap(P, _interior(rng, n), ref, tau) > 0


def test_regularized_nash_limits():
    P = _random_game(7, 5)
    rng = np.random.default_rng(7)
    ref = _interior(rng, 5)
    # τ → ∞: π*_τ → ref, with π*_τ ≈ ref·(1 + (Pref − ref·Pref)/τ) to first order
    tau = 1e4
    pi = R.regularized_nash(P, ref, tau)
    g = P @ ref
    np.testing.assert_allclose(pi, ref * (1 + (g - ref @ g) / tau), atol=1e-7)
    # ref without full support: π*_τ has the same support
    ref0 = ref.copy()
    ref0[1] = 0.0
    ref0 /= ref0.sum()
    pi0, res = R.regularized_nash(P, ref0, 0.1, full_output=True)
    assert pi0[1] == 0.0 and res < 1e-10
    # rps: by symmetry π*_τ = uniform for every τ
    for tau in (0.05, 0.5):
        np.testing.assert_allclose(R.regularized_nash(R.rps(), None, tau), RPS_NASH, atol=1e-12)


# --------------------------------------------------------------------------------------------
# one-step closed forms (computed by hand on comal3)
# --------------------------------------------------------------------------------------------

def test_first_steps_by_hand():
    P = R.comal3()
    u = R.uniform(3)
    g = np.array([1.4, 1.5, 1.6]) / 3          # P u
    eta = 0.7
    e = np.exp(eta * g)
    np.testing.assert_allclose(R.step_mwu(P, u, eta), e / e.sum(), atol=1e-15)
    # omwu's first step equals mwu's
    pi1, g0 = R.step_omwu(P, u, None, eta)
    np.testing.assert_allclose(pi1, e / e.sum(), atol=1e-15)
    np.testing.assert_allclose(g0, g, atol=1e-15)
    # second omwu step: π1·exp(η(2 Pπ1 − g0))
    w = pi1 * np.exp(eta * (2 * P @ pi1 - g))
    np.testing.assert_allclose(R.step_omwu(P, pi1, g0, eta)[0], w / w.sum(), atol=1e-15)

    pi = np.array([0.5, 0.3, 0.2])
    ref = np.array([0.2, 0.3, 0.5])
    eta, tau = 1.0, 0.5                       # ητ = 1/2: geometric mean of π and ref
    gm = np.sqrt(pi * ref)
    w = gm * np.exp(eta * P @ pi)
    np.testing.assert_allclose(R.step_inpo(P, pi, ref, eta, tau), w / w.sum(), atol=1e-15)
    mu = gm / gm.sum()
    w = mu * np.exp(eta * P @ mu)
    np.testing.assert_allclose(R.step_nash_md(P, pi, ref, eta, tau), w / w.sum(), atol=1e-15)
    w = (pi * ref ** 0.5 * np.exp(eta * P @ pi)) ** (1 / 1.5)
    np.testing.assert_allclose(R.step_mmd(P, pi, ref, eta, tau), w / w.sum(), atol=1e-15)
    half = gm * np.exp(eta * P @ pi)
    half /= half.sum()
    w = gm * np.exp(eta * P @ half)
    np.testing.assert_allclose(R.step_extragradient(P, pi, ref, eta, tau), w / w.sum(),
                               atol=1e-15)
    # ητ = 1: inpo forgets π and becomes iterative IPO with τ = 1/η
    np.testing.assert_allclose(R.step_inpo(P, pi, ref, 2.0, 0.5),
                               R.step_iterative_ipo(P, pi, ref, 0.5), atol=1e-15)
    w = ref * np.exp(P @ pi / 0.25)
    np.testing.assert_allclose(R.step_iterative_ipo(P, pi, ref, 0.25), w / w.sum(), atol=1e-15)
    # replicator: π(1 + η(g − 1/2)) (πᵀPπ = 1/2 for a valid P)
    np.testing.assert_allclose(R.step_replicator(P, pi, 0.3),
                               pi * (1 + 0.3 * (P @ pi - 0.5)), atol=1e-15)


def test_classical_baselines_by_hand():
    P = R.comal3()
    traj = R.simulate("fictitious_play", P, 2)
    # argmax(1.4, 1.5, 1.6)/3 = 2; then P(u + e2)/2 = ((1.4,1.5,1.6)/3 + (.8,.1,.5))/2 → 0
    np.testing.assert_array_equal(traj[1], [0, 0, 1])
    np.testing.assert_array_equal(traj[2], [1, 0, 0])
    # first index on ties: rps from uniform, all win rates equal
    np.testing.assert_array_equal(R.simulate("fictitious_play", R.rps(), 1)[1], [1, 0, 0])
    # regret matching: r0 = g − 1/2 = (−1/30, 0, 1/30) → e2; r1 = Pe2 − 1/2 = (.3, −.4, 0)
    rm = R.simulate("regret_matching", P, 2)
    np.testing.assert_allclose(rm[1], [0, 0, 1], atol=1e-12)     # r0[1] is 0 up to rounding
    np.testing.assert_allclose(rm[2], [8 / 9, 0, 1 / 9], atol=1e-14)
    rmp = R.simulate("regret_matching_plus", P, 2)
    np.testing.assert_allclose(rmp[1], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rmp[2], [9 / 10, 0, 1 / 10], atol=1e-14)
    # all regrets ≤ 0 → uniform
    np.testing.assert_allclose(R.simulate("regret_matching", R.rps(), 1)[1], RPS_NASH)


# --------------------------------------------------------------------------------------------
# equilibria are fixed points
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("game,nash", [(R.rps, RPS_NASH), (R.comal3, COMAL_NASH)])
@pytest.mark.parametrize("eta", [0.1, 1.0, 5.0])
def test_full_support_nash_is_fixed_by_unregularized_updates(game, nash, eta):
    P = game()
    atol = 1e-13
    np.testing.assert_allclose(R.step_mwu(P, nash, eta), nash, atol=atol)
    np.testing.assert_allclose(R.step_omwu(P, nash, None, eta)[0], nash, atol=atol)
    np.testing.assert_allclose(R.step_omwu(P, nash, P @ nash, eta)[0], nash, atol=atol)
    np.testing.assert_allclose(R.step_extragradient(P, nash, R.uniform(3), eta, 0.0), nash,
                               atol=atol)
    np.testing.assert_allclose(R.step_replicator(P, nash, eta), nash, atol=atol)
    # prox-point schemes anchored at the Nash stay there
    np.testing.assert_allclose(R.step_comal(P, nash, eta, 0.1, 5), nash, atol=atol)
    np.testing.assert_allclose(R.step_mpo(P, nash, nash, 0, eta, 0.1, 3)[0], nash, atol=atol)
    for name, hp in [("mwu", {"eta": eta}), ("omwu", {"eta": eta}),
                     ("extragradient", {"eta": eta}), ("replicator", {"eta": eta})]:
        for pi in R.simulate(name, P, 5, pi0=nash, **hp):
            np.testing.assert_allclose(pi, nash, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_regularized_nash_is_fixed_by_regularized_updates(seed):
    rng = np.random.default_rng(seed)
    n = 6
    P = _random_game(2000 + seed, n)
    ref = _interior(rng, n)
    for tau in (0.1, 0.5):
        star = R.regularized_nash(P, ref, tau)
        for eta in (0.1, 1.0, 1.0 / tau):
            for new in (R.step_inpo(P, star, ref, eta, tau),
                        R.step_mmd(P, star, ref, eta, tau),
                        R.step_extragradient(P, star, ref, eta, tau)):
                np.testing.assert_allclose(new, star, atol=1e-9)
        np.testing.assert_allclose(R.step_iterative_ipo(P, star, ref, tau), star, atol=1e-9)
        # nash_md is not: its fixed point carries an O(η) bias
        assert np.max(np.abs(R.step_nash_md(P, star, ref, 1.0, tau) - star)) > 1e-6


# --------------------------------------------------------------------------------------------
# dynamics: theorems about where the last iterate goes
# --------------------------------------------------------------------------------------------

def test_inpo_reaches_regularized_nash_on_comal3():
    P = R.comal3()
    traj = R.simulate("inpo", P, 2000, eta=0.1, tau=0.1)
    assert len(traj) == 2001
    np.testing.assert_allclose(traj[0], R.uniform(3))
    np.testing.assert_allclose(traj[-1], COMAL_REG_NASH_01, atol=1e-5)
    np.testing.assert_allclose(traj[-1], R.regularized_nash(P, None, 0.1), atol=1e-7)


def test_regularized_limits_do_not_depend_on_eta():
    P = _random_game(11, 5)
    rng = np.random.default_rng(11)
    ref = _interior(rng, 5)
    pi0 = _interior(rng, 5)
    tau = 0.5
    star = R.regularized_nash(P, ref, tau)
    for name in ("inpo", "mmd", "extragradient"):
        for eta in (0.3, 1.0):
            last = R.simulate(name, P, 400, pi0=pi0, ref=ref, eta=eta, tau=tau)[-1]
            np.testing.assert_allclose(last, star, atol=1e-8, err_msg=f"{name} η={eta}")
    # nash_md: O(η) bias, smaller η → closer
    d = [np.abs(R.simulate("nash_md", P, 3000, pi0=pi0, ref=ref, eta=eta, tau=tau)[-1] - star).max()
         for eta in (0.4, 0.1)]
    assert d[1] < 0.5 * d[0]


def test_mwu_last_iterate_diverges_average_converges_on_rps():
    P = R.rps()
    traj = R.simulate("mwu", P, 3000, pi0=np.array([0.5, 0.3, 0.2]), eta=0.05)
    kls = np.array([R.kl(RPS_NASH, pi) for pi in traj])
    assert np.all(np.diff(kls) > 0)                   # KL(π*‖π_t) strictly increases
    gaps = np.array([R.duality_gap(P, pi) for pi in traj])
    assert gaps[len(gaps) // 2:].min() > 0.1          # the last iterate stays far from Nash
    assert R.duality_gap(P, np.mean(traj, axis=0)) < 0.05


@pytest.mark.parametrize("name,hp", [("omwu", {"eta": 0.5}),
                                     ("extragradient", {"eta": 0.5}),
                                     ("mpo", {"eta": 0.5, "tau": 0.5, "K": 10}),
                                     ("comal", {"eta": 1.0, "tau": 0.5, "inner": 60})])
def test_last_iterate_reaches_exact_nash_on_comal3(name, hp):
    P = R.comal3()
    steps = 300 if name == "comal" else 3000
    traj = R.simulate(name, P, steps, pi0=np.array([0.6, 0.3, 0.1]), **hp)
    assert R.duality_gap(P, traj[-1]) < 1e-6
    np.testing.assert_allclose(traj[-1], COMAL_NASH, atol=1e-6)


def test_comal_kl_to_nash_is_nonincreasing():
    P = R.comal3()
    traj = R.simulate("comal", P, 40, pi0=np.array([0.7, 0.2, 0.1]), eta=1.0, tau=0.5, inner=80)
    kls = np.array([R.kl(COMAL_NASH, pi) for pi in traj])
    assert np.all(np.diff(kls) <= 1e-12)
    assert kls[-1] < 0.1 * kls[0]


def test_mpo_magnet_schedule():
    P = R.comal3()
    ref = np.array([0.2, 0.3, 0.5])
    pi0 = np.array([0.5, 0.3, 0.2])
    mpo = R.simulate("mpo", P, 5, pi0=pi0, ref=ref, eta=0.5, tau=0.5, K=3)
    mmd = R.simulate("mmd", P, 3, pi0=pi0, ref=ref, eta=0.5, tau=0.5)
    np.testing.assert_allclose(mpo[:4], mmd, atol=1e-15)  # magnet = ref for steps 1..3
    # steps 4, 5 use magnet π_3
    np.testing.assert_allclose(mpo[4], R.step_mmd(P, mpo[3], mpo[3], 0.5, 0.5), atol=1e-15)
    np.testing.assert_allclose(mpo[5], R.step_mmd(P, mpo[4], mpo[3], 0.5, 0.5), atol=1e-15)
    # K larger than the horizon: plain mmd
    np.testing.assert_allclose(R.simulate("mpo", P, 3, pi0=pi0, ref=ref, eta=0.5, tau=0.5, K=99),
                               mmd, atol=1e-15)


def test_regret_matching_average_gap_equals_max_regret_over_t():
    # self-play identity: e(avg of π_0..π_{T−1}) = max_y R_T,y / T, and RM's regret is O(√T)
    P = _random_game(5, 5)
    T = 2000
    pi = R.uniform(5)
    Rg = np.zeros(5)
    pis = []
    for _ in range(T):
        pis.append(pi)
        pi, Rg = R.step_regret_matching(P, pi, Rg)
    avg = np.mean(pis, axis=0)
    assert R.exploitability(P, avg) == pytest.approx(Rg.max() / T, abs=1e-12)
    assert R.exploitability(P, avg) <= math.sqrt(5 / T)
    for name in ("regret_matching_plus", "fictitious_play"):
        traj = R.simulate(name, P, T)
        assert R.exploitability(P, np.mean(traj[:-1], axis=0)) < 0.05, name


# --------------------------------------------------------------------------------------------
# iterative DPO: Bradley–Terry fit
# --------------------------------------------------------------------------------------------

def _bt_game(r):
    return 1.0 / (1.0 + np.exp(-(r[:, None] - r[None, :])))


def test_bradley_terry_fit_recovers_true_rewards():
    rng = np.random.default_rng(3)
    r = rng.normal(size=6)
    P = _bt_game(r)
    pi = _interior(rng, 6)
    rh = R.fit_bradley_terry(P, pi, ridge=1e-12)
    np.testing.assert_allclose(rh - rh.mean(), r - r.mean(), atol=1e-9)
    assert abs(rh.sum()) < 1e-9                       # the ridge picks the zero-mean solution
    # one DPO step = π·exp(r/β) (shift-invariant), and with fixed_ref = ref·exp(r/β)
    beta = 0.5
    ref = _interior(rng, 6)
    w = pi * np.exp(r / beta)
    np.testing.assert_allclose(R.step_iterative_dpo(P, pi, ref, beta, ridge=1e-12), w / w.sum(),
                               atol=1e-9)
    w = ref * np.exp(r / beta)
    np.testing.assert_allclose(R.step_iterative_dpo(P, pi, ref, beta, fixed_ref=True, ridge=1e-12),
                               w / w.sum(), atol=1e-9)


def test_bradley_terry_fit_on_cyclic_game():
    # rps under uniform sampling is symmetric under the cyclic relabelling: r̂ = 0, π' = π
    rh = R.fit_bradley_terry(R.rps(), R.uniform(3))
    np.testing.assert_allclose(rh, 0.0, atol=1e-12)
    np.testing.assert_allclose(R.step_iterative_dpo(R.rps(), R.uniform(3), R.uniform(3), 0.1),
                               RPS_NASH, atol=1e-12)
    # a pure policy gives no comparisons of distinct responses: nothing to learn
    np.testing.assert_allclose(R.fit_bradley_terry(R.comal3(), np.eye(3)[0]), 0.0, atol=1e-12)


def test_iterative_dpo_collapses_on_cyclic_game():
    P = R.comal3()
    last = R.simulate("iterative_dpo", P, 100, beta=0.1)[-1]
    assert last.max() > 0.99
    assert R.duality_gap(P, last) > 0.5


# --------------------------------------------------------------------------------------------
# numerics and the driver
# --------------------------------------------------------------------------------------------

def test_probability_space_updates_survive_extreme_steps():
    P = R.rps()
    pi = np.array([1e-300, 1.0 - 1e-300, 0.0])
    for new in (R.step_mwu(P, pi, 1e4),
                R.step_omwu(P, pi, None, 1e4)[0],
                R.step_inpo(P, pi, R.uniform(3), 1e4, 1e-4),
                R.step_mmd(P, pi, R.uniform(3), 1e4, 1e-4),
                R.step_extragradient(P, pi, R.uniform(3), 1e4, 0.0),
                R.step_iterative_ipo(P, pi, R.uniform(3), 1e-5)):
        assert np.all(np.isfinite(new)) and new.sum() == pytest.approx(1.0, abs=1e-15)
        assert np.all(new >= 0)
    # a zero entry stays zero under multiplicative updates without a full-support reference
    assert R.step_mwu(P, pi, 1.0)[2] == 0.0
    # the normalizer would underflow in probability space: [1, 0, 1e-300]·exp(−800, 0, 0)
    w = R._geometric([np.array([1.0, 0.0, 1e-300])], [1.0], np.array([-800.0, 0.0, 0.0]))
    np.testing.assert_allclose(w, [math.exp(-800 - math.log(1e-300)), 0.0, 1.0], rtol=1e-12)


def test_simulate_rejects_bad_arguments():
    P = R.comal3()
    with pytest.raises(KeyError):
        R.simulate("sppo_typo", P, 1, eta=0.1)
    with pytest.raises(TypeError):
        R.simulate("inpo", P, 1, eta=0.1)               # missing tau
    with pytest.raises(TypeError):
        R.simulate("mwu", P, 1, eta=0.1, tau=0.1)       # unknown tau
    with pytest.raises(ValueError):
        R.simulate("inpo", P, 1, eta=10.0, tau=1.0)     # ητ > 1
    with pytest.raises(ValueError):
        R.simulate("mwu", P, 1, pi0=np.array([0.5, 0.5]), eta=0.1)


@pytest.mark.parametrize("name", sorted(R.ALGORITHMS))
def test_every_algorithm_runs_on_random_games(name):
    hp = {"eta": 0.5, "tau": 0.2, "K": 4, "inner": 5, "beta": 0.5, "eta_w": 0.5, "mix": 0.3}
    alg = R.ALGORITHMS[name]
    kw = {k: hp[k] for k in alg.hparams}
    rng = np.random.default_rng(0)
    for n in (2, 5, 9):
        P = _random_game(n, n)
        traj = R.simulate(name, P, 10, pi0=_interior(rng, n), ref=_interior(rng, n), **kw)
        assert len(traj) == 11
        for pi in traj:
            assert pi.shape == (n,) and np.all(pi >= 0) and pi.sum() == pytest.approx(1.0)


def test_reference_is_independent_of_the_engine():
    import ast
    tree = ast.parse(Path(R.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert not roots & {"gamelab", "jax", "jaxlib", "optax", "flax"}, roots
