"""Exact Nash by linear programming: gamelab against nashpy, OpenSpiel and pygambit.

Input: a random preference matrix P (n × n); output: a Nash policy. Each solver's timed region
goes from the NumPy matrix to the policy, including the conversion into the library's own game
object (reported separately as ``build_s`` where it is a distinct step). The games are the
zero-sum matrix games with row payoff ``A = P − ½``. Every returned row policy is scored with
the same exploitability ``max_y (Pπ)_y − ½`` (negative entries clipped, renormalized).

* gamelab: ``gamelab.nash.exact_nash(P)`` (HiGHS, one LP, polished on its support)
* nashpy: ``Game(A, −A).linear_program()`` (scipy/HiGHS, one LP per player)
* OpenSpiel: ``lp_solver.solve_zero_sum_matrix_game(create_matrix_game(A, −A))`` (cvxpy + ECOS,
  one LP per player)
* pygambit: ``nash.lp_solve(Game.from_arrays(A, −A), rational=False)`` (17: ``StrategicGame``)

Bounded: a solver is skipped at a size when the time predicted from the previous size (scaled by
(n'/n)³) exceeds the budget; the skip and the prediction are reported.
"""
from __future__ import annotations

import time

import numpy as np

import common


def _clean(pi) -> np.ndarray:
    pi = np.clip(np.asarray(pi, dtype=float), 0.0, None)
    return pi / pi.sum()


def solve_gamelab(P):
    from gamelab.nash import exact_nash

    return exact_nash(P).policy, None


def solve_nashpy(P):
    import nashpy

    A = P - 0.5
    row, _col = nashpy.Game(A, -A).linear_program()
    return row, None


def solve_openspiel(P):
    import pyspiel
    from open_spiel.python.algorithms import lp_solver

    A = P - 0.5
    t0 = time.perf_counter()
    game = pyspiel.create_matrix_game(A.tolist(), (-A).tolist())
    build = time.perf_counter() - t0
    p0, _p1, _v0, _v1 = lp_solver.solve_zero_sum_matrix_game(game)
    return p0, build


def solve_pygambit(P):
    import pygambit as gbt

    A = P - 0.5
    make = getattr(gbt, "StrategicGame", gbt.Game).from_arrays  # pygambit 17 moved it to StrategicGame
    t0 = time.perf_counter()
    game = make(A, -A)
    build = time.perf_counter() - t0
    result = gbt.nash.lp_solve(game, rational=False)
    eq = result.equilibrium if hasattr(result, "equilibrium") else result.equilibria[0]  # 17: one equilibrium
    player = list(game.players)[0]
    if hasattr(player, "strategies"):  # pygambit 16: a player object, the profile indexed by strategy
        return [float(eq[s]) for s in player.strategies], build
    return [float(p) for _, p in eq[player]], build  # 17: a label, mapped to (strategy, probability) pairs


SOLVERS = (
    ("gamelab exact_nash", None, solve_gamelab),
    ("nashpy linear_program", "nashpy", solve_nashpy),
    ("OpenSpiel lp_solver (cvxpy/ECOS)", "open_spiel", solve_openspiel),
    ("pygambit lp_solve", "pygambit", solve_pygambit),
)


def _missing(module: str | None) -> str | None:
    if module is None:
        return None
    try:
        if module == "open_spiel":
            import pyspiel  # noqa: F401
            from open_spiel.python.algorithms import lp_solver  # noqa: F401  (needs cvxpy)
        else:
            __import__(module)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def run(quick: bool = False, sizes=None, budget_s: float = 120.0, log=print) -> tuple[list[dict], dict]:
    sizes = sizes or ((10, 30, 100) if quick else (10, 30, 100, 300, 1000))
    skipped = {name: why for name, mod, _ in SOLVERS if (why := _missing(mod))}
    last: dict[str, tuple[int, float]] = {}
    rows = []
    for n in sizes:
        P = common.random_games(1, n, seed=n)[0]
        for name, _mod, solve in SOLVERS:
            if name in skipped:
                continue
            if name in last:
                n0, t0 = last[name]
                predicted = t0 * (n / n0) ** 3
                if predicted > budget_s:
                    rows.append({"n": n, "solver": name, "skipped": f"predicted {predicted:.0f} s > budget {budget_s:.0f} s",
                                 "predicted_s": predicted})
                    log(f"nash_lp: n={n} {name} skipped (predicted {predicted:.0f} s)")
                    continue
            repeats, warmup = (3, 1) if n <= 100 else (1, 0)
            out = {}

            def call(solve=solve, P=P, out=out):
                out["policy"], out["build_s"] = solve(P)
                return None

            try:
                m = common.measure(call, repeats=repeats, warmup=warmup)
            except Exception as exc:  # a solver failing on this instance is a result, not a crash
                rows.append({"n": n, "solver": name, "skipped": f"failed: {type(exc).__name__}: {exc}"})
                log(f"nash_lp: n={n} {name} failed: {exc}")
                continue
            gap = common.exploitability(P, _clean(out["policy"]))
            last[name] = (n, m["median_s"])
            rows.append({"n": n, "solver": name, "median_s": m["median_s"], "samples_s": m["samples_s"],
                         "build_s": out["build_s"], "exploitability": gap})
            log(f"nash_lp: n={n} {name} {common.fmt_time(m['median_s'])} gap {gap:.1e}")
    return rows, skipped


def tables(rows: list[dict], skipped: dict) -> str:
    body = []
    for n in dict.fromkeys(r["n"] for r in rows):
        g = next((r for r in rows if r["n"] == n and r["solver"] == "gamelab exact_nash" and "median_s" in r), None)
        for r in (r for r in rows if r["n"] == n):
            if "median_s" not in r:
                body.append([n, r["solver"], "skipped: " + r["skipped"], "—", "—", "—"])
                continue
            ratio = r["median_s"] / g["median_s"] if g else None
            body.append([n, r["solver"], common.fmt_time(r["median_s"]),
                         common.fmt_time(r["build_s"]) if r.get("build_s") is not None else "—",
                         common.fmt_gap(r["exploitability"]),
                         common.fmt_ratio(ratio) if r["solver"] != "gamelab exact_nash" else "1×"])
    text = "### Exact Nash by LP (one random game per n)\n\n" + common.table(
        ["n", "solver", "time", "of which game build", "exploitability of the result", "time / gamelab"], body)
    if skipped:
        text += "\n\nNot installed / not importable: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())
    return text + "\n"
