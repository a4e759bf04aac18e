"""Adapters for other libraries' game dynamics: one game, T steps, the gap recorded every step.

Each adapter takes ``(P, T, eta)`` for one preference matrix and returns the recorded
exploitabilities. The games are the zero-sum matrix games with row payoff ``A = P − ½`` (column
payoff ``−A = Aᵀ``); every peer's policy is scored with the same ``max_y (Pπ)_y − ½``. The
imports are optional: :func:`available_peers` lists the adapters whose library is installed and
says why the others are skipped.

| adapter | gamelab equivalent | what is run |
| --- | --- | --- |
| nashpy replicator_dynamics | replicator | ``Game(A, −A).replicator_dynamics(y0, timepoints=η·k)``: the continuous-time ODE (``scipy.integrate.odeint``) sampled at the T + 1 points t = kη; gaps of the samples |
| nashpy fictitious_play | fictitious_play | the ``Game.fictitious_play(T)`` generator (two-player play counts, random tie-breaking); the gap of the row player's play at every step |
| nashpy regret_minimization | regret_matching | ``Game.regret_minimization(η, T)``; it yields only once, at the end, so only the final gap is recorded (less work than the others) |
| OpenSpiel replicator | replicator | ``egt.dynamics.SinglePopulationDynamics(…, dynamics.replicator)`` stepped by Euler, π ← π + η·π̇ (exactly the discrete replicator step) |
| OpenSpiel regret_matching | regret_matching | ``algorithms.regret_matching``'s step (both players, γ = 0, OpenSpiel's 1e-6 initial regrets) |
| OpenSpiel XFP | fictitious_play | ``algorithms.fictitious_play.XFPSolver`` on the turn-based matrix game, gap of the average policy per step |
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Peer(NamedTuple):
    name: str  # "library: dynamics"
    library: str
    equivalent: str  # the gamelab algorithm doing the same update
    fn: Callable[[np.ndarray, int, float], np.ndarray]
    per_step_gap: bool  # False: the library exposes no per-step state, only the final gap is recorded
    max_steps: int | None  # time at most this many steps (scaled up), for very slow peers
    max_n: int | None  # skip larger games (cost beyond the benchmark's budget)
    note: str


def _gap(P, pi):
    return max(float(np.max(P @ pi)) - 0.5, 0.0)


# ------------------------------------------------------------------------------ nashpy
def nashpy_replicator(P, T, eta):
    import nashpy

    A = P - 0.5
    n = len(P)
    traj = nashpy.Game(A, -A).replicator_dynamics(y0=np.full(n, 1.0 / n), timepoints=eta * np.arange(T + 1))
    return np.maximum((traj @ P.T).max(axis=1) - 0.5, 0.0)


def nashpy_fictitious_play(P, T, eta):
    import nashpy

    A = P - 0.5
    n = len(P)
    gaps = np.empty(T + 1)
    prev = None
    for t, counts in enumerate(nashpy.Game(A, -A).fictitious_play(iterations=T)):
        row = counts[0]
        if prev is None:
            gaps[0] = _gap(P, np.full(n, 1.0 / n))
        else:
            a = int(np.argmax(row - prev))  # the row player's play at this step
            gaps[t] = max(float(P[:, a].max()) - 0.5, 0.0)
        prev = row
    return gaps


def nashpy_regret_minimization(P, T, eta):
    import nashpy

    A = P - 0.5
    (row, _col), = list(nashpy.Game(A, -A).regret_minimization(learning_rate=eta, iterations=T))
    return np.array([_gap(P, np.asarray(row, dtype=float))])


# ------------------------------------------------------------------------------ OpenSpiel
def openspiel_replicator(P, T, eta):
    from open_spiel.python.egt import dynamics

    A = P - 0.5
    n = len(P)
    dyn = dynamics.SinglePopulationDynamics(np.stack([A, A.T]), dynamics.replicator)
    x = np.full(n, 1.0 / n)
    gaps = np.empty(T + 1)
    gaps[0] = _gap(P, x)
    for t in range(1, T + 1):
        x = x + eta * dyn(x)
        gaps[t] = _gap(P, x)
    return gaps


def openspiel_regret_matching(P, T, eta):
    from open_spiel.python.algorithms import regret_matching as rm

    A = P - 0.5
    n = len(P)
    payoffs = [A, -A]
    strategies = [np.full(n, 1.0 / n), np.full(n, 1.0 / n)]
    regrets = [np.ones(n) / rm.INITIAL_REGRET_DENOM, np.ones(n) / rm.INITIAL_REGRET_DENOM]
    gaps = np.empty(T + 1)
    gaps[0] = _gap(P, strategies[0])
    for t in range(1, T + 1):
        strategies = rm._regret_matching_step(payoffs, strategies, regrets, 0.0)
        gaps[t] = _gap(P, strategies[0])
    return gaps


def openspiel_xfp(P, T, eta):
    import pyspiel
    from open_spiel.python.algorithms import fictitious_play

    A = P - 0.5
    n = len(P)
    game = pyspiel.convert_to_turn_based(pyspiel.create_matrix_game(A.tolist(), (-A).tolist()))
    xfp = fictitious_play.XFPSolver(game)
    gaps = np.empty(T + 1)
    gaps[0] = _gap(P, np.full(n, 1.0 / n))
    for t in range(1, T + 1):
        xfp.iteration()
        (table,) = xfp.average_policy_tables()[0].values()  # player 0's one information state
        pi = np.array([table.get(a, 0.0) for a in range(n)], dtype=float)
        gaps[t] = _gap(P, pi / pi.sum())
    return gaps


PEERS = (
    Peer("nashpy replicator_dynamics", "nashpy", "replicator", nashpy_replicator, True, None, None,
         "continuous-time ODE (odeint) sampled at t = kη"),
    Peer("nashpy fictitious_play", "nashpy", "fictitious_play", nashpy_fictitious_play, True, None, None,
         "two-player play counts, random tie-breaking"),
    Peer("nashpy regret_minimization", "nashpy", "regret_matching", nashpy_regret_minimization, False, None, None,
         "yields once: final gap only"),
    Peer("OpenSpiel egt replicator", "open_spiel", "replicator", openspiel_replicator, True, None, None,
         "SinglePopulationDynamics, Euler step η"),
    Peer("OpenSpiel regret_matching", "open_spiel", "regret_matching", openspiel_regret_matching, True, None, None,
         "both players' regrets"),
    Peer("OpenSpiel XFPSolver", "open_spiel", "fictitious_play", openspiel_xfp, True, 100, 10,
         "turn-based matrix game; 100 steps timed, scaled"),
)


def _importable(library: str) -> str | None:
    """None when ``library`` imports, else the reason it does not."""
    try:
        if library == "nashpy":
            import nashpy  # noqa: F401
        elif library == "open_spiel":
            import pyspiel  # noqa: F401
            from open_spiel.python.algorithms import fictitious_play, regret_matching  # noqa: F401
            from open_spiel.python.egt import dynamics  # noqa: F401
        else:
            raise ImportError(f"unknown library {library}")
    except Exception as exc:  # ImportError, or a broken binary wheel
        return f"{type(exc).__name__}: {exc}"
    return None


def available_peers() -> tuple[list[Peer], dict[str, str]]:
    """The adapters whose library imports, and ``{library: why it is skipped}`` for the rest."""
    ok, skipped = [], {}
    for lib in sorted({p.library for p in PEERS}):
        why = _importable(lib)
        if why is not None:
            skipped[lib] = why
    ok = [p for p in PEERS if p.library not in skipped]
    return ok, skipped
