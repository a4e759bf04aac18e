"""The user's wait: whole ``gamelab`` commands timed as subprocesses, as ratios measured in one run.

    python benchmarks/interactive.py                  # every part (≈ 3 minutes on 2 cores)
    python benchmarks/interactive.py --quick          # one repetition of each command (≈ 1 minute)
    python benchmarks/interactive.py --only help,run  # a subset of help, run, sweep, llm
    python benchmarks/interactive.py --json PATH      # also save every sample as JSON

Every figure is the wall time of a whole command, started as a subprocess from this script (from
``Popen`` to its exit), repeated; the tables give the median and the minimum, and every ratio is
taken between commands timed in the same run, in turns (a, b, a, b, …) after one untimed warm-up
call of the cheap ones, so that the machine's load moves them alike. The 1-minute load average
(``os.getloadavg()``) is read after every command and printed beside it; a row shows the range
over its samples. Parts:

``help``   ``gamelab --help`` (the installed console script) against ``python -c "import jax"``.
           Target: ≤ 0.3×.
``run``    a one-off ``gamelab run mwu rps --steps 1000``: *cold* with an empty persistent
           compilation cache (``GAMELAB_CACHE_DIR`` set to a new, empty folder for that run),
           *warm* the same command again with the cache the cold run filled; against
           ``python -c "import gamelab.run"`` and against a plain NumPy script doing the same work
           (:data:`NUMPY_SCRIPT`: 1000 MWU steps, η = 0.1, on gamelab's ``rps`` matrix from uniform,
           in log space, recording at every step every metric the CLI run records — exploitability,
           duality gap, entropy, KL from the Nash, win rate against the uniform reference — for the
           last and the average iterate; it prints the final gaps as ``gamelab run`` does). Target:
           warm ≤ 1.5× ``import gamelab.run``.
``sweep``  a 60-run sweep (mwu, omwu, inpo × rps, random:n=5,seed=0, random:n=10,seed=0/1 ×
           η ∈ {0.05, 0.1, 0.2, 0.5, 1}, τ = 0.1 for INPO; 1000 steps), ``gamelab sweep SPEC --out
           DIR`` once with an empty cache and again with the same cache into a new folder. Target:
           second ≥ 4× faster; at most one compilation of the simulation program per algorithm (with
           an empty cache each algorithm needs at least one, so at most 3 in all means one each).
           Both sweeps' tables (``pandas.read_parquet`` of ``DIR/chunks``, sorted by run, step and
           iterate) are saved under ``--tables`` and compared bit for bit (every float column as its
           64-bit pattern).
``llm``    the transformer: time to first step of ``gamelab llm run mwu --game cyclic:rule=count``,
           cold (empty cache) and warm. Target: warm ≤ ¼ cold.

``sweep`` and ``llm`` also time, alone, the libraries each command imports before its first step
(:data:`SWEEP_IMPORTS`, :data:`LLM_IMPORTS`): no warm run can take less, so that row shows how much
of the time the target allows these imports already use.

**Counting compilations.** The ``run``, ``sweep`` and ``llm`` commands are started as
``python -c WRAPPER ARGS`` (:data:`WRAPPER`): it registers two ``jax.monitoring`` listeners and
then calls the same ``gamelab.cli.main`` the console script calls. Every request to compile a
program ends in one ``/jax/core/compile/backend_compile_duration`` event (with the function's
name); a request answered from the persistent cache records ``/jax/compilation_cache/cache_hits``
just before it in the same thread. So a duration event preceded by a hit is a cache hit, any other
is a real XLA compilation. The simulation program is any function whose name contains
``simulate`` (``jit(simulate_batch)`` in gamelab/run.py). The listeners cost nothing measurable;
``gamelab --help`` is timed through the console script itself.

**Time to first step (llm), from outside.** The command runs with the fewest steps it accepts,
``--steps 1 --record-every 1`` (a fresh ``--out`` folder each time, so nothing resumes), and its
standard error is read as it arrives: tqdm redraws the bar after each segment (there the
segment is the one step, with its checkpoint), so the time from ``Popen`` to the first frame
reading ``1/1`` is the wait from pressing Enter to the first finished training step — Python start,
imports, model and game set-up, compilation (or cache reads), the step, its checkpoint. The whole
command's time (adding the final recording, the results folder and the exit) is reported beside
it, and stands in if no bar frame is seen. A longer run (``--steps 1000``, default record_every
10 and checkpoint_every 10) first moves its bar after 100 steps, and compiles a segment of its own
length; this part times the first step, not that.

All caches and outputs live in one temporary folder, removed at exit (``~/.cache/gamelab`` is never
touched: every command gets its own ``GAMELAB_CACHE_DIR``, and ``JAX_COMPILATION_CACHE_DIR`` is
removed from the commands' environment, since gamelab leaves a cache set through it alone). Every
command has a timeout; a part that fails is reported and the others still run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# The commands' environment, taken before anything here imports gamelab (importing gamelab writes
# JAX_* variables into os.environ, which the commands would inherit).
_ENV0 = dict(os.environ)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402

PARTS = ("help", "run", "sweep", "llm")
TIMEOUT_S = {"help": 120, "run": 300, "sweep": 900, "llm": 600}
DROP_ENV = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "JAX_COMPILATION_CACHE_MAX_SIZE",
            "GAMELAB_CACHE_DIR")

RUN_ARGS = ["run", "mwu", "rps", "--steps", "1000"]
SWEEP_SPEC = """\
algorithms = ["mwu", "omwu", "inpo"]
games = ["rps", "random:n=5,seed=0", "random:n=10,seed=0", "random:n=10,seed=1"]
steps = 1000

