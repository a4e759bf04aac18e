"""Shared pieces of the benchmarks: timing, machine description, games, tables.

Timing rule (every benchmark): one warm-up call first (compilation and caches; its time is
reported separately where it matters), then ``repeats`` timed calls; the figure reported is the
median. JAX results are forced with ``jax.block_until_ready`` inside the timed region.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from typing import Any, Callable

import numpy as np


# ------------------------------------------------------------------------------ timing
def block(x: Any) -> Any:
    """Wait for every JAX array in ``x`` (a pytree); NumPy values pass through."""
    try:
        import jax
    except ImportError:  # pragma: no cover - jax is a gamelab dependency
        return x
    return jax.block_until_ready(x)


def measure(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1, min_total_s: float = 0.5,
            max_repeats: int = 25) -> dict:
    """Median wall time of ``fn()`` after ``warmup`` untimed calls.

    At least ``repeats`` timed calls; short calls are repeated further (up to ``max_repeats``)
    until ``min_total_s`` seconds have been timed, so that a one-off stall (another process, a
    page fault) cannot move the median. Returns ``{"median_s", "samples_s", "warmup_s"}``;
    ``warmup_s`` is the first warm-up call (for jitted code: compilation plus one run).
    """
    warm = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        block(fn())
        warm.append(time.perf_counter() - t0)
    samples: list[float] = []
    while len(samples) < max(repeats, 1) or (sum(samples) < min_total_s and len(samples) < max_repeats):
        t0 = time.perf_counter()
        block(fn())
        samples.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(samples),
        "samples_s": samples,
        "warmup_s": warm[0] if warm else None,
    }


def measure_interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int = 3, warmup: int = 1,
                        min_total_s: float = 0.5, max_repeats: int = 25, turn_s: float = 0.2) -> dict[str, dict]:
    """Medians of several calls timed in turns (a, b, c, a, b, c, …) after ``warmup`` calls each, so
    that a change in the machine's load hits them alike and their *ratios* stay meaningful on a
    shared machine. In a turn a call runs back to back until ``turn_s`` seconds have passed; the
    first call of a turn with several is not recorded (it finds the caches as the previous call
    left them), so short calls are timed warm, as :func:`measure` times them. Turns continue until
    each call has ``repeats`` samples and ``min_total_s`` seconds timed (at most ``max_repeats``
    turns). Returns ``{name: {"median_s", "samples_s"}}``."""
    for _ in range(warmup):
        for fn in fns.values():
            block(fn())
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(max_repeats, 1)):
        for k, fn in fns.items():
            turn = []
            while not turn or sum(turn) < turn_s:
                t0 = time.perf_counter()
                block(fn())
                turn.append(time.perf_counter() - t0)
            samples[k] += turn[1:] if len(turn) > 1 else turn
        if min(map(len, samples.values())) >= max(repeats, 1) and min(map(sum, samples.values())) >= min_total_s:
            break
    return {k: {"median_s": statistics.median(v), "samples_s": v} for k, v in samples.items()}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)`` for a single call (blocking on JAX results)."""
    t0 = time.perf_counter()
    out = block(fn())
    return out, time.perf_counter() - t0


# ------------------------------------------------------------------------------ machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine() -> dict:
    """CPU, cores, memory, library versions and the float mode the benchmarks ran in."""
    import jax

    import gamelab  # noqa: F401  (turns on float64)

    mem = None
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": cores,
        "memory_gib": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": jax.local_device_count(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "gamelab": _version("gamelab"),
        "float64": bool(jax.config.jax_enable_x64),
        "nashpy": _version("nashpy"),
        "open_spiel": _version("open_spiel") or _version("open-spiel"),
        "cvxpy": _version("cvxpy"),
        "pygambit": _version("pygambit"),
        "git_revision": _git_revision(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def _git_revision() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
        return out.stdout.strip() or None
    except Exception:
        return None


def describe_machine(m: dict) -> str:
    peers = ", ".join(f"{k} {m[k]}" for k in ("nashpy", "open_spiel", "cvxpy", "pygambit") if m.get(k)) or "none"
    return (
        f"{m['date']} | {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB | Python {m['python']}, "
        f"jax {m['jax']} ({m['jax_backend']}, {m.get('jax_devices', 1)} devices), numpy {m['numpy']}, scipy {m['scipy']} | "
        f"float64 {'on' if m['float64'] else 'off'} | peers: {peers} | gamelab {m['gamelab']} @ {m['git_revision']} | "
        f"load average at start {m['load_average_1min']}"
    )


# ------------------------------------------------------------------------------ games
def random_preference(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random preference matrix: upper triangle uniform, ``P + Pᵀ = 1``, diagonal ½ (as EGPO)."""
    U = np.triu(rng.uniform(0.0, 1.0, size=(n, n)), k=1)
    P = U + np.tril(1.0 - U.T, k=-1)
    np.fill_diagonal(P, 0.5)
    return P


def random_games(B: int, n: int, seed: int = 0) -> np.ndarray:
    """``(B, n, n)`` float64 stack of random preference matrices: the same games as B calls of
    :func:`random_preference` on one generator (one draw of the same stream), built in one pass."""
    rng = np.random.default_rng(seed)
    U = np.triu(rng.uniform(0.0, 1.0, size=(B, n, n)), k=1)
    P = U + np.tril(1.0 - U.transpose(0, 2, 1), k=-1)
    P[:, np.arange(n), np.arange(n)] = 0.5
    return P


def exploitability(P: np.ndarray, pi: np.ndarray) -> float:
    """``max_y (Pπ)_y − ½`` (clipped at 0 against rounding), gamelab's convention."""
    return max(float(np.max(P @ pi)) - 0.5, 0.0)


# ------------------------------------------------------------------------------ formatting
def fmt_time(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "—"
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def fmt_ratio(r: float | None) -> str:
    if r is None or not np.isfinite(r):
        return "—"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def fmt_gap(g: float | None) -> str:
    return "—" if g is None else f"{g:.1e}"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table (also readable in a terminal)."""
    cells = [[str(c) for c in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)
