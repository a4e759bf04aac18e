"""Measured last-iterate rates against theory: every registered algorithm on random games (unique
interior Nash, Condorcet winners, unique boundary Nash) and on the two empirical games of
../shared/data (OpenSpiel's soccer agents, 10 responses, and the repeated-RPS bots, 43 responses,
antisymmetrized), each run's rate fitted by `gamelab.rates.certify` (linear ρ per step or power
law α, 95 % intervals) and compared with the rate class the literature proves.

Prints one line per algorithm × game class (runs, fitted kinds, median ρ or α with the range
over runs, verdicts) and writes ``rates.csv`` (every run), ``summary_rates.md`` (the table) and
``rates_overview.png`` (decades of gap per 1000 steps, per algorithm and game class; copied to
experiments/figures/ with ``--figure``).

    python experiments/rates.py [DATA_FOLDER] [--out DIR] [--figure]
"""
import shutil
import sys
from collections import Counter

import numpy as np

from common import ROOT, parse_args, report_paths, sweep

STEPS = 3000
RANDOM_GAMES = [f"random:n=5,seed={s}" for s in range(6)] + [f"random:n=10,seed={s}" for s in range(3)]
SYNTHETIC = ["comal3", "biased_rps", "disc:n=8,seed=0"]


def main():
    sys.argv, figure = [a for a in sys.argv if a != "--figure"], "--figure" in sys.argv
    args = parse_args("rates", __doc__, data=True)
    from gamelab.algorithms import algorithm_names
    from gamelab.rates import certify, describe

    soccer, rrps = args.data / "soccer_win_rates.txt", args.data / "rrps_bot_table.txt"
    games = SYNTHETIC + RANDOM_GAMES + [str(p) for p in (soccer, rrps) if p.is_file()]
    names = {str(soccer): "soccer", str(rrps): "rrps"}
    algorithms = [a for a in algorithm_names() if a != "maxmin"]  # maxmin: a multi-group game's
    spec = dict(
        algorithms=algorithms, games=games, steps=STEPS, record_every=10, antisymmetrize=True,
        grid={"eta": [0.5], "tau": [0.1]},
        algorithm={"comal": {"steps": STEPS // 100, "record_every": 1, "inner": [100], "eta": [0.5]},
                   "extragradient": {"tau": [0.0, 0.1]}, "onpo": {"tau": [0.0]},
                   "iterative_dpo": {"steps": 100, "record_every": 1}, "replicator": {"eta": [1.0]}},
    )
    df = sweep(spec, args.out)
    table = certify(df, antisymmetrize=spec["antisymmetrize"])
    table["game"] = table["game"].map(lambda g: names.get(g, g))
    table.to_csv(args.out / "rates.csv", index=False)

    lines = ["| algorithm | game class | runs | fitted | median (range) | predicted | verdicts |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (algo, cls), g in table.groupby(["algorithm", "class"], sort=True):
        fitted = Counter(g["kind"])
        main_kind = fitted.most_common(1)[0][0]
        vals = g[g["kind"] == main_kind]["value"].to_numpy(np.float64)
        if main_kind in ("linear", "power"):
            sym = "ρ" if main_kind == "linear" else "α"
            rng = f"{sym} = {np.median(vals):.4g} ({vals.min():.4g}–{vals.max():.4g})"
        else:
            rng = ""
        pred = g["predicted"].iloc[0] or "—"
        verdicts = ", ".join(f"{v} {c}" for v, c in Counter(g["verdict"]).most_common())
        lines.append(f"| {algo} | {cls} | {len(g)} | {', '.join(f'{k} {c}' for k, c in fitted.most_common())} | "
                     f"{rng} | {pred} | {verdicts} |")
    text = "\n".join(lines)
    (args.out / "summary_rates.md").write_text(text + "\n")
    print(text)
    compact_text = compact(table)
    (args.out / "summary_compact.md").write_text(compact_text + "\n")
    print("\n" + compact_text)
    print("\nper run (rrps and soccer):")
    for _, r in table[table["game"].isin(["soccer", "rrps"])].iterrows():
        print(f"  {r['algorithm']:22s} {r['game']:7s} {r['metric']:16s} {describe(r):32s} {r['verdict']}")

    path = overview(table, args.out / "rates_overview.png")
    if figure:
        shutil.copyfile(path, ROOT / "experiments" / "figures" / "rates_overview.png")
    report_paths(args.out, [path, args.out / "rates.csv"])


CLASS_ORDER = ("unique_interior", "pure", "unique", "general", "regularized")
CLASS_HEAD = ("unique interior Nash", "Condorcet winner", "unique Nash", "several Nash", "τ-regularized (DG_τ)")


def compact(table) -> str:
    """One line per algorithm, one cell per game class: the median fitted rate of the runs that
    converge (ρ per step, or α), and how many runs of the class got the predicted verdict."""
    lines = ["| algorithm | " + " | ".join(CLASS_HEAD) + " |", "| --- |" + " --- |" * len(CLASS_HEAD)]
    for algo, g in table.groupby("algorithm", sort=True):
        cells = []
        for cls in CLASS_ORDER:
            c = g[g["class"] == cls]
            if not len(c):
                cells.append("")
                continue
            lin, pw = c[c["kind"] == "linear"]["value"], c[c["kind"] == "power"]["value"]
            fast, none = int((c["kind"] == "fast").sum()), int((c["kind"] == "none").sum())
            parts = ([f"ρ {lin.median():.4g}"] if len(lin) else []) + ([f"α {pw.median():.2g}"] if len(pw) else []) \
                + ([f"fast {fast}"] if fast else []) + ([f"none {none}"] if none else [])
            ok = int((c["verdict"] == "as predicted").sum())
            pred = c["predicted"].iloc[0] or "—"
            cells.append(f"{', '.join(parts)} ({pred}: {ok}/{len(c)})")
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def overview(table, path):
    """Decades of the judged metric gained per 1000 steps (−1000·log10 ρ; power laws drawn at
    their decades over the fitted span, hollow), per algorithm, coloured by game class; runs that
    do not converge at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = sorted(table["algorithm"].unique())
    classes = ["unique_interior", "pure", "unique", "general", "regularized"]
    colors = dict(zip(classes, ["tab:blue", "tab:green", "tab:orange", "tab:red", "tab:purple"]))
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(algos)), 4.6), constrained_layout=True)
    rng = np.random.default_rng(0)
    for i, algo in enumerate(algos):
        for _, r in table[table["algorithm"] == algo].iterrows():
            x = i + rng.uniform(-0.25, 0.25)
            if r["kind"] == "linear":
                y, hollow = -1000 * np.log10(r["value"]), False
            elif r["kind"] == "power":  # its decades over the fitted span, per 1000 steps
                y, hollow = r["value"] * np.log10(r["stop"] / r["start"]) * 1000 / max(r["stop"] - r["start"], 1), True
            elif r["kind"] == "none":
                y, hollow = 0.0, False
            else:
                continue
            c = colors.get(r["class"], "k")
            ax.scatter([x], [max(y, 1e-3)], s=18, facecolors="none" if hollow else c, edgecolors=c, lw=1)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xticks(range(len(algos)), algos, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("decades of gap per 1000 steps (0: not converging)")
    for cls in classes:
        ax.scatter([], [], color=colors[cls], label=cls.replace("_", " "))
    ax.scatter([], [], facecolors="none", edgecolors="k", label="power law (hollow)")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("fitted last-iterate rates (duality gap; regularized gap for τ-regularized targets)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
