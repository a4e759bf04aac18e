"""Tables from a results DataFrame: per-configuration summaries and a convergence verdict.

The input is the tidy table of :mod:`gamelab.results` (one row per run × recorded step × iterate).
:func:`summarize` reduces it to one row per algorithm × game × hyper-parameter configuration,
:func:`classify` names what a single gap trace did, :func:`format_table` prints a summary.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np


#: Columns of the results table that are not hyper-parameters.
ID_COLUMNS = ("run", "algorithm", "game", "n", "seed", "step", "iterate", "policy", "chunk")

VERDICTS = ("converged", "converging", "plateau", "cycled", "diverged")

FLOOR = 1e-17  # gaps are clipped here before taking logs (an exact 0 is "below every tolerance")
CONVERGED = 1e-6  # final gap at or below this: converged
CONVERGING = 1e-3  # a decreasing tail must end at or below this to count as converging
FACTOR = 2.0  # "a factor 2": the unit of change for trends, spreads and the average-iterate test
DIVERGED_ABS = 0.4  # a final duality gap this large means the policy sits near a vertex
DIVERGED_PEAK = 0.5  # ... or the final gap is at least half the trace's maximum ...
DIVERGED_GROWTH = 2.0  # ... and at least twice the initial gap


def _is_metric(column: str) -> bool:
    from gamelab.results import is_metric

    return is_metric(column)


def hparam_columns(df) -> list[str]:
    """The hyper-parameter columns of a results table: everything that is neither an identifier
    nor a metric (eta, tau, inner, refresh_every, beta, ...)."""
    return [c for c in df.columns if c not in ID_COLUMNS and not _is_metric(c)]


def tail_stats(steps, last_gap, avg_gap=None) -> dict:
    """The quantities :func:`classify` decides on (see its docstring), for inspection and tests."""
    steps = np.asarray(steps, dtype=np.float64).reshape(-1)
    last = np.asarray(last_gap, dtype=np.float64).reshape(-1)
    if steps.shape != last.shape:
        raise ValueError(f"steps and last_gap must have the same length, got {steps.shape} and {last.shape}")
    if avg_gap is not None:
        avg = np.asarray(avg_gap, dtype=np.float64).reshape(-1)
        if avg.shape != last.shape:
            raise ValueError(f"avg_gap must have the length of last_gap, got {avg.shape} and {last.shape}")
    else:
        avg = np.full_like(last, np.nan)
    keep = ~np.isnan(last)
    steps, last, avg = steps[keep], last[keep], avg[keep]
    if not len(last):
        raise ValueError("classify needs at least one recorded (non-NaN) gap")
    order = np.argsort(steps, kind="stable")
    steps, last, avg = steps[order], last[order], avg[order]
    R = len(last)
    start = min(R // 2, max(R - 2, 0))  # the last half, and at least two rows when there are two
    g = np.maximum(last, FLOOR)
    log = np.log10(g)
    t, lt = steps[start:], log[start:]
    if len(t) >= 2 and np.ptp(t) > 0:
        slope, icpt = np.polyfit(t, lt, 1)
        trend = slope * np.ptp(t)
        wobble = float(np.ptp(lt - (slope * t + icpt)))
    else:
        trend, wobble = 0.0, 0.0
    tail = g[start:]
    avg_final = float(avg[-1]) if len(avg) else math.nan
    return {
        "initial": float(g[0]), "final": float(last[-1]), "peak": float(np.max(g)),
        "tail_start": float(steps[start]), "tail_median": float(np.median(tail)),
        "trend": float(trend),  # log10 change of the least-squares line across the tail
        "spread": float(np.log10(tail.max() / tail.min())),  # log10(max/min) over the tail
        "wobble": wobble,  # log10 range of the residuals about that line
        "avg_final": avg_final,
    }


def classify(steps, last_gap, avg_gap=None) -> str:
    """What a last-iterate gap trace did: 'converged', 'converging', 'plateau', 'cycled' or 'diverged'.

    ``steps``, ``last_gap`` and ``avg_gap`` are the recorded steps and the duality gaps of the last
    and average iterates (NaN rows are dropped). The *tail* is the last half of the recorded rows
    (rows ⌊R/2⌋ … R−1, at least two). Gaps are clipped at 1e-17 and compared in log10. With

    * ``final`` = last gap, ``initial`` = first gap, ``peak`` = largest gap of the whole trace;
    * ``trend`` = the rise of the least-squares line of log10(gap) against step over the tail,
      from the tail's first to its last step (negative: decreasing);
    * ``spread`` = log10(max/min) of the gap over the tail;
    * ``wobble`` = log10 range of the tail's residuals about that line (oscillation about the trend);
    * ``avg below`` = the final average-iterate gap is at most ½ × the median tail gap of the last
      iterate (the iterates orbit a point their average approaches);

    the first rule that holds decides:

    1. **converged**: final ≤ 1e-6.
    2. **diverged**: final ≥ 0.4 (the policy sits near a vertex), or final ≥ 0.5 × peak and
       final ≥ 2 × initial (the gap grew and stayed up).
    3. **converging**: trend ≤ −log10 2 (the tail's line falls by at least a factor 2) and
       either final ≤ 1e-3 or wobble ≤ |trend| (the decline is larger than the oscillation
       about it, e.g. a damped spiral still above 1e-3).
    4. **plateau**: spread ≤ log10 2 (the whole tail within a factor 2) and not ``avg below`` —
       last and average iterate rest at the same gap, e.g. a regularized method at π*_τ.
    5. **cycled**: everything else — the tail moves by more than a factor 2 without a sustained,
       steady fall (typically oscillating, with the average iterate well below the last), or it
       stays level while the average iterate sits well below it (an orbit around the Nash).

    A non-finite final gap counts as diverged. Without ``avg_gap`` the ``avg below`` test is false.
    """
    s = tail_stats(steps, last_gap, avg_gap)
    final = s["final"]
    if not math.isfinite(final):
        return "diverged"
    if final <= CONVERGED:
        return "converged"
    if final >= DIVERGED_ABS or (final >= DIVERGED_PEAK * s["peak"] and final >= DIVERGED_GROWTH * s["initial"]):
        return "diverged"
    step = math.log10(FACTOR)
    if s["trend"] <= -step and (final <= CONVERGING or s["wobble"] <= -s["trend"]):
        return "converging"
    avg_below = math.isfinite(s["avg_final"]) and s["avg_final"] <= s["tail_median"] / FACTOR
    if s["spread"] <= step and not avg_below:
        return "plateau"
    return "cycled"


def _threshold_label(thr: float) -> str:
    return f"first_step_le_{thr:.0e}"


def _first_at_or_below(steps: np.ndarray, gap: np.ndarray, thr: float) -> float:
    hit = np.flatnonzero(gap <= thr)
    return float(steps[hit[0]]) if len(hit) else math.inf


def _per_run(df, metric: str, thresholds) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    if metric not in df.columns:
        raise ValueError(f"metric {metric!r} is not a column of the results (have: "
                         f"{', '.join(c for c in df.columns if _is_metric(c))})")
    rows = []
    for run, g in df.groupby("run", sort=True):
        last = g[g["iterate"] == "last"].sort_values("step")
        avg = g[g["iterate"] == "average"].sort_values("step")
        if last.empty:
            continue
        steps = last["step"].to_numpy(np.float64)
        lg = last[metric].to_numpy(np.float64)
        ag = avg.set_index("step")[metric].reindex(last["step"]).to_numpy(np.float64) if len(avg) else None
        ok = ~np.isnan(lg)
        if not ok.any():
            continue
        row = {"run": run, "final_last": lg[ok][-1], "best_last": np.nanmin(lg),
               "final_average": float(ag[ok][-1]) if ag is not None else math.nan,
               "final_step": steps[ok][-1], "verdict": classify(steps, lg, ag)}
        for thr in thresholds:
            row[_threshold_label(thr)] = _first_at_or_below(steps[ok], lg[ok], thr)
        rows.append(row)
    if not rows:  # e.g. a sweep whose spec 'metrics' left it out: a NaN column
        recorded = [c for c in df.columns if _is_metric(c) and df[c].notna().any()]
        raise ValueError(f"metric {metric!r} was not recorded in these results (recorded: "
                         f"{', '.join(recorded) or 'none'}); choose one with --metric")
    return pd.DataFrame(rows)


def _vote(verdicts) -> str:
    """Most frequent verdict; ties go to the less favourable one (later in VERDICTS)."""
    counts = Counter(verdicts)
    return max(counts, key=lambda v: (counts[v], VERDICTS.index(v)))


def summarize(df, thresholds=(1e-3, 1e-6, 1e-9), *, metric: str = "duality_gap") -> "pandas.DataFrame":  # noqa: F821
    """One row per algorithm × game × hyper-parameter configuration, aggregated over seeds.

    Columns: ``algorithm, game, n, <hyper-parameters> (NaN where not taken), seeds`` (runs
    aggregated), ``final_step`` (last recorded step), ``final_last`` / ``best_last`` (final and
    smallest last-iterate ``metric``), ``final_average`` (final average-iterate ``metric``),
    ``first_step_le_<thr>`` for each threshold (the first recorded step at which the last-iterate
    ``metric`` is ≤ thr, in the table's own step units — COMAL: outer iterations; NaN when the
    median seed never gets there), ``verdict`` (:func:`classify` per seed, then the most frequent;
    ties go to the less favourable verdict) and ``verdicts`` (the per-seed counts when they differ).
    Numbers are medians over seeds; a seed that never reaches a threshold counts as +∞ there.
    """
    import pandas as pd

    thresholds = tuple(float(t) for t in thresholds)
    if df is None or len(df) == 0:
        raise ValueError("the results table is empty")
    missing = {"run", "algorithm", "game", "step", "iterate"} - set(df.columns)
    if missing:
        raise ValueError(f"not a gamelab results table: missing columns {sorted(missing)}")
    df = df.drop_duplicates(["run", "iterate", "step"], keep="last")
    hps = hparam_columns(df)
    key_cols = ["algorithm", "game"] + (["n"] if "n" in df.columns else []) + hps
    ident = df.drop_duplicates("run").set_index("run")[key_cols]
    per_run = _per_run(df, metric, thresholds).join(ident, on="run")
    numeric = ["final_step", "final_last", "best_last", "final_average"] + [_threshold_label(t) for t in thresholds]
    out = []
    for key, g in per_run.groupby(key_cols, dropna=False, sort=True):
        row = dict(zip(key_cols, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(g)
        for col in numeric:
            row[col] = float(np.median(g[col].to_numpy(np.float64)))
        counts = Counter(g["verdict"])
        row["verdict"] = _vote(g["verdict"])
        row["verdicts"] = "" if len(counts) == 1 else ", ".join(f"{v}×{c}" for v, c in counts.most_common())
        out.append(row)
    table = pd.DataFrame(out, columns=key_cols + ["seeds"] + numeric + ["verdict", "verdicts"])
    for col in [_threshold_label(t) for t in thresholds]:
        table[col] = table[col].replace(np.inf, np.nan)
    # hyper-parameter columns that no configuration takes are noise
    table = table.drop(columns=[c for c in hps if table[c].isna().all()])
    return table.reset_index(drop=True)


def config_label(row, hps) -> str:
    """'eta=0.1, tau=0.1' from a row's non-NaN hyper-parameters."""
    parts = []
    for h in hps:
        v = row.get(h) if hasattr(row, "get") else row[h]
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        parts.append(f"{h}={v:g}" if isinstance(v, (int, float, np.integer, np.floating)) else f"{h}={v}")
    return ", ".join(parts)


def format_table(summary) -> str:
    """The summary as aligned text: one line per configuration, gaps in %.2e, steps as integers,
    hyper-parameters folded into one ``config`` column."""
    hps = [c for c in summary.columns if c not in _SUMMARY_FIXED and not c.startswith("first_step_le_")]
    thr_cols = [c for c in summary.columns if c.startswith("first_step_le_")]
    headers = (["algorithm", "game", "config", "seeds", "final step", "final last", "best last", "final avg"]
               + [c.replace("first_step_le_", "step ≤ ") for c in thr_cols] + ["verdict"])
    lines = []
    for _, r in summary.iterrows():
        verdict = r["verdict"] + (f" ({r['verdicts']})" if r.get("verdicts") else "")
        lines.append([str(r["algorithm"]), str(r["game"]), config_label(r, hps) or "-", str(int(r["seeds"])),
                      _int(r["final_step"]), _gap(r["final_last"]), _gap(r["best_last"]), _gap(r["final_average"])]
                     + [_int(r[c]) for c in thr_cols] + [verdict])
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(headers)]
    left = {0, 1, 2, len(headers) - 1}

    def fmt(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


_SUMMARY_FIXED = {"algorithm", "game", "n", "seeds", "final_step", "final_last", "best_last", "final_average",
                  "verdict", "verdicts"}


def _gap(v) -> str:
    return "nan" if v is None or not math.isfinite(float(v)) else f"{float(v):.2e}"


def _int(v) -> str:
    return "-" if v is None or not math.isfinite(float(v)) else f"{float(v):.0f}"
