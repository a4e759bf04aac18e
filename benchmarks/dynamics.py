"""Dynamics: the same T-step runs (gap recorded every step) through gamelab, NumPy and peers.

For every workload (B games × n responses × T steps) and algorithm:

* **gamelab** — the jitted, vmapped driver ``gamelab.run.simulate_batch_jit`` on prebuilt device
  arrays, exactly the arguments ``run_batch`` builds (uniform start and reference, no KL target):
  host-side validation is *not* in the timed region. The workload's column records the
  last-iterate exploitability every step and nothing else (``metrics=("exploitability",)``,
  ``record_average=False``: the issue's "last-iterate gap recorded every step"; an older gamelab
  without ``metrics`` records all its last-iterate metrics). ``compile_s`` = first call − median.
  Diagnostics per workload: ``gamelab, all last-iterate metrics`` (exploitability, duality gap,
  entropy, win rate against the reference; regularized gap for INPO, its τ as the metric's τ),
  ``gamelab, + average-iterate metrics`` (every metric of both iterates: ``run_batch``'s default),
  ``gamelab, record_every=T`` (the gap only at the end: the cost of the step alone) and, for MWU,
  ``gamelab run_batch`` end to end with the workload's recording (validation of every game on the
  host included).
* **NumPy per-game loop** — :func:`numpy_ref.per_game_loop` (one game after another); on big
  batches only the first ``loop_games`` games are timed and the time is scaled by B/loop_games.
* **NumPy batched** — :func:`numpy_ref.batched` (one loop over steps, batched products).
* **peers** — :mod:`peers` (nashpy, OpenSpiel) on ``peer_games`` games (scaled by B/peer_games;
  very slow peers also on fewer steps, scaled by T/steps).

Every figure is a median over repeats after a warm-up, for the *whole workload* (scaled where
stated); ``per_game_step`` divides it by B·T. gamelab's column, the NumPy loop and NumPy batched —
the three the targets compare — are timed in turn, round after round
(:func:`common.measure_interleaved`), so that another process starting or stopping on a shared
machine moves all three alike.
"""
from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

import common
import numpy_ref
import peers as peers_mod

FAST = ("mwu", "omwu", "inpo")  # the algorithms the targets name
CLASSICAL = ("replicator", "fictitious_play", "regret_matching")  # the peers' equivalents
ETA, TAU = 0.1, 0.1


class Workload(NamedTuple):
    name: str
    B: int
    n: int
    steps: int
    algorithms: tuple[str, ...]
    loop_games: int  # games timed in the per-game NumPy loop (scaled to B)
    peer_games: int  # games timed for the peers (0: peers not run on this workload)
    repeats: int
    warmup: int  # 0 for workloads where one run takes seconds (the first gamelab call is then
    #              the warm-up/compile call and is excluded anyway)
    batched_games: int = 0  # games timed in batched NumPy (scaled to B); 0: all B


HUGE = "B=1000000"  # the accelerator workload: in the default run only off the CPU (name it to run it here)
DIAGNOSTICS_MAX = 10**8  # game-steps above which the diagnostic columns (traces of every metric) are skipped


def workloads(quick: bool, large_steps: int, only=None) -> list[Workload]:
    """The workloads; ``only``: names' parts to keep (e.g. ``["n=1000", "n=4000"]``; None: all)."""
    every = _workloads(quick, large_steps)
    if not only:
        import jax

        on_cpu = jax.default_backend() == "cpu"
        return [w for w in every if not (on_cpu and w.name.startswith(HUGE))]
    return [w for w in every if set(only) & set(w.name.split(" × "))]


def _workloads(quick: bool, large_steps: int) -> list[Workload]:
    if quick:
        return [
            Workload("B=64 × n=10", 64, 10, 100, FAST + CLASSICAL, 8, 2, 3, 1),
            Workload("B=8 × n=100", 8, 100, 100, FAST, 4, 0, 3, 1),
            Workload("B=1 × n=1000", 1, 1000, 50, ("mwu",), 1, 0, 2, 1),
        ]
    return [
        Workload("B=1024 × n=10", 1024, 10, 1000, FAST + CLASSICAL, 64, 8, 5, 1),
        Workload("B=64 × n=100", 64, 100, 1000, FAST + CLASSICAL, 64, 2, 3, 1),
        Workload("B=1 × n=1000", 1, 1000, 1000, FAST, 1, 0, 3, 1),
        Workload("B=1 × n=4000", 1, 4000, large_steps, FAST, 1, 0, 1, 0),
        Workload(f"{HUGE} × n=10", 10**6, 10, 1000, FAST, 64, 0, 3, 0, batched_games=16384),
    ]


