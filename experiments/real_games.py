"""Every registered algorithm on the two empirical games in ../shared/data (OpenSpiel): the soccer
agents' win rates (10 responses, a preference matrix as is) and the repeated-RPS bot cross-table
(43 responses; antisymmetrized, with the size of the correction reported). Prints the exact Nash
of each game and the final last-iterate gaps; draws the last-iterate gap curves.

    python experiments/real_games.py [DATA_FOLDER] [--out DIR]
"""
import numpy as np

from common import parse_args, report_paths, summarize, sweep

STEPS = 5000


def main():
    args = parse_args("real_games", __doc__, data=True)
    from gamelab.algorithms import algorithm_names
    from gamelab.games import load_crosstable, load_game_file
    from gamelab.nash import exact_nash
    from gamelab.plots import plot_gaps

    soccer, rrps = args.data / "soccer_win_rates.txt", args.data / "rrps_bot_table.txt"
    for path in (soccer, rrps):
        if not path.is_file():
            raise SystemExit(f"error: {path} not found; pass the folder that holds the OpenSpiel data files")
    table = load_crosstable(rrps, antisymmetrize=True)
    c = table.correction
    print(f"RRPS cross-table: {len(table.names)} bots; antisymmetrized: max |V + Vᵀ| = {c.max_abs_asymmetry:.1f} "
          f"(of 1000), largest change to P {c.max_abs_change:.4f}")
    names = {str(soccer): "soccer", str(rrps): "rrps"}
    for path, label in names.items():
        P = np.asarray(load_game_file(path, antisymmetrize=True).P)
        nash = exact_nash(P)
        support = np.flatnonzero(nash.policy > 1e-9)
        who = table.names if label == "rrps" else [f"agent {i}" for i in range(P.shape[0])]
        print(f"{label}: n = {P.shape[0]}, exact Nash duality gap {nash.duality_gap:.1e}, support "
              + ", ".join(f"{who[i]} {nash.policy[i]:.3f}" for i in support))
    spec = dict(
        algorithms=algorithm_names(), games=list(names), steps=STEPS, record_every=25, antisymmetrize=True,
        grid={"eta": [0.1], "tau": [0.1]},
        algorithm={"comal": {"steps": STEPS // 200, "record_every": 1, "inner": [200]},
                   "omwu": {"eta": [1.0]}, "extragradient": {"eta": [1.0], "tau": [0.0]},
                   "iterative_dpo": {"steps": 200, "record_every": 1}, "replicator": {"eta": [1.0]}},
    )
    df = sweep(spec, args.out)
    df["game"] = df.game.map(names)
    summarize(df, args.out)
    paths = plot_gaps(df, args.out / "gap_curves", title="Empirical games: last (solid) and average (dashed) "
                      "iterate duality gap")
    report_paths(args.out, paths)


if __name__ == "__main__":
    main()
