"""What every experiment script does: run a sweep into outputs/experiments/NAME (resumable),
summarize it, write figures, and print where everything went. Experiments import the library;
the library never imports them."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "openspiel"


def parse_args(name: str, description: str, *, data: bool = False):
    from gamelab.hosts import use_cpu_cores

    use_cpu_cores()  # every core a JAX device, as the gamelab command does (sweeps shard over them)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "experiments" / name,
                        help="output folder (re-running resumes the sweep in it)")
    if data:
        parser.add_argument("data", nargs="?", type=Path, default=SHARED_DATA,
                            help="folder holding soccer_win_rates.txt and rrps_bot_table.txt")
    return parser.parse_args()


def sweep(spec_kwargs: dict, out: Path):
    """Run (or resume) the sweep and return its tidy DataFrame."""
    from gamelab.results import load_results
    from gamelab.sweep import execute, make_spec

    started = time.perf_counter()
    stats = execute(make_spec(**spec_kwargs), out / "results", progress=sys.stderr.isatty())
    print(f"sweep: {stats['ran']} chunks run ({stats['runs']} runs) in {time.perf_counter() - started:.1f} s, "
          f"{stats['skipped']} already finished")
    return load_results(out / "results")


def summarize(df, out: Path, *, metric: str = "duality_gap", thresholds=(1e-3, 1e-6, 1e-9)):
    from gamelab.report import format_table, summarize as summary_of

    table = summary_of(df, thresholds=thresholds, metric=metric)
    text = format_table(table)
    (out / f"summary_{metric}.txt").write_text(text + "\n")
    table.to_csv(out / f"summary_{metric}.csv", index=False)
    print(text)
    return table


def report_paths(out: Path, paths) -> None:
    print(f"\noutputs in {out}:")
    for p in sorted({Path(p) for p in paths} | set(out.glob("summary_*"))):
        print(f"  {p}")
