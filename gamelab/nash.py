"""Exact and KL-regularized Nash policies (host-side NumPy/SciPy; computed once per game).

* :func:`exact_nash` solves the LP ``min s  s.t. Pπ ≤ s·1, 1ᵀπ = 1, π ≥ 0`` (value 1/2) with HiGHS and
  then polishes it on the support it found (one small linear solve), so the gap of the returned
  policy is at rounding level rather than at the LP's feasibility tolerance.
* :func:`regularized_nash` finds the unique π*_τ with ``π ∝ π_ref·exp(Pπ/τ)`` by Newton's method on
  the win-rate form of the fixed point, with continuation in τ (from a large τ down to the
  requested one). A plain fixed-point iteration diverges or cycles once τ is below the spread of
  P; this converges down to τ = 1e-6 on random games of size 10–100.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gamelab.games.core import Game


class NashSolution(NamedTuple):
    policy: np.ndarray  # (n,) probabilities
    exploitability: float  # max_y (Pπ)_y − 1/2 of the returned policy
    duality_gap: float


class RegularizedNash(NamedTuple):
    policy: np.ndarray  # (n,) probabilities (may underflow to 0 for tiny τ)
    logp: np.ndarray  # (n,) log-probabilities, finite even where the policy underflows
    residual: float  # max |Pπ − v| at the solution's win-rate vector v
    newton_steps: int


def _matrix(game) -> np.ndarray:
    P = game.P if isinstance(game, Game) else game
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"expected one square preference matrix, got shape {P.shape}")
    return P


def _exploit(P: np.ndarray, pi: np.ndarray) -> float:
    return max(float(np.max(P @ pi) - 0.5), 0.0)


def _polish(P: np.ndarray, pi: np.ndarray, tol: float = 1e-7) -> np.ndarray | None:
    """Re-solve the equalizing system on the LP solution's support; None if that is not better."""
    support = pi > tol
    g = P @ pi
    active = g >= g.max() - tol
    S, E = np.flatnonzero(support), np.flatnonzero(active)
    A = np.vstack([P[np.ix_(E, S)], np.ones((1, S.size))])
    b = np.concatenate([np.full(E.size, 0.5), [1.0]])
    x, *_ = np.linalg.lstsq(A, b, rcond=None)
    if not np.all(np.isfinite(x)) or x.min() < 0:
        return None
    out = np.zeros_like(pi)
    out[S] = x / x.sum()
    return out


def exact_nash(game) -> NashSolution:
    """A Nash policy of the symmetric game (not necessarily the unique one) by linear programming."""
    from scipy.optimize import linprog

    P = _matrix(game)
    n = P.shape[0]
    c = np.zeros(n + 1)
    c[-1] = 1.0  # minimize s
    A_ub = np.hstack([P, -np.ones((n, 1))])
    A_eq = np.concatenate([np.ones(n), [0.0]])[None, :]
    res = linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(n),
        A_eq=A_eq,
        b_eq=[1.0],
        bounds=[(0, None)] * n + [(None, None)],
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status != 0:
        raise RuntimeError(f"Nash LP failed: {res.message}")
    pi = np.clip(res.x[:n], 0.0, None)
    pi /= pi.sum()
    polished = _polish(P, pi)
    if polished is not None and _exploit(P, polished) <= _exploit(P, pi):
        pi = polished
    e = _exploit(P, pi)
    return NashSolution(policy=pi, exploitability=e, duality_gap=2 * e)


def _residual(P, log_ref, v, tau):
    from scipy.special import softmax

    return v - P @ softmax(log_ref + v / tau)