[grid]
eta = [0.05, 0.1, 0.2, 0.5, 1.0]
tau = [0.1]
"""
SWEEP_RUNS = 3 * 4 * 5
# What `gamelab sweep` imports in all (JAX, and pyarrow for its results table: it writes its chunks
# without pandas since 2026-12-07) and `gamelab llm run` before
# its first step (JAX, the trainer's Flax/Optax, its checkpoints' Orbax; its results table's pandas
# comes after the run) — none of it avoidable — then the exit the gamelab command makes (gc.freeze:
# without it the shutdown's collection walks those libraries' objects, 0.2-0.45 s that the command
# does not spend).
_EXIT = "; import gc; gc.freeze()"
SWEEP_IMPORTS = [sys.executable, "-c", "import gamelab.cli, gamelab.sweep, pyarrow.parquet" + _EXIT]
LLM_IMPORTS = [sys.executable, "-c", "import gamelab.cli, gamelab.llm.train, orbax.checkpoint" + _EXIT]
SWEEP_ALGORITHMS = 3
LLM_ARGS = ["llm", "run", "mwu", "--game", "cyclic:rule=count", "--steps", "1", "--record-every", "1"]
SIMULATION = re.compile(r"simulate")  # the simulation program's function name (jit(simulate_batch))
PROGRESS = re.compile(r"\|\s*([1-9]\d*)/(\d+)\s*\[")  # a tqdm frame with at least one step done
FINAL_LINE = re.compile(r"duality gap (\S+) \(exploitability (\S+)\); average iterate (\S+)")

NUMPY_SCRIPT = '''\
"""MWU on rock-paper-scissors in plain NumPy: the work of `gamelab run mwu rps --steps 1000`."""
import numpy as np

RPS = np.array([[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]])  # gamelab's rps: i beats i+1 (mod 3)
NAMES = ("exploitability", "duality_gap", "entropy", "kl_to_target", "win_rate_vs_ref")


def _metrics(P, logp, ref, nash, out, prefix, t):
    p = np.exp(logp)
    g = P @ p
    e = max(g.max() - 0.5, 0.0)
    out[prefix + "exploitability"][t] = e
    out[prefix + "duality_gap"][t] = 2.0 * e
    out[prefix + "entropy"][t] = -np.sum(np.where(p > 0, p * logp, 0.0))
    lq = np.log(nash)
    out[prefix + "kl_to_target"][t] = max(np.sum(np.where(nash > 0, nash * (lq - logp), 0.0)), 0.0)
    out[prefix + "win_rate_vs_ref"][t] = 1.0 - ref @ g


def mwu_trace(P=RPS, steps=1000, eta=0.1, init=None, nash=None):
    """MWU (log pi <- log_softmax(log pi + eta P pi)) from `init` (default uniform); every metric of
    the last iterate and (avg_) of the average iterate (1/(t+1)) sum_{s<=t} pi_s at every step, rows
    0..steps. `nash`: the KL target (default uniform, rock-paper-scissors' Nash); the reference of
    the win rate is uniform."""
    n = P.shape[0]
    ref = np.full(n, 1.0 / n)
    nash = ref if nash is None else np.asarray(nash, dtype=float)
    logp = np.log(ref if init is None else np.asarray(init, dtype=float) / np.sum(init))
    avg = np.exp(logp)
    out = {prefix + k: np.empty(steps + 1) for prefix in ("", "avg_") for k in NAMES}
    for t in range(steps + 1):
        _metrics(P, logp, ref, nash, out, "", t)
        la = np.log(avg)
        _metrics(P, la - np.log(np.sum(avg)), ref, nash, out, "avg_", t)
        if t == steps:
            break
        z = logp + eta * (P @ np.exp(logp))
        z = z - z.max()
        logp = z - np.log(np.sum(np.exp(z)))
        avg = avg + (np.exp(logp) - avg) / (t + 2)
    return out


if __name__ == "__main__":
    tr = mwu_trace()
    print(f"duality gap {tr['duality_gap'][-1]:.3e} (exploitability {tr['exploitability'][-1]:.3e}); "
          f"average iterate {tr['avg_duality_gap'][-1]:.3e}")
'''

WRAPPER = '''\
import atexit, json, os, sys, threading
import gamelab  # configures JAX (float64, the persistent cache) before JAX is imported
import jax.monitoring as monitoring

_log, _tls = [], threading.local()


def _event(name, **kw):
    if name == "/jax/compilation_cache/cache_hits":
        _tls.hit = True


def _duration(name, secs, **kw):
    if name == "/jax/core/compile/backend_compile_duration":
        _log.append({"fun": str(kw.get("fun_name")), "s": float(secs), "hit": bool(getattr(_tls, "hit", False))})
        _tls.hit = False


monitoring.register_event_listener(_event)
monitoring.register_event_duration_secs_listener(_duration)


@atexit.register
def _dump():
    with open(os.environ["GAMELAB_BENCH_COMPILES"], "w") as fh:
        json.dump(_log, fh)


from gamelab.cli import main

sys.argv[0] = "gamelab"
sys.exit(main())
'''


# ------------------------------------------------------------------------------ the reference
def numpy_namespace() -> dict:
    """:data:`NUMPY_SCRIPT`'s functions (``mwu_trace``, ``RPS``), without running its main block."""
    ns: dict = {"__name__": "gamelab_bench_numpy_reference"}
    exec(compile(NUMPY_SCRIPT, "<numpy reference>", "exec"), ns)
    return ns


# ------------------------------------------------------------------------------ commands
class CommandFailed(RuntimeError):
    pass


def load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def gamelab_command() -> list[str]:
    """The installed console script next to this interpreter (else the one on PATH; else the
    module run as a script)."""
    here = shutil.which("gamelab", path=os.path.dirname(sys.executable))
    found = here or shutil.which("gamelab")
    return [found] if found else [sys.executable, "-m", "gamelab.cli"]


class Runner:
    """Starts the commands: environment, timeouts, the temporary folder, and a log line per sample."""

    def __init__(self, tmp: str, log):
        self.tmp = tmp
        self.log = log
        self.count = 0

    def folder(self, name: str) -> str:
        self.count += 1
        path = os.path.join(self.tmp, f"{self.count:03d}-{name}")
        os.makedirs(path)
        return path

    def env(self, cache: str | None) -> dict:
        env = {k: v for k, v in _ENV0.items() if k not in DROP_ENV}
        env["GAMELAB_CACHE_DIR"] = cache or os.path.join(self.tmp, "cache-unused")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(self, label: str, argv: list[str], *, timeout: float, cache: str | None = None,
            compiles: bool = False, progress: bool = False) -> dict:
        """Run ``argv`` (``compiles``: through :data:`WRAPPER`, counting compilations); wall time from
        ``Popen`` to exit, the time of the first progress frame with a step done (``progress``),
        stdout/stderr, the load average after it. Raises :class:`CommandFailed` on a non-zero exit
        or a timeout."""
        env = self.env(cache)
        record = None
        if compiles:
            record = os.path.join(self.folder("compiles"), "compiles.json")
            env["GAMELAB_BENCH_COMPILES"] = record
            argv = [sys.executable, "-c", WRAPPER, *argv]
        chunks = {"out": [], "err": []}
        first = [None]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

        def drain(stream, key):
            fd = stream.fileno()
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                chunks[key].append(data)
                if key == "err" and progress and first[0] is None:
                    now = time.perf_counter()
                    text = b"".join(chunks["err"]).decode("utf-8", "replace")
                    if PROGRESS.search(text):
                        first[0] = now - t0

        readers = [threading.Thread(target=drain, args=(proc.stdout, "out"), daemon=True),
                   threading.Thread(target=drain, args=(proc.stderr, "err"), daemon=True)]
        for r in readers:
            r.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)  # its own session: the command and whatever it started
            except ProcessLookupError:
                pass
            proc.wait()
            raise CommandFailed(f"{label}: timed out after {timeout:.0f} s")
        wall = time.perf_counter() - t0
        for r in readers:
            r.join(timeout=10)
        out = b"".join(chunks["out"]).decode("utf-8", "replace")
        err = b"".join(chunks["err"]).decode("utf-8", "replace")
        load = load1()
        if rc != 0:
            tail = (err.strip() or out.strip())[-800:]
            raise CommandFailed(f"{label}: exit status {rc}: {tail}")
        sample = {"wall_s": wall, "load1": load, "stdout": out, "stderr_tail": err[-2000:]}
        if progress:
            sample["first_step_s"] = first[0]
        if record is not None:
            try:
                with open(record) as fh:
                    sample["compiles"] = summarize_compiles(json.load(fh))
            except (OSError, ValueError) as exc:
                sample["compiles"] = {"error": f"no compilation record ({exc})"}
        extra = ""
        if progress and first[0] is not None:
            extra = f", first step at {common.fmt_time(first[0])}"
        if record is not None and "real" in sample["compiles"]:
            c = sample["compiles"]
            extra += f", {c['real']} compilations ({c['simulation_real']} of the simulation), {c['hits']} cache hits"
        self.log(f"  {label}: {common.fmt_time(wall)}{extra} (load average {load})")
        return sample


