"""Independent plain-NumPy/SciPy reference for gamelab's JAX engine.

This module exists so that tests can cross-check the engine on games nobody hand-picked.  Its
value lies in being *independent*: it never imports ``gamelab`` or ``jax``, it works in
probability space (the engine works in log space), it solves the exact Nash with a different LP
(the maximin form on the skew payoff instead of ``min s  s.t. Pπ ≤ s·1``), and it solves the
regularized Nash by minimizing the regularized duality gap with BFGS plus damped fixed-point
polishing (the engine uses Newton with continuation).  Speed does not matter here; clarity and
float64 accuracy do.

Conventions (DESIGN.md §2–3): ``P[i, j] = Pr(i beats j)``, a valid ``P`` has entries in [0, 1],
``P + P.T = 1`` and diagonal 1/2; a policy ``pi`` is a probability vector; ``g = P @ pi``;
``ref`` is the reference policy (default uniform); all hyper-parameters are floats.

Probability-space numerics: every multiplicative update ``π' ∝ Π_k b_k^{a_k} · exp(s)`` goes
through :func:`_geometric`, which rescales each base by its maximum and shifts the exponent by its
maximum over the support before multiplying, and falls back to a log-space evaluation only when the
normalizer itself would underflow.  Entries that are exactly zero stay zero (``0^a = 0`` for
``a > 0``; ``0^0 = 1``, i.e. a base raised to the power 0 drops out, as it must when ``ητ = 1``).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
from scipy.optimize import linprog, minimize

__all__ = [
    # games
    "validate_preference", "random_preference", "rps", "comal3", "uniform",
    # metrics
    "win_rates", "exploitability", "duality_gap", "regularized_gap", "kl", "entropy", "win_rate",
    # solutions
    "exact_nash", "regularized_nash", "regularized_nash_residual",
    # updates
    "step_mwu", "step_omwu", "step_extragradient", "step_inpo", "step_nash_md", "step_mmd",
    "step_mpo", "step_comal", "fit_bradley_terry", "step_iterative_dpo", "step_iterative_ipo",
    "step_exo",
    "step_fictitious_play", "step_regret_matching", "step_regret_matching_plus", "step_replicator",
    "step_onpo", "step_nash_mp", "project_simplex", "step_ogda", "step_projected_extragradient",
    "step_eag", "project_truncated_orthant", "step_predictive_rm_plus", "step_extragradient_rm_plus",
    "step_smooth_predictive_rm_plus", "step_rm_plus_restarts",
    # driver
    "ALGORITHMS", "simulate",
]

_TINY = 1e-280  # below this a normalizer is treated as underflowed


# --------------------------------------------------------------------------------------------
# games and small helpers
# --------------------------------------------------------------------------------------------

def validate_preference(P, atol: float = 1e-12) -> np.ndarray:
    """Return ``P`` as a float64 array after checking it is a valid preference matrix."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 1:
        raise ValueError(f"P must be a square matrix, got shape {P.shape}")
    if not np.all(np.isfinite(P)):
        raise ValueError("P has non-finite entries")
    if P.min() < -atol or P.max() > 1 + atol:
        raise ValueError("P has entries outside [0, 1]")
    if np.max(np.abs(P + P.T - 1.0)) > atol:
        raise ValueError("P + P.T != 1 (P is not a valid preference matrix)")
    return P


