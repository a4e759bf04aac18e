"""Figures (matplotlib, Agg) from run traces and results tables.

Every function writes ``path`` with suffix .png and .svg and returns both paths. Gaps are drawn on
log axes; values at or below :data:`FLOOR` (an exact 0, or rounding below it) are drawn at the
floor so the axis can show them.

* :func:`plot_gap_curves` — ``{label: (steps, values)}`` curves (used by ``gamelab demo``);
* :func:`plot_gaps` — last/average-iterate gap curves from a results table, seeds as median + band;
* :func:`plot_simplex` — last-iterate trajectories on the 2-simplex of a 3-response game;
* :func:`plot_heatmap` — final last-iterate gap over a grid of two hyper-parameters;
* :func:`plot_policy_evolution` — the policy of one run over time, as a stacked area.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from gamelab.metrics import METRIC_NAMES  # noqa: E402

FLOOR = 1e-17  # values at or below this are drawn at the floor, so a log axis can show an exact 0

#: Metrics drawn on a log axis (non-negative gaps and divergences); others get a linear axis.
LOG_METRICS = ("exploitability", "duality_gap", "regularized_gap", "kl_to_target")

METRIC_LABELS = {
    "exploitability": "exploitability  max_y (Pπ)_y − ½",
    "duality_gap": "duality gap  2·exploitability",
    "regularized_gap": "regularized gap  DG_τ",
    "kl_to_target": "KL(π* ‖ π_t)",
    "entropy": "entropy of π_t (nats)",
    "win_rate_vs_ref": "win rate against π_ref",
}

_COLORS = plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]  # 20 distinct


def _colors(k: int):
    return [_COLORS[i % len(_COLORS)] for i in range(k)]


def _save(fig, path) -> list[Path]:
    """Save as PATH.png and PATH.svg ('tau0.1' stays 'tau0.1.png'; a given .png/.svg is replaced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    out = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    for p in out:
        fig.savefig(p, dpi=130)
    plt.close(fig)
    return out


def _floor(values) -> np.ndarray:
    """Values for a log axis: NaN stays NaN, anything ≤ FLOOR is drawn at FLOOR."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(v), np.nan, np.maximum(v, FLOOR))


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def plot_gap_curves(curves: dict, path, *, metric: str = "duality gap", title: str = "",
                    averages: dict | None = None, xlabel: str = "step") -> list[Path]:
    """Plot ``{label: (steps, values)}`` on a log y-axis; dashed lines for ``averages``.

    Writes ``path`` with suffix .png and .svg and returns both paths.
    """
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for c, (label, (steps, values)) in zip(_colors(len(curves)), curves.items()):
        ax.plot(steps, _floor(values), color=c, lw=1.6, label=f"{label} (last)")
        if averages and label in averages:
            s, v = averages[label]
            ax.plot(s, _floor(v), color=c, lw=1.0, ls="--", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (log scale)")
    ax.set_title(title or f"{metric}: last iterate (solid), average iterate (dashed)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="best")
    return _save(fig, path)


# ---------------------------------------------------------------------------- results tables
def _hparams(df) -> list[str]:
    from gamelab.report import hparam_columns

    return hparam_columns(df)


def _check_table(df, *columns) -> None:
    if df is None or len(df) == 0:
        raise ValueError("the results table is empty")
    missing = [c for c in ("run", "algorithm", "game", "step", "iterate", *columns) if c not in df.columns]
    if missing:
        raise ValueError(f"the results table has no column {', '.join(map(repr, missing))}")
    empty = [c for c in columns if c in METRIC_NAMES and df[c].isna().all()]
    if empty:  # e.g. a sweep whose spec 'metrics' left it out
        raise ValueError(f"metric {', '.join(map(repr, empty))} was not recorded in these results")


def _select(df, select: dict | None, game: str | None = None):
    """Rows matching ``select`` ({column: value or list of values}) and ``game``."""
    if select:
        for col, want in select.items():
            if col not in df.columns:
                raise ValueError(f"select: no column {col!r} in the results")
            values = list(want) if isinstance(want, (list, tuple, set, np.ndarray)) else [want]
            df = df[df[col].isin(values)]
    if game is not None:
        games = sorted(df["game"].unique())
        if game not in games:
            raise ValueError(f"game {game!r} is not in the results (have: {', '.join(games)})")
        df = df[df["game"] == game]
    if len(df) == 0:
        raise ValueError(f"no rows match the selection {select!r}")
    return df


def _configs(df) -> list[tuple[str, tuple, str]]:
    """(algorithm, hyper-parameter values, label) for each configuration, in a stable order. An
    algorithm with one configuration is labelled by its name; with several, by the values that vary."""
    hps = _hparams(df)
    runs = df.drop_duplicates("run")
    out = []
    for algo in sorted(runs["algorithm"].unique()):
        sub = runs[runs["algorithm"] == algo]
        taken = [h for h in hps if sub[h].notna().any()]
        keys = sorted({tuple(_key(r[h]) for h in taken) for _, r in sub.iterrows()},
                      key=lambda t: tuple((math.isnan(v), v) if isinstance(v, float) else (False, v) for v in t))
        varying = [i for i in range(len(taken)) if len({k[i] for k in keys}) > 1]
        for key in keys:
            label = algo
            if len(keys) > 1:
                label += " (" + ", ".join(f"{taken[i]}={_fmt(key[i])}" for i in varying) + ")"
            full = tuple(key[taken.index(h)] if h in taken else math.nan for h in hps)
            out.append((algo, full, label))
    return out


def _key(v):
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _match(df, algo, key, hps):
    mask = df["algorithm"] == algo
    for h, v in zip(hps, key):
        mask &= df[h].isna() if isinstance(v, float) and math.isnan(v) else df[h] == v
    return df[mask]


def _x(sub, solver_steps: bool):
    """x values of rows: the recorded step, or for COMAL (``inner`` set) step × inner solver steps."""
    x = sub["step"].to_numpy(np.float64)
    if solver_steps and "inner" in sub.columns:
        inner = sub["inner"].to_numpy(np.float64)
        comal = (sub["algorithm"] == "comal").to_numpy() & ~np.isnan(inner)
        x = np.where(comal, x * np.where(comal, inner, 1.0), x)
    return x


def _seed_bands(sub, metric, solver_steps):
    """Per x: median, min and max over the runs in ``sub`` (NaN-aware)."""
    frame = sub.assign(_x=_x(sub, solver_steps)).pivot_table(index="_x", columns="run", values=metric,
                                                               aggfunc="first", dropna=False)
    v = frame.to_numpy(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps
        return frame.index.to_numpy(), np.nanmedian(v, axis=1), np.nanmin(v, axis=1), np.nanmax(v, axis=1)


def _grid(k: int, width: float = 6.0, height: float = 4.4, max_cols: int = 3):
    cols = min(k, max_cols)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), constrained_layout=True,
                             squeeze=False)
    for ax in axes.flat[k:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:k])


def plot_gaps(df, path, metric: str = "duality_gap", game: str | None = None, *, select: dict | None = None,
              solver_steps: bool = True, title: str | None = None) -> list[Path]:
    """Gap curves from a results table: last iterate solid, average iterate dashed, log y-axis.

    One line per algorithm — or per configuration, labelled with the hyper-parameters that vary,
    when an algorithm was run with several; ``select={'eta': [0.1, 1.0], 'algorithm': 'omwu'}``
    keeps only matching rows. Seeds (all runs of one configuration on one game) are drawn as their
    median with a shaded min–max band. One panel per game, or only ``game``. With ``solver_steps``
    COMAL's x values are outer iteration × ``inner`` (solver steps, comparable with the others).
    """
    _check_table(df, metric)
    df = _select(df, select, game)
    games = sorted(df["game"].unique())
    configs = _configs(df)
    hps = _hparams(df)
    colors = dict(zip([c[2] for c in configs], _colors(len(configs))))
    log = metric in LOG_METRICS
    fig, axes = _grid(len(games), width=7.0 if len(games) == 1 else 6.0)
    comal = solver_steps and "inner" in df.columns and ((df["algorithm"] == "comal") & df["inner"].notna()).any()
    handles = {}
    bounds = [f"{metric}_lo", f"{metric}_hi"]  # a sampled estimate's confidence interval (gamelab.llm)
    has_ci = all(b in df.columns for b in bounds) and df[bounds].notna().any(axis=None)
    has_avg = False
    for ax, g in zip(axes, games):
        gdf = df[df["game"] == g]
        for algo, key, label in configs:
            sub = _match(gdf, algo, key, hps)
            if sub.empty:
                continue
            c = colors[label]
            last = sub[sub["iterate"] == "last"]
            if not last.empty:
                x, med, lo, hi = _seed_bands(last, metric, solver_steps)
                draw = _floor if log else np.asarray
                (line,) = ax.plot(x, draw(med), color=c, lw=1.6, label=label)
                if last["run"].nunique() > 1:
                    ax.fill_between(x, draw(lo), draw(hi), color=c, alpha=0.18, lw=0)
                if has_ci and last[bounds].notna().any(axis=None):  # widest interval over the seeds
                    _, _, ci_lo, _ = _seed_bands(last, bounds[0], solver_steps)
                    _, _, _, ci_hi = _seed_bands(last, bounds[1], solver_steps)
                    ax.fill_between(x, draw(ci_lo), draw(ci_hi), facecolor="none", edgecolor=c, hatch="///",
                                    alpha=0.5, lw=0)
                handles[label] = line
            avg = sub[sub["iterate"] == "average"]
            if not avg.empty and avg[metric].notna().any():
                has_avg = True
                x, med, _, _ = _seed_bands(avg, metric, solver_steps)
                ax.plot(x, _floor(med) if log else med, color=c, lw=1.0, ls="--", alpha=0.75)
        if log:
            ax.set_yscale("log")
        ax.set_title(f"game {g}", fontsize=11)
        ax.set_xlabel("solver step (COMAL: outer iteration × inner steps)" if comal else "step")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric) + (" (log scale)" if log else ""))
        ax.grid(True, which="major", alpha=0.3)
    style = [Line2D([], [], color="k", lw=1.6, label="last iterate (median; band: min–max over seeds)")]
    if has_avg:
        style.append(Line2D([], [], color="k", lw=1.0, ls="--", label="average iterate (median)"))
    if has_ci:
        from matplotlib.patches import Patch

        style.append(Patch(facecolor="none", edgecolor="k", hatch="///", alpha=0.5,
                           label="sampled estimate: confidence interval (widest over seeds)"))
    legend = list(handles.values()) + style
    if len(games) == 1:
        axes[0].legend(handles=legend, fontsize=8, ncol=2 if len(legend) > 8 else 1, loc="best")
    else:
        fig.legend(handles=legend, fontsize=8, loc="outside lower center", ncol=min(4, len(legend)))
    fig.suptitle(title or (f"{metric}: last iterate (solid) and average iterate (dashed)" if has_avg
                           else f"{metric}: last iterate"), fontsize=12)
    return _save(fig, path)


# ---------------------------------------------------------------------------- simplex
_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])


def _ternary(p) -> np.ndarray:
    """(..., 3) probabilities → (..., 2) points in the triangle with corners y₀, y₁, y₂."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    return p @ _CORNERS


def _game_matrix(game: str, matrix):
    if matrix is not None:
        return np.asarray(getattr(matrix, "P", matrix), dtype=np.float64)
    from gamelab.games import parse_game

    try:
        return np.asarray(parse_game(game).P, dtype=np.float64)
    except Exception as exc:  # a spec that only made sense where the sweep ran (e.g. a relative path)
        warnings.warn(f"cannot rebuild game {game!r} to mark its Nash ({exc}); pass matrix=", stacklevel=3)
        return None


def _triangle(ax):
    ax.plot(*np.vstack([_CORNERS, _CORNERS[:1]]).T, color="0.2", lw=1.2)
    for t in (0.2, 0.4, 0.6, 0.8):  # iso-probability lines, light
        for i in range(3):
            j, k = (i + 1) % 3, (i + 2) % 3
            a = t * _CORNERS[i] + (1 - t) * _CORNERS[j]
            b = t * _CORNERS[i] + (1 - t) * _CORNERS[k]
            ax.plot(*np.vstack([a, b]).T, color="0.85", lw=0.6, zorder=0)
    offsets = [(-0.05, -0.05), (0.05, -0.05), (0.0, 0.05)]
    align = ["right", "left", "center"]
    for i, (c, (dx, dy)) in enumerate(zip(_CORNERS, offsets)):
        ax.text(c[0] + dx, c[1] + dy, f"response {i}", ha=align[i], va="bottom" if i == 2 else "top", fontsize=10)
    ax.set_xlim(-0.22, 1.22)
    ax.set_ylim(-0.2, math.sqrt(3) / 2 + 0.2)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_simplex(df, path, game: str | None = None, *, matrix=None, select: dict | None = None,
                 title: str | None = None) -> list[Path]:
    """Last-iterate trajectories on the 2-simplex of a 3-response game.

    Needs the ``policy`` column (record policies). One colour per algorithm (every run of it drawn
    in that colour), a circle at each start and a square at each end, the exact Nash (LP, on the
    game rebuilt from its spec with :func:`gamelab.games.parse_game`, or on ``matrix``) as a star.
    One panel per 3-response game (games of other sizes are skipped), or only ``game``.
    Raises ValueError without a policy column or without a 3-response game.
    """
    from gamelab.nash import exact_nash

    _check_table(df)
    if "policy" not in df.columns:
        raise ValueError("the results have no 'policy' column: record policies to draw simplex trajectories "
                         "(run_batch(..., record_policy=True) or the sweep's policy recording)")
    df = _select(df, select, game)
    sizes = df.groupby("game")["policy"].first().map(lambda p: len(p) if p is not None else 0)
    if game is not None and sizes.get(game) != 3:
        raise ValueError(f"the simplex plot needs a 3-response game; {game} has {sizes.get(game)} responses")
    games = sorted(g for g, k in sizes.items() if k == 3)
    if not games:
        raise ValueError("the simplex plot needs a 3-response game; the results have "
                         + ", ".join(f"{g} (n = {k})" for g, k in sizes.items()))
    if matrix is not None and len(games) > 1:
        raise ValueError("matrix= describes one game: pick it with game=")
    algos = sorted(df["algorithm"].unique())
    colors = dict(zip(algos, _colors(len(algos))))
    fig, axes = _grid(len(games), width=6.2, height=5.8)
    for ax, g in zip(axes, games):
        _triangle(ax)
        gdf = df[(df["game"] == g) & (df["iterate"] == "last")]
        for algo in algos:
            runs = gdf[gdf["algorithm"] == algo]
            ids = sorted(runs["run"].unique())
            alpha = 0.9 if len(ids) == 1 else max(0.35, 0.9 / math.sqrt(len(ids)))
            for r in ids:
                rows = runs[runs["run"] == r].sort_values("step")
                pts = _ternary(np.stack(rows["policy"].to_numpy()))
                ax.plot(pts[:, 0], pts[:, 1], color=colors[algo], lw=1.1, alpha=alpha)
                ax.plot(*pts[0], "o", color=colors[algo], ms=5, mec="k", mew=0.5)
                ax.plot(*pts[-1], "s", color=colors[algo], ms=6, mec="k", mew=0.8)
        P = _game_matrix(g, matrix)
        if P is not None:
            nash = exact_nash(P).policy
            ax.plot(*_ternary(nash), "*", color="gold", ms=18, mec="k", mew=1.0, zorder=5)
        ax.set_title(f"game {g}", fontsize=11)
    legend = [Line2D([], [], color=colors[a], lw=2, label=a) for a in algos]
    legend += [Line2D([], [], ls="", marker="o", color="0.6", mec="k", label="start"),
               Line2D([], [], ls="", marker="s", color="0.6", mec="k", label="end"),
               Line2D([], [], ls="", marker="*", color="gold", mec="k", ms=13, label="exact Nash")]
    if len(games) == 1:
        axes[0].legend(handles=legend, fontsize=8, loc="upper left", bbox_to_anchor=(-0.02, 1.0), frameon=True)
    else:
        fig.legend(handles=legend, fontsize=8, loc="outside lower center", ncol=min(6, len(legend)))
    fig.suptitle(title or "Last-iterate trajectories on the simplex", fontsize=12)
    return _save(fig, path)


# ---------------------------------------------------------------------------- heatmap
def final_values(df, metric: str = "duality_gap", iterate: str = "last"):
    """One row per run: its identifying columns and ``metric`` at its last recorded step."""
    sub = df[df["iterate"] == iterate].sort_values(["run", "step"], kind="stable")
    sub = sub[sub[metric].notna()]
    return sub.groupby("run", sort=True).tail(1).reset_index(drop=True)


def plot_heatmap(df, path, metric: str = "duality_gap", x: str = "eta", y: str = "tau",
                 algorithm: str | None = None, *, iterate: str = "last", title: str | None = None) -> list[Path]:
    """Final last-iterate ``metric`` over the grid of hyper-parameters ``x`` × ``y``.

    Each cell is the median over the runs with those values (seeds, games and any other
    hyper-parameters); log colour scale for gaps, the value written in each cell, empty cells
    marked "–". One panel per algorithm that takes both ``x`` and ``y``, or only ``algorithm``.
    """
    _check_table(df, metric)
    for col in (x, y):
        if col not in df.columns:
            raise ValueError(f"the results have no hyper-parameter column {col!r} (have: {', '.join(_hparams(df))})")
    if algorithm is not None:
        df = _select(df, {"algorithm": algorithm})
    fin = final_values(df, metric, iterate)
    fin = fin[fin[x].notna() & fin[y].notna()]
    algos = sorted(fin["algorithm"].unique())
    if not algos:
        raise ValueError(f"no run takes both {x!r} and {y!r}" + (f" (algorithm {algorithm})" if algorithm else ""))
    log = metric in LOG_METRICS
    tables = {}
    for a in algos:
        sub = fin[fin["algorithm"] == a]
        tables[a] = sub.pivot_table(index=y, columns=x, values=metric, aggfunc="median").sort_index().sort_index(axis=1)
    values = np.concatenate([t.to_numpy(np.float64).ravel() for t in tables.values()])
    values = values[np.isfinite(values)]
    if log:
        v = np.maximum(values, FLOOR)
        lo, hi = (v.min(), v.max()) if len(v) else (1e-3, 1.0)
        norm = LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10)
    else:
        lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
        norm = Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.92")
    fig, axes = _grid(len(algos), width=max(4.5, 1.1 * max(t.shape[1] for t in tables.values()) + 2.5),
                      height=max(3.6, 0.75 * max(t.shape[0] for t in tables.values()) + 1.8))
    im = None
    for ax, a in zip(axes, algos):
        t = tables[a]
        data = t.to_numpy(np.float64)
        shown = np.ma.masked_invalid(np.maximum(data, FLOOR) if log else data)
        im = ax.imshow(shown, cmap=cmap, norm=norm, origin="lower", aspect="auto")
        ax.set_xticks(range(t.shape[1]), [_fmt(v) for v in t.columns])
        ax.set_yticks(range(t.shape[0]), [_fmt(v) for v in t.index])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(a, fontsize=11)
        for i in range(t.shape[0]):
            for j in range(t.shape[1]):
                val = data[i, j]
                if not np.isfinite(val):
                    ax.text(j, i, "–", ha="center", va="center", fontsize=9, color="0.4")
                    continue
                r, g, b, _ = cmap(norm(max(val, FLOOR) if log else val))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(j, i, f"{val:.1e}" if log else f"{val:.3g}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    fig.colorbar(im, ax=axes, shrink=0.9,
                 label=f"final {iterate}-iterate {metric}" + (" (log scale)" if log else ""))
    fig.suptitle(title or f"Final {iterate}-iterate {metric}: median over seeds and games", fontsize=12)
    return _save(fig, path)