def summarize_compiles(events: list[dict]) -> dict:
    real = [e for e in events if not e["hit"]]
    hits = [e for e in events if e["hit"]]
    sim = [e for e in events if SIMULATION.search(e["fun"])]
    return {
        "requests": len(events), "real": len(real), "hits": len(hits),
        "real_s": round(sum(e["s"] for e in real), 3),
        "simulation_real": sum(not e["hit"] for e in sim), "simulation_hits": sum(e["hit"] for e in sim),
        "simulation_names": sorted({e["fun"] for e in sim}),
        "real_by_name": _by_name(real),
    }


def _by_name(events: list[dict]) -> dict:
    """``{function: [compilations, seconds]}``, the longest first."""
    out: dict = {}
    for e in events:
        k = out.setdefault(e["fun"], [0, 0.0])
        k[0] += 1
        k[1] = round(k[1] + e["s"], 3)
    return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))


# ------------------------------------------------------------------------------ statistics and rows
def stats(samples: list[dict], key: str = "wall_s") -> dict:
    values = [s[key] for s in samples if s.get(key) is not None]
    loads = [s["load1"] for s in samples if s.get("load1") is not None]
    return {"median_s": statistics.median(values) if values else None, "min_s": min(values) if values else None,
            "n": len(values), "load1": [min(loads), max(loads)] if loads else None}