def random_preference(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random valid preference: upper triangle i.i.d. uniform on [0, 1], ``P.T = 1 - P``."""
    U = rng.uniform(0.0, 1.0, size=(n, n))
    P = np.triu(U, k=1)
    P = P + np.tril(1.0 - P.T, k=-1)
    np.fill_diagonal(P, 0.5)
    return P


def rps() -> np.ndarray:
    """Rock-paper-scissors (0 beats 2, 1 beats 0, 2 beats 1); unique Nash = uniform."""
    return np.array([[0.5, 0.0, 1.0],
                     [1.0, 0.5, 0.0],
                     [0.0, 1.0, 0.5]])


def comal3() -> np.ndarray:
    """The 3-response non-transitive game of the COMAL paper; Nash = (4, 3, 4) / 11."""
    return np.array([[0.5, 0.1, 0.8],
                     [0.9, 0.5, 0.1],
                     [0.2, 0.9, 0.5]])


def uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def _policy(pi, n: int, name: str = "pi") -> np.ndarray:
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {pi.shape}")
    if np.any(pi < 0) or not np.all(np.isfinite(pi)):
        raise ValueError(f"{name} must be finite and non-negative")
    s = pi.sum()
    if abs(s - 1.0) > 1e-9:
        raise ValueError(f"{name} must sum to 1 (sums to {s!r})")
    return pi / s


def _ref(ref, n: int) -> np.ndarray:
    return uniform(n) if ref is None else _policy(ref, n, "ref")


def _normalize(w: np.ndarray) -> np.ndarray:
    return w / w.sum()


def _geometric(bases, powers, s=None) -> np.ndarray:
    """Normalized ``Π_k bases[k]**powers[k] * exp(s)``, computed in probability space.

    Each base is divided by its maximum and ``s`` is shifted by its maximum over the support
    (entries where every base with a positive power is positive) before multiplying; both only
    change the normalizer.  If the normalizer still underflows, redo it in log space.
    """
    bases = [np.asarray(b, dtype=np.float64) for b in bases]
    powers = [float(a) for a in powers]
    n = bases[0].shape[0] if bases else np.asarray(s).shape[0]
    support = np.ones(n, dtype=bool)
    for b, a in zip(bases, powers):
        if a < 0:
            raise ValueError("negative power in a multiplicative update")
        if a > 0:
            support &= b > 0
    if not support.any():
        raise FloatingPointError("multiplicative update has empty support")
    s = np.zeros(n) if s is None else np.asarray(s, dtype=np.float64)

    ss = s[support]
    w = np.exp(ss - ss.max())
    for b, a in zip(bases, powers):
        if a > 0:
            w = w * (b[support] / b.max()) ** a
    Z = w.sum()
    if np.isfinite(Z) and Z > _TINY:
        out = np.zeros(n)
        out[support] = w / Z
        return out

    # fallback: log space on the support only
    logw = s[support].copy()
    for b, a in zip(bases, powers):
        if a > 0:
            logw = logw + a * np.log(b[support])
    logw -= logw.max()
    out = np.zeros(n)
    out[support] = np.exp(logw)
    return out / out.sum()


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------

def win_rates(P, pi) -> np.ndarray:
    """g = P π, g_y = Pr(y beats π)."""
    P = np.asarray(P, dtype=np.float64)
    return P @ np.asarray(pi, dtype=np.float64)


def exploitability(P, pi) -> float:
    """e(π) = max_y (Pπ)_y − 1/2."""
    return float(np.max(win_rates(P, pi)) - 0.5)


def duality_gap(P, pi) -> float:
    """DG(π) = 2 e(π)."""
    return 2.0 * exploitability(P, pi)


def kl(p, q) -> float:
    """KL(p‖q) = Σ p log(p/q) with 0 log 0 = 0; +inf if p puts mass where q has none."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = p > 0
    if np.any(q[m] <= 0):
        return math.inf
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def entropy(pi) -> float:
    pi = np.asarray(pi, dtype=np.float64)
    m = pi > 0
    return float(-np.sum(pi[m] * np.log(pi[m])))


def win_rate(P, pi, ref=None) -> float:
    """Pr(π beats ref) = πᵀ P ref (ref defaults to uniform)."""
    P = np.asarray(P, dtype=np.float64)
    ref = uniform(P.shape[0]) if ref is None else np.asarray(ref, dtype=np.float64)
    return float(np.asarray(pi, dtype=np.float64) @ P @ ref)


def _tau_log_mean_exp(g, ref, tau: float) -> float:
    """τ log Σ_y ref_y exp(g_y / τ), stabilized by the max of g over ref's support."""
    m = ref > 0
    gmax = g[m].max()
    return float(gmax + tau * math.log(np.sum(ref[m] * np.exp((g[m] - gmax) / tau))))


def regularized_gap(P, pi, ref=None, tau: float = 0.1) -> float:
    """DG_τ(π) = 2[τ log Σ_y ref_y exp((Pπ)_y/τ) + τ KL(π‖ref) − 1/2] (≥ 0, = 0 only at π*_τ)."""
    P = np.asarray(P, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    ref = uniform(P.shape[0]) if ref is None else np.asarray(ref, dtype=np.float64)
    tau = float(tau)
    return 2.0 * (_tau_log_mean_exp(P @ pi, ref, tau) + tau * kl(pi, ref) - 0.5)


# --------------------------------------------------------------------------------------------
# solutions
# --------------------------------------------------------------------------------------------

def exact_nash(P) -> np.ndarray:
    """A Nash policy from the maximin LP on the skew payoff A = P − 1/2.

    max v  s.t.  (Aᵀπ)_j ≥ v for all j,  1ᵀπ = 1,  π ≥ 0   (for skew A the value is v* = 0, and
    Aᵀπ ≥ 0 is −Aπ ≥ 0, i.e. Pπ ≤ 1/2: the row player's guarantee seen from the column side).
    Variables x = (π, v); linprog minimizes −v.  Dual simplex gives a vertex to machine precision.
    """
    P = validate_preference(P)
    n = P.shape[0]
    A = P - 0.5
    c = np.zeros(n + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-A.T, np.ones((n, 1))])       # v − (Aᵀπ)_j ≤ 0
    b_ub = np.zeros(n)
    A_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    b_eq = np.ones(1)
    bounds = [(0.0, None)] * n + [(None, None)]
    res = None
    for method in ("highs-ds", "highs-ipm"):
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method=method)
        if res.status == 0:
            break
    if res is None or res.status != 0:
        raise RuntimeError(f"exact_nash LP failed: {res.message if res is not None else '?'}")
    pi = np.clip(res.x[:n], 0.0, None)
    return pi / pi.sum()


