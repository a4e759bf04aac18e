"""MaxMin-RLHF's diverse-preference pattern (Chakraborty et al. 2024): one reward model fitted to a
10:1 majority:minority mixture serves the majority and fails the minority; the egalitarian (MaxMin)
policy equalizes the two groups without a large loss for the majority.

Setting (the paper's example): 4 responses, uniform π_ref, β = 0.5, Bradley–Terry groups with
majority reward (2, −1, 1, 0) and minority reward (−1, 2, 1, 0); the minority's share m runs over
MINORITIES. Per m, each policy's per-group win rate against π_ref, P_u(π ≻ π_ref) = πᵀP_u·π_ref:

* single reward — one Bradley–Terry reward fitted to the pooled preference Σ_u w_u·P_u (all pairs
  weighted alike), then π ∝ π_ref·exp(r̂/β) (`gamelab.nash.pooled_reward_policy`, here batched);
* MaxMin, exact — argmax_π min_u [π·r_u − β·KL(π‖π_ref)] (`gamelab.nash.maxmin_policy`); it does not
  depend on m: the egalitarian objective ignores the groups' sizes;
* MaxMin, iterative — the last iterate of the registered `maxmin` solver (mirror-prox against an
  adversary over groups), run as one resumable sweep over the games `maxmin4:minority=m` (and the
  random games below), read back from the results store with its per-group metrics;
* learned (when `gamelab.feedback.em_mixture` exists) — users sampled from the mixture (USERS users,
  round(USERS·m) of them in the minority, COMPARISONS comparisons each on uniformly drawn pairs of
  distinct responses, Bernoulli labels from their group's P_u), the two groups found by hard EM from
  a random start (the group labels are hidden, the user ids known), the MaxMin policy of the
  EM-learned rewards against the single reward fitted to all comparisons; win rates are the *true*
  groups' (SEEDS_LEARNED data seeds, median).

Shifts. A Bradley–Terry reward is identified only up to a constant per group, and the max–min over
groups of π·r_u − β·KL is not invariant to shifting one group's rewards (it changes which group is
worst). We anchor every group at the reference: r_u ← r_u − E_{π_ref}[r_u], so U_u(π_ref) = 0 for
every group and U_u(π) is the group's gain over the reference. The learned rewards are centred
(mean zero), which under the uniform reference is exactly this anchoring; the paper's true rewards
have the same mean (½) in both groups, so anchoring them leaves the exact MaxMin policy unchanged
(and the `maxmin` solver, which takes a game's rewards as they are, reaches the same policy; the
random games below have mean-zero rewards in both groups).

Second setting, to show the pattern is not special to the example: random two-group games
`majority_minority:n=8,minority=m,disagreement=0.75,seed=0..19` (reward correlation −0.5 between
the groups), the same β and reference; the worst group's win rate against π_ref under the single
reward and under MaxMin, median over the seeds.

    python experiments/maxmin_groups.py [--out DIR]
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

import gamelab  # noqa: F401  (float64)
import jax
import jax.numpy as jnp

from gamelab import feedback
from gamelab.games import parse_game
from gamelab.nash import group_rewards, maxmin_policy

BETA = 0.5
MINORITIES = (0.02, 0.05, 1 / 11, 0.15, 0.2, 0.3, 0.4, 0.5)
PAPER = 1 / 11  # the 10:1 mixture
STEPS = 3000  # iterative maxmin solver: steps, step sizes (η·β = 0.25)
SOLVER = {"eta": 0.5, "beta": BETA, "eta_w": 0.5}
RANDOM = {"n": 8, "disagreement": 0.75, "seeds": 20}
USERS, COMPARISONS, SEEDS_LEARNED, EM_ITERATIONS = 110, 50, 5, 10
HAS_EM = hasattr(feedback, "em_mixture") and hasattr(feedback, "sample_user_comparisons")


def example_game(m: float) -> str:
    return f"maxmin4:minority={m!r}"  # repr: the exact float, so 1/11 is the 10:1 mixture


def random_game(m: float, seed) -> str:
    return (f"majority_minority:n={RANDOM['n']},minority={m!r},disagreement={RANDOM['disagreement']!r},"
            f"seed={seed}")


# ------------------------------------------------------------------ the two policies, exactly
@jax.jit
def _pooled_rewards(P):
    """(B, n, n) pooled preferences → (B, n) Bradley–Terry rewards, every pair weighted 1/n²: what
    `gamelab.nash.pooled_reward_policy` fits, batched and compiled once (called one game at a time
    it re-traces the fit on every call, ~1 s each)."""
    n = P.shape[-1]
    W = jnp.full((n, n), 1.0 / n**2, P.dtype)
    return jax.vmap(lambda p: feedback.bradley_terry_fit(p, W, jnp.zeros(n, P.dtype), 1e-12))(P)


def policy_from_reward(r, log_ref, beta=BETA) -> np.ndarray:
    z = log_ref + np.asarray(r, dtype=np.float64) / beta
    p = np.exp(z - z.max())
    return p / p.sum()


def anchored(R, ref) -> np.ndarray:
    """Each group's rewards shifted so that the reference's expected reward is 0."""
    R = np.asarray(R, dtype=np.float64)
    return R - (R @ ref)[:, None]


def win_rates(groups, pi, ref) -> np.ndarray:
    """(U,) P_u(π ≻ π_ref) = πᵀ P_u π_ref."""
    return np.einsum("i,uij,j->u", pi, np.asarray(groups, dtype=np.float64), ref)


def exact_rows(specs, beta=BETA) -> list[dict]:
    """Single-reward and exact MaxMin policies of the named multi-group games, per-group win rates
    against the uniform reference (group 0 = the majority), and MaxMin's utilities."""
    games = [parse_game(s) for s in specs]
    rewards = np.asarray(_pooled_rewards(jnp.stack([jnp.asarray(g.P) for g in games])))
    rows = []
    for spec, game, r in zip(specs, games, rewards):
        n = game.n
        ref = np.full(n, 1.0 / n)
        single = policy_from_reward(r, np.log(ref), beta)
        mm = maxmin_policy(anchored(group_rewards(game), ref), ref, beta)
        rows.append({"game": spec, "minority": float(np.asarray(game.weights)[1]),
                     "single_policy": single, "single_win_rates": win_rates(game.groups, single, ref),
                     "maxmin_policy": mm.policy, "maxmin_win_rates": win_rates(game.groups, mm.policy, ref),
                     "maxmin_utilities": mm.utilities, "maxmin_group_weights": mm.group_weights})
    return rows


