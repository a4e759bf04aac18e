"""Real preferences (issue 17): the LLMFAO votes between 59 language models — 8,931 crowd votes by
124 workers, one GPT-4 and one GPT-3 judgement per compared pair — as preference games.

For the crowd and each GPT judge (the judges' votes restricted to the crowd's 59 models):

* the empirical matrix (ties half a win, votes pooled over prompts, unseen pairs ½), its maximal
  lottery (the LP Nash) with 1,000-resample bootstrap intervals (resampling votes; for the crowd also
  resampling workers) and the probability of each model being in the support; whether the Nash is
  unique (support bounds over the Nash set) and its maximum-entropy member; beside them the
  Bradley–Terry and win-rate rankings;
* held-out log-likelihood per vote of Bradley–Terry against the general preference model (ranks
  0, 1, 2, 4 at ridges 1 and 3), 5 folds by pair and 5 by prompt, mean ± standard error over the
  folds, with the paired differences to BT and to the rank-0 GPM of the same ridge; cycles: 3-cycles
  with every edge confirmed by a sign test at 95 %, and those the GPM with the best held-out
  likelihood asserts with every edge ≥ 0.6;
* every registered algorithm's last iterate on the crowd's empirical game (a sweep with target
  'maxent_nash': exploitability, and KL from the maximum-entropy Nash — which Nash it selects);
* annotators as groups: hard EM over a mixture of 2 Bradley–Terry models over the crowd workers with
  GPT-4 and GPT-3 added as two more annotators; the MaxMin egalitarian policy (β = 0.1, uniform
  reference) over the recovered groups against the policy of one reward fitted to all votes.

    python experiments/llmfao_arena.py [DATA_FOLDER] [--out DIR] [--resamples N]

Writes summary.json, tables and the figure llmfao_arena.png to outputs/experiments/llmfao_arena/.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "llmfao"
SOURCES = ("crowd", "gpt4", "gpt3")
RANKS = (1, 2, 4)  # GPM ranks compared with Bradley–Terry (and rank 0)
GPM_RIDGES = (1.0, 3.0)  # the GPM ridges compared (gamelab.votes.GPM_RIDGE, the default, is 3)
BETA = 0.1  # KL strength of the MaxMin and pooled policies
GROUPS = 2
CYCLE_EDGE = 0.6  # a GPM-asserted cycle: every edge at least this likely
STEPS = 5000


def load_sources(data: Path):
    """{source: Votes} over the crowd's models (the GPT files hold 11 more models, dropped here)."""
    import pandas as pd

    from gamelab import votes as V

    crowd = V.load_votes(data / "crowd-comparisons.csv")
    out = {"crowd": crowd}
    for judge in SOURCES[1:]:
        d = pd.read_csv(data / f"{judge}-comparisons.csv")
        keep = d.left.isin(crowd.names) & d.right.isin(crowd.names)
        out[judge] = V.make_votes(d.left[keep].to_numpy(), d.right[keep].to_numpy(), d.winner[keep].to_numpy(),
                                  prompt=d.prompt[keep].astype(str).to_numpy(), names=crowd.names)
    return out


def lottery_section(name, v, resamples, out):
    from gamelab import votes as V
    from gamelab.nash import exact_nash, maxent_nash, nash_bounds

    P = V.empirical_matrix(v)
    V.write_matrix(out / f"{name}_empirical.csv", P, v.names)
    sol = exact_nash(P)
    bounds = nash_bounds(P)
    maxent = maxent_nash(P)
    ranks = V.rankings(v)
    boots = {"votes": V.bootstrap_lottery(v, resamples, resample="votes", seed=0)}
    if v.annotator is not None:
        boots["annotators"] = V.bootstrap_lottery(v, resamples, resample="annotators", seed=0)
    rows = []
    for i in np.argsort(-(sol.policy + maxent.policy + boots["votes"].in_support), kind="stable"):
        if max(sol.policy[i], maxent.policy[i], boots["votes"].in_support[i]) < 0.1:
            continue
        row = {"model": v.names[i], "lottery": sol.policy[i], "maxent": maxent.policy[i], "nash_low": bounds.low[i],
               "nash_high": bounds.high[i], "bt_rank": int(ranks.bt_rank[i]), "win_rate_rank": int(ranks.win_rate_rank[i])}
        for kind, b in boots.items():
            row[f"{kind}_low"], row[f"{kind}_high"], row[f"{kind}_in_support"] = b.low[i], b.high[i], b.in_support[i]
        rows.append(row)
    summary = {"votes": v.size, "pairs_observed": int(np.count_nonzero(np.triu(V.pair_counts(v).N, 1))),
               "lottery_exploitability": sol.exploitability, "lottery_support": int(np.sum(sol.policy > 1e-9)),
               "nash_unique": bounds.unique, "nash_set_support": int(np.sum(bounds.high > 1e-9)),
               "maxent_entropy": maxent.entropy, "maxent_exploitability": maxent.exploitability,
               "bootstrap_seconds": {k: b.seconds for k, b in boots.items()},
               "bootstrap_max_exploitability": {k: b.max_exploitability for k, b in boots.items()},
               "bt_top5": [v.names[i] for i in np.argsort(ranks.bt_rank)[:5]],
               "win_rate_top5": [v.names[i] for i in np.argsort(ranks.win_rate_rank)[:5]], "table": rows}
    return P, sol, maxent, boots["votes"], summary