def _fixed_point_map(P, pi, ref, tau) -> np.ndarray:
    return _geometric([ref], [1.0], (P @ pi) / tau)


def regularized_nash_residual(P, pi, ref=None, tau: float = 0.1) -> float:
    """max_y |π − normalize(ref·exp(Pπ/τ))|_y: zero exactly at π*_τ."""
    P = np.asarray(P, dtype=np.float64)
    ref = _ref(ref, P.shape[0])
    pi = np.asarray(pi, dtype=np.float64)
    return float(np.max(np.abs(pi - _fixed_point_map(P, pi, ref, float(tau)))))


def regularized_nash(P, ref=None, tau: float = 0.1, *, tol: float = 1e-10,
                     full_output: bool = False, max_polish: int = 200_000):
    """The unique π*_τ with π ∝ ref·exp(Pπ/τ).

    1. Minimize the (convex in π) regularized gap over the support of ref, parametrized by logits
       θ (π = softmax θ), with BFGS and the analytic gradient.
    2. Polish with damped fixed-point iterations π ← (1−α)π + α·F(π), F(π) = normalize(ref·e^{Pπ/τ}).
       F's Jacobian S·A/τ (S = diag F − FFᵀ PSD, A skew) has imaginary eigenvalues ±iλ, so the
       damped map contracts for α < 2/(1+λ²); we use α = 1/(1+λ²) with λ estimated at the BFGS
       point (and halve α if a block of iterations ends with a larger residual).

    Raises RuntimeError if the fixed-point residual does not get below ``tol``.  Returns π, or
    (π, residual) with ``full_output=True``.  Meant for τ ≥ 0.05 and n ≤ 12.
    """
    P = validate_preference(P)
    n = P.shape[0]
    ref = _ref(ref, n)
    tau = float(tau)
    if not tau > 0:
        raise ValueError("tau must be positive")
    supp = ref > 0
    Ps = P[np.ix_(supp, supp)]
    rs = ref[supp]
    log_rs = np.log(rs)

    def pi_of(theta):
        return _geometric([], [], theta)

    def fun_grad(theta):
        pi = pi_of(theta)
        g = Ps @ pi
        gmax = g.max()
        w = rs * np.exp((g - gmax) / tau)
        Z = w.sum()
        sigma = w / Z
        logpi = np.log(np.maximum(pi, 1e-300))
        f = gmax + tau * math.log(Z) + tau * float(np.sum(pi * (logpi - log_rs))) - 0.5
        u = Ps.T @ sigma + tau * (logpi - log_rs + 1.0)       # ∂f/∂π
        grad = pi * (u - pi @ u)                              # chain rule through softmax
        return 2.0 * f, 2.0 * grad

    theta0 = log_rs.copy()
    res = minimize(fun_grad, theta0, jac=True, method="BFGS",
                   options={"gtol": 1e-13, "maxiter": 20_000})
    pi = pi_of(res.x)

    def resid(p):
        return float(np.max(np.abs(p - _fixed_point_map(Ps, p, rs, tau))))

    # step size from the spectrum of the fixed-point Jacobian at the BFGS point
    F = _fixed_point_map(Ps, pi, rs, tau)
    J = (np.diag(F) - np.outer(F, F)) @ Ps / tau
    lam = float(np.max(np.abs(np.linalg.eigvals(J))))
    alpha = 1.0 / (1.0 + lam * lam)
    # iterate in blocks; the residual may grow transiently (the map contracts in a norm of its
    # own), so only a block that ends worse than it started halves α and restarts from the best
    r = resid(pi)
    best_pi, best_r = pi, r
    it = 0
    block = 200
    while best_r >= 0.1 * tol and it < max_polish and alpha > 1e-8:
        start_r = best_r
        cur = best_pi
        for _ in range(block):
            cur = (1.0 - alpha) * cur + alpha * _fixed_point_map(Ps, cur, rs, tau)
            cur = cur / cur.sum()
        it += block
        rc = resid(cur)
        if np.isfinite(rc) and rc < start_r:
            best_pi, best_r = cur, rc
        else:
            if start_r < 10 * np.finfo(float).eps:
                break
            alpha *= 0.5
    pi = best_pi
    out = np.zeros(n)
    out[supp] = pi
    residual = regularized_nash_residual(P, out, ref, tau)
    if not residual < tol:
        raise RuntimeError(f"regularized_nash: fixed-point residual {residual:.3e} ≥ tol {tol:.1e}")
    return (out, residual) if full_output else out


