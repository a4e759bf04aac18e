"""Every registered algorithm: single and batched, jitted and not; closed-form single steps;
fixed points; hyper-parameter validation."""
import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from conftest import COMAL3, COMAL3_NASH, random_matrix
from gamelab.algorithms import REGISTRY, algorithm_names, get_algorithm
from gamelab.games import comal3
from gamelab.nash import exact_nash, regularized_nash
from gamelab.run import run, run_batch

ALGOS = algorithm_names()
# Small, fast settings per algorithm for the generic suite (steps count COMAL outer iterations).
SETTINGS = {"comal": {"inner": 20}, "mpo": {"refresh_every": 7}}


def small(name):
    return SETTINGS.get(name, {})


@pytest.mark.parametrize("name", ALGOS)
@pytest.mark.parametrize("jit", [True, False])
def test_single_run_on_simplex_and_finite(name, jit):
    r = run(name, COMAL3, steps=12, record_every=3, init=[0.5, 0.3, 0.2], jit=jit, **small(name))
    p = np.asarray(r.policy)
    assert p.shape == (3,) and np.all(p >= 0) and abs(p.sum() - 1) < 1e-12
    assert not np.any(np.isnan(np.asarray(r.logp)))
    assert list(r.steps) == [0, 3, 6, 9, 12]
    for key, values in r.trace.items():
        values = np.asarray(values)
        assert values.shape == (5,), key
        if key in ("kl_to_target",):  # +inf is honest for a pure policy (fictitious play)
            assert not np.any(np.isnan(values)), key
        else:
            assert np.all(np.isfinite(values)), key
    assert np.all((np.asarray(r.trace["duality_gap"]) >= 0) & (np.asarray(r.trace["duality_gap"]) <= 1))


