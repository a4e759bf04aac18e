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