# --------------------------------------------------------------------------------------------
# one-step updates
# --------------------------------------------------------------------------------------------

def step_mwu(P, pi, eta):
    """π' ∝ π·exp(η g)."""
    return _geometric([pi], [1.0], float(eta) * (P @ pi))


def step_omwu(P, pi, g_prev, eta):
    """π' ∝ π·exp(η(2g_t − g_{t−1})), g_{−1} = g_0 (g_prev=None).  Returns (π', g_t)."""
    g = P @ pi
    if g_prev is None:
        g_prev = g
    return _geometric([pi], [1.0], float(eta) * (2.0 * g - g_prev)), g


def _prox_base(pi, ref, eta, tau):
    """The bases and powers of π^{1−ητ}·ref^{ητ}."""
    a = float(eta) * float(tau)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"need 0 ≤ ητ ≤ 1, got ητ = {a}")
    return [pi, ref], [1.0 - a, a]


def step_extragradient(P, pi, ref, eta, tau=0.0):
    """π_½ ∝ π^{1−ητ}ref^{ητ}exp(ηPπ);  π' ∝ π^{1−ητ}ref^{ητ}exp(ηPπ_½)."""
    bases, powers = _prox_base(pi, ref, eta, tau)
    half = _geometric(bases, powers, float(eta) * (P @ pi))
    return _geometric(bases, powers, float(eta) * (P @ half))


def step_inpo(P, pi, ref, eta, tau):
    """π' ∝ π^{1−ητ}·ref^{ητ}·exp(η g)."""
    bases, powers = _prox_base(pi, ref, eta, tau)
    return _geometric(bases, powers, float(eta) * (P @ pi))


def step_nash_md(P, pi, ref, eta, tau):
    """μ ∝ π^{1−ητ}·ref^{ητ};  π' ∝ μ·exp(η Pμ)."""
    bases, powers = _prox_base(pi, ref, eta, tau)
    mu = _geometric(bases, powers)
    return _geometric([mu], [1.0], float(eta) * (P @ mu))


def step_mmd(P, pi, magnet, eta, tau):
    """π' ∝ (π·ρ^{ητ}·exp(η g))^{1/(1+ητ)}, ρ = magnet."""
    eta, tau = float(eta), float(tau)
    a = eta * tau
    c = 1.0 / (1.0 + a)
    return _geometric([pi, magnet], [c, a * c], c * eta * (P @ pi))


def step_mpo(P, pi, magnet, t, eta, tau, K):
    """One mmd step toward ``magnet``; after the t+1-th step, if (t+1) % K == 0, magnet ← π'.

    Returns (π', magnet', t+1).
    """
    K = int(K)
    if K < 1:
        raise ValueError("K must be ≥ 1")
    new = step_mmd(P, pi, magnet, eta, tau)
    t = int(t) + 1
    if t % K == 0:
        magnet = new.copy()
    return new, magnet, t


def step_comal(P, pi, eta, tau, inner):
    """One prox-point outer step: ``inner`` inpo steps (η, τ) from π_k with ref = anchor = π_k."""
    anchor = np.array(pi, dtype=np.float64)
    cur = anchor.copy()
    for _ in range(int(inner)):
        cur = step_inpo(P, cur, anchor, eta, tau)
    return cur


def _log_sigmoid(x):
    """log σ(x), stable for both signs."""
    return -np.logaddexp(0.0, -x)


