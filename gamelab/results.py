"""Tidy, resumable storage of sweeps.

A results folder holds ``manifest.json`` (the sweep spec, package versions, git revision, seed,
the chunk list) and ``chunks/*.parquet``, one file per finished chunk, each written atomically
(a temporary file renamed into place), so a half-written file is never read as finished.

The table is long and tidy: **one row per run × recorded step × iterate kind**, columns

=================  =========================================================================
run                int, the run's index in the sweep's canonical enumeration (stable)
algorithm, game    str (the game spec as given), n (int, responses), seed (int)
<hyper-params>     one float column per hyper-parameter of any algorithm in the sweep (eta, tau,
                   inner, ...); NaN where the run's algorithm does not take it
step               int, the step of the recording (0 = initial policy; COMAL: outer iteration)
iterate            'last' or 'average'
<metrics>          exploitability, duality_gap, regularized_gap, kl_to_target, entropy,
                   win_rate_vs_ref (float; NaN where not defined for that run); multi-group
                   games add group{u}_*, worst_group_* and mean_group_* columns (win_rate_vs_ref,
                   exploitability, reward), NaN for runs on games without them; parametric runs
                   (feedback exact/sampled) add ``loss``, the training loss of the step just taken
policy             list of n floats (only when the sweep records policies)
chunk              str, the chunk that produced the row
=================  =========================================================================
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from gamelab.metrics import METRIC_NAMES

MANIFEST = "manifest.json"
CHUNKS = "chunks"
ITERATES = (("last", ""), ("average", "avg_"))
# Metric columns beyond METRIC_NAMES: multi-group games, parametric runs, sequence games (their
# several prompts, and the confidence bounds of sampled estimates).
EXTRA_METRIC_PREFIXES = ("group", "worst_group_", "mean_group_")
PER_PROMPT = re.compile(r"prompt\d+_")
EXTRA_METRICS = ("loss", "kl_to_class_nash")
BOUND_SUFFIXES = ("_lo", "_hi")


def is_metric(column: str) -> bool:
    """Whether a results column is a metric (not an identifier or a hyper-parameter): a metric's
    confidence bounds (``<metric>_lo``/``_hi``) are metrics too."""
    if column.endswith(BOUND_SUFFIXES):
        column = column[:-3]
    return (column in METRIC_NAMES or column in EXTRA_METRICS or column.startswith(EXTRA_METRIC_PREFIXES)
            or PER_PROMPT.match(column) is not None)


def trace_to_frame(trace: dict, steps, runs: list[dict], chunk: str):
    """Tidy rows from a batched trace (arrays of shape (B, R[, n])) and one dict per run with its
    identifying columns (run, algorithm, game, n, seed, hyper-parameters)."""
    import pandas as pd

    steps = np.asarray(steps)
    B, R = len(runs), len(steps)
    frames = []
    for kind, prefix in ITERATES:
        cols = {"run": np.repeat([r["run"] for r in runs], R)}
        for key in runs[0]:
            if key != "run":
                cols[key] = np.repeat([r[key] for r in runs], R)
        cols["step"] = np.tile(steps, B)
        cols["iterate"] = np.full(B * R, kind)
        extra = sorted(k for k in trace if is_metric(k) and k not in METRIC_NAMES)  # groups, loss, ...
        for m in (*METRIC_NAMES, *extra):
            arr = trace.get(prefix + m)
            cols[m] = np.full(B * R, np.nan) if arr is None else np.asarray(arr, dtype=np.float64)[:B].reshape(-1)
        pol = trace.get(prefix + "policy")
        if pol is not None:
            pol = np.asarray(pol, dtype=np.float64)[:B]
            cols["policy"] = list(pol.reshape(B * R, pol.shape[-1]))
        cols["chunk"] = np.full(B * R, chunk)
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_chunk(out: Path, chunk: str, frame) -> Path:
    """Write one finished chunk atomically; returns its path."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    path = Path(out) / CHUNKS / f"{chunk}.parquet"
    atomic_write_bytes(path, buf.getvalue())
    return path


def finished_chunks(out: Path) -> set[str]:
    folder = Path(out) / CHUNKS
    return {p.stem for p in folder.glob("*.parquet")} if folder.is_dir() else set()


def read_manifest(out: Path) -> dict | None:
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_bytes(Path(out) / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def load_results(out) -> "pandas.DataFrame":  # noqa: F821
    """Every finished chunk of a results folder as one tidy DataFrame (see the module doc)."""
    import pandas as pd

    out = Path(out)
    if read_manifest(out) is None:
        raise FileNotFoundError(f"{out} is not a gamelab results folder (no {MANIFEST})")
    files = sorted((out / CHUNKS).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{out} has no finished chunks yet")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame.sort_values(["run", "iterate", "step"], kind="stable").reset_index(drop=True)