def hparams_for(algo_obj) -> dict:
    return {k: v for k, v in {"eta": ETA, "tau": TAU}.items() if k in algo_obj.hparams._fields}


# ------------------------------------------------------------------------------ gamelab
def _supports(fn, name: str) -> bool:
    import inspect

    target = getattr(fn, "__wrapped__", fn)
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


GAP_ONLY = ("exploitability",)  # the workload's recording: the last-iterate gap, nothing else
ALL = None  # every metric gamelab can compute


def metrics_optional() -> bool:
    """Whether this gamelab records a chosen subset of metrics (``metrics=``)."""
    from gamelab.run import run_batch

    return _supports(run_batch, "metrics")


def _options(fn, metrics, average: bool) -> dict:
    out = {}
    if _supports(fn, "record_average"):
        out["record_average"] = average
    if metrics is not ALL and _supports(fn, "metrics"):
        out["metrics"] = metrics
    return out


def runs_mesh(B: int, sharded: bool):
    """The mesh gamelab's sweeps use for B runs: every local device that divides B (None: one device,
    or an older gamelab without ``gamelab.hosts``)."""
    if not sharded:
        return None
    try:
        from gamelab.hosts import local_mesh
    except ImportError:  # pragma: no cover - older gamelab
        return None
    return local_mesh(B)


