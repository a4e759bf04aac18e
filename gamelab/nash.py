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
from scipy.optimize import linprog
from scipy.special import log_softmax, softmax

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
    return v - P @ softmax(log_ref + v / tau)


def _newton(P, log_ref, v, tau, *, tol, max_iter):
    """Damped Newton on F(v) = v − P·softmax(log π_ref + v/τ) = 0, with v = Pπ the win rates.

    Its Jacobian ``I − P·(diag q − q qᵀ)/τ`` is never singular (P − 1/2 is skew-symmetric and the
    softmax covariance is positive semi-definite), and v stays in [0, 1]ⁿ whatever τ is — which is
    why this works where Newton on log π stalls as responses leave the support.
    """
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