def row(figure: str, st: dict | None, *, ratio=None, ratio_of: str = "", target: str = "", met=None, detail: str = "",
        value: str | None = None) -> dict:
    return {"figure": figure, "median_s": None if st is None else st["median_s"], "min_s": None if st is None else st["min_s"],
            "n": None if st is None else st["n"], "value": value, "ratio": ratio, "ratio_of": ratio_of,
            "target": target, "met": met, "load1": None if st is None else st["load1"], "detail": detail}


def _ratio(a: dict, b: dict) -> float | None:
    if a.get("median_s") and b.get("median_s"):
        return a["median_s"] / b["median_s"]
    return None


def _compiles_text(samples: list[dict], simulation: bool = True) -> str:
    """The last sample's compilations: real ones (their time; of the simulation program, or the
    names compiled most), cache hits."""
    cs = [s.get("compiles") or {} for s in samples]
    cs = [c for c in cs if "real" in c]
    if not cs:
        return "compilations not recorded"
    c = cs[-1]
    same = all((x["real"], x["hits"], x["simulation_real"]) == (c["real"], c["hits"], c["simulation_real"]) for x in cs)
    if simulation:
        which = f"simulation program: {c['simulation_real']}"
    else:
        top = list(c["real_by_name"].items())[:3]
        which = ("longest: " + ", ".join(f"{n} {common.fmt_time(t)}" for n, (_, t) in top)) if top else "none"
    return (f"{c['real']} XLA compilations ({c['real_s']:.2f} s; {which}), "
            f"{c['hits']} persistent-cache hits" + ("" if same else " (last sample; they varied)"))