def _newton(P, log_ref, v, tau, *, tol, max_iter):
    """Damped Newton on F(v) = v − P·softmax(log π_ref + v/τ) = 0, with v = Pπ the win rates.

    Its Jacobian ``I − P·(diag q − q qᵀ)/τ`` is never singular (P − 1/2 is skew-symmetric and the
    softmax covariance is positive semi-definite), and v stays in [0, 1]ⁿ whatever τ is — which is
    why this works where Newton on log π stalls as responses leave the support.
    """
    from scipy.special import softmax

    n = v.size
    r = _residual(P, log_ref, v, tau)
    for k in range(max_iter):
        norm0 = np.linalg.norm(r)
        if np.max(np.abs(r)) <= tol:
            return v, r, k
        q = softmax(log_ref + v / tau)
        J = np.eye(n) - (P * q[None, :] - np.outer(P @ q, q)) / tau
        d = np.linalg.solve(J, -r)
        alpha = 1.0
        while True:
            v_new = v + alpha * d
            r_new = _residual(P, log_ref, v_new, tau)
            if np.linalg.norm(r_new) < (1 - 1e-4 * alpha) * norm0:
                break
            alpha *= 0.5
            if alpha < 1e-12:  # no further progress possible at this precision
                return v, r, k
        v, r = v_new, r_new
    return v, r, max_iter


def regularized_nash(game, ref=None, tau: float = 0.1, *, tol: float = 1e-13, max_iter: int = 100) -> RegularizedNash:
    """The Nash policy π*_τ of the KL-regularized game toward ``ref`` (default uniform), τ > 0.

    ``ref`` is given as probabilities (entries > 0). ``residual`` is ``max |Pπ − v|`` at the
    returned point; raises ``RuntimeError`` if it is not below 1e-9.
    """
    from scipy.special import log_softmax

    P = _matrix(game)
    n = P.shape[0]
    tau = float(tau)
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive finite number, got {tau}")
    ref = np.full(n, 1.0 / n) if ref is None else np.asarray(ref, dtype=np.float64)
    if ref.shape != (n,) or not np.all(np.isfinite(ref)) or ref.min() <= 0:
        raise ValueError(f"reference must be a vector of {n} positive finite numbers")
    log_ref = np.log(ref / ref.sum())
    # Continuation: at τ ≥ 4·spread(P) the problem is nearly linear and Newton from v = Pπ_ref
    # converges at once; then halve τ, warm-starting each stage from the last.
    spread = float(P.max() - P.min()) or 1.0
    schedule = [tau]
    while schedule[-1] < 4.0 * spread:
        schedule.append(schedule[-1] * 2.0)
    v = P @ ref / ref.sum()
    total = 0
    for t in reversed(schedule):
        v, r, k = _newton(P, log_ref, v, t, tol=tol, max_iter=max_iter)
        total += k
    logp = log_softmax(log_ref + v / tau)
    res = float(np.max(np.abs(P @ np.exp(logp) - v)))
    if not res < 1e-9:
        raise RuntimeError(f"regularized Nash did not converge: residual {res:.3g} at tau={tau}")
    return RegularizedNash(policy=np.exp(logp), logp=logp, residual=res, newton_steps=total)


# ------------------------------------------------------------------ egalitarian (max–min) solutions
class MaxMinSolution(NamedTuple):
    """The egalitarian policy max_π min_u [π·r_u − β·KL(π‖ref)] and its certificate."""

    policy: np.ndarray  # (n,)
    logp: np.ndarray  # (n,)
    group_weights: np.ndarray  # (U,) the adversary's optimal mixture w*: π ∝ ref·exp(Σ_u w*_u r_u / β)
    utilities: np.ndarray  # (U,) π·r_u − β·KL(π‖ref) for every group
    value: float  # min_u utilities = the dual value β·log Σ ref·exp(w*ᵀR/β)


def group_rewards(game: Game, ref=None) -> np.ndarray:
    """(U, n) rewards the egalitarian objective uses: the groups' Bradley–Terry rewards when the
    game has them, otherwise each group's win rates against the reference, P_u·ref."""
    if game.groups is None:
        raise ValueError("not a multi-group game (it has no groups)")
    if game.rewards is not None:
        return np.asarray(game.rewards, dtype=np.float64)
    G = np.asarray(game.groups, dtype=np.float64)
    ref = np.full(G.shape[-1], 1.0 / G.shape[-1]) if ref is None else np.asarray(ref, dtype=np.float64)
    return G @ ref


