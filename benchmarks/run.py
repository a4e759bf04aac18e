"""Benchmarks: the same work through gamelab and through the alternatives, in one process.

    python benchmarks/run.py                  # everything (≈ 10 minutes on 2 cores)
    python benchmarks/run.py --quick          # smoke run, < 1 minute
    python benchmarks/run.py --only nash_lp   # one family: dynamics, roofline, nash_lp
    python benchmarks/run.py --workloads n=1000,n=4000   # only those dynamics/roofline workloads
    python benchmarks/run.py --out DIR        # where results.json / results.md go

Prints the machine, the tables of median times and ratios, and the targets of the benchmark
issue (met or missed, by how much); writes ``results.json`` and ``results.md`` under ``--out``
(default ``outputs/benchmarks``, which git ignores). See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

FAMILIES = ("dynamics", "roofline", "nash_lp")


def _targets(dyn: list[dict], roof: list[dict], lp: list[dict]) -> list[dict]:
    """The issue's targets, each as a measured ratio from this run."""
    out = []

    def add(target, measured, required, met, detail=""):
        out.append({"target": target, "measured": measured, "required": required, "met": bool(met), "detail": detail})

    def get(wname, algo, impl):
        return next((r for r in dyn if r["workload"] == wname and r["algorithm"] == algo and r["impl"] == impl), None)

    small = [r for r in dyn if r["n"] == 10]  # B = 1024 × n = 10 (B = 64 × n = 10 with --quick)
    if small:
        w0 = small[0]["workload"]
        for algo in ("mwu", "omwu", "inpo"):
            g = get(w0, algo, "gamelab")
            if g is None:
                continue
            for impl, need in (("NumPy per-game loop", 100.0), ("NumPy batched", 4.0)):
                r = get(w0, algo, impl)
                if r:
                    ratio = r["median_s"] / g["median_s"]
                    one = get(w0, algo, "gamelab, one device")
                    single = f"; on one device {r['median_s'] / one['median_s']:.2f}×" if one else ""
                    add(f"{w0}, T={g['steps']}, {algo}: {impl} / gamelab ({g.get('devices', 1)} CPU devices)", ratio,
                        need, ratio >= need,
                        f"{common.fmt_time(r['median_s'])} vs {common.fmt_time(g['median_s'])}{single}")
        peer_rows = [r for r in dyn if r["workload"] == w0 and r.get("library")]
        fast = [get(w0, a, "gamelab") for a in ("mwu", "omwu", "inpo")]
        fast = [f for f in fast if f]
        if fast:
            slowest = max(fast, key=lambda f: f["median_s"])
            for r in peer_rows:
                ratio = r["median_s"] / slowest["median_s"]
                add(f"{w0}: {r['impl']} / gamelab {slowest['algorithm']} (slowest of MWU/OMWU/INPO)", ratio, 200.0,
                    ratio >= 200.0, f"{common.fmt_time(r['median_s'])} (scaled) vs {common.fmt_time(slowest['median_s'])}")
    import roofline

    for wname in dict.fromkeys(r["workload"] for r in roof if r["n"] == 4000):
        for algo in ("mwu", "omwu", "inpo"):
            pair = roofline.same_window_ratio(roof, wname, algo)
            if pair:
                g, b = pair
                add(f"n=4000, one game: gamelab {algo} step (gap every step) / bare step, timed in turn", g / b, 1.3,
                    g / b <= 1.3, f"{common.fmt_time(g)} vs {common.fmt_time(b)} per step")
    by = {(r["n"], r["solver"]): r for r in lp}
    nmax = max((r["n"] for r in lp), default=None)
    g = by.get((nmax, "gamelab exact_nash"))
    if g and "median_s" in g:
        add(f"exact Nash n={nmax}: gamelab exploitability", g["exploitability"], 1e-9, g["exploitability"] <= 1e-9)
        for peer in ("OpenSpiel lp_solver (cvxpy/ECOS)", "pygambit lp_solve"):
            r = by.get((nmax, peer))
            if r is None:
                continue
            if "median_s" in r:
                ratio = r["median_s"] / g["median_s"]
                add(f"exact Nash n={nmax}: {peer} / gamelab time", ratio, 1.0, ratio > 1.0,
                    f"{common.fmt_time(r['median_s'])} vs {common.fmt_time(g['median_s'])}; peer gap {r['exploitability']:.1e}")
            else:
                ratio = r.get("predicted_s", float("nan")) / g["median_s"]
                add(f"exact Nash n={nmax}: {peer} / gamelab time (peer predicted, not run)", ratio, 1.0, ratio > 1.0,
                    r["skipped"])
    return out


