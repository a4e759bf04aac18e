"""EGPO's random-game study (Zhou et al. 2025, §6): random 10×10 games (upper triangle uniform),
reference logits ~ N(0, 1), the policy started at the reference; the regularized gap DG_τ on a log
scale for online IPO, Nash-MD, EGPO (= extragradient with τ > 0), INPO and MMD; median steps to
DG_τ < 1e-6 for τ ∈ {0.1, 0.01, 0.001}.

Ten games × ten reference seeds per setting; each algorithm at each τ is reported at its best step
size from the grid (the one with the smallest median steps to 1e-6, then the smallest final gap).

    python experiments/egpo_random_games.py [--out DIR]
"""
import numpy as np

from common import parse_args, report_paths, summarize, sweep

STEPS = 20000
TAUS = [0.1, 0.01, 0.001]

SPEC = dict(
    algorithms=["iterative_ipo", "nash_md", "extragradient", "inpo", "mmd"],
    games=["random:n=10,seed=0..9"],
    seeds=list(range(10)),
    steps=STEPS,
    record_every=50,
    init="ref",
    ref="random",
    target=None,
    grid={"eta": [0.1, 0.3, 1.0], "tau": TAUS},
    algorithm={"iterative_ipo": {"steps": 2000, "record_every": 10}},
)
LABELS = {"iterative_ipo": "online IPO", "extragradient": "EGPO (extragradient)", "nash_md": "Nash-MD",
          "inpo": "INPO", "mmd": "MMD"}


def best_per_tau(table):
    """One row per algorithm × τ: its best η by median steps to DG_τ ≤ 1e-6, then by final gap."""
    col = "first_step_le_1e-06"
    ranked = table.assign(_steps=table[col].fillna(np.inf)).sort_values(["_steps", "final_last"])
    return ranked.groupby(["algorithm", "tau"], as_index=False).first()


def main():
    args = parse_args("egpo_random_games", __doc__)
    from gamelab.plots import plot_gaps

    df = sweep(SPEC, args.out)
    # the per-configuration table is over games and seeds: summarize per (algorithm, η, τ)
    flat = df.assign(game="random10")
    table = summarize(flat, args.out, metric="regularized_gap", thresholds=(1e-3, 1e-6))
    best = best_per_tau(table)
    lines = ["median steps to DG_τ < 1e-6 (100 runs: 10 games × 10 reference seeds; best η per cell)",
             f"{'algorithm':<22}" + "".join(f"{'τ = ' + str(t):>22}" for t in TAUS)]
    for algo in SPEC["algorithms"]:
        cells = []
        for tau in TAUS:
            row = best[(best.algorithm == algo) & np.isclose(best.tau, tau)].iloc[0]
            steps = row["first_step_le_1e-06"]
            cells.append(f"{'never' if np.isnan(steps) else int(steps):>10} (η={row.eta:g})" if not np.isnan(steps)
                         else f"{'never':>10} (DG_τ {row.final_last:.1e})")
        lines.append(f"{LABELS[algo]:<22}" + "".join(f"{c:>22}" for c in cells))
    text = "\n".join(lines)
    (args.out / "median_steps_to_1e-6.txt").write_text(text + "\n")
    print("\n" + text)
    paths = []
    for tau in TAUS:
        rows = best[np.isclose(best.tau, tau)]
        keep = flat[np.isclose(flat.tau, tau)]
        keep = keep[np.logical_or.reduce([(keep.algorithm == r.algorithm)
                                          & (np.isclose(keep.eta, r.eta) | np.isnan(r.eta))  # IPO has no η
                                          for r in rows.itertuples()])]
        paths += plot_gaps(keep, args.out / f"regularized_gap_tau{tau:g}", metric="regularized_gap",
                           title=f"Random 10×10 games, τ = {tau:g} (best η each; 100 runs)")
    report_paths(args.out, paths + [args.out / "median_steps_to_1e-6.txt"])


if __name__ == "__main__":
    main()