def gamelab_runner(name: str, Ps: np.ndarray, steps: int, record_every: int = 1, metrics=GAP_ONLY,
                   average: bool = False, sharded: bool = True, dtype: str = "float64"):
    """Run the jitted batched driver once on prebuilt arguments (compiling it) and return
    ``(call, entry, gaps_of, first_output, first_seconds)``: ``call`` re-runs it, ``entry`` says
    which entry point it is (``run_batch`` if the private driver's signature changed), and
    ``gaps_of(output, games)`` extracts the (games, T + 1) last-iterate exploitability trace of the
    first ``games`` runs (sliced before it leaves the device: at B = 10⁶ the whole is 8 GB).

    ``metrics``: the names recorded (``ALL``: every metric, the regularized gap with the
    algorithm's τ); ``average``: also track the average iterate and record its metrics.
    ``sharded``: the runs sharded over every local device, as a sweep runs them (one device per
    core after ``gamelab.hosts.use_cpu_cores``); False: one device. ``dtype``: float64 (gamelab's
    default) or float32 (games, policies and hyper-parameters in single precision)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from gamelab.algorithms import get_algorithm

    algo = get_algorithm(name)
    B, n = Ps.shape[0], Ps.shape[-1]
    hp_values = hparams_for(algo)
    try:
        from gamelab.games import Game
        from gamelab.prepare import cast_hparams, metric_tau_of, row_bucket
        from gamelab.run import simulate_batch, simulate_batch_jit

        hp = algo.make_hparams(**{k: np.full(B, v) for k, v in hp_values.items()})
        ftype = jnp.dtype(dtype)
        hp = cast_hparams(hp, ftype)
        tau = metric_tau_of(algo, hp, None)
        if metrics is not ALL and "regularized_gap" not in metrics:
            tau = None
        logp = jnp.full((B, n), -np.log(n), dtype=ftype)
        args = (Game(jnp.asarray(Ps, dtype=ftype)), hp, logp, logp, None,
                None if tau is None else jnp.broadcast_to(jnp.asarray(tau, ftype), (B,)))
        real_rows = -(-steps // record_every) + 1  # the driver's trace is bucketed: cut it
        kwargs = {"rows": row_bucket(real_rows), **_options(simulate_batch, metrics, average)}
        mesh = runs_mesh(B, sharded)
        from gamelab.hosts import shard_runs

        args = shard_runs(args, mesh)  # on the devices before the timed region (one device: mesh None)
        # the traced step counts are arguments like the others: on the devices before the timed region
        # (as host scalars every call would also time their copy to each device: 70 µs a call on 2
        # devices, a sixth of the B=64 × n=10 workload)
        where = None if mesh is None else NamedSharding(mesh, PartitionSpec())  # None: the default device
        counts = jax.device_put((np.int32(steps), np.int32(record_every)), where)

        def call():
            return simulate_batch_jit(algo, *args, *counts, **kwargs)

        out, first = common.timed(call)
        return call, "kernel", lambda o, games=None: np.asarray(o[2]["exploitability"][:games, :real_rows]), out, first
    except (ImportError, TypeError, AttributeError, ValueError) as exc:  # pragma: no cover - engine refactors
        print(f"  [gamelab private driver unavailable ({exc}); timing run_batch instead]", file=sys.stderr)
        call = gamelab_run_batch(name, Ps, steps, record_every, metrics, average)
        out, first = common.timed(call)
        return call, "run_batch", lambda o, games=None: np.asarray(o.trace["exploitability"][:games]), out, first


def gamelab_run_batch(name: str, Ps: np.ndarray, steps: int, record_every: int = 1, metrics=GAP_ONLY,
                      average: bool = False):
    """``run_batch`` end to end: host validation of every game, argument building, the run."""
    from gamelab.algorithms import get_algorithm
    from gamelab.run import run_batch

    hp = hparams_for(get_algorithm(name))
    games = list(Ps)
    extra = _options(run_batch, metrics, average)
    return lambda: run_batch(name, games, steps=steps, record_every=record_every, hparams=hp, target=None, **extra)


# ------------------------------------------------------------------------------ one workload
def _row(w: Workload, algo: str, impl: str, m: dict, *, scale: float = 1.0, games: int | None = None,
         steps: int | None = None, **extra) -> dict:
    total = m["median_s"] * scale
    return {
        "workload": w.name, "B": w.B, "n": w.n, "steps": w.steps, "algorithm": algo, "impl": impl,
        "median_s": total, "measured_median_s": m["median_s"], "samples_s": m["samples_s"],
        "warmup_s": m.get("warmup_s"), "scale": scale, "games_timed": games or w.B,
        "steps_timed": steps or w.steps, "per_game_step_s": total / (w.B * w.steps), **extra,
    }


def run_workload(w: Workload, *, with_peers: bool, log=print) -> list[dict]:
    Ps = common.random_games(w.B, w.n, seed=0)
    rows: list[dict] = []
    optional = metrics_optional()
    for algo in w.algorithms:
        # gamelab: the workload (the last-iterate gap every step), then diagnostics
        call, entry, gaps_of, out, first = gamelab_runner(algo, Ps, w.steps, 1)
        # the three columns the targets compare are timed in turn (robust to load changes)
        sub = Ps[: w.loop_games]
        trio = {"gamelab": call,
                "loop": lambda sub=sub: numpy_ref.per_game_loop(algo, sub, w.steps, eta=ETA, tau=TAU)}
        mesh = runs_mesh(w.B, True)
        if mesh is not None:  # also on one device: what the cores add
            trio["one device"] = gamelab_runner(algo, Ps, w.steps, 1, sharded=False)[0]
        batched_sub = Ps[: w.batched_games or w.B]
        if w.B > 1:
            trio["batched"] = lambda: numpy_ref.batched(algo, batched_sub, w.steps, eta=ETA, tau=TAU)
        timed = common.measure_interleaved(trio, repeats=w.repeats, warmup=w.warmup)
        m = timed["gamelab"]
        compile_s = max(first - m["median_s"], 0.0)
        ref = numpy_ref.batched(algo, Ps[: min(w.B, 16)], w.steps, eta=ETA, tau=TAU)
        diff = float(np.max(np.abs(gaps_of(out, len(ref)) - ref)))
        del out
        rows.append(_row(w, algo, "gamelab", m, compile_s=compile_s, entry=entry, max_gap_diff_vs_numpy=diff,
                         metrics="exploitability" if optional else "all last-iterate",
                         devices=1 if mesh is None else int(mesh.size)))
        if "one device" in timed:
            rows.append(_row(w, algo, "gamelab, one device", timed["one device"], devices=1))
        f32, *_ = gamelab_runner(algo, Ps, w.steps, 1, dtype="float32")
        rows.append(_row(w, algo, "gamelab, float32", common.measure(f32, repeats=w.repeats, warmup=0)))
        del f32, _
        diagnostics = w.B * w.steps <= DIAGNOSTICS_MAX
        for label, kw in (("gamelab, all last-iterate metrics", dict(metrics=ALL)),
                          ("gamelab, + average-iterate metrics", dict(metrics=ALL, average=True))):
            if not diagnostics or (label.endswith("last-iterate metrics") and not optional):
                continue  # the workload's column already records them all
            diag, *_ = gamelab_runner(algo, Ps, w.steps, 1, **kw)
            rows.append(_row(w, algo, label, common.measure(diag, repeats=w.repeats, warmup=0)))
            del diag, _
        call_end, *_ = gamelab_runner(algo, Ps, w.steps, w.steps)
        rows.append(_row(w, algo, "gamelab, record_every=T", common.measure(call_end, repeats=w.repeats, warmup=0)))
        del call_end, _
        if algo == "mwu" and diagnostics:
            e2e = gamelab_run_batch(algo, Ps, w.steps, 1)
            m_e2e = common.measure(e2e, repeats=max(3, w.repeats // 2), warmup=1)  # the warm-up call may compile
            rows.append(_row(w, algo, "gamelab run_batch (incl. host validation)", m_e2e))

        # NumPy: per-game loop (a subset, scaled) and batched, timed in turn with gamelab above
        rows.append(_row(w, algo, "NumPy per-game loop", timed["loop"], scale=w.B / len(sub), games=len(sub)))
        if w.B > 1:
            rows.append(_row(w, algo, "NumPy batched", timed["batched"], scale=w.B / len(batched_sub),
                             games=len(batched_sub)))
        log(f"  {w.name}: {algo} done")

    if with_peers and w.peer_games:
        available, _ = peers_mod.available_peers()
        for peer in available:
            if peer.max_n is not None and w.n > peer.max_n:
                continue
            steps = min(w.steps, peer.max_steps or w.steps)
            sub = Ps[: w.peer_games]

            def go(peer=peer, sub=sub, steps=steps):
                return [peer.fn(P, steps, ETA) for P in sub]

            m = common.measure(go, repeats=max(1, w.repeats // 2), warmup=1)
            scale = (w.B / len(sub)) * (w.steps / steps)
            rows.append(_row(w, peer.equivalent, peer.name, m, scale=scale, games=len(sub), steps=steps,
                             library=peer.library, per_step_gap=peer.per_step_gap, note=peer.note))
            log(f"  {w.name}: {peer.name} done")
    return rows


def run(quick: bool = False, with_peers: bool = True, large_steps: int = 1000, log=print, only=None) -> list[dict]:
    rows = []
    for w in workloads(quick, large_steps, only):
        log(f"dynamics: {w.name}, T={w.steps}")
        rows += run_workload(w, with_peers=with_peers, log=log)
    return rows


# ------------------------------------------------------------------------------ tables
def _get(rows, workload, algo, impl):
    for r in rows:
        if r["workload"] == workload and r["algorithm"] == algo and r["impl"] == impl:
            return r
    return None


def tables(rows: list[dict]) -> str:
    out = []
    for wname in dict.fromkeys(r["workload"] for r in rows):
        wr = [r for r in rows if r["workload"] == wname]
        B, n, T = wr[0]["B"], wr[0]["n"], wr[0]["steps"]
        loop_games = next((r["games_timed"] for r in wr if r["impl"] == "NumPy per-game loop"), B)
        body = []
        for algo in dict.fromkeys(r["algorithm"] for r in wr if r["impl"] == "gamelab"):
            g = _get(rows, wname, algo, "gamelab")
            ge = _get(rows, wname, algo, "gamelab, record_every=T")
            ga = _get(rows, wname, algo, "gamelab, + average-iterate metrics")
            gl = _get(rows, wname, algo, "gamelab, all last-iterate metrics")
            g1 = _get(rows, wname, algo, "gamelab, one device")
            g32 = _get(rows, wname, algo, "gamelab, float32")
            lp = _get(rows, wname, algo, "NumPy per-game loop")
            bt = _get(rows, wname, algo, "NumPy batched")
            body.append([
                algo, common.fmt_time(g["median_s"]), g.get("devices", 1), common.fmt_time(g["per_game_step_s"]),
                common.fmt_time(g.get("compile_s")), common.fmt_time(g32["median_s"] if g32 else None),
                common.fmt_time(gl["median_s"] if gl else None),
                common.fmt_time(ga["median_s"] if ga else None),
                common.fmt_time(ge["median_s"] if ge else None),
                common.fmt_time(lp["median_s"] if lp else None), common.fmt_time(bt["median_s"] if bt else None),
                common.fmt_ratio(lp["median_s"] / g["median_s"] if lp else None),
                common.fmt_ratio(bt["median_s"] / g["median_s"] if bt else None),
                common.fmt_time(g1["median_s"] if g1 else None),
                common.fmt_ratio(lp["median_s"] / g1["median_s"] if lp and g1 else None),
                common.fmt_ratio(bt["median_s"] / g1["median_s"] if bt and g1 else None),
                f"{g.get('max_gap_diff_vs_numpy', float('nan')):.0e}",
            ])
        e2e = _get(rows, wname, "mwu", "gamelab run_batch (incl. host validation)")
        scaled = f", NumPy loop timed on {loop_games} games and scaled ×{B // loop_games}" if loop_games < B else ""
        batched_games = next((r["games_timed"] for r in wr if r["impl"] == "NumPy batched"), B)
        if batched_games < B:
            scaled += f", NumPy batched on {batched_games} games and scaled ×{B / batched_games:.4g}"
        out.append(f"### Dynamics, {wname}, T = {T} (gap recorded every step{scaled})\n")
        out.append(common.table(
            ["algorithm", "gamelab (gap only)", "devices", "per game-step", "compile", "gamelab float32",
             "gamelab, all last-iterate metrics", "gamelab, all metrics + average iterate",
             "gamelab record_every=T",
             "NumPy loop", "NumPy batched", "loop / gamelab", "batched / gamelab",
             "gamelab, one device", "loop / one device", "batched / one device", "max |Δgap| vs NumPy"], body))
        if e2e:
            g = _get(rows, wname, "mwu", "gamelab")
            host = e2e["median_s"] - g["median_s"]
            host = (f"of which host-side {common.fmt_time(host)}" if host > 0.02 * g["median_s"]
                    else f"the host-side part within timing noise (driver alone {common.fmt_time(g['median_s'])})")
            out.append(f"\n`run_batch` end to end (MWU, gap only, host validation of {B} games included): "
                       f"{common.fmt_time(e2e['median_s'])}, {host}.")
        prs = [r for r in wr if r.get("library")]
        if prs:
            body = []
            for r in prs:
                eq = _get(rows, wname, r["algorithm"], "gamelab")
                fast = [_get(rows, wname, a, "gamelab") for a in FAST]
                slowest = max((f["median_s"] for f in fast if f), default=None)
                body.append([
                    r["impl"], r["algorithm"], common.fmt_time(r["per_game_step_s"]),
                    common.fmt_time(r["median_s"]), f"{r['games_timed']} × {r['steps_timed']}",
                    common.fmt_time(eq["median_s"] if eq else None),
                    common.fmt_ratio(r["median_s"] / eq["median_s"] if eq else None),
                    common.fmt_ratio(r["median_s"] / slowest if slowest else None),
                    ("every step" if r["per_step_gap"] else "end only") + "; " + r["note"],
                ])
            out.append(f"\n#### Peers' dynamics, {wname}, T = {T} (time for the whole workload, scaled "
                       f"from games × steps timed)\n")
            out.append(common.table(
                ["peer", "gamelab equivalent", "per game-step", f"{B} × {T} (scaled)", "timed",
                 "gamelab time (equivalent)", "peer / gamelab equivalent", "peer / slowest of gamelab MWU, OMWU, INPO",
                 "gap recorded; note"], body))
        out.append("")
    return "\n".join(out)