def _targets_table(targets: list[dict]) -> str:
    body = []
    for t in targets:
        if "exploitability" in t["target"]:
            measured, required = f"{t['measured']:.1e}", f"≤ {t['required']:.0e}"
        elif "bare step" in t["target"]:
            measured, required = common.fmt_ratio(t["measured"]), f"≤ {t['required']}×"
        else:
            measured, required = common.fmt_ratio(t["measured"]), f"≥ {t['required']:g}×" if t["required"] > 1 else "> 1×"
        body.append([t["target"], measured, required, "met" if t["met"] else "**missed**", t["detail"]])
    return "### Targets\n\n" + common.table(["target", "measured", "required", "", "times"], body) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small workloads, a smoke run under a minute")
    ap.add_argument("--only", default=",".join(FAMILIES), help=f"comma-separated subset of {', '.join(FAMILIES)}")
    ap.add_argument("--out", default=os.path.join("outputs", "benchmarks"), help="directory for results.json / results.md")
    ap.add_argument("--no-peers", action="store_true", help="skip nashpy / OpenSpiel dynamics")
    ap.add_argument("--large-steps", type=int, default=1000,
                    help="steps on the n = 4000 game (default 1000, the workload's T; fewer for a shorter run: "
                         "per-step times are what is compared there)")
    ap.add_argument("--workloads", default=None,
                    help="comma-separated parts of workload names to run (e.g. n=1000,n=4000 or B=1024); default all")
    ap.add_argument("--cpu-devices", type=int, default=None,
                    help="CPU cores exposed to JAX as devices (default: every core, as the gamelab command does; "
                         "1: one device). gamelab's batched columns shard their runs over them")
    ap.add_argument("--lp-sizes", default=None, help="comma-separated n for the exact-Nash LP (default 10,30,100,300,1000)")
    ap.add_argument("--lp-budget", type=float, default=120.0,
                    help="skip an LP solver at a size whose predicted time exceeds this many seconds (default 120)")
    args = ap.parse_args(argv)
    families = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")

    only = [w.strip() for w in args.workloads.split(",") if w.strip()] if args.workloads else None

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    from gamelab.hosts import use_cpu_cores  # before anything starts JAX

    use_cpu_cores(args.cpu_devices)
    t_start = time.perf_counter()
    mach = common.machine()
    log("Machine: " + common.describe_machine(mach))
    if (mach.get("load_average_1min") or 0) > 0.5 * (mach.get("cores") or 1):
        log(f"warning: load average {mach['load_average_1min']:.2f} before starting: other processes are running, "
            "timings will be noisy")
    results = {"machine": mach, "config": vars(args), "dynamics": [], "roofline": [], "nash_lp": [],
               "skipped": {}}
    import peers

    _, peer_skips = peers.available_peers()
    for lib, why in peer_skips.items():
        print(f"skipping {lib} dynamics: not importable ({why})")
    results["skipped"].update({f"{k} dynamics": v for k, v in peer_skips.items()})

    if "dynamics" in families:
        import dynamics

        results["dynamics"] = dynamics.run(args.quick, with_peers=not args.no_peers, large_steps=args.large_steps, log=log,
                                           only=only)
    if "roofline" in families:
        import roofline

        results["roofline"] = roofline.run(args.quick, large_steps=args.large_steps, log=log, only=only)
    if "nash_lp" in families:
        import nash_lp

        sizes = tuple(int(s) for s in args.lp_sizes.split(",")) if args.lp_sizes else None
        results["nash_lp"], lp_skips = nash_lp.run(args.quick, sizes=sizes, budget_s=args.lp_budget, log=log)
        for name, why in lp_skips.items():
            print(f"skipping {name}: not importable ({why})")
        results["skipped"].update(lp_skips)

    parts = [f"Machine: {common.describe_machine(mach)}\n"]
    if results["dynamics"]:
        import dynamics

        parts.append(dynamics.tables(results["dynamics"]))
    if results["roofline"]:
        import roofline

        parts.append(roofline.tables(results["roofline"], results["dynamics"]))
    if results["nash_lp"]:
        import nash_lp

        parts.append(nash_lp.tables(results["nash_lp"], lp_skips))
    results["targets"] = _targets(results["dynamics"], results["roofline"], results["nash_lp"])
    if results["targets"]:
        parts.append(_targets_table(results["targets"]))
    results["total_s"] = time.perf_counter() - t_start
    results["load_average_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    parts.append(f"Total benchmark time: {results['total_s']:.0f} s")
    text = "\n".join(parts)
    print()
    print(text)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(text + "\n")
    print(f"\nwrote {os.path.join(args.out, 'results.json')} and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