def maxmin_policy(rewards, ref=None, beta: float = 1.0, *, tol: float = 1e-13) -> MaxMinSolution:
    """The exact egalitarian policy for KL-regularized utilities U_u(π) = π·r_u − β·KL(π‖ref).

    By minimax (linear in the group mixture w, strongly concave in π) it equals the solution of the
    convex dual  min_{w ∈ Δ_U} f(w) = β·log Σ_y ref_y·exp((wᵀR)_y/β),  with π = ref·exp(wᵀR/β)/Z.
    Solved by SLSQP, then polished by Newton's method on the KKT system of the active groups
    (equal utilities (Rπ)_u = λ on the support of w); the returned utilities are equal on that
    support to ~1e-13 and no smaller elsewhere.
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax, softmax

    R = np.asarray(rewards, dtype=np.float64)
    if R.ndim != 2 or not np.all(np.isfinite(R)):
        raise ValueError(f"rewards must be a finite (groups, responses) array, got shape {R.shape}")
    if not np.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    U, n = R.shape
    log_ref = np.full(n, -np.log(n)) if ref is None else np.log(np.asarray(ref, dtype=np.float64))
    if log_ref.shape != (n,) or not np.all(np.isfinite(log_ref)):
        raise ValueError(f"ref must be {n} positive probabilities")

    def pi_of(w):
        return softmax(log_ref + w @ R / beta)

    def f(w):
        z = log_ref + w @ R / beta
        m = z.max()
        return beta * (m + np.log(np.exp(z - m).sum())), R @ pi_of(w)

    res = minimize(f, np.full(U, 1.0 / U), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * U,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(U)}],
                   options={"ftol": 1e-16, "maxiter": 1000})
    w = np.clip(res.x, 0.0, None)
    w /= w.sum()
    for _ in range(50):  # Newton on the active set: (Rπ)_S = λ·1, Σ w_S = 1
        S = np.flatnonzero(w > 1e-12)
        pi = pi_of(w)
        g = R @ pi
        F = np.concatenate([g[S] - g[S].mean(), [w[S].sum() - 1.0]])
        if np.abs(F).max() < tol:
            break
        H = (R[S] * pi) @ R[S].T / beta - np.outer(R[S] @ pi, R[S] @ pi) / beta
        J = np.block([[H, -np.ones((S.size, 1))], [np.ones((1, S.size)), np.zeros((1, 1))]])
        step = np.linalg.lstsq(J, -np.concatenate([g[S] - g[S].mean(), [w[S].sum() - 1.0]]), rcond=None)[0]
        w_new = w.copy()
        w_new[S] += step[:-1]
        if w_new.min() < 0:
            break  # leave the active set to SLSQP's answer
        w = w_new
    pi = pi_of(w)
    logp = log_softmax(log_ref + w @ R / beta)
    kl = float(np.sum(pi * (logp - log_ref)))
    utilities = R @ pi - beta * kl
    return MaxMinSolution(pi, logp, w, utilities, float(utilities.min()))


class MaxMinNash(NamedTuple):
    policy: np.ndarray  # (n,)
    value: float  # min over groups u and responses j of P_u(π ≻ j): the guaranteed win rate (≤ 1/2)


def maxmin_nash(groups) -> MaxMinNash:
    """The row policy of the game whose opponent is the worst group: max_π min_{u, j} (πᵀP_u)_j, by
    linear programming (HiGHS). With one group this is the Nash of that group's game (value ½)."""
    from scipy.optimize import linprog

    G = np.asarray(groups.groups if isinstance(groups, Game) else groups, dtype=np.float64)
    if G.ndim != 3 or G.shape[1] != G.shape[2]:
        raise ValueError(f"expected a (U, n, n) stack of preference matrices, got shape {G.shape}")
    U, n, _ = G.shape
    c = np.zeros(n + 1)
    c[-1] = -1.0  # maximize s
    A_ub = np.hstack([-G.transpose(0, 2, 1).reshape(U * n, n), np.ones((U * n, 1))])  # s − (πᵀP_u)_j ≤ 0
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(U * n), A_eq=np.concatenate([np.ones(n), [0.0]])[None, :],
                  b_eq=[1.0], bounds=[(0, None)] * n + [(None, None)], method="highs",
                  options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    if res.status != 0:
        raise RuntimeError(f"max-min LP failed: {res.message}")
    pi = np.clip(res.x[:n], 0.0, None)
    pi /= pi.sum()
    return MaxMinNash(pi, float(np.min(np.einsum("i,uij->uj", pi, G))))