# ------------------------------------------------------------------------------ the parts
def part_help(runner: Runner, reps: int, timeout: float) -> dict:
    cmds = {"import jax": [sys.executable, "-c", "import jax"], "gamelab --help": gamelab_command() + ["--help"]}
    for label, argv in cmds.items():  # warm-up (untimed): the OS's file cache, .pyc files
        runner.run(label + " (warm-up)", argv, timeout=timeout)
    samples = {k: [] for k in cmds}
    for _ in range(reps):
        for label, argv in cmds.items():
            samples[label].append(runner.run(label, argv, timeout=timeout))
    imp, hlp = stats(samples["import jax"]), stats(samples["gamelab --help"])
    r = _ratio(hlp, imp)
    rows = [row('`python -c "import jax"`', imp),
            row("`gamelab --help`", hlp, ratio=r, ratio_of='/ import jax', target="≤ 0.3×",
                met=None if r is None else r <= 0.3,
                detail=f"console script {cmds['gamelab --help'][0]}; ratio of minima "
                       f"{common.fmt_ratio(hlp['min_s'] / imp['min_s'])}")]
    return {"samples": samples, "rows": rows}


def part_run(runner: Runner, reps: int, timeout: float) -> dict:
    cmds = {"numpy": [sys.executable, "-c", NUMPY_SCRIPT], "import": [sys.executable, "-c", "import gamelab.run"]}
    for label, argv in cmds.items():
        runner.run(label + " (warm-up)", argv, timeout=timeout)
    samples = {"numpy": [], "import": [], "cold": [], "warm": []}
    for _ in range(reps):
        samples["numpy"].append(runner.run("NumPy script", cmds["numpy"], timeout=timeout))
        samples["import"].append(runner.run("import gamelab.run", cmds["import"], timeout=timeout))
        cache = runner.folder("cache-run")  # empty
        samples["cold"].append(runner.run("gamelab run, cold", RUN_ARGS, timeout=timeout, cache=cache, compiles=True))
        samples["warm"].append(runner.run("gamelab run, warm", RUN_ARGS, timeout=timeout, cache=cache, compiles=True))
    st = {k: stats(v) for k, v in samples.items()}

    def final(sample):
        m = FINAL_LINE.search(sample["stdout"])
        return m.group(1) if m else "?"

    gaps = (f"final duality gap NumPy {final(samples['numpy'][-1])}, gamelab {final(samples['cold'][-1])} "
            f"(cold) / {final(samples['warm'][-1])} (warm)")
    rw, rc = _ratio(st["warm"], st["import"]), _ratio(st["cold"], st["import"])
    rows = [
        row("NumPy script, 1000 MWU steps, every metric (python -c)", st["numpy"], detail=gaps),
        row('`python -c "import gamelab.run"`', st["import"],
            ratio=_ratio(st["import"], st["numpy"]), ratio_of="/ NumPy script"),
        row("`gamelab run mwu rps --steps 1000`, cold (empty cache)", st["cold"], ratio=rc, ratio_of="/ import gamelab.run",
            detail=f"{common.fmt_ratio(_ratio(st['cold'], st['numpy']))} NumPy; {_compiles_text(samples['cold'])}"),
        row("`gamelab run mwu rps --steps 1000`, warm (cache filled)", st["warm"], ratio=rw,
            ratio_of="/ import gamelab.run", target="≤ 1.5×", met=None if rw is None else rw <= 1.5,
            detail=f"{common.fmt_ratio(_ratio(st['warm'], st['numpy']))} NumPy, "
                   f"{common.fmt_ratio(_ratio(st['warm'], st['cold']))} cold; {_compiles_text(samples['warm'])}"),
    ]
    return {"samples": samples, "rows": rows}


