"""Figures (matplotlib, Agg): gap curves on a log scale, one line per algorithm."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FLOOR = 1e-17  # values at or below this are drawn at the floor, so a log axis can show an exact 0


def plot_gap_curves(curves: dict, path, *, metric: str = "duality gap", title: str = "",
                    averages: dict | None = None, xlabel: str = "step") -> list[Path]:
    """Plot ``{label: (steps, values)}`` on a log y-axis; dashed lines for ``averages``.

    Writes ``path`` with suffix .png and .svg and returns both paths.
    """
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    colors = plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]  # 20 distinct
    for i, (label, (steps, values)) in enumerate(curves.items()):
        c = colors[i % len(colors)]
        ax.plot(steps, np.maximum(np.asarray(values, float), FLOOR), color=c, lw=1.6, label=f"{label} (last)")
        if averages and label in averages:
            s, v = averages[label]
            ax.plot(s, np.maximum(np.asarray(v, float), FLOOR), color=c, lw=1.0, ls="--", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (log scale)")
    ax.set_title(title or f"{metric}: last iterate (solid), average iterate (dashed)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for p in out:
        fig.savefig(p, dpi=130)
    plt.close(fig)
    return out
