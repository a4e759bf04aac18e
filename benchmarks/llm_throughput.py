"""Transformer training throughput on sequence games: ms per step, response tokens/s, one recording.

    python benchmarks/llm_throughput.py                          # V^L = 10^5 and 16^5 ≈ 1.05·10^6
    python benchmarks/llm_throughput.py --sizes 10x5 --steps 100 --d-model 128 --layers 4 --batch 1024
    python benchmarks/llm_throughput.py --out DIR                # results.json / results.md there

The same work as ``gamelab llm run ALGO --game GAME --vocab V --length L --metrics sampled``: pairs
drawn from the transformer's own sampler (token by token), labelled by the class oracle, one
optimizer update per step, and every ``record_every`` steps the sampled metrics with confidence
intervals from ``--eval-samples`` responses (exploitability, duality gap, KL to the class Nash,
entropy, win rate and regularized gap). Nothing of size V^L is built.

Method: each size is trained with two recording intervals, T (a recording at step 0 and at the
end: 2) and T/5 (6 recordings); after a first call of each (``train`` compiles once per
configuration) both are timed ``--repeats`` times in turn, medians t₂ and t₆. One recording costs
(t₆ − t₂)/4; a step costs (t₂ − 2·recording)/T (where timing noise hides the recordings' cost,
t₂/T, an upper bound, with a warning). Response tokens per step: the 2·batch responses of its pairs × L (each is
sampled token by token, then scored under π_t, π_ref and in the gradient).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

WIDTHS = ("exploitability", "duality_gap", "kl_to_class_nash", "regularized_gap")  # final intervals reported


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'10x5,16x5' -> [(10, 5), (16, 5)] (vocabulary × length)."""
    sizes = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        v, sep, l_ = item.partition("x")
        if not sep or not v.isdigit() or not l_.isdigit() or int(v) < 2 or int(l_) < 1:
            raise ValueError(f"a size is VOCABxLENGTH with VOCAB >= 2 and LENGTH >= 1, got {item!r}")
        sizes.append((int(v), int(l_)))
    if not sizes:
        raise ValueError("no sizes given")
    return sizes


def measure_size(vocab: int, length: int, args, log=print) -> dict:
    """Time one (V, L) configuration as the module doc says; returns one result row."""
    from gamelab.llm.games import parse_sequence_game
    from gamelab.llm.train import train

    game = parse_sequence_game(args.game, vocab, length)
    model = {"d_model": args.d_model, "heads": args.heads, "layers": args.layers}

    last = {}

    def run(record_every):
        def call():
            last[record_every] = train(args.algorithm, game, steps=args.steps, record_every=record_every,
                                       batch=args.batch, hparams={"tau": args.tau, "lr": args.lr}, model=model,
                                       metrics="sampled", eval_samples=args.eval_samples, progress=False, out=None)
        return call

    few, many = args.steps, args.steps // 5
    first = {}
    for every in (few, many):  # the first call of each compiles its segment length
        first[every] = common.timed(run(every))[1]
    timed = common.measure_interleaved({2: run(few), 6: run(many)}, repeats=args.repeats, warmup=0, min_total_s=0.0)
    times = {k: m["median_s"] for k, m in timed.items()}
    log(f"  V={vocab}, L={length}: 2 recordings {times[2]:.2f} s, 6 recordings {times[6]:.2f} s (medians of "
        f"{len(timed[2]['samples_s'])}; first calls {first[few]:.1f} s, {first[many]:.1f} s)")
    recording_s = (times[6] - times[2]) / 4
    if 0 <= recording_s < times[2] / 2:  # else the step's share of t₂ would not be positive
        step_s = (times[2] - 2 * recording_s) / args.steps
    else:  # timing noise beyond the recordings' cost: the whole run per step, an upper bound
        log(f"  warning: the recordings' cost is lost in timing noise ({recording_s:.3g} s); ms / step includes them")
        recording_s, step_s = float("nan"), times[2] / args.steps
    result = last[few]
    trace = result.trace
    widths = {k: float(trace[f"{k}_hi"][-1] - trace[f"{k}_lo"][-1])
              for k in WIDTHS if f"{k}_hi" in trace}
    return {
        "vocab": vocab, "length": length, "responses": vocab ** length, "batch": args.batch, "steps": args.steps,
        "model": model, "algorithm": args.algorithm, "eval_samples": args.eval_samples,
        "ms_per_step": 1e3 * step_s, "response_tokens_per_s": 2 * args.batch * length / step_s,
        "recording_s": recording_s, "timed_s": times, "first_call_s": first,
        "ci_widths_final": widths,
        "duality_gap_first_last": [float(trace["duality_gap"][0]), float(trace["duality_gap"][-1])],
    }


def table(rows: list[dict]) -> str:
    head = ["V^L", "V, L", "model (d, heads, layers)", "batch", "ms / step", "response tokens / s",
            "one recording", "95% CI width: exploitability, duality gap, KL, regularized gap", "duality gap: start → end"]
    body = []
    for r in rows:
        m, w = r["model"], r["ci_widths_final"]
        body.append([f"{r['responses']:.3g}", f"{r['vocab']}, {r['length']}",
                     f"{m['d_model']}, {m['heads']}, {m['layers']}", r["batch"], f"{r['ms_per_step']:.3g}",
                     f"{r['response_tokens_per_s']:,.0f}", common.fmt_time(r["recording_s"]),
                     ", ".join(f"{w[k]:.3f}" for k in WIDTHS if k in w),
                     "{:.3f} → {:.3f}".format(*r["duality_gap_first_last"])])
    return common.table(head, body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10x5,16x5", help="comma-separated VOCABxLENGTH (default 10x5,16x5)")
    ap.add_argument("--game", default="cyclic:rule=count", help="sequence game (as gamelab llm run --game)")
    ap.add_argument("--algorithm", default="inpo")
    ap.add_argument("--tau", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=200, help="steps per timed run, a multiple of 5 (default 200)")
    ap.add_argument("--batch", type=int, default=256, help="pairs per step")
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--eval-samples", type=int, default=4096, help="responses per recording")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls of each run, in turn (median; default 3)")
    ap.add_argument("--cpu-devices", type=int, default=1,
                    help="CPU cores exposed to JAX as devices (default 1: this is a one-device benchmark)")
    ap.add_argument("--out", default=os.path.join("outputs", "benchmarks", "llm"), help="where results go")
    args = ap.parse_args(argv)
    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as exc:
        ap.error(str(exc))
    if args.steps < 5 or args.steps % 5:
        ap.error(f"--steps must be a positive multiple of 5, got {args.steps}")

    from gamelab.hosts import use_cpu_cores  # before anything starts JAX

    use_cpu_cores(args.cpu_devices)
    import jax

    mach = common.machine()
    mach["device_names"] = [str(d) for d in jax.devices()]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    log("Machine: " + common.describe_machine(mach) + f"; JAX devices {', '.join(mach['device_names'])}")
    rows = []
    for vocab, length in sizes:
        rows.append(measure_size(vocab, length, args, log))
    text = (f"Machine: {common.describe_machine(mach)}; JAX devices {', '.join(mach['device_names'])}\n\n"
            f"#### Transformer throughput, {args.algorithm} (τ = {args.tau}) on {args.game}, sampled metrics, "
            f"{args.steps} steps\n\n" + table(rows) + "\n")
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump({"machine": mach, "config": vars(args), "rows": rows}, fh, indent=1, default=float)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(text)
    print(f"wrote {os.path.join(args.out, 'results.json')} and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