def pooled_reward_policy(game: Game, ref=None, beta: float = 1.0, pair_weights=None) -> np.ndarray:
    """The single-reward baseline: one Bradley–Terry reward fitted to the *pooled* preferences
    Σ_u w_u·P_u (pairs weighted uniformly unless ``pair_weights``), then the KL-regularized optimum
    π ∝ ref·exp(r̂/β) — what RLHF with one reward model does on data from several groups."""
    import jax.numpy as jnp
    from scipy.special import softmax

    from gamelab.feedback import bradley_terry_fit

    P = _matrix(game)
    n = P.shape[0]
    W = np.full((n, n), 1.0 / n**2) if pair_weights is None else np.asarray(pair_weights, dtype=np.float64)
    r = np.asarray(bradley_terry_fit(jnp.asarray(P), jnp.asarray(W), jnp.zeros(n), 1e-12))
    log_ref = np.full(n, -np.log(n)) if ref is None else np.log(np.asarray(ref, dtype=np.float64))
    return softmax(log_ref + r / beta)


# ------------------------------------------------------------------ which Nash: the set and its max-entropy member
NASH_TOL = 1e-9  # a response whose largest Nash probability is at most this is outside every Nash's support
NASH_VERTICES_MAX_N = 10  # vertex enumeration tries C(2n, n−1) active sets: 167,960 at n = 10


class NashBounds(NamedTuple):
    """``low[i]``/``high[i]``: the least and greatest probability of response i over the Nash set
    {π ∈ Δ : Pπ ≤ ½·1} (a polytope: the game is symmetric with value ½, so π is Nash exactly when
    no response beats it)."""

    low: np.ndarray
    high: np.ndarray

    @property
    def unique(self) -> bool:
        return bool(np.max(self.high - self.low) <= NASH_TOL)


def nash_bounds(game) -> NashBounds:
    """The support bounds of the Nash set by 2n linear programs (HiGHS), for any size of game."""
    from scipy.optimize import linprog

    P = _matrix(game)
    n = P.shape[0]
    opts = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
    low, high = np.empty(n), np.empty(n)
    for i in range(n):
        for sign, out in ((1.0, low), (-1.0, high)):
            c = np.zeros(n)
            c[i] = sign
            res = linprog(c, A_ub=P, b_ub=np.full(n, 0.5), A_eq=np.ones((1, n)), b_eq=[1.0],
                          bounds=[(0, None)] * n, method="highs", options=opts)
            if res.status != 0:
                raise RuntimeError(f"Nash-set LP failed: {res.message}")
            out[i] = min(max(res.x[i], 0.0), 1.0) + 0.0  # + 0.0: no negative zero
    return NashBounds(low, high)


def nash_vertices(game, *, tol: float = NASH_TOL) -> np.ndarray:
    """(V, n) the vertices of the Nash set of a small game (n ≤ :data:`NASH_VERTICES_MAX_N`), in
    lexicographic order: every basic feasible point of {π ≥ 0, 1ᵀπ = 1, Pπ ≤ ½}, found by solving
    each choice of n − 1 active constraints with 1ᵀπ = 1 (batched) and keeping the feasible ones."""
    from itertools import combinations

    P = _matrix(game)
    n = P.shape[0]
    if n > NASH_VERTICES_MAX_N:
        raise ValueError(f"vertex enumeration is for games of at most {NASH_VERTICES_MAX_N} responses "
                         f"(got {n}); use nash_bounds")
    G = np.vstack([P, -np.eye(n)])
    h = np.concatenate([np.full(n, 0.5), np.zeros(n)])
    active = np.array(list(combinations(range(2 * n), n - 1)), dtype=np.int64).reshape(-1, n - 1)
    A = np.concatenate([G[active], np.ones((active.shape[0], 1, n))], axis=1)
    b = np.concatenate([h[active], np.ones((active.shape[0], 1))], axis=1)
    regular = np.abs(np.linalg.det(A)) > 1e-10
    x = np.linalg.solve(A[regular], b[regular][..., None])[..., 0]
    feasible = (x.min(axis=1) >= -tol) & ((x @ P.T).max(axis=1) <= 0.5 + tol)
    x = np.clip(x[feasible], 0.0, None)
    x /= x.sum(axis=1, keepdims=True)
    if x.shape[0] == 0:
        raise RuntimeError("no vertex found: the matrix is not a valid preference game")
    x = np.unique(np.round(x, 12), axis=0)  # the same vertex from several active sets; sorted rows
    return x / x.sum(axis=1, keepdims=True)