# ---------------------------------------------------------------------------- policy evolution
def plot_policy_evolution(df, path, run: int | None = None, *, iterate: str = "last",
                          title: str | None = None) -> list[Path]:
    """Stacked area of π_t(y) over the recorded steps of one run (default: the first run).

    Needs the ``policy`` column. ``iterate='average'`` draws the average iterate instead.
    """
    _check_table(df)
    if "policy" not in df.columns:
        raise ValueError("the results have no 'policy' column: record policies to draw the policy evolution")
    runs = sorted(df["run"].unique())
    if run is None:
        run = runs[0]
    if run not in set(runs):
        raise ValueError(f"run {run} is not in the results (runs {runs[0]}…{runs[-1]})")
    rows = df[(df["run"] == run) & (df["iterate"] == iterate)].sort_values("step")
    if rows.empty:
        raise ValueError(f"run {run} has no {iterate!r} rows")
    pol = np.stack(rows["policy"].to_numpy()).astype(np.float64)
    steps = rows["step"].to_numpy()
    n = pol.shape[1]
    colors = _colors(n) if n <= 20 else plt.get_cmap("viridis")(np.linspace(0, 1, n))
    first = rows.iloc[0]
    hps = [h for h in _hparams(df) if h in rows.columns and not _isnan(first[h])]
    cfg = ", ".join(f"{h}={_fmt(first[h])}" for h in hps)
    fig, ax = plt.subplots(figsize=(8, 4.6), constrained_layout=True)
    ax.stackplot(steps, pol.T, colors=colors, labels=[f"response {i}" for i in range(n)], alpha=0.9)
    ax.set_xlim(steps.min(), steps.max() if steps.max() > steps.min() else steps.min() + 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step" + (" (outer iteration)" if first["algorithm"] == "comal" else ""))
    ax.set_ylabel(f"π_t(y), {iterate} iterate")
    if n <= 12:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, title="response", title_fontsize=8)
    seed = f", seed {first['seed']}" if "seed" in rows.columns else ""
    ax.set_title(title or f"run {run}: {first['algorithm']} ({cfg or 'defaults'}) on {first['game']}{seed}",
                 fontsize=11)
    return _save(fig, path)


