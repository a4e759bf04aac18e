"""The sampled win rate against the reference: its interval (gamelab.llm.games.bounded_mean_interval)
stays honest where the normal interval collapses — every sampled response in one class, or a
rare class — and is Wilson's interval, with close to nominal coverage, on 0/1 data.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import binom, norm

from gamelab.llm.games import bounded_mean_interval, class_intervals

LEVEL = 0.95
Z = norm.ppf(0.5 + LEVEL / 2)
# three classes against a reference on class 2: class 0 always beats it, class 1 never, class 2 ties
C = np.array([[0.5, 0.5, 1.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.5]])
REF_Q = np.array([0.0, 0.0, 1.0])  # w = C @ REF_Q = (1, 0, ½)
STAR, PRESENT = np.full(3, 1 / 3), np.ones(3, bool)


def win_intervals(counts, level=LEVEL):
    """(point, lo, hi) of win_rate_vs_ref from class counts (reps, 3), through class_intervals (jit)."""
    counts = jnp.asarray(np.atleast_2d(counts), jnp.float64)
    K = int(counts[0].sum())  # every row: K responses

    def one(c, key):
        logp = jnp.zeros(K)  # K responses' log-probabilities (they do not enter the win rate)
        out = class_intervals(c, jnp.asarray(C), jnp.asarray(STAR), jnp.asarray(PRESENT), key, (level,), logp=logp,
                              ref_q=jnp.asarray(REF_Q), log_n=np.log(8.0))
        return out["win_rate_vs_ref"]

    point, lo, hi = jax.jit(jax.vmap(one))(counts, jax.random.split(jax.random.key(0), counts.shape[0]))
    return np.asarray(point), np.asarray(lo)[:, 0], np.asarray(hi)[:, 0]


@pytest.mark.parametrize("cls", [0, 1, 2])
def test_every_response_in_one_class_gives_a_positive_width_that_shrinks_like_one_over_n(cls):
    widths = []
    for K in (100, 1000, 10000):
        counts = np.zeros(3)
        counts[cls] = K
        point, lo, hi = win_intervals(counts)
        w = (C @ REF_Q)[cls]
        assert point[0] == w and lo[0] <= w <= hi[0]
        assert hi[0] - lo[0] > 0, (cls, K)  # the normal interval's width was exactly 0 here
        widths.append(hi[0] - lo[0])
    # the mass a sample of K can miss, z²/K of the range [0, 1]: ~1/K, not 1/√K
    np.testing.assert_allclose(np.array(widths) * [100, 1000, 10000], Z**2, rtol=0.05)


def test_the_interval_on_a_constant_variable_is_its_value():
    lo, hi = bounded_mean_interval(jnp.asarray(0.3), jnp.asarray(0.0), 50, Z, 0.3, 0.3)
    assert float(lo) == float(hi) == pytest.approx(0.3)


@pytest.mark.parametrize("n", [30, 100, 400])
def test_coverage_on_bernoulli_samples_is_close_to_nominal_exactly(n):
    """Every outcome k of Binomial(n, p) weighed by its probability: the exact coverage, averaged over
    a grid of p (Wilson's interval on 0/1 samples: near nominal on average, never far below)."""
    k = np.arange(n + 1)
    p_hat = k / n
    lo, hi = (np.asarray(a) for a in bounded_mean_interval(jnp.asarray(p_hat), jnp.asarray(p_hat * (1 - p_hat)), n, Z))
    ps = np.linspace(0.005, 0.995, 199)
    coverage = np.array([binom.pmf(k, n, p) @ ((lo <= p) & (p <= hi)) for p in ps])
    assert abs(coverage.mean() - LEVEL) < 0.01, coverage.mean()
    inner = n * np.minimum(ps, 1 - ps) >= 1  # (below one expected event Wilson's too dips, to 0.86 at n = 30)
    assert coverage[inner].min() > 0.91, (ps[inner][coverage[inner].argmin()], coverage[inner].min())
    # the normal interval's exact coverage there falls below 0.7
    np.testing.assert_allclose(lo, (p_hat + Z**2 / (2 * n) - Z * np.sqrt(p_hat * (1 - p_hat) / n + Z**2 / (4 * n**2)))
                               / (1 + Z**2 / n), atol=1e-12)  # Wilson's lower bound


@pytest.mark.parametrize("p, K", [(0.5, 100), (0.03, 100), (0.1, 40), (0.998, 1000)])
def test_monte_carlo_coverage_through_class_intervals_is_nominal_on_bernoulli_win_rates(p, K):
    """Responses in class 0 (wins) or 1 (losses) only: the win rate is a Bernoulli mean. 4000 fixed
    draws: the coverage is within 0.025 (> 7 binomial sd) of 95%; the normal interval's is 0.80 at
    p = 0.03 and 0.86 at p = 0.998."""
    reps = 4000
    wins = np.random.default_rng(7).binomial(K, p, size=reps)
    counts = np.stack([wins, K - wins, np.zeros(reps)], axis=1)
    point, lo, hi = win_intervals(counts)
    assert np.all(lo <= point) and np.all(point <= hi)
    covered = np.mean((lo <= p) & (p <= hi))
    assert abs(covered - LEVEL) < 0.025, covered


@pytest.mark.parametrize("q, K", [([0.01, 0.0, 0.99], 100), ([0.02, 0.02, 0.96], 100), ([0.3, 0.3, 0.4], 50)])
def test_a_rare_class_is_covered_where_the_normal_interval_misses_it(q, K):
    """A [0, 1] mean that is not Bernoulli: at least nominal coverage (the normal interval: 0.64 in
    the first case, where 37% of the samples hold no response of the rare class)."""
    reps = 4000
    counts = np.random.default_rng(3).multinomial(K, q, size=reps)
    truth = np.asarray(q) @ (C @ REF_Q)
    _, lo, hi = win_intervals(counts)
    covered = np.mean((lo <= truth) & (truth <= hi))
    assert covered >= LEVEL - 0.01, covered
    # and not wide for nothing: at most twice the normal interval's mean width, plus z²/K
    w = C @ REF_Q
    var = np.maximum(counts / K @ w**2 - (counts / K @ w) ** 2, 0)
    assert np.mean(hi - lo) <= 2 * np.mean(2 * Z * np.sqrt(var / K)) + Z**2 / K