@pytest.mark.parametrize("name", ALGOS)
def test_jit_equals_eager_and_batch_equals_single(name):
    rng = np.random.default_rng(1)
    games = [random_matrix(rng, 4) for _ in range(3)]
    hp = small(name)
    eager = [run(name, g, steps=6, record_every=2, jit=False, **hp) for g in games]
    batch = run_batch(name, games, steps=6, record_every=2, hparams=hp)
    batch_eager = run_batch(name, games, steps=6, record_every=2, hparams=hp, jit=False)
    np.testing.assert_allclose(np.asarray(batch_eager.logp), np.asarray(batch.logp), atol=1e-12, rtol=0)
    for i, single in enumerate(eager):
        np.testing.assert_allclose(np.asarray(batch.logp[i]), np.asarray(single.logp), atol=1e-12, rtol=0)
        for key in single.trace:
            np.testing.assert_allclose(np.asarray(batch.trace[key][i]), np.asarray(single.trace[key]),
                                       atol=1e-12, rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", [a for a in ALGOS if REGISTRY[a].hparams._fields])
def test_hyperparameter_values_do_not_recompile(name):
    """A sweep over a hyper-parameter is a vmap of traced values, not one compile per value."""
    algo = REGISTRY[name]
    field = algo.hparams._fields[0]
    default = algo.hparams()[0]
    values = [default, default * 2 if field not in ("fixed_ref",) else 1 - default]
    from gamelab.run import simulate_batch_jit

    fixed = {k: v for k, v in small(name).items() if k != field}
    r = run_batch(name, [COMAL3], steps=4, hparams={field: values, **fixed})
    assert r.logp.shape == (2, 3)
    assert np.all(np.isfinite(np.asarray(r.trace["duality_gap"])))
    compiled = simulate_batch_jit.cache_size()
    other = [v * 0.5 if field != "fixed_ref" else v for v in values]
    run_batch(name, [COMAL3], steps=4, hparams={field: other, **fixed})
    assert simulate_batch_jit.cache_size() == compiled


def test_one_compile_per_shape():
    from gamelab.run import simulate_batch_jit

    before = simulate_batch_jit.cache_size()
    for eta in (0.1, 0.2, 0.3):
        run_batch("inpo", [COMAL3, COMAL3], steps=5, hparams={"eta": [eta, eta / 2], "tau": 0.1})
    assert simulate_batch_jit.cache_size() - before <= 1


# ----------------------------------------------------------------- closed forms (one step, 3x3)
U = np.full(3, 1 / 3)
PI0 = np.array([0.5, 0.3, 0.2])
REF = np.array([0.2, 0.5, 0.3])


def one_step(name, **hp):
    return np.asarray(run(name, COMAL3, steps=1, init=PI0, ref=REF, target=None, **hp).policy)


def normalize(w):
    return w / w.sum()


def test_mwu_closed_form():
    g = COMAL3 @ PI0  # (0.5·.5+.1·.3+.8·.2, ...) = (0.44, 0.62, 0.47)
    np.testing.assert_allclose(g, [0.44, 0.62, 0.47], atol=1e-15)
    np.testing.assert_allclose(one_step("mwu", eta=0.7), normalize(PI0 * np.exp(0.7 * g)), atol=1e-15)


def test_omwu_first_step_is_mwu_and_second_is_optimistic():
    g0 = COMAL3 @ PI0
    p1 = normalize(PI0 * np.exp(0.7 * g0))
    np.testing.assert_allclose(one_step("omwu", eta=0.7), p1, atol=1e-15)
    p2 = normalize(p1 * np.exp(0.7 * (2 * COMAL3 @ p1 - g0)))
    two = np.asarray(run("omwu", COMAL3, steps=2, init=PI0, target=None, eta=0.7).policy)
    np.testing.assert_allclose(two, p2, atol=1e-15)


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_extragradient_closed_form(tau):
    eta = 0.7
    base = PI0 ** (1 - eta * tau) * REF ** (eta * tau)
    half = normalize(base * np.exp(eta * COMAL3 @ PI0))
    full = normalize(base * np.exp(eta * COMAL3 @ half))
    np.testing.assert_allclose(one_step("extragradient", eta=eta, tau=tau), full, atol=1e-15)


def test_inpo_nash_md_mmd_closed_forms():
    eta, tau = 0.7, 0.3
    g = COMAL3 @ PI0
    inpo = normalize(PI0 ** (1 - eta * tau) * REF ** (eta * tau) * np.exp(eta * g))
    np.testing.assert_allclose(one_step("inpo", eta=eta, tau=tau), inpo, atol=1e-15)
    mu = normalize(PI0 ** (1 - eta * tau) * REF ** (eta * tau))
    np.testing.assert_allclose(one_step("nash_md", eta=eta, tau=tau), normalize(mu * np.exp(eta * COMAL3 @ mu)), atol=1e-15)
    mmd = normalize((PI0 * REF ** (eta * tau) * np.exp(eta * g)) ** (1 / (1 + eta * tau)))
    np.testing.assert_allclose(one_step("mmd", eta=eta, tau=tau), mmd, atol=1e-15)


def test_mpo_refreshes_magnet_every_k_steps():
    eta, tau = 0.7, 0.3

    def mmd(p, magnet):
        return normalize((p * magnet ** (eta * tau) * np.exp(eta * COMAL3 @ p)) ** (1 / (1 + eta * tau)))

    p, magnet = PI0, REF
    for t in range(1, 6):
        p = mmd(p, magnet)
        if t % 2 == 0:
            magnet = p
    r = run("mpo", COMAL3, steps=5, init=PI0, ref=REF, target=None, eta=eta, tau=tau, refresh_every=2)
    np.testing.assert_allclose(np.asarray(r.policy), p, atol=1e-14)
    np.testing.assert_allclose(np.exp(np.asarray(r.state.ref)), magnet, atol=1e-14)


def test_comal_outer_step_is_inner_inpo_anchored_at_current_policy():
    eta, tau, inner = 0.2, 0.3, 7
    p = PI0
    for _ in range(2):
        anchor = p
        for _ in range(inner):
            p = normalize(p ** (1 - eta * tau) * anchor ** (eta * tau) * np.exp(eta * COMAL3 @ p))
    r = run("comal", COMAL3, steps=2, init=PI0, target=None, eta=eta, tau=tau, inner=inner)
    np.testing.assert_allclose(np.asarray(r.policy), p, atol=1e-14)
    assert int(r.state.inner_steps) == inner


def test_comal_inner_tolerance_stops_early():
    r = run("comal", COMAL3, steps=3, eta=0.1, tau=0.5, inner=5000, inner_tol=1e-6, target=None)
    assert 0 < int(r.state.inner_steps) < 5000


def test_iterative_ipo_closed_form():
    np.testing.assert_allclose(one_step("iterative_ipo", tau=0.3), normalize(REF * np.exp(COMAL3 @ PI0 / 0.3)), atol=1e-14)


def test_exo_closed_form_is_online_ipo_with_tau_beta():
    """Iterative EXO's target π_ref·exp(Pπ/β) is representable by a tabular policy, so the
    reverse-KL projection onto it is the target itself: log_softmax(ref + Pπ/β), iterative IPO's
    step with τ = β and mix = 0 (also over several steps)."""
    expected = log_softmax(np.log(REF) + COMAL3 @ PI0 / 0.3)
    got = run("exo", COMAL3, steps=1, init=PI0, ref=REF, target=None, beta=0.3)
    np.testing.assert_allclose(np.asarray(got.logp), expected, atol=1e-14)
    np.testing.assert_array_equal(one_step("exo", beta=0.3), one_step("iterative_ipo", tau=0.3, mix=0.0))
    kw = dict(steps=7, init=PI0, ref=REF, target=None)
    np.testing.assert_array_equal(np.asarray(run("exo", COMAL3, beta=0.7, **kw).policy),
                                  np.asarray(run("iterative_ipo", COMAL3, tau=0.7, **kw).policy))
    assert get_algorithm("exo").hparams().beta == get_algorithm("iterative_ipo").hparams().tau


def test_iterative_dpo_step_uses_bradley_terry_fit():
    """The fitted reward zeroes the weighted-logistic gradient; the policy is π·exp(r̂/β)."""
    r = run("iterative_dpo", COMAL3, steps=1, init=PI0, target=None, beta=0.5)
    reward = np.asarray(r.state.reward)
    W = np.outer(PI0, PI0)
    S = 1 / (1 + np.exp(-(reward[:, None] - reward[None, :])))
    grad = (W * (S - COMAL3)).sum(1) + 1e-8 * reward
    assert np.abs(grad).max() < 1e-12
    np.testing.assert_allclose(np.asarray(r.policy), normalize(PI0 * np.exp(reward / 0.5)), atol=1e-14)
    fixed = run("iterative_dpo", COMAL3, steps=1, init=PI0, ref=REF, target=None, beta=0.5, fixed_ref=1)
    np.testing.assert_allclose(np.asarray(fixed.policy), normalize(REF * np.exp(reward / 0.5)), atol=1e-12)


def test_classical_baselines_closed_forms():
    g = COMAL3 @ PI0
    fp = np.asarray(run("fictitious_play", COMAL3, steps=1, init=PI0, target=None).policy)
    np.testing.assert_array_equal(fp, np.eye(3)[np.argmax(g)])
    regret = g - PI0 @ g
    rm = np.asarray(run("regret_matching", COMAL3, steps=1, init=PI0, target=None).policy)
    np.testing.assert_allclose(rm, normalize(np.maximum(regret, 0)), atol=1e-15)
    rep = np.asarray(run("replicator", COMAL3, steps=1, init=PI0, target=None, eta=1.5).policy)
    np.testing.assert_allclose(rep, normalize(PI0 * (1 + 1.5 * regret)), atol=1e-15)


def test_onpo_closed_form():
    """Two sequences: π̂_1 = prox(π_0, g_0), π_1 = prox(π̂_1, g_0), prox(a, g) ∝ (a·ref^{ητ}·e^{ηg})^{1/(1+ητ)};
    at τ = 0 the first step is π_0·exp(2η g_0) (the prediction before any feedback is 0)."""
    eta, tau = 0.7, 0.3
    g = COMAL3 @ PI0
    hat = normalize((PI0 * REF ** (eta * tau) * np.exp(eta * g)) ** (1 / (1 + eta * tau)))
    p1 = normalize((hat * REF ** (eta * tau) * np.exp(eta * g)) ** (1 / (1 + eta * tau)))
    r = run("onpo", COMAL3, steps=1, init=PI0, ref=REF, target=None, eta=eta, tau=tau)
    np.testing.assert_allclose(np.asarray(r.policy), p1, atol=1e-15)
    np.testing.assert_allclose(np.exp(np.asarray(r.state.hat)), hat, atol=1e-15)
    np.testing.assert_allclose(one_step("onpo", eta=eta, tau=0.0), normalize(PI0 * np.exp(2 * eta * g)), atol=1e-15)


def test_nash_mp_closed_form():
    eta, tau = 2.0, 0.1
    c = 1 / (1 + eta * tau)

    def prox(anchor, g):
        return normalize((anchor * REF ** (eta * tau) * np.exp(eta * g)) ** c)

    half = prox(PI0, COMAL3 @ PI0)
    np.testing.assert_allclose(one_step("nash_mp", eta=eta, tau=tau), prox(PI0, COMAL3 @ half), atol=1e-15)


def test_euclidean_methods_closed_forms():
    """g_0 = (0.44, 0.62, 0.47); with η = 1/2, π_0 + η g_0 = (0.72, 0.61, 0.435) sums to 1.765, so
    its projection onto the simplex subtracts θ = 0.255 from each entry (none clips)."""
    first = np.array([0.465, 0.355, 0.18])
    # OGDA: x̂_1 = Π(x_0 + η g_0) = first; x_1 = Π(x̂_1 + η g_0) = (0.685, 0.665, 0.415) − 0.255
    np.testing.assert_allclose(one_step("ogda", eta=0.5), [0.43, 0.41, 0.16], atol=1e-15)
    # extragradient: x_½ = first; x_1 = Π(x_0 + η P x_½)
    y = PI0 + 0.5 * COMAL3 @ first
    expected = y - (y.sum() - 1) / 3
    assert expected.min() > 0
    np.testing.assert_allclose(one_step("projected_extragradient", eta=0.5), expected, atol=1e-15)
    # EAG: the first step has y_0 = x_0 (anchor = x_0), so it is extragradient's; the second pulls
    # toward x_0 by 1/3: y_1 = x_1 + (x_0 − x_1)/3
    np.testing.assert_allclose(one_step("eag", eta=0.5), expected, atol=1e-15)
    x1 = expected
    y1 = x1 + (PI0 - x1) / 3
    half = y1 + 0.5 * COMAL3 @ x1
    half = half - (half.sum() - 1) / 3
    full = y1 + 0.5 * COMAL3 @ half
    full = full - (full.sum() - 1) / 3
    two = run("eag", COMAL3, steps=2, init=PI0, target=None, eta=0.5)
    np.testing.assert_allclose(np.asarray(two.policy), full, atol=1e-15)
    # a large step clips to vertices, exactly: x_½ = Π(x_0 + 10 g_0) = Π(4.9, 6.5, 4.9) = (0, 1, 0)
    # (θ = 5.5); x_1 = Π(x_0 + 10·P e_1) = Π(1.5, 5.3, 9.2) = (0, 0, 1) (θ = 8.2)
    big = run("projected_extragradient", COMAL3, steps=1, init=PI0, target=None, eta=10.0)
    np.testing.assert_array_equal(np.asarray(big.policy), [0.0, 0.0, 1.0])
    assert np.isneginf(np.asarray(big.logp)[:2]).all()


def test_simplex_projection_keeps_padding_at_zero():
    from gamelab.algorithms.euclidean import project_simplex
    from gamelab.algorithms.regret import project_truncated_orthant

    # sorted responses 0.9, 0.5, −0.2: ρ = 2, θ = (0.9 + 0.5 − 1)/2 = 0.2; the padded 7.0 is ignored
    x, mask = np.array([0.9, 0.5, -0.2, 7.0]), np.array([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(np.asarray(project_simplex(x, mask)), [0.7, 0.3, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(np.asarray(project_simplex(x)), [0.0, 0.0, 0.0, 1.0], atol=1e-15)
    # onto {z ≥ 0, ‖z‖₁ ≥ 1}: the positive part when it sums to ≥ 1, else the simplex projection
    np.testing.assert_allclose(np.asarray(project_truncated_orthant(x, mask)), [0.9, 0.5, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(np.asarray(project_truncated_orthant(np.array([0.5, 0.1, -1.0]))), [0.7, 0.3, 0.0],
                               atol=1e-15)


def test_regret_matching_variants_closed_forms():
    """r_0 = g_0 − π_0ᵀg_0 = (−0.06, 0.12, −0.03) (π_0ᵀPπ_0 = ½); with η = 1/2 the smooth variants'
    z_0 + η r_0 = (0.47, 0.36, 0.185) sums to 1.015 ≥ 1, so Π_C is the positive part."""
    g = COMAL3 @ PI0
    r0 = g - PI0 @ g
    np.testing.assert_allclose(r0, [-0.06, 0.12, -0.03], atol=1e-15)
    # predictive RM+: R_1 = [r_0]⁺, π_1 ∝ [R_1 + r_0]⁺; π_2 ∝ [R_2 + r_1]⁺ with R_2 = [R_1 + r_1]⁺
    p1 = normalize(np.maximum(r0, 0) + np.maximum(r0, 0))
    np.testing.assert_allclose(one_step("predictive_rm_plus"), p1, atol=1e-15)
    r1 = COMAL3 @ p1 - p1 @ COMAL3 @ p1
    R2 = np.maximum(np.maximum(r0, 0) + r1, 0)
    two = run("predictive_rm_plus", COMAL3, steps=2, init=PI0, target=None)
    np.testing.assert_allclose(np.asarray(two.policy), normalize(np.maximum(R2 + r1, 0)), atol=1e-15)
    # smooth predictive RM+: ẑ_1 = (0.47, 0.36, 0.185); z_1 = ẑ_1 + η r_0 = (0.44, 0.42, 0.17)
    np.testing.assert_allclose(one_step("smooth_predictive_rm_plus", eta=0.5), normalize(np.array([0.44, 0.42, 0.17])),
                               atol=1e-15)
    # extragradient RM+: z_½ = (0.47, 0.36, 0.185); z_1 = [z_0 + η r(z_½/‖z_½‖₁)]⁺ (sum ≥ 1 here)
    half = np.array([0.47, 0.36, 0.185])
    xh = half / half.sum()
    z1 = PI0 + 0.5 * (COMAL3 @ xh - xh @ COMAL3 @ xh)
    assert z1.min() > 0 and z1.sum() >= 1
    np.testing.assert_allclose(one_step("extragradient_rm_plus", eta=0.5), normalize(z1), atol=1e-15)
    # restarts: the same step; moved = ‖z_½ − z_0‖ + ‖z_1 − z_½‖ ≤ δ restarts at z_1/‖z_1‖₁
    moved = np.linalg.norm(half - PI0) + np.linalg.norm(z1 - half)
    for delta, restarted in ((2 * moved, True), (moved / 2, False)):
        r = run("rm_plus_restarts", COMAL3, steps=1, init=PI0, target=None, eta=0.5, delta=delta)
        np.testing.assert_allclose(np.asarray(r.policy), normalize(z1), atol=1e-15)
        np.testing.assert_allclose(np.asarray(r.state.z), normalize(z1) if restarted else z1, atol=1e-15)
        assert float(r.state.restarts) == float(restarted)


def test_replicator_huge_step_sends_mass_to_zero_not_nan():
    r = run("replicator", COMAL3, steps=5, init=PI0, eta=1e3)
    p = np.asarray(r.policy)
    assert np.all(np.isfinite(p)) and abs(p.sum() - 1) < 1e-12 and (p == 0).any()


# ----------------------------------------------------------------- fixed points
UNREGULARIZED = [a for a in ALGOS if REGISTRY[a].target == "nash"] + ["mwu", "replicator"]


@pytest.mark.parametrize("name", UNREGULARIZED)
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_nash_is_a_fixed_point(name, seed):
    P = COMAL3 if seed == 0 else random_matrix(np.random.default_rng(seed), 6)
    nash = exact_nash(P).policy
    r = run(name, P, steps=3, init=nash, ref=np.where(nash > 0, nash, 1.0), target=None, **small(name))
    np.testing.assert_allclose(np.asarray(r.policy), nash, atol=1e-12)


@pytest.mark.parametrize("name", ["inpo", "mmd", "extragradient", "iterative_ipo"])
def test_regularized_nash_is_a_fixed_point(name):
    """(nash_md is absent on purpose: its fixed point is π*_τ only up to an O(η) bias.)"""
    tau = 0.3
    star = regularized_nash(COMAL3, REF, tau).policy
    hp = {"tau": tau} if name == "iterative_ipo" else {"eta": 0.4, "tau": tau}
    r = run(name, COMAL3, steps=3, init=star, ref=REF, target=None, **hp)
    np.testing.assert_allclose(np.asarray(r.policy), star, atol=1e-12)


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "name, hp, message",
    [
        ("mwu", {"eta": -0.1}, "eta must be > 0"),
        ("mwu", {"eta": float("nan")}, "eta must be finite"),
        ("inpo", {"tau": 0.0}, "tau must be > 0"),
        ("extragradient", {"tau": -1.0}, "tau must be >= 0"),
        ("comal", {"inner": 2.5}, "inner must be a whole number"),
        ("mpo", {"refresh_every": 0}, "refresh_every must be a whole number"),
        ("iterative_dpo", {"fixed_ref": 2}, "fixed_ref must be 0 or 1"),
        ("mwu", {"tau": 0.1}, "mwu does not take tau"),
    ],
)
def test_bad_hyperparameters_are_rejected_by_name(name, hp, message):
    with pytest.raises(ValueError, match=message):
        run(name, COMAL3, steps=2, **hp)


def test_unknown_algorithm_and_bad_run_arguments():
    with pytest.raises(ValueError, match="unknown algorithm 'nope'; known: comal"):
        get_algorithm("nope")
    with pytest.raises(ValueError, match="inner solver must be one of"):
        get_algorithm("comal:inner=mwu")
    assert get_algorithm("comal:inner=mmd") is get_algorithm("comal:inner=mmd")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        run("mwu", COMAL3, steps=0)
    with pytest.raises(ValueError, match="initial policy must have 3 entries"):
        run("mwu", COMAL3, steps=2, init=[0.5, 0.5])
    with pytest.raises(ValueError, match="reference must give every response positive probability"):
        run("inpo", COMAL3, steps=2, ref=[0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="P \\+ P.T must equal 1"):
        run("mwu", [[0.5, 0.7], [0.7, 0.5]], steps=2)


def test_float32_option():
    r = run("omwu", comal3(), steps=200, eta=1.0, dtype="float32")
    assert r.logp.dtype == np.float32 and r.trace["duality_gap"].dtype == np.float32
    assert float(r.final["duality_gap"]) < 1e-3


def test_comal_inner_solver_variants():
    for inner in ("mmd", "extragradient", "nash_md"):
        r = run(f"comal:inner={inner}", COMAL3, steps=12, eta=0.1, tau=0.1, inner=200)
        assert float(r.final["duality_gap"]) < 1e-4, inner


def test_record_policy_and_start_at_reference():
    single = run("inpo", COMAL3, steps=10, record_every=5, record_policy=True, init="ref", ref="random", seed=3)
    assert single.trace["policy"].shape == (3, 3) and single.trace["avg_policy"].shape == (3, 3)
    ref = np.exp(np.asarray(single.state.ref))
    np.testing.assert_allclose(np.asarray(single.trace["policy"][0]), ref, atol=1e-15)
    np.testing.assert_allclose(np.asarray(single.trace["policy"][-1]), np.asarray(single.policy), atol=1e-15)
    batch = run_batch("inpo", [COMAL3], steps=10, record_every=5, record_policy=True, init="ref", ref="random", seeds=[3, 4])
    np.testing.assert_allclose(np.asarray(batch.trace["policy"][0]), np.asarray(single.trace["policy"]), atol=1e-15)
    assert not np.allclose(np.asarray(batch.trace["policy"][1, 0]), ref)  # another seed, another reference


@pytest.mark.parametrize("name", ["inpo", "nash_md", "extragradient", "comal"])
def test_eta_tau_above_one_is_rejected_where_the_update_needs_it(name):
    with pytest.raises(ValueError, match="eta\\*tau must be <= 1"):
        run(name, COMAL3, steps=2, eta=2.0, tau=1.0)
    r = run(name, COMAL3, steps=3, eta=1.0, tau=1.0, init=[1.0, 0.0, 0.0], **small(name))  # ητ = 1 exactly
    assert np.all(np.isfinite(np.asarray(r.policy)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ALGOS)
def test_numerical_extremes_give_no_nan(name, dtype):
    """η from 1e-3 to 1e3, τ from 1e-6 to 1 (ητ ≤ 1 where the update requires it): every policy is
    on the simplex and no metric is NaN. KL to the Nash may be +inf, honestly, for algorithms whose
    iterates put exactly zero mass on a Nash response (fictitious play, regret matching)."""
    algo = REGISTRY[name]
    fields = algo.hparams._fields
    grid = [(eta, tau) for eta in (1e-3, 1.0, 1e3) for tau in (1e-6, 1e-3, 1.0)
            if not ("*" in "".join(c for c, _ in algo.constraints) and eta * tau > 1)]
    hp = {}
    if "eta" in fields:
        hp["eta"] = [e for e, _ in grid]
    if "tau" in fields:
        hp["tau"] = [t for _, t in grid]
    if "beta" in fields:
        hp["beta"] = [t for _, t in grid]
    hp.update({k: v for k, v in small(name).items()})
    rng = np.random.default_rng(3)
    games = [random_matrix(rng, 8) for _ in grid]
    r = run_batch(name, games, steps=40, record_every=10, hparams=hp, init="random", seeds=list(range(len(grid))),
                  dtype=dtype)
    p = np.asarray(r.policy)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5 if dtype == "float32" else 1e-12)
    assert not np.isnan(np.asarray(r.logp)).any()
    for key, values in r.trace.items():
        values = np.asarray(values)
        assert not np.isnan(values).any(), key
        if "kl_to_target" not in key:
            assert np.all(np.isfinite(values)), key


def test_batched_hyperparameters_are_validated_elementwise():
    with pytest.raises(ValueError, match="eta\\*tau must be <= 1.*got 2"):
        run_batch("inpo", [COMAL3], steps=2, hparams={"eta": [0.5, 20.0], "tau": 0.1})
    with pytest.raises(ValueError, match="eta must be > 0, got -1"):
        run_batch("mwu", [COMAL3], steps=2, hparams={"eta": [0.5, -1.0]})


@pytest.mark.parametrize("name, expected", [("mwu", 2), ("inpo", 2), ("omwu", 3)])
def test_recording_every_step_costs_no_extra_matvec(name, expected):
    """The metrics of π_t and the update from π_t share one loop body, and XLA merges their
    products Pπ_t: the compiled run holds one dot in the recording body plus one in the loop over
    the interval's other steps (OMWU: one more for g_{−1} = g_0 at init). Average-iterate metrics
    add one, in the recording body."""
    import re

    import jax
    import jax.numpy as jnp

    from gamelab.games import Game
    from gamelab.run import simulate

    algo = REGISTRY[name]
    P, lp = jnp.asarray(random_matrix(np.random.default_rng(0), 50)), jnp.full(50, -np.log(50))
    hp = algo.hparams(**{k: jnp.asarray(v) for k, v in algo.hparams()._asdict().items()})
    fn = jax.jit(simulate, static_argnames=("algo", "rows", "record_policy", "record_average"))
    for average, extra in ((False, 0), (True, 1)):
        text = fn.lower(algo, Game(P), hp, lp, lp, None, None, 10, 1, rows=16,
                        record_average=average).compile().as_text()
        assert len(re.findall(r" dot\(", text)) == expected + extra
