"""The documented limits of issue 18's last-iterate methods (ONPO, Nash-MP, OGDA, projected
extragradient, EAG, the RM+ family), and Nash-MP's contraction constant measured.

Games with a unique interior Nash are drawn by ``conftest.interior_nash_games``; η is set from
the game's scale as theory asks (KL methods: η_max of the linearized dynamics; Euclidean ones:
L = ‖P − ½‖₂). Each run is a few thousand steps of a jitted scan (milliseconds once compiled).
"""
import numpy as np
import pytest
from hypothesis import given, settings

from conftest import COMAL3, COMAL3_NASH, interior_nash_game, interior_nash_games, near, random_matrix
from gamelab.metrics import regularized_gap
from gamelab.nash import regularized_nash
from gamelab.run import run, run_batch

GAP = 1e-8
# three fixed games with a unique interior Nash, n = 3, 5, 7
INTERIOR = [interior_nash_game(np.random.default_rng(seed), n)[0] for n, seed in ((3, 0), (5, 1), (7, 2))]


def euclidean_scale(P):
    return float(np.linalg.norm(np.asarray(P) - 0.5, 2))


# ----------------------------------------------------------------- exact Nash in the last iterate
@given(game=interior_nash_games())
@settings(max_examples=8)
def test_onpo_unregularized_converges_in_the_last_iterate(game):
    """τ = 0: optimistic OMD (an optimistic MWU) reaches the unique interior Nash from near it (η_max
    is a local scale: see conftest)."""
    P, nash, eta_max = game
    r = run("onpo", P, steps=10_000, record_every=10_000, eta=0.5 * eta_max, tau=0.0, init=near(nash), target=nash)
    assert float(r.final["duality_gap"]) < GAP
    np.testing.assert_allclose(np.asarray(r.policy), nash, atol=1e-7)


@pytest.mark.parametrize("name", ["ogda", "projected_extragradient"])
@given(game=interior_nash_games())
@settings(max_examples=8)
def test_projected_gradient_methods_converge_in_the_last_iterate(name, game):
    """OGDA and projected extragradient with η = 1/(2L): a linear rate on polytopes (Wei et al.
    2021); measured ≤ 500 steps to a gap of 1e-8 on these games."""
    P, nash, _ = game
    r = run(name, P, steps=3000, record_every=3000, eta=0.5 / euclidean_scale(P), target=nash)
    assert float(r.final["duality_gap"]) < GAP
    np.testing.assert_allclose(np.asarray(r.policy), nash, atol=1e-7)


@pytest.mark.parametrize("name", ["extragradient_rm_plus", "smooth_predictive_rm_plus", "rm_plus_restarts"])
@given(game=interior_nash_games())
@settings(max_examples=8)
def test_smooth_regret_matching_converges_in_the_last_iterate(name, game):
    """ExRM+, SPRM+ (asymptotically) and restarted ExRM+ (linearly): measured ≤ 1300 steps to 1e-8."""
    P, nash, _ = game
    r = run(name, P, steps=4000, record_every=4000, eta=0.5, target=nash)
    assert float(r.final["duality_gap"]) < GAP
    np.testing.assert_allclose(np.asarray(r.policy), nash, atol=1e-7)


@pytest.mark.parametrize("name, hp, steps", [
    ("onpo", {"eta": 1.0}, 2000), ("ogda", {"eta": 0.5}, 1000), ("projected_extragradient", {"eta": 0.5}, 1000),
    ("extragradient_rm_plus", {"eta": 0.5}, 2000), ("smooth_predictive_rm_plus", {"eta": 0.5}, 2000),
    ("rm_plus_restarts", {"eta": 0.5}, 2000),
])
def test_last_iterate_reaches_the_comal3_nash(name, hp, steps):
    r = run(name, COMAL3, steps=steps, record_every=steps, init=[0.5, 0.3, 0.2], target=COMAL3_NASH, **hp)
    assert float(r.final["duality_gap"]) < GAP
    np.testing.assert_allclose(np.asarray(r.policy), COMAL3_NASH, atol=1e-8)


def test_eag_gap_decays_like_one_over_t():
    """Anchoring at x_0 with weight 1/(t+2) gives an O(1/T) last-iterate gap, and no faster: the
    anchor's pull fades like 1/t even on a game with an interior Nash. T·gap stays bounded and
    the gap falls ~10× per 10× steps."""
    for P in [COMAL3] + INTERIOR:
        eta = 0.5 / euclidean_scale(P)
        init = np.arange(1.0, P.shape[0] + 1) / np.arange(1.0, P.shape[0] + 1).sum()
        r = run("eag", P, steps=10_000, record_every=1000, eta=eta, init=init, target=None)
        gap = np.asarray(r.trace["duality_gap"])[1:]  # T = 1000, 2000, ..., 10000
        T = np.arange(1, 11) * 1000
        assert np.all(T * gap < 2.0), T * gap
        assert 5.0 < gap[0] / gap[-1] < 20.0, gap