def likelihood_section(v, by):
    """Per GPM ridge: every model's held-out score, its difference to BT and to the rank-0 GPM of the
    same ridge (a BT model with that ridge: the difference that isolates the skew-symmetric part)."""
    from gamelab import votes as V

    out = {}
    for ridge in GPM_RIDGES:
        h = V.held_out(v, by=by, splits=5, ranks=(0, *RANKS), gpm_ridge=ridge)
        out[f"ridge{ridge:g}"] = {"vs_bt": h.summary(), "vs_gpm0": h.summary("gpm0")}
    return out


def cycles_section(v, held_out_pairs):
    """Confident cycles in the votes, and cycles the GPM with the best held-out (by pair) rank and
    ridge asserts with every edge ≥ CYCLE_EDGE when fitted to all votes."""
    from gamelab import votes as V

    scores = {(ridge, m): r["log_likelihood"] for ridge, res in held_out_pairs.items()
              for m, r in res["vs_bt"].items() if m.startswith("gpm")}
    (ridge, model), _ = max(scores.items(), key=lambda kv: kv[1])
    rank, ridge_value = int(model[3:]), float(ridge[5:])
    P = V.fit_gpm(v, rank, ridge=ridge_value).matrix()
    return {"confident_cycles": V.confident_cycles(v), "confident_edges": int(V.confident_edges(v).sum()),
            "best_gpm": {"rank": rank, "ridge": ridge_value}, f"gpm_cycles_at_{CYCLE_EDGE}": V.count_cycles(P, CYCLE_EDGE),
            f"empirical_cycles_at_{CYCLE_EDGE}": V.count_cycles(V.empirical_matrix(v), CYCLE_EDGE)}