def read_table(out: str):
    """A sweep's rows, in a fixed order: ``pandas.read_parquet`` of its chunks folder."""
    import pandas as pd

    df = pd.read_parquet(os.path.join(out, "chunks"))
    keys = [k for k in ("run", "step", "iterate") if k in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def identical(a, b) -> tuple[bool, str]:
    """Whether two tables are the same bit for bit (floats compared as their bit patterns)."""
    import numpy as np

    if list(a.columns) != list(b.columns):
        return False, f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"
    if a.shape != b.shape:
        return False, f"shapes differ: {a.shape} vs {b.shape}"
    differ = []
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype != y.dtype:
            differ.append(f"{c} (dtype)")
        elif x.dtype.kind == "f":
            if not np.array_equal(x.view(f"u{x.dtype.itemsize}"), y.view(f"u{y.dtype.itemsize}")):
                differ.append(c)
        elif not a[c].equals(b[c]):
            differ.append(c)
    return (not differ), ("identical" if not differ else "columns differ: " + ", ".join(differ))


def part_sweep(runner: Runner, reps: int, timeout: float, tables: str) -> dict:
    spec = os.path.join(runner.folder("spec"), "sweep.toml")
    with open(spec, "w") as fh:
        fh.write(SWEEP_SPEC)
    samples = {"first": [], "second": [], "imports": []}
    same, notes = [], []
    runner.run("sweep imports (warm-up)", SWEEP_IMPORTS, timeout=timeout)
    for i in range(reps):
        samples["imports"].append(runner.run("the sweep's imports alone", SWEEP_IMPORTS, timeout=timeout))
        cache = runner.folder("cache-sweep")
        outs = [runner.folder("sweep-first"), runner.folder("sweep-second")]
        for key, out in zip(("first", "second"), outs):
            os.rmdir(out)  # the command makes it
            samples[key].append(runner.run(f"gamelab sweep, {key}", ["sweep", spec, "--out", out], timeout=timeout,
                                           cache=cache, compiles=True))
        try:
            a, b = read_table(outs[0]), read_table(outs[1])
            ok, why = identical(a, b)
            same.append(ok)
            notes.append(why)
            if i == reps - 1:
                os.makedirs(tables, exist_ok=True)
                a.to_parquet(os.path.join(tables, "sweep_first.parquet"))
                b.to_parquet(os.path.join(tables, "sweep_second.parquet"))
                notes.append(f"{len(a)} rows, {a['run'].nunique() if 'run' in a else '?'} runs")
        except Exception as exc:  # noqa: BLE001 - reported, the other figures stand
            same.append(None)
            notes.append(f"tables not compared: {type(exc).__name__}: {exc}")
    st = {k: stats(v) for k, v in samples.items()}
    r = _ratio(st["first"], st["second"])
    first_c = [s.get("compiles", {}) for s in samples["first"]]
    sim = [c.get("simulation_real") for c in first_c if "real" in c]
    sim_max = max(sim) if sim else None
    second_sim = [s.get("compiles", {}).get("simulation_real") for s in samples["second"]]
    rows = [
        row(f"`gamelab sweep` {SWEEP_RUNS} runs × 1000 steps, first (empty cache)", st["first"],
            detail=_compiles_text(samples["first"])),
        row("`gamelab sweep`, second (same cache, new --out)", st["second"], ratio=r, ratio_of="first / second",
            target="≥ 4×", met=None if r is None else r >= 4.0, detail=_compiles_text(samples["second"])),
        _floor_row("a second sweep", st["imports"], st["first"], SWEEP_IMPORTS, 4.0),
        row("XLA compilations of the simulation program, first sweep", None,
            value="—" if sim_max is None else str(sim_max), target=f"≤ {SWEEP_ALGORITHMS} (one per algorithm)",
            met=None if sim_max is None else sim_max <= SWEEP_ALGORITHMS,
            detail="names: " + (", ".join(sorted({n for c in first_c for n in c.get("simulation_names", [])})) or "—")
                   + "; second sweep: " + ", ".join(map(str, second_sim)) + " (the rest cache hits)"),
        row("first and second sweep's rows bit for bit", None,
            value="identical" if same and all(same) else ("not compared" if None in same else "differ"),
            target="identical", met=None if None in same or not same else all(same),
            detail="; ".join(notes) + f"; tables: {os.path.join(tables, 'sweep_{first,second}.parquet')}"),
    ]
    return {"samples": samples, "rows": rows, "identical": same}


def part_llm(runner: Runner, reps: int, timeout: float) -> dict:
    samples = {"cold": [], "warm": [], "imports": []}
    runner.run("llm imports (warm-up)", LLM_IMPORTS, timeout=timeout)
    for _ in range(reps):
        samples["imports"].append(runner.run("the llm run's imports alone", LLM_IMPORTS, timeout=timeout))
        cache = runner.folder("cache-llm")
        for key in ("cold", "warm"):
            out = runner.folder(f"llm-{key}")
            samples[key].append(runner.run(f"gamelab llm run, {key}", LLM_ARGS + ["--out", out], timeout=timeout,
                                           cache=cache, compiles=True, progress=True))
    for s in samples["cold"] + samples["warm"]:
        s["ttfs_s"] = s["first_step_s"] if s.get("first_step_s") is not None else s["wall_s"]
    imports = stats(samples.pop("imports"))
    seen = all(s.get("first_step_s") is not None for s in samples["cold"] + samples["warm"])
    method = "first bar frame 1/1" if seen else "whole command (no bar frame seen in some samples)"
    st = {k: stats(v, "ttfs_s") for k, v in samples.items()}
    whole = {k: stats(v) for k, v in samples.items()}
    r = _ratio(st["warm"], st["cold"])
    rows = [
        row("`gamelab llm run mwu --game cyclic:rule=count`, time to first step, cold", st["cold"],
            detail=f"{method}; whole command {common.fmt_time(whole['cold']['median_s'])}; "
                   f"{_compiles_text(samples['cold'], simulation=False)}"),
        row("the same, warm (cache filled, new --out)", st["warm"], ratio=r, ratio_of="warm / cold", target="≤ 0.25×",
            met=None if r is None else r <= 0.25,
            detail=f"{method}; whole command {common.fmt_time(whole['warm']['median_s'])}; "
                   f"{_compiles_text(samples['warm'], simulation=False)}"),
        _floor_row("a warm first step", imports, st["cold"], LLM_IMPORTS, 1 / 0.25),
    ]
    return {"samples": samples, "rows": rows}


def _floor_row(what: str, imports: dict, base: dict, argv: list[str], factor: float) -> dict:
    """The libraries a command imports before its first step, timed alone: a floor under ``what``,
    beside the time the target allows it (``base`` / ``factor``)."""
    allowed = None if base["median_s"] is None else base["median_s"] / factor
    return row(f"`python -c \"{argv[-1]}\"` (its imports alone: a floor under {what})", imports,
               detail="" if allowed is None or imports["median_s"] is None else
               f"the target allows {what} {common.fmt_time(allowed)}; these imports alone take "
               f"{common.fmt_ratio(imports['median_s'] / allowed)} of that")


# ------------------------------------------------------------------------------ output
def format_rows(rows: list[dict]) -> str:
    body = []
    for r in rows:
        if r["value"] is not None:
            value = r["value"]
        elif r["median_s"] is None:
            value = "—"
        else:
            value = f"{common.fmt_time(r['median_s'])} (min {common.fmt_time(r['min_s'])}, n={r['n']})"
        ratio = "" if r["ratio"] is None else f"{common.fmt_ratio(r['ratio'])} {r['ratio_of']}"
        met = "" if r["met"] is None else ("met" if r["met"] else "**missed**")
        load = "" if not r["load1"] else (f"{r['load1'][0]:.2f}" if r["load1"][0] == r["load1"][1]
                                           else f"{r['load1'][0]:.2f}–{r['load1'][1]:.2f}")
        body.append([r["figure"], value, ratio, r["target"], met, load, r["detail"]])
    return common.table(["figure", "median (min, samples)", "ratio", "target", "", "load average (1 min)", "detail"], body)


def _dirty() -> str:
    try:
        out = subprocess.run(["git", "status", "--short", "--", "gamelab"], capture_output=True, text=True, cwd=ROOT,
                             timeout=10).stdout
        files = [line[3:] for line in out.splitlines() if line.strip()]
        if not files:
            return "gamelab/ clean"
        more = f", … ({len(files)} files)" if len(files) > 4 else ""
        return f"uncommitted changes in {', '.join(files[:4])}{more}"
    except Exception:  # noqa: BLE001
        return "git status unavailable"


def _strip(parts: dict) -> dict:
    """Samples without their captured output (the JSON keeps figures, not logs)."""
    out = {}
    for name, part in parts.items():
        p = dict(part)
        if "samples" in p:
            p["samples"] = {k: [{kk: vv for kk, vv in s.items() if kk not in ("stdout", "stderr_tail")} for s in v]
                            for k, v in p["samples"].items()}
        out[name] = p
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repetition of each command")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    ap.add_argument("--repeats", type=int, default=None,
                    help="repetitions of each timed command (default: help 5, run 3, sweep 2, llm 3; --quick 1)")
    ap.add_argument("--json", default=None, metavar="PATH", help="save the figures and every sample here")
    ap.add_argument("--tables", default=os.path.join("outputs", "benchmarks", "interactive"), metavar="DIR",
                    help="where the two sweeps' tables are saved (sweep_first.parquet, sweep_second.parquet)")
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every command's timeout")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.repeats is not None and args.repeats < 1:
        ap.error("--repeats must be at least 1")
    default_reps = {"help": 5, "run": 3, "sweep": 2, "llm": 3}

    def reps(part):
        return args.repeats or (1 if args.quick else default_reps[part])

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    load_start = load1()
    log(f"load average at start: {load_start}; {_dirty()}")
    if load_start and load_start > 0.5 * (os.cpu_count() or 1):
        log("warning: the machine is busy (load average above half its cores): absolute times are noisy, "
            "the ratios of commands timed in turn less so")
    results: dict = {"config": vars(args), "load1_start": load_start, "parts": {}, "rows": []}
    tmp = tempfile.mkdtemp(prefix="gamelab-interactive-")
    try:
        runner = Runner(tmp, log)
        for part in PARTS:
            if part not in parts:
                continue
            log(f"{part}:")
            timeout = TIMEOUT_S[part] * args.timeout_scale
            try:
                if part == "help":
                    res = part_help(runner, reps(part), timeout)
                elif part == "run":
                    res = part_run(runner, reps(part), timeout)
                elif part == "sweep":
                    res = part_sweep(runner, reps(part), timeout, args.tables)
                else:
                    res = part_llm(runner, reps(part), timeout)
            except Exception as exc:  # noqa: BLE001 - one part's failure is reported, the others run
                msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CommandFailed) else str(exc)
                msg = " ".join(msg.split())[:600]
                log(f"  {part} failed: {msg}")
                res = {"error": msg, "rows": [row(f"{part}: failed", None, value="failed", detail=msg.replace("|", "/"))]}
            results["parts"][part] = res
            results["rows"] += res["rows"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        mach = common.machine()
        mach["load_average_1min"] = load_start
        header = "Machine: " + common.describe_machine(mach)
    except Exception as exc:  # noqa: BLE001
        mach, header = {"error": str(exc)}, f"Machine: not described ({exc})"
    results["machine"] = mach
    results["working_tree"] = _dirty()
    results["total_s"] = time.perf_counter() - t_start
    results["load1_end"] = load1()
    print(header)
    print(f"working tree: {results['working_tree']}; load average at start {load_start}, at end {results['load1_end']}; "
          f"{results['total_s']:.0f} s in all\n")
    print(format_rows(results["rows"]))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        saved = dict(results, parts=_strip(results["parts"]))
        with open(args.json, "w") as fh:
            json.dump(saved, fh, indent=1, default=str)
        print(f"\nwrote {args.json}")
    failed = [p for p, r in results["parts"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