def _sigmoid(x):
    """σ(x) in probability space without overflow."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def fit_bradley_terry(P, pi, ridge=1e-8):
    """r̂ = argmin_r Σ_{i,j} π_i π_j [−P_ij log σ(r_i − r_j)] + (ridge/2)‖r‖².

    Weighted logistic MLE on pairs drawn from π⊗π with exact label probabilities.  Strictly convex
    for ridge > 0; solved by scipy's trust-exact with analytic gradient and Hessian.  The ridge
    also makes the minimizer sum to zero (the pair loss is shift-invariant).
    """
    P = np.asarray(P, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    ridge = float(ridge)
    W = np.outer(pi, pi) * P                     # weight of "i beats j"
    n = P.shape[0]

    def fun(r):
        D = r[:, None] - r[None, :]
        return float(-np.sum(W * _log_sigmoid(D)) + 0.5 * ridge * r @ r)

    def grad(r):
        D = r[:, None] - r[None, :]
        M = W * _sigmoid(-D)                     # d/dD of −log σ(D) is −σ(−D)
        return -M.sum(axis=1) + M.sum(axis=0) + ridge * r

    def hess(r):
        D = r[:, None] - r[None, :]
        C = W * _sigmoid(D) * _sigmoid(-D)
        C = C + C.T
        return np.diag(C.sum(axis=1)) - C + ridge * np.eye(n)

    res = minimize(fun, np.zeros(n), jac=grad, hess=hess, method="trust-exact",
                   options={"gtol": 1e-13, "maxiter": 10_000})
    r = res.x
    # a few plain Newton steps to make the answer exact to machine precision
    for _ in range(5):
        gr = grad(r)
        if np.max(np.abs(gr)) < 1e-15:
            break
        r = r - np.linalg.solve(hess(r), gr)
    # the pair loss is shift-invariant, so its gradient sums to 0 and the exact minimizer has
    # ridge·Σr = 0; removing the mean moves exactly along the (nearly flat) ridge direction
    return r - r.mean()


def step_iterative_dpo(P, pi, ref, beta, fixed_ref=False, ridge=1e-8):
    """Fit r̂ (fit_bradley_terry on π⊗π); π' ∝ ρ·exp(r̂/β), ρ = ref if fixed_ref else π."""
    r = fit_bradley_terry(P, pi, ridge)
    rho = ref if fixed_ref else pi
    return _geometric([rho], [1.0], r / float(beta))


def step_iterative_ipo(P, pi, ref, tau, mix=0.0):
    """π' ∝ ref·exp(Pμ/τ), μ ∝ π^{1−mix}·ref^{mix} (mix = 0: μ = π)."""
    mu = _geometric([pi, ref], [1.0 - float(mix), float(mix)]) if mix else pi
    return _geometric([ref], [1.0], (P @ mu) / float(tau))


def step_exo(P, pi, ref, beta):
    """Iterative EXO: the reverse-KL projection onto π* ∝ ref·exp(Pπ/β) is π* itself (a tabular
    policy represents it) — online IPO's step with τ = β."""
    return step_iterative_ipo(P, pi, ref, beta)


def step_nash_md_pg(P, pi, ref, eta, tau, mix):
    """Exact softmax policy gradient of J(π) = πᵀPμ − τ·KL(π‖ref) with μ ∝ π^{1−mix}·ref^{mix} fixed:
    ∂J/∂θ_k = π_k·(f_k − Σ_y π_y f_y), f = Pμ − τ·(log π − log ref) − τ; then θ ← θ + η·∂J/∂θ."""
    mu = _geometric([pi, ref], [1.0 - float(mix), float(mix)])
    with np.errstate(divide="ignore"):
        f = P @ mu - float(tau) * (np.where(pi > 0, np.log(np.where(pi > 0, pi, 1.0)) - np.log(ref), 0.0) + 1.0)
    grad = pi * (f - pi @ f)
    return _geometric([pi], [1.0], float(eta) * grad)


def step_maxmin(P, pi, w, ref, eta, beta, eta_w, groups=None, rewards=None):
    """Mirror-prox on max_π min_w Σ_u w_u·π·r_u − β·KL(π‖ref); r_u = rewards, else groups_u @ ref
    (one group, P, when neither is given). Returns (π', w')."""
    if rewards is None:
        G = np.asarray(P, dtype=np.float64)[None] if groups is None else np.asarray(groups, dtype=np.float64)
        rewards = G @ ref
    R = np.asarray(rewards, dtype=np.float64)
    bases, powers = _prox_base(pi, ref, eta, beta)

    def policy(weights):
        return _geometric(bases, powers, float(eta) * (weights @ R))

    def adversary(p):
        return _geometric([w], [1.0], -float(eta_w) * (R @ p))

    half_p, half_w = policy(w), adversary(pi)
    return policy(half_w), adversary(half_p)


