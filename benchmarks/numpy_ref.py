"""The same algorithms in plain NumPy, in two drivers: a per-game loop and a batched loop.

Each function runs ``T`` steps from the uniform policy (and uniform reference) and records the
last-iterate exploitability ``max_y (Pπ_t)_y − ½`` after every step (T + 1 values, row 0 being
the initial policy) — the metric the gamelab runs record. The updates follow gamelab's
(log space for MWU / OMWU / INPO; g = Pπ):

* mwu:             log π ← log_softmax(log π + η g)
* omwu:            log π ← log_softmax(log π + η(2g_t − g_{t−1})),  g_{−1} = g_0
* inpo:            log π ← log_softmax((1 − ητ) log π + ητ log ref + η g)
* replicator:      π ← π·max(1 + η(g − πᵀg), 0), normalized
* fictitious_play: play the best response (first index on ties) to the average of past play
                   (π_0 counted); the last iterate is the pure strategy played
* regret_matching: r ← r + g − πᵀg;  π ∝ max(r, 0) (uniform when all ≤ 0)

The NumPy code is written the way a careful NumPy user would: the win-rate vector ``g = Pπ``
computed for a step's metric is reused by the next step (one matrix-vector product per step;
fictitious play reads one column of P for its metric). Arrays have shape ``(n,)`` (one game) or
``(B, n)`` (a batch); the same step code serves both drivers.
"""
from __future__ import annotations

import numpy as np

ALGORITHMS = ("mwu", "omwu", "inpo", "replicator", "fictitious_play", "regret_matching")


def _matvec(P: np.ndarray, p: np.ndarray) -> np.ndarray:
    if p.ndim == 1:
        return P @ p
    if p.shape[-1] <= 32:  # small games: einsum's BLAS-free path is the faster of the two here
        return np.einsum("bij,bj->bi", P, p, optimize=True)
    return np.matmul(P, p[..., None])[..., 0]  # (B, n, n) @ (B, n, 1)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _gap(g: np.ndarray):
    return np.maximum(g.max(axis=-1) - 0.5, 0.0)


def simulate(algo: str, P: np.ndarray, T: int, eta: float = 0.1, tau: float = 0.1) -> np.ndarray:
    """Run ``algo`` on ``P`` (``(n, n)`` or ``(B, n, n)``) for ``T`` steps; return the gaps,
    shape ``(T + 1,)`` or ``(B, T + 1)``."""
    n = P.shape[-1]
    batch = P.shape[:-2]
    gaps = np.empty(batch + (T + 1,))
    logp = np.full(batch + (n,), -np.log(n))
    p = np.exp(logp)
    g = _matvec(P, p)
    gaps[..., 0] = _gap(g)

    if algo == "mwu":
        for t in range(1, T + 1):
            logp = _log_softmax(logp + eta * g)
            g = _matvec(P, np.exp(logp))
            gaps[..., t] = _gap(g)
    elif algo == "omwu":
        g_prev = g
        for t in range(1, T + 1):
            logp = _log_softmax(logp + eta * (2.0 * g - g_prev))
            g_prev = g
            g = _matvec(P, np.exp(logp))
            gaps[..., t] = _gap(g)
    elif algo == "inpo":
        et = eta * tau
        ref_term = et * logp.copy()  # ητ·log ref, ref = the (uniform) initial policy
        for t in range(1, T + 1):
            logp = _log_softmax((1.0 - et) * logp + ref_term + eta * g)
            g = _matvec(P, np.exp(logp))
            gaps[..., t] = _gap(g)
    elif algo == "replicator":
        for t in range(1, T + 1):
            adv = g - (p * g).sum(axis=-1, keepdims=True)
            p = p * np.maximum(1.0 + eta * adv, 0.0)
            p = p / p.sum(axis=-1, keepdims=True)
            g = _matvec(P, p)
            gaps[..., t] = _gap(g)
    elif algo == "fictitious_play":
        total = p.copy()
        rows = np.arange(total.shape[0]) if batch else None
        for t in range(1, T + 1):
            a = np.argmax(_matvec(P, total / t), axis=-1)  # t = plays so far, π_0 included
            if batch:
                total[rows, a] += 1.0
                gaps[..., t] = np.maximum(P[rows, :, a].max(axis=-1) - 0.5, 0.0)
            else:
                total[a] += 1.0
                gaps[t] = max(P[:, a].max() - 0.5, 0.0)
    elif algo == "regret_matching":
        regret = np.zeros_like(p)
        for t in range(1, T + 1):
            regret = regret + g - (p * g).sum(axis=-1, keepdims=True)
            pos = np.maximum(regret, 0.0)
            s = pos.sum(axis=-1, keepdims=True)
            p = np.where(s > 0, pos / np.where(s > 0, s, 1.0), 1.0 / n)
            g = _matvec(P, p)
            gaps[..., t] = _gap(g)
    else:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(ALGORITHMS)}")
    return gaps


def per_game_loop(algo: str, Ps: np.ndarray, T: int, **hp) -> np.ndarray:
    """One game at a time: ``(B, T + 1)`` gaps from B separate runs."""
    return np.stack([simulate(algo, P, T, **hp) for P in Ps])


def batched(algo: str, Ps: np.ndarray, T: int, **hp) -> np.ndarray:
    """All games at once: one loop over steps, each step a batched (B, n, n) @ (B, n) product."""
    return simulate(algo, Ps, T, **hp)