def _isnan(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def plot_rates(df, certificates, path, *, title: str | None = None) -> list[Path]:
    """Each run's judged metric (thin line) with its fitted rate over the fitted tail (dashed, the
    same colour: C·ρ^t or C·t^(−α)), one panel per algorithm × game, runs coloured by
    configuration; ``certificates`` is :func:`gamelab.rates.certify`'s table for ``df``."""
    _check_table(df)
    last = df[df["iterate"] == "last"]
    panels = sorted({(r.algorithm, r.game) for r in certificates.itertuples()})
    if not panels:
        raise ValueError("no runs to plot")
    fig, axes = _grid(len(panels), width=5.2, height=3.8)
    for ax, (algo, game) in zip(axes, panels):
        rows = certificates[(certificates["algorithm"] == algo) & (certificates["game"] == game)]
        for color, r in zip(_colors(len(rows)), rows.itertuples()):
            run = last[last["run"] == r.run].sort_values("step")
            t, v = run["step"].to_numpy(np.float64), run[r.metric].to_numpy(np.float64)
            label = f"run {r.run}: {r.kind}" + (f" ρ={r.value:.4g}" if r.kind == "linear" else
                                                f" α={r.value:.3g}" if r.kind == "power" else "")
            ax.plot(t, _floor(v), color=color, lw=1.0, label=label)
            if r.kind in ("linear", "power"):
                x = np.linspace(r.start, r.stop, 50)
                y = r.C * (r.value ** x if r.kind == "linear" else x ** (-r.value))
                ax.plot(x, y, color=color, lw=2.2, ls="--", alpha=0.8)
        ax.set_yscale("log")
        ax.set_title(f"{algo} on {game}: {rows['verdict'].value_counts().idxmax()}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(METRIC_LABELS.get(rows["metric"].iloc[0], rows["metric"].iloc[0]), fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle(title or "fitted last-iterate rates (dashed: the fit over the tail it was fitted on)", fontsize=11)
    return _save(fig, path)