def test_predictive_rm_plus_last_iterate_does_not_converge_while_its_average_does():
    """Cai, Farina et al. 2023 (§3): predictive RM+'s last iterate need not converge."""
    r = run("predictive_rm_plus", COMAL3, steps=4000, record_every=400)
    last, avg = np.asarray(r.trace["duality_gap"]), np.asarray(r.trace["avg_duality_gap"])
    assert last[-5:].min() > 0.1
    assert avg[-1] < 0.02 and avg[-1] < avg[1] / 3


# ----------------------------------------------------------------- the regularized Nash
@pytest.mark.parametrize("name, eta, steps", [("onpo", 0.5, 3000), ("nash_mp", 2.0, 200)])
def test_kl_regularized_methods_reach_the_regularized_nash(name, eta, steps):
    rng = np.random.default_rng(4)
    tau = 0.1
    for n in (3, 5, 8):
        P = random_matrix(rng, n)
        ref = rng.dirichlet(np.ones(n))
        star = regularized_nash(P, ref, tau).policy
        r = run(name, P, steps=steps, record_every=steps, eta=eta, tau=tau, ref=ref, init="random", seed=n)
        assert float(regularized_gap(P, r.logp, np.log(ref), tau)) < 1e-12
        np.testing.assert_allclose(np.asarray(r.policy), star, atol=1e-9)


NASH_MP_GAMES = 10


def nash_mp_linearized_factor(P, star, eta, tau):
    """The per-step factor by which KL(π*_τ‖π_k) shrinks near π*_τ, from Nash-MP's map linearized
    there: in log-ratios δ (modulo constants), g − g* ≈ Mδ with M = P·(diag π* − π*π*ᵀ), so
    δ_{k+1} = Jδ_k with J = (I + (η/c)·M(I + ηM))/c, c = 1 + ητ; KL is quadratic in δ, so its
    factor is the squared spectral radius of J on the quotient by constants."""
    n = P.shape[0]
    M = P @ (np.diag(star) - np.outer(star, star))
    c = 1.0 + eta * tau
    J = (np.eye(n) + (eta / c) * M @ (np.eye(n) + eta * M)) / c
    B = np.linalg.qr(np.column_stack([np.ones(n), np.eye(n)[:, : n - 1]]))[0][:, 1:]  # basis of 1^⊥
    return float(np.max(np.abs(np.linalg.eigvals(B.T @ J @ B)))) ** 2


@pytest.mark.parametrize("tau", [0.05, 0.1, 0.2])
def test_nash_mp_kl_contraction_per_step(tau):
    """Nash-MP's theorem, for η ≤ 2: KL(π*_τ‖π_{k+1}) ≤ KL(π*_τ‖π_k)/(1 + ητ); at the default
    η = 2 that is 1/(1 + 2τ) per step = (1 + 2τ)^{−N/2} per preference query (2 per step).

    Measured on 10 random 5-response games (uniform start and reference): every step contracts
    by more than the bound asks, and the per-step factor (geometric mean over steps 20..30) is
    within 5 % of the linearized prediction, which is at most (1 + ητ)^{−2}, the *square* of the
    bound: near π*_τ the bound is loose by a square, KL falls like (1 + 2τ)^{−N}, not ^{−N/2}.
    Measured per step, min–max over the games (bound; (1 + 2τ)^{−2}; linearized prediction):
    τ = 0.05: 0.795–0.821 (0.909; 0.826; 0.811–0.826), τ = 0.1: 0.668–0.694 (0.833; 0.694;
    0.677–0.694), τ = 0.2: 0.486–0.510 (0.714; 0.510; 0.493–0.510); at most 3.8 % from the
    prediction."""
    eta = 2.0
    rng = np.random.default_rng(11)
    games = [random_matrix(rng, 5) for _ in range(NASH_MP_GAMES)]
    stars = np.stack([regularized_nash(P, None, tau).policy for P in games])
    r = run_batch("nash_mp", games, steps=30, record_every=1, hparams={"eta": eta, "tau": tau}, target=stars)
    kl = np.asarray(r.trace["kl_to_target"])
    assert np.all(kl[:, -1] > 1e-20)  # still far above rounding
    ratio = kl[:, 1:] / kl[:, :-1]
    bound = 1.0 / (1.0 + eta * tau)
    assert np.all(ratio <= bound), ratio.max()
    measured = np.exp(np.mean(np.log(ratio[:, 20:]), axis=1))
    predicted = np.array([nash_mp_linearized_factor(P, star, eta, tau) for P, star in zip(games, stars)])
    assert np.all(predicted <= bound**2 * (1 + 1e-12))
    np.testing.assert_allclose(measured, predicted, rtol=0.05)