def step_fictitious_play(P, S, c):
    """π' = one-hot at argmax_y (P S / c)_y (first index on ties); returns (π', S + π', c + 1)."""
    br = P @ (S / c)
    new = np.zeros_like(S)
    new[int(np.argmax(br))] = 1.0
    return new, S + new, c + 1


def _rm_policy(R):
    Rp = np.maximum(R, 0.0)
    s = Rp.sum()
    return Rp / s if s > 0 else uniform(R.shape[0])


def step_regret_matching(P, pi, R):
    """r = Pπ − πᵀPπ; R += r; π' = R⁺/ΣR⁺ (uniform if 0).  Returns (π', R)."""
    g = P @ pi
    R = R + (g - pi @ g)
    return _rm_policy(R), R


def step_regret_matching_plus(P, pi, R):
    """Like regret matching with R ← max(R + r, 0).  Returns (π', R)."""
    g = P @ pi
    R = np.maximum(R + (g - pi @ g), 0.0)
    return _rm_policy(R), R


def step_replicator(P, pi, eta):
    """π' ∝ π·max(1 + η((Pπ) − πᵀPπ), 0)."""
    g = P @ pi
    return _normalize(pi * np.maximum(1.0 + float(eta) * (g - pi @ g), 0.0))


# --- last-iterate methods of issue 18 -------------------------------------------------------

def _prox(anchor, ref, g, eta, tau):
    """argmax_π ⟨π, g⟩ − τ KL(π‖ref) − KL(π‖anchor)/η ∝ (anchor·ref^{ητ}·exp(η g))^{1/(1+ητ)}."""
    eta, tau = float(eta), float(tau)
    c = 1.0 / (1.0 + eta * tau)
    return _geometric([anchor, ref], [c, eta * tau * c], c * eta * g)


def step_onpo(P, pi, hat, ref, eta, tau=0.0):
    """Optimistic OMD, two sequences: π̂' = prox(π̂, Pπ); π' = prox(π̂', Pπ).  Returns (π', π̂')."""
    g = P @ pi
    hat = _prox(hat, ref, g, eta, tau)
    return _prox(hat, ref, g, eta, tau), hat


def step_nash_mp(P, pi, ref, eta, tau):
    """Mirror prox with the exact KL-prox: π_½ = prox(π, Pπ); π' = prox(π, Pπ_½)."""
    half = _prox(pi, ref, P @ pi, eta, tau)
    return _prox(pi, ref, P @ half, eta, tau)


def project_simplex(y, support=None):
    """Euclidean projection onto the simplex by Michelot's (1986) active-set iteration (the engine
    sorts instead): θ = (Σ_I y − 1)/|I| over the current set I, drop the entries ≤ θ, repeat."""
    y = np.asarray(y, dtype=np.float64)
    active = np.ones(y.shape[0], bool) if support is None else np.asarray(support, bool).copy()
    while True:
        theta = (y[active].sum() - 1.0) / active.sum()
        drop = active & (y <= theta)
        if not drop.any():
            break
        active &= ~drop
    out = np.zeros_like(y)
    out[active] = y[active] - theta
    return out


def step_ogda(P, x, hat, eta):
    """x̂' = Π(x̂ + η Px); x' = Π(x̂' + η Px).  Returns (x', x̂')."""
    g = P @ x
    hat = project_simplex(hat + float(eta) * g)
    return project_simplex(hat + float(eta) * g), hat


def step_projected_extragradient(P, x, eta):
    """x_½ = Π(x + η Px); x' = Π(x + η Px_½)."""
    half = project_simplex(x + float(eta) * (P @ x))
    return project_simplex(x + float(eta) * (P @ half))


def step_eag(P, x, x0, t, eta):
    """y = x + (x0 − x)/(t + 2); x_½ = Π(y + η Px); x' = Π(y + η Px_½)."""
    y = x + (x0 - x) / (t + 2.0)
    half = project_simplex(y + float(eta) * (P @ x))
    return project_simplex(y + float(eta) * (P @ half))


def _regret(P, x):
    g = P @ x
    return g - x @ g


def project_truncated_orthant(y):
    """Projection onto {z ≥ 0, Σz ≥ 1}: the positive part if its sum is ≥ 1, else the simplex's."""
    plus = np.maximum(y, 0.0)
    return plus if plus.sum() >= 1.0 else project_simplex(y)