def example(minorities=MINORITIES, beta=BETA) -> list[dict]:
    """The paper's example at each minority share (exact policies only)."""
    return exact_rows([example_game(m) for m in minorities], beta)


# ------------------------------------------------------------------ the iterative solver
def solver_spec(games, steps=STEPS) -> dict:
    return dict(algorithms=["maxmin"], games=list(games), steps=steps, record_every=steps // 6,
                record_policy=True, target=None, grid={k: [v] for k, v in SOLVER.items()})


def iterative(games, out: Path, steps=STEPS) -> dict:
    """Run (or resume) the `maxmin` sweep over ``games`` into ``out`` and return, per game spec, the
    final last iterate's policy and per-group metrics as stored in the results."""
    from gamelab.results import load_results
    from gamelab.sweep import execute, make_spec

    started = time.perf_counter()
    stats = execute(make_spec(**solver_spec(games, steps)), out, progress=False)
    print(f"maxmin sweep: {stats['ran']} chunks run ({stats['runs']} runs) in "
          f"{time.perf_counter() - started:.1f} s, {stats['skipped']} already finished")
    df = load_results(out)
    last = df[(df.iterate == "last") & (df.step == df.step.max())].set_index("game")
    return {g: {"policy": np.asarray(last.loc[g, "policy"], dtype=np.float64),
                "win_rates": last.loc[g, ["group0_win_rate_vs_ref", "group1_win_rate_vs_ref"]].to_numpy(float),
                "worst_group_win_rate_vs_ref": float(last.loc[g, "worst_group_win_rate_vs_ref"]),
                "worst_group_reward": float(last.loc[g, "worst_group_reward"])} for g in games}