class MaxEntNash(NamedTuple):
    """The maximum-entropy Nash policy and its certificate."""

    policy: np.ndarray
    entropy: float
    exploitability: float  # max_y (Pπ)_y − ½ (≤ 0 up to rounding: reported clipped at 0 like exact_nash's)
    support: np.ndarray  # indices of the responses some Nash plays (high > NASH_TOL)
    multipliers: np.ndarray  # (n,) λ ≥ 0 of Pπ ≤ ½: π ∝ exp(−(Pᵀλ)) on the support
    kkt_residual: float  # max |(Pπ)_y − ½| over the rows with λ_y > 0 (complementary slackness)
    newton_steps: int


def maxent_nash(game, *, tol: float = 1e-14, max_iter: int = 100) -> MaxEntNash:
    """argmax H(π) over the Nash set {π ∈ Δ : Pπ ≤ ½} (a unique point: H is strictly concave).

    The support S is where some Nash puts mass (:func:`nash_bounds`); on it the maximum-entropy
    point is interior, so the convex dual  min_{λ ≥ 0} log Σ_{i∈S} exp(−(Pᵀλ)_i) + ½·1ᵀλ  attains its
    minimum (linear constraints, a feasible point in the relative interior) and π = softmax(−Pᵀλ) on
    S. Solved by L-BFGS-B with bounds, then Newton's method on the rows it leaves active (minimum-norm
    steps: λ is not unique where the active rows are dependent, π is), to a gradient of ``tol``.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    P = _matrix(game)
    n = P.shape[0]
    S = np.flatnonzero(nash_bounds(P).high > NASH_TOL)
    PS = P[:, S]

    def dual(lam):
        z = -(PS.T @ lam)
        x = softmax(z)
        return logsumexp(z) + 0.5 * lam.sum(), 0.5 - PS @ x

    res = minimize(dual, np.zeros(n), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * n,
                   options={"maxiter": 5000, "ftol": 1e-16, "gtol": 1e-12, "maxcor": 50})
    lam = np.clip(res.x, 0.0, None)
    x = softmax(-(PS.T @ lam))
    steps = 0
    for steps in range(1, max_iter + 1):  # Newton on the active rows: (P_S x)_A = ½
        g = PS @ x
        act = np.flatnonzero((lam > 0) | (g > 0.5 - 1e-9))
        grad = 0.5 - g[act]
        if np.abs(grad).max(initial=0.0) <= tol:
            break
        J = PS[act]
        H = (J * x) @ J.T - np.outer(J @ x, J @ x)
        d = np.zeros(n)
        d[act] = -np.linalg.lstsq(H, grad, rcond=1e-13)[0]
        f0 = dual(lam)[0]
        alpha = 1.0
        while alpha > 1e-10:
            trial = np.clip(lam + alpha * d, 0.0, None)
            if dual(trial)[0] <= f0 + 1e-15 * max(1.0, abs(f0)):
                break
            alpha *= 0.5
        else:
            break
        lam = trial
        x = softmax(-(PS.T @ lam))
    pi = np.zeros(n)
    pi[S] = x
    g = P @ pi
    pos = pi[pi > 0]
    binding = lam > 1e-12
    kkt = float(np.abs(g[binding] - 0.5).max(initial=0.0))
    return MaxEntNash(pi, float(-np.sum(pos * np.log(pos))), _exploit(P, pi), S, lam, kkt, steps)


def dist_to_maxent_nash(game, policy) -> float:
    """The L1 distance ‖π − π_maxent‖₁ of a policy (probabilities) to the maximum-entropy Nash."""
    p = np.asarray(policy, dtype=np.float64)
    return float(np.abs(p - maxent_nash(game).policy).sum())