def algorithms_section(P_file: Path, out: Path):
    from gamelab.algorithms import algorithm_names
    from gamelab.results import load_results
    from gamelab.sweep import execute, make_spec

    skip = {"exo", "maxmin"}  # EXO is a K-candidate loss, MaxMin needs groups
    spec = make_spec(algorithms=[a for a in algorithm_names() if a not in skip], games=[str(P_file)], steps=STEPS,
                     record_every=50, target="maxent_nash",
                     metrics=["exploitability", "duality_gap", "kl_to_target", "entropy"],
                     grid={"eta": [0.1], "tau": [0.1]},
                     algorithm={"comal": {"steps": STEPS // 100, "record_every": 1, "inner": [100]},
                                "omwu": {"eta": [0.5]}, "extragradient": {"eta": [0.5], "tau": [0.0]},
                                "inpo": {"tau": [0.01]}, "mmd": {"tau": [0.01]},
                                "iterative_dpo": {"steps": 200, "record_every": 1}, "replicator": {"eta": [1.0]}})
    started = time.perf_counter()
    execute(spec, out / "results")
    df = load_results(out / "results")
    last = df[(df.iterate == "last")].sort_values("step").groupby("algorithm").tail(1)
    rows = {}
    for _, r in last.iterrows():
        trace = df[(df.algorithm == r.algorithm) & (df.iterate == "last")].sort_values("step")
        below = trace[trace.exploitability <= 1e-6]
        rows[r.algorithm] = {"steps": int(r.step), "exploitability": float(r.exploitability),
                             "kl_from_maxent_nash": float(r.kl_to_target), "entropy": float(r.entropy),
                             "first_step_exploitability_1e-6": int(below.step.iloc[0]) if len(below) else None}
    return rows, time.perf_counter() - started


def groups_section(sources):
    from scipy.special import softmax

    from gamelab import votes as V
    from gamelab.nash import maxmin_policy

    crowd = sources["crowd"]
    judges = [sources[j]._replace(annotator=np.full(sources[j].size, j)) for j in SOURCES[1:]]
    allv = V.Votes(crowd.names, *(np.concatenate([getattr(x, f) for x in (crowd, *judges)])
                                  for f in ("left", "right", "outcome", "annotator")), None)
    g = V.annotator_groups(allv, GROUPS, restarts=5, iterations=30)
    where = {a: int(k) for a, k in zip(g.annotators, g.assignment)}
    n = allv.n
    maxmin = maxmin_policy(g.rewards, beta=BETA)
    pooled = softmax(V.bradley_terry_rewards(allv) / BETA)

    def utilities(p):
        return g.rewards @ p - BETA * (np.sum(p[p > 0] * np.log(p[p > 0])) + np.log(n))

    def win_vs_uniform(p):  # each group's Bradley–Terry P(π ≻ uniform)
        return [float(p @ V.bt_matrix(r) @ np.full(n, 1 / n)) for r in g.rewards]

    top = lambda p: [(crowd.names[i], float(p[i])) for i in np.argsort(-p)[:5]]
    return {"groups": GROUPS, "annotators_per_group": np.bincount(g.assignment, minlength=GROUPS).tolist(),
            "votes_per_group": g.votes_per_group.tolist(), "gpt4_group": where["gpt4"], "gpt3_group": where["gpt3"],
            "reward_correlation": float(np.corrcoef(g.rewards)[0, 1]), "restart_objectives": g.restarts.tolist(),
            "maxmin_utilities": maxmin.utilities.tolist(), "pooled_utilities": utilities(pooled).tolist(),
            "maxmin_win_vs_uniform": win_vs_uniform(maxmin.policy), "pooled_win_vs_uniform": win_vs_uniform(pooled),
            "maxmin_top5": top(maxmin.policy), "pooled_top5": top(pooled),
            "group_bt_top5": [[crowd.names[i] for i in np.argsort(-r)[:5]] for r in g.rewards]}


def figure(names, sol, maxent, boot, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    show = [i for i in np.argsort(-(boot.in_support + sol.policy), kind="stable")
            if max(boot.in_support[i], sol.policy[i], maxent.policy[i]) >= 0.1][:20][::-1]
    y = np.arange(len(show))
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 5), sharey=True, gridspec_kw={"width_ratios": [2, 1]})
    a.hlines(y, boot.low[show], boot.high[show], color="0.6", lw=3, label="95% bootstrap interval")
    a.plot(sol.policy[show], y, "o", color="C0", label="maximal lottery (LP)")
    a.plot(maxent.policy[show], y, "x", color="C3", label="max-entropy Nash")
    a.set_yticks(y, [names[i] for i in show], fontsize=7)
    a.set_xlabel("probability")
    a.legend(fontsize=7, loc="lower right")
    b.barh(y, boot.in_support[show], color="C2")
    b.set_xlabel("Pr(in support), 1,000 resamples")
    b.set_xlim(0, 1)
    fig.suptitle("LLMFAO crowd votes: the maximal lottery is uncertain and not unique", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    from gamelab.hosts import use_cpu_cores

    use_cpu_cores()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DATA, help="the llmfao folder")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "experiments" / "llmfao_arena")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    if not (args.data / "crowd-comparisons.csv").is_file():
        raise SystemExit(f"error: {args.data}/crowd-comparisons.csv not found; pass the llmfao folder")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sources = load_sources(args.data)
    summary = {}
    for name, v in sources.items():
        t = time.perf_counter()
        P, sol, maxent, boot, s = lottery_section(name, v, args.resamples, args.out)
        s["held_out"] = {by: likelihood_section(v, by) for by in ("pair", "prompt")}
        s["cycles"] = cycles_section(v, s["held_out"]["pair"])
        s["seconds"] = time.perf_counter() - t
        summary[name] = s
        print(f"{name}: {v.size} votes, lottery exploitability {s['lottery_exploitability']:.1e}, Nash unique: "
              f"{s['nash_unique']} (set support {s['nash_set_support']}); cycles {s['cycles']}")
        for by, res in s["held_out"].items():
            for ridge, r in res.items():
                print(f"  held out by {by}, GPM {ridge}: " + ", ".join(
                    f"{m} {x['log_likelihood']:.4f}±{x['log_likelihood_se']:.4f}" for m, x in r["vs_bt"].items()
                    if m.startswith(("bt", "gpm"))) + " | minus gpm0: " + ", ".join(
                    f"{m} {x['minus_gpm0']:+.4f}±{x['minus_gpm0_se']:.4f}" for m, x in r["vs_gpm0"].items()
                    if m.startswith("gpm") and m != "gpm0"))
        if name == "crowd":
            crowd_fig = (v.names, sol, maxent, boot)
    summary["algorithms"], seconds = algorithms_section(args.out / "crowd_empirical.csv", args.out)
    summary["algorithms_seconds"] = seconds
    summary["groups"] = groups_section(sources)
    summary["seconds"] = time.perf_counter() - started
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    figure(*crowd_fig, args.out / "llmfao_arena.png")
    print(json.dumps({k: summary[k] for k in ("algorithms", "groups")}, indent=1, default=float))
    print(f"\noutputs in {args.out} ({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
