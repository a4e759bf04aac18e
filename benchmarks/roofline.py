"""Roofline reference: a bare jitted batched step — only the matvec and the log-softmax.

``log π ← log_softmax(log π + η·Pπ)`` (MWU's update) under ``lax.scan``, vmapped over the batch,
float64, nothing recorded: no engine can take a step with less work. A second variant also
records the gap every step, computed from the *same* matvec (``max_y g_y − ½`` with g = Pπ_t, the
gap of the policy the step starts from), which shows what per-step recording has to cost at
least; a third runs the bare step in float32 (gamelab's optional precision). gamelab's MWU, OMWU
and INPO per step (float64) are compared against the float64 bare step. A batch is sharded over
the local devices exactly as gamelab's runs are (one per core with ``--cpu-devices``' default).
"""
from __future__ import annotations

from functools import partial

import numpy as np

import common
from dynamics import ETA, FAST, gamelab_runner, runs_mesh, workloads


def _bare():
    import jax
    import jax.numpy as jnp
    from jax import lax

    matvec = jax.vmap(lambda P, p: P @ p)

    @partial(jax.jit, static_argnames=("steps", "record"))
    def bare(P, logp, eta, *, steps: int, record: bool):
        def body(logp, _):
            g = matvec(P, jnp.exp(logp))
            return jax.nn.log_softmax(logp + eta * g), (jnp.max(g, axis=-1) - 0.5 if record else None)

        return lax.scan(body, logp, None, length=steps)

    return bare


def run(quick: bool = False, large_steps: int = 1000, log=print, only=None) -> list[dict]:
    import jax.numpy as jnp

    bare = _bare()
    rows = []
    for w in workloads(quick, large_steps, only):
        Ps = jnp.asarray(common.random_games(w.B, w.n, seed=0))
        logp = jnp.full((w.B, w.n), -np.log(w.n), dtype=jnp.float64)
        mesh = runs_mesh(w.B, True)  # the games sharded over the devices as gamelab's runs are
        if mesh is not None:
            from gamelab.hosts import shard_runs

            Ps, logp = shard_runs((Ps, logp), mesh)
        variants = (
            (False, jnp.float64, "bare step (matvec + log-softmax)"),
            (True, jnp.float64, "bare step + gap from the same matvec"),
            (False, jnp.float32, "bare step, float32"),
        )
        for record, dtype, label in variants:
            P_d, logp_d = Ps.astype(dtype), logp.astype(dtype)  # (astype keeps the sharding)

            def call(record=record, P_d=P_d, logp_d=logp_d):
                return bare(P_d, logp_d, ETA, steps=w.steps, record=record)

            _, first = common.timed(call)
            m = common.measure(call, repeats=w.repeats, warmup=0)
            rows.append({
                "workload": w.name, "B": w.B, "n": w.n, "steps": w.steps, "impl": label,
                "median_s": m["median_s"], "samples_s": m["samples_s"],
                "compile_s": max(first - m["median_s"], 0.0),
                "per_step_s": m["median_s"] / w.steps, "per_game_step_s": m["median_s"] / (w.B * w.steps),
            })
        # the same bare step and gamelab's (gap only) timed in turn: ratios robust to load changes
        calls = {"bare": lambda P_d=Ps, logp_d=logp: bare(P_d, logp_d, ETA, steps=w.steps, record=False)}
        for algo in FAST:
            calls[algo] = gamelab_runner(algo, np.asarray(Ps), w.steps, 1)[0]
        timed = common.measure_interleaved(calls, repeats=w.repeats)
        for key, m in timed.items():
            rows.append({
                "workload": w.name, "B": w.B, "n": w.n, "steps": w.steps,
                "impl": "interleaved: bare step" if key == "bare" else f"interleaved: gamelab {key}",
                "algorithm": None if key == "bare" else key, "median_s": m["median_s"], "samples_s": m["samples_s"],
                "per_step_s": m["median_s"] / w.steps, "per_game_step_s": m["median_s"] / (w.B * w.steps),
            })
        del calls
        log(f"roofline: {w.name} done")
    return rows


def tables(rows: list[dict], dyn_rows: list[dict]) -> str:
    def find(wname, algo, impl):
        return next((r for r in dyn_rows if r["workload"] == wname and r["algorithm"] == algo and r["impl"] == impl), None)

    body = []
    for wname in dict.fromkeys(r["workload"] for r in rows):
        bare = next(r for r in rows if r["workload"] == wname and r["impl"].startswith("bare step ("))
        withgap = next(r for r in rows if r["workload"] == wname and r["impl"].endswith("matvec"))
        f32 = next((r for r in rows if r["workload"] == wname and r["impl"].endswith("float32")), None)
        for algo in FAST:
            g = find(wname, algo, "gamelab")
            ge = find(wname, algo, "gamelab, record_every=T")
            gi, bi = same_window_ratio(rows, wname, algo) or (None, None)
            T = bare["steps"]
            body.append([
                wname, T, algo, common.fmt_time(bare["per_step_s"]), common.fmt_time(withgap["per_step_s"]),
                common.fmt_time(f32["per_step_s"] if f32 else None),
                common.fmt_time(g["median_s"] / T if g else None), common.fmt_time(ge["median_s"] / T if ge else None),
                common.fmt_time(bi), common.fmt_time(gi), common.fmt_ratio(gi / bi if gi else None),
            ])
    return "### Roofline: time per step against a bare jitted batched step\n\n" + common.table(
        ["workload", "T", "algorithm", "bare step", "bare + gap (shared matvec)", "bare step, float32",
         "gamelab gap only (dynamics)", "gamelab record_every=T (dynamics)", "bare step (timed in turn)",
         "gamelab gap only (timed in turn)", "gamelab / bare (timed in turn)"], body) + (
        "\n\nThe last three columns time the bare step and gamelab's MWU, OMWU and INPO (gap recorded "
        "every step) in turn, round after round, so that a change in the machine's load hits them "
        "alike; the other columns come from separate runs.\n")


def same_window_ratio(rows: list[dict], wname: str, algo: str):
    """(gamelab's step, the bare step) per step, both timed in turn (None if not measured)."""
    g = next((r for r in rows if r["workload"] == wname and r["impl"] == f"interleaved: gamelab {algo}"), None)
    b = next((r for r in rows if r["workload"] == wname and r["impl"] == "interleaved: bare step"), None)
    return (g["per_step_s"], b["per_step_s"]) if g and b else None