def step_predictive_rm_plus(P, x, R):
    """R' = [R + r(x)]⁺; x' ∝ [R' + r(x)]⁺ (uniform if 0).  Returns (x', R')."""
    r = _regret(P, x)
    R = np.maximum(R + r, 0.0)
    return _rm_policy(R + r), R


def step_extragradient_rm_plus(P, z, eta):
    """z_½ = Π_C(z + η r(z/Σz)); z' = Π_C(z + η r(z_½/Σz_½)).  Returns (z_½, z')."""
    eta = float(eta)
    half = project_truncated_orthant(z + eta * _regret(P, z / z.sum()))
    return half, project_truncated_orthant(z + eta * _regret(P, half / half.sum()))


def step_smooth_predictive_rm_plus(P, x, hat, eta):
    """ẑ' = Π_C(ẑ + η r(x)); z' = Π_C(ẑ' + η r(x)).  Returns (z'/Σz', ẑ')."""
    r = float(eta) * _regret(P, x)
    hat = project_truncated_orthant(hat + r)
    z = project_truncated_orthant(hat + r)
    return z / z.sum(), hat


def step_rm_plus_restarts(P, z, k, eta, delta):
    """An ExRM+ step; if ‖z_½ − z‖ + ‖z' − z_½‖ ≤ δ 2^{−k}: z' ← z'/Σz', k ← k + 1.  Returns (z', k)."""
    half, new = step_extragradient_rm_plus(P, z, eta)
    if np.linalg.norm(half - z) + np.linalg.norm(new - half) <= float(delta) * 2.0 ** (-k):
        new, k = new / new.sum(), k + 1
    return new, k



# --------------------------------------------------------------------------------------------
# generic driver
# --------------------------------------------------------------------------------------------

class Algorithm(NamedTuple):
    """``init(P, pi0, ref) -> state``; ``step(P, pi, state, ref, **hp) -> (pi', state')``."""
    init: Callable
    step: Callable
    hparams: tuple            # required hyper-parameters
    defaults: dict            # optional hyper-parameters and their defaults


def _no_state(P, pi0, ref):
    return None


def _stateless(fn, with_ref):
    if with_ref:
        return lambda P, pi, state, ref, **hp: (fn(P, pi, ref, **hp), None)
    return lambda P, pi, state, ref, **hp: (fn(P, pi, **hp), None)


def _omwu(P, pi, g_prev, ref, eta):
    return step_omwu(P, pi, g_prev, eta)


def _mmd(P, pi, state, ref, eta, tau):
    return step_mmd(P, pi, ref, eta, tau), None


def _mpo(P, pi, state, ref, eta, tau, K):
    magnet, t = state
    new, magnet, t = step_mpo(P, pi, magnet, t, eta, tau, K)
    return new, (magnet, t)


def _comal(P, pi, state, ref, eta, tau, inner):
    return step_comal(P, pi, eta, tau, inner), None


def _maxmin(P, pi, w, ref, eta, beta, eta_w):
    return step_maxmin(P, pi, w, ref, eta, beta, eta_w)


def _fp(P, pi, state, ref):
    S, c = state
    new, S, c = step_fictitious_play(P, S, c)
    return new, (S, c)


def _rm(P, pi, R, ref):
    return step_regret_matching(P, pi, R)


def _rmp(P, pi, R, ref):
    return step_regret_matching_plus(P, pi, R)


def _onpo(P, pi, hat, ref, eta, tau):
    return step_onpo(P, pi, hat, ref, eta, tau)


def _ogda(P, x, hat, ref, eta):
    return step_ogda(P, x, hat, eta)


def _eag(P, x, state, ref, eta):
    x0, t = state
    return step_eag(P, x, x0, t, eta), (x0, t + 1)


def _exrm(P, x, z, ref, eta):
    _, z = step_extragradient_rm_plus(P, z, eta)
    return z / z.sum(), z


def _sprm(P, x, hat, ref, eta):
    return step_smooth_predictive_rm_plus(P, x, hat, eta)


def _rsrm(P, x, state, ref, eta, delta):
    z, k = step_rm_plus_restarts(P, state[0], state[1], eta, delta)
    return z / z.sum(), (z, k)