# ------------------------------------------------------------------ learned by EM from sampled users
_sample = jax.jit(feedback.sample_user_comparisons, static_argnames="comparisons") if HAS_EM else None
_fit_all = jax.jit(feedback.fit_bradley_terry, static_argnames="n")


def learned(m: float, seed: int, beta=BETA, users=USERS, comparisons=COMPARISONS) -> dict:
    """One data seed of the learned variant on the paper's example with minority share ``m``."""
    game = parse_game(example_game(m))
    G, n = np.asarray(game.groups), game.n
    ref = np.full(n, 1.0 / n)
    minority = int(round(users * m))
    truth = np.r_[np.zeros(users - minority, int), np.ones(minority, int)]
    k_data, k_em = jax.random.split(jax.random.PRNGKey(seed))
    data = _sample(k_data, jnp.asarray(G), jnp.asarray(truth), comparisons=comparisons)
    em = feedback.em_mixture(data, n, 2, users=users, hard=True, iterations=EM_ITERATIONS, key=k_em)
    weights = np.asarray(em.weights)
    R = anchored(np.asarray(em.rewards)[weights > 0], ref)  # a cluster nobody belongs to speaks for no one
    mm = maxmin_policy(R, ref, beta).policy
    single = policy_from_reward(_fit_all(data.y, data.y2, data.label, n), np.log(ref), beta)
    return {"minority": m, "seed": seed, "minority_users": minority,
            "em_accuracy": feedback.cluster_accuracy(np.asarray(em.assignment), truth, 2),
            "em_iterations": int(em.iterations), "em_weights": sorted(weights.tolist()),
            "single_win_rates": win_rates(G, single, ref), "maxmin_win_rates": win_rates(G, mm, ref),
            "single_policy": single, "maxmin_policy": mm}


def learned_rows(minorities=MINORITIES, seeds=SEEDS_LEARNED) -> list[dict]:
    """Per minority share: the median over data seeds of the true per-group win rates, and EM's
    worst cluster-recovery accuracy."""
    rows = []
    for m in minorities:
        runs = [learned(m, s) for s in range(seeds)]
        rows.append({"minority": m, "minority_users": runs[0]["minority_users"],
                     "single_win_rates": np.median([r["single_win_rates"] for r in runs], axis=0),
                     "maxmin_win_rates": np.median([r["maxmin_win_rates"] for r in runs], axis=0),
                     "em_accuracy_min": min(r["em_accuracy"] for r in runs),
                     "em_iterations_max": max(r["em_iterations"] for r in runs), "runs": runs})
    return rows


# ------------------------------------------------------------------ random majority/minority games
def random_rows(minorities, iterated: dict) -> list[dict]:
    """Per minority share: medians over the seeds of the worst group's (and each group's) win rate
    under the single reward and under MaxMin, how often MaxMin's worst group does better, and the
    iterative solver's largest distance to the exact MaxMin policy."""
    rows = []
    for m in minorities:
        specs = [random_game(m, s) for s in range(RANDOM["seeds"])]
        exact = exact_rows(specs)
        single = np.array([r["single_win_rates"] for r in exact])
        mm = np.array([r["maxmin_win_rates"] for r in exact])
        rows.append({"minority": m,
                     "single_worst": float(np.median(single.min(1))), "maxmin_worst": float(np.median(mm.min(1))),
                     "single_win_rates": np.median(single, axis=0), "maxmin_win_rates": np.median(mm, axis=0),
                     "maxmin_worst_better": float(np.mean(mm.min(1) > single.min(1))),
                     "majority_loss": float(np.median(single[:, 0] - mm[:, 0])),
                     "iterative_max_err": max(float(np.max(np.abs(iterated[s]["policy"] - r["maxmin_policy"])))
                                              for s, r in zip(specs, exact))})
    return rows