ALGORITHMS: dict[str, Algorithm] = {
    "mwu": Algorithm(_no_state, _stateless(step_mwu, False), ("eta",), {}),
    "omwu": Algorithm(_no_state, _omwu, ("eta",), {}),
    "extragradient": Algorithm(_no_state, _stateless(step_extragradient, True), ("eta",),
                               {"tau": 0.0}),
    "inpo": Algorithm(_no_state, _stateless(step_inpo, True), ("eta", "tau"), {}),
    "nash_md": Algorithm(_no_state, _stateless(step_nash_md, True), ("eta", "tau"), {}),
    "mmd": Algorithm(_no_state, _mmd, ("eta", "tau"), {}),
    "mpo": Algorithm(lambda P, pi0, ref: (ref.copy(), 0), _mpo, ("eta", "tau", "K"), {}),
    "comal": Algorithm(_no_state, _comal, ("eta", "tau", "inner"), {}),
    "iterative_dpo": Algorithm(_no_state, _stateless(step_iterative_dpo, True), ("beta",),
                               {"fixed_ref": False, "ridge": 1e-8}),
    "iterative_ipo": Algorithm(_no_state, _stateless(step_iterative_ipo, True), ("tau",), {"mix": 0.0}),
    "exo": Algorithm(_no_state, _stateless(step_exo, True), ("beta",), {}),
    "nash_md_pg": Algorithm(_no_state, _stateless(step_nash_md_pg, True), ("eta", "tau", "mix"), {}),
    "maxmin": Algorithm(lambda P, pi0, ref: np.ones(1), _maxmin, ("eta", "beta", "eta_w"), {}),
    "fictitious_play": Algorithm(lambda P, pi0, ref: (pi0.copy(), 1), _fp, (), {}),
    "regret_matching": Algorithm(lambda P, pi0, ref: np.zeros_like(pi0), _rm, (), {}),
    "regret_matching_plus": Algorithm(lambda P, pi0, ref: np.zeros_like(pi0), _rmp, (), {}),
    "replicator": Algorithm(_no_state, _stateless(step_replicator, False), ("eta",), {}),
    "onpo": Algorithm(lambda P, pi0, ref: pi0.copy(), _onpo, ("eta",), {"tau": 0.0}),
    "nash_mp": Algorithm(_no_state, _stateless(step_nash_mp, True), ("eta", "tau"), {}),
    "ogda": Algorithm(lambda P, pi0, ref: pi0.copy(), _ogda, ("eta",), {}),
    "projected_extragradient": Algorithm(_no_state, _stateless(step_projected_extragradient, False), ("eta",), {}),
    "eag": Algorithm(lambda P, pi0, ref: (pi0.copy(), 0), _eag, ("eta",), {}),
    "predictive_rm_plus": Algorithm(lambda P, pi0, ref: np.zeros_like(pi0),
                                    lambda P, pi, R, ref: step_predictive_rm_plus(P, pi, R), (), {}),
    "extragradient_rm_plus": Algorithm(lambda P, pi0, ref: pi0.copy(), _exrm, ("eta",), {}),
    "smooth_predictive_rm_plus": Algorithm(lambda P, pi0, ref: pi0.copy(), _sprm, ("eta",), {}),
    "rm_plus_restarts": Algorithm(lambda P, pi0, ref: (pi0.copy(), 0), _rsrm, ("eta",), {"delta": 1.0}),
}


def simulate(name: str, P, steps: int, pi0=None, ref=None, **hp) -> list[np.ndarray]:
    """Run ``steps`` updates of algorithm ``name``; return [π_0, π_1, ..., π_steps].

    pi0 and ref default to uniform.  For ``comal``, ``steps`` counts outer iterations and ref is
    unused (each outer step anchors at π_k).  For ``mpo`` the magnet starts at ref.  For ``mmd``
    the magnet is ref.  ``fictitious_play`` returns the plays (one-hots) after π_0.
    """
    if name not in ALGORITHMS:
        raise KeyError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    alg = ALGORITHMS[name]
    P = validate_preference(P)
    n = P.shape[0]
    pi = uniform(n) if pi0 is None else _policy(pi0, n, "pi0")
    ref = _ref(ref, n)
    missing = [k for k in alg.hparams if k not in hp]
    unknown = [k for k in hp if k not in alg.hparams and k not in alg.defaults]
    if missing or unknown:
        raise TypeError(f"{name}: missing hyper-parameters {missing}, unknown {unknown}")
    kw = {**alg.defaults, **hp}
    for k, v in kw.items():
        if k in ("K", "inner"):
            kw[k] = int(v)
        elif k == "fixed_ref":
            kw[k] = bool(v)
        else:
            kw[k] = float(v)
    state = alg.init(P, pi, ref)
    traj = [pi.copy()]
    for _ in range(int(steps)):
        pi, state = alg.step(P, pi, state, ref, **kw)
        traj.append(np.array(pi, copy=True))
    return traj