# ------------------------------------------------------------------ report
def format_example(rows, iterated, learned_by_m) -> str:
    head = (f"{'m':>6} | {'single maj':>10} {'min':>6} | {'MaxMin maj':>10} {'min':>6} | {'iter. maj':>9} "
            f"{'min':>6} {'|π−π*|∞':>8}" + (f" | {'EM single':>9} {'min':>6} {'EM MaxMin':>9} {'min':>6} "
                                            f"{'EM acc':>6}" if learned_by_m else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        it = iterated[r["game"]]
        line = (f"{r['minority']:>6.4f} | {r['single_win_rates'][0]:>10.4f} {r['single_win_rates'][1]:>6.4f} | "
                f"{r['maxmin_win_rates'][0]:>10.4f} {r['maxmin_win_rates'][1]:>6.4f} | {it['win_rates'][0]:>9.4f} "
                f"{it['win_rates'][1]:>6.4f} {np.max(np.abs(it['policy'] - r['maxmin_policy'])):>8.1e}")
        lr = learned_by_m.get(r["minority"])
        if lr is not None:
            line += (f" | {lr['single_win_rates'][0]:>9.4f} {lr['single_win_rates'][1]:>6.4f} "
                     f"{lr['maxmin_win_rates'][0]:>9.4f} {lr['maxmin_win_rates'][1]:>6.4f} "
                     f"{lr['em_accuracy_min']:>6.3f}")
        lines.append(line)
    return "\n".join(lines)


def format_random(rows) -> str:
    head = (f"{'m':>6} | {'single worst':>12} {'MaxMin worst':>12} | {'single maj':>10} {'MaxMin maj':>10} | "
            f"{'MaxMin worst better':>19} | {'iter. |π−π*|∞':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['minority']:>6.4f} | {r['single_worst']:>12.4f} {r['maxmin_worst']:>12.4f} | "
                     f"{r['single_win_rates'][0]:>10.4f} {r['maxmin_win_rates'][0]:>10.4f} | "
                     f"{r['maxmin_worst_better']:>19.2f} | {r['iterative_max_err']:>13.1e}")
    return "\n".join(lines)


def plot(rows, iterated, learned_list, random_list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.lines import Line2D

    m = np.array([r["minority"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    ax = axes[0]
    methods = [("single", "tab:blue", "single reward (pooled BT fit)"), ("maxmin", "tab:red", "MaxMin, exact")]
    for key, color, _ in methods:
        wr = np.array([r[f"{key}_win_rates"] for r in rows])
        ax.plot(m, wr[:, 0], "-", color=color, lw=2)
        ax.plot(m, wr[:, 1], "--", color=color, lw=2)
    it = np.array([iterated[r["game"]]["win_rates"] for r in rows])
    ax.plot(m, it[:, 0], "x", color="k", ms=7)
    ax.plot(m, it[:, 1], "x", color="k", ms=7)
    handles = [Line2D([], [], color=c, lw=2, label=label) for _, c, label in methods]
    handles.append(Line2D([], [], ls="", marker="x", color="k", ms=7, label="MaxMin, `maxmin` solver's last iterate"))
    if learned_list:
        lm = np.array([r["minority"] for r in learned_list])
        for key, color, label in (("single", "tab:cyan", f"EM data: single reward ({SEEDS_LEARNED}-seed median)"),
                                  ("maxmin", "tab:orange", "EM data: MaxMin of the EM-learned groups")):
            wr = np.array([r[f"{key}_win_rates"] for r in learned_list])
            ax.plot(lm, wr[:, 0], "o-", color=color, ms=4, lw=1, mfc="none")
            ax.plot(lm, wr[:, 1], "o--", color=color, ms=4, lw=1, mfc="none")
            handles.append(Line2D([], [], marker="o", mfc="none", ms=4, lw=1, color=color, label=label))
    handles += [Line2D([], [], color="0.4", lw=1.5, label="majority"),
                Line2D([], [], color="0.4", lw=1.5, ls="--", label="minority")]
    ax.axvline(PAPER, color="0.6", lw=0.8, ls=":")
    ax.axhline(0.5, color="0.8", lw=0.8)
    ax.set_xlabel("minority share m (dotted: 10:1)")
    ax.set_ylabel("win rate against π_ref")
    ax.set_title("paper's example: 4 responses, β = 0.5", fontsize=10)
    fig.legend(handles=handles, loc="lower left", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.01, 0.0))
    ax = axes[1]
    rm = np.array([r["minority"] for r in random_list])
    for key, color, label in (("single", "tab:blue", "single reward"), ("maxmin", "tab:red", "MaxMin")):
        wr = np.array([r[f"{key}_win_rates"] for r in random_list])
        ax.plot(rm, wr[:, 0], "-", color=color, lw=1.2, alpha=0.6, label=f"{label}: majority (median)")
        ax.plot(rm, [r[f"{key}_worst"] for r in random_list], "s-", color=color, lw=2, ms=4,
                label=f"{label}: worst group (median)")
    ax.axvline(PAPER, color="0.6", lw=0.8, ls=":")
    ax.axhline(0.5, color="0.8", lw=0.8)
    ax.set_xlabel("minority share m")
    ax.set_title(f"random games: n = {RANDOM['n']}, disagreement {RANDOM['disagreement']}, "
                 f"{RANDOM['seeds']} seeds", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle("Per-group win rate against π_ref: one reward fitted to pooled data vs the egalitarian (MaxMin) "
                 "policy", fontsize=10)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def jsonable(x):
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def main():
    from common import ROOT, parse_args, report_paths

    args = parse_args("maxmin_groups", __doc__)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    random_specs = [random_game(m, s) for m in MINORITIES for s in range(RANDOM["seeds"])]
    iterated = iterative([example_game(m) for m in MINORITIES] + random_specs, args.out / "results")
    t = time.perf_counter()
    rows = example()
    randoms = random_rows(MINORITIES, iterated)
    print(f"exact policies: {time.perf_counter() - t:.1f} s")
    learned_list = []
    if HAS_EM:
        t = time.perf_counter()
        learned_list = learned_rows()
        print(f"learned variant ({len(MINORITIES)} shares × {SEEDS_LEARNED} seeds, {USERS} users × {COMPARISONS} "
              f"comparisons, hard EM): {time.perf_counter() - t:.1f} s")
    else:
        print("gamelab.feedback.em_mixture not found: no learned variant")
    print(f"total {time.perf_counter() - started:.1f} s\n")
    by_m = {r["minority"]: r for r in learned_list}
    text = ("Paper's example (β = 0.5, uniform π_ref): win rate against π_ref, majority / minority"
            + (f"; EM columns: median of {SEEDS_LEARNED} data seeds, EM acc the worst seed's" if by_m else "") + "\n"
            + format_example(rows, iterated, by_m)
            + f"\n\nRandom games majority_minority:n={RANDOM['n']},disagreement={RANDOM['disagreement']}, "
            f"{RANDOM['seeds']} seeds per share (medians)\n" + format_random(randoms))
    paper = next(r for r in rows if r["minority"] == PAPER)
    text += ("\n\nAt 10:1 the MaxMin policy is " + np.array2string(paper["maxmin_policy"], precision=4)
             + ", utilities " + np.array2string(paper["maxmin_utilities"], precision=6)
             + "; the single-reward policy " + np.array2string(paper["single_policy"], precision=4))
    print(text)
    (args.out / "summary.txt").write_text(text + "\n")
    figure = args.out / "maxmin_groups.png"
    plot(rows, iterated, learned_list, randoms, figure)
    shutil.copyfile(figure, ROOT / "experiments" / "figures" / "maxmin_groups.png")
    summary = args.out / "summary.json"
    summary.write_text(json.dumps(jsonable({
        "beta": BETA, "reference": "uniform", "minorities": MINORITIES, "solver": {"steps": STEPS, **SOLVER},
        "example": [{**r, "iterative": iterated[r["game"]]} for r in rows],
        "random_games": {"setting": RANDOM, "rows": randoms},
        "learned": {"users": USERS, "comparisons": COMPARISONS, "seeds": SEEDS_LEARNED, "em": "hard",
                    "em_iterations": EM_ITERATIONS, "rows": learned_list} if HAS_EM else None}), indent=1))
    report_paths(args.out, [figure, summary, args.out / "summary.txt"])


if __name__ == "__main__":
    main()
