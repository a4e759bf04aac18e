"""Tidy, resumable storage of sweeps.

A results folder holds ``_manifest.json`` (its kind — ``sweep`` or ``llm`` —, the spec, package
versions, git revision, seed, the chunk list) and ``chunks/*.parquet``, one file per finished
chunk, each written atomically (a temporary file renamed into place, with the mode the umask
gives), so a half-written file is never read as finished. Everything in the folder that is not a
chunk starts with ``_`` or ``.`` (``_manifest.json``, a transformer run's ``_run.json`` and
``_checkpoints/``, ``gamelab plot``'s ``_figures/``, the lock), which Arrow's dataset readers
skip: ``pandas.read_parquet(folder)`` reads the table, as :func:`load` does. Folders written by
older gamelab (``manifest.json``, ``run.json``, ``checkpoints/``) are read as they are and renamed
by the next writer (:func:`adopt_legacy_names`).

A writer holds the folder's lock (:func:`writer_lock`, ``.gamelab.lock``): a second writer is
refused at once, naming the reason, or waits when asked to. Chunks are written with Parquet page
checksums (CRC-32 of every data page). On resume every finished chunk is verified
(:func:`finished_chunks`: a readable footer, every page's checksum, the runs the manifest says it
holds, the same number of rows for each); a damaged one is reported and recomputed.

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

MANIFEST = "_manifest.json"
CHUNKS = "chunks"
LOCK = ".gamelab.lock"
RUN_CONFIG = "_run.json"  # a transformer run's config (gamelab.segments)
CHECKPOINTS = "_checkpoints"  # its orbax checkpoints
FIGURES = "_figures"  # gamelab plot's default output folder
# what older gamelab called these files: read in place, renamed by the next writer
LEGACY_NAMES = {"manifest.json": MANIFEST, "run.json": RUN_CONFIG, "checkpoints": CHECKPOINTS, "figures": FIGURES}
KINDS = ("sweep", "llm")  # who wrote a results folder; a manifest without "kind" is a sweep's (older gamelab)


class ResultsFolderError(OSError):
    """A results folder that this writer may not use: another kind, another writer, a damaged file."""


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()  # what open() would give a new file: temporary files get 0600 otherwise
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


def trace_to_table(trace: dict, steps, runs: list[dict], chunk: str, sizes=None):
    """Tidy rows from a batched trace (arrays of shape (B, R[, n])) and one dict per run with its
    identifying columns (run, algorithm, game, n, seed, hyper-parameters), as an Arrow table (what
    a chunk's Parquet file holds: written without importing pandas). ``sizes``: each run's number
    of responses, where its recorded policies are padded beyond it."""
    import pyarrow as pa

    steps = np.asarray(steps)
    B, R = len(runs), len(steps)
    tables = []
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
            rows = list(pol.reshape(B * R, pol.shape[-1]))
            cols["policy"] = rows if sizes is None else [p[:n] for p, n in zip(rows, np.repeat(sizes, R))]
        cols["chunk"] = np.full(B * R, chunk)
        tables.append(pa.Table.from_arrays([_arrow(v) for v in cols.values()], names=list(cols)))
    return pa.concat_tables(tables, promote_options="default")


def _arrow(values):
    """A column as pandas would hand it to Arrow (NaN and None as nulls, strings as large strings,
    policies as lists of doubles), built from its buffers: ``pyarrow.array`` imports pandas
    (0.23 s of a warm sweep's 1.1 s) to ask whether its argument is a pandas object."""
    import pyarrow as pa

    if isinstance(values, list):  # policies, one float array per row
        child = _arrow(np.concatenate(values).astype(np.float64) if values else np.zeros(0))
        return pa.Array.from_buffers(pa.list_(pa.float64()), len(values),
                                     [None, _offsets(map(len, values), np.int32)], children=[child])
    values = np.asarray(values)
    if values.dtype == object:  # a column some runs do not have (None): numbers or strings
        given = np.array([v is not None and v == v for v in values], bool)  # v == v: not NaN
        kinds = {type(v) for v, ok in zip(values, given) if ok}
        fill = "" if kinds <= {str} else 0 if kinds <= {int, np.int64} else np.nan \
            if kinds <= {int, float, np.int64, np.float64} else None
        if fill is None:
            return pa.array(values, from_pandas=True)
        values, missing = np.where(given, values, fill), ~given
        values = values.astype(str if isinstance(fill, str) else np.int64 if fill == 0 else np.float64)
    elif values.dtype.kind == "f":
        missing = np.isnan(values)
    else:
        missing = np.zeros(len(values), bool)
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if missing.any() else None
    if values.dtype.kind == "U":
        encoded = [v.encode() for v in values.tolist()]
        return pa.Array.from_buffers(pa.large_string(), len(encoded),
                                     [validity, _offsets(map(len, encoded), np.int64), pa.py_buffer(b"".join(encoded))])
    if values.dtype.kind == "b":
        return pa.Array.from_buffers(pa.bool_(), len(values),
                                     [validity, pa.py_buffer(np.packbits(values, bitorder="little"))])
    values = np.ascontiguousarray(values, dtype=np.float64 if values.dtype.kind == "f" else np.int64)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [validity, pa.py_buffer(values)])


def _offsets(sizes, dtype):
    """An Arrow offsets buffer: 0 and the running sums of ``sizes``."""
    import pyarrow as pa

    return pa.py_buffer(np.concatenate([[0], np.cumsum(np.fromiter(sizes, np.int64))]).astype(dtype))


def trace_to_frame(trace: dict, steps, runs: list[dict], chunk: str):
    """:func:`trace_to_table` as a pandas DataFrame."""
    return trace_to_table(trace, steps, runs, chunk).to_pandas()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), FILE_MODE)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_chunk(out: Path, chunk: str, table) -> Path:
    """Write one finished chunk (an Arrow table or a pandas DataFrame) atomically; returns its path."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, write_page_checksum=True)
    path = Path(out) / CHUNKS / f"{chunk}.parquet"
    atomic_write_bytes(path, buf.getvalue())
    return path


def finished_chunks(out: Path, expected: dict | None = None, damaged: list | None = None) -> set[str]:
    """The chunks whose files are finished and whole. ``expected``: chunk name -> [first run,
    last run] (the manifest's ``chunks``); a file that is not a readable Parquet file, or whose
    runs are not those, is left out (and named in ``damaged``, with the reason) so that it is
    computed again."""
    folder = Path(out) / CHUNKS
    if not folder.is_dir():
        return set()
    done = set()
    for path in sorted(folder.glob("*.parquet")):
        reason = _damage(path, None if expected is None else expected.get(path.stem))
        if reason is None:
            done.add(path.stem)
        elif damaged is not None:
            damaged.append((path.stem, reason))
    return done


def _damage(path: Path, runs: list | None) -> str | None:
    """Why a chunk file cannot be trusted (None: it can)."""
    import pyarrow.parquet as pq

    try:  # every column, so that every data page's checksum is checked
        table = pq.read_table(path, page_checksum_verification=True)
    except Exception as exc:  # truncated, empty, not Parquet, a page altered: pyarrow raises several types
        return f"not a readable Parquet file ({type(exc).__name__}: {str(exc)[:80]})"
    if table.num_rows == 0 or "run" not in table.column_names:
        return "no rows" if table.num_rows == 0 else "no run column"
    got, counts = np.unique(table.column("run").to_numpy(), return_counts=True)
    if runs is not None and (got[0] != runs[0] or got[-1] != runs[-1] or len(got) != runs[1] - runs[0] + 1):
        return f"holds runs {got[0]}..{got[-1]} ({len(got)}), not {runs[0]}..{runs[1]}"
    if counts.min() != counts.max():
        return f"holds {counts.min()} rows for some runs and {counts.max()} for others"
    return None


def named(out: Path, name: str) -> Path:
    """The path of ``name`` (``MANIFEST``, ``RUN_CONFIG``, ``CHECKPOINTS``) in a results folder: its
    older name where only that exists (a folder written by older gamelab, not yet adopted)."""
    path = Path(out) / name
    if not path.exists():
        old = next(k for k, v in LEGACY_NAMES.items() if v == name)
        if (Path(out) / old).exists():
            return Path(out) / old
    return path


def adopt_legacy_names(out: Path) -> list[str]:
    """Rename the files of a folder written by older gamelab to today's names (the writer does this
    under its lock, before it reads anything); returns the names it changed."""
    renamed = []
    for old, new in LEGACY_NAMES.items():
        if (Path(out) / old).exists() and not (Path(out) / new).exists():
            os.replace(Path(out) / old, Path(out) / new)
            renamed.append(old)
    return renamed


def read_manifest(out: Path) -> dict | None:
    path = named(out, MANIFEST)
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ResultsFolderError(f"{path} is not a gamelab manifest (unreadable JSON)") from None
    if not isinstance(manifest, dict):
        raise ResultsFolderError(f"{path} is not a gamelab manifest")
    return manifest


def folder_kind(out: Path) -> str | None:
    """'sweep' or 'llm' (who wrote the folder), None for a folder without a manifest."""
    manifest = read_manifest(out)
    if manifest is None:
        return "llm" if named(out, RUN_CONFIG).exists() else None
    return manifest.get("kind", "sweep")


def check_kind(out: Path, kind: str) -> None:
    """Refuse a folder that holds results of another kind (a sweep's, a ``gamelab llm run``'s)."""
    found = folder_kind(out)
    if found is not None and found != kind:
        what = {"sweep": "a sweep (gamelab sweep)", "llm": "a transformer run (gamelab llm run)"}
        raise ResultsFolderError(f"{out} holds the results of {what.get(found, found)}, not of "
                                 f"{what.get(kind, kind)}; use another --out")


def writer_lock(out: Path, *, wait: bool = False):
    """The folder's exclusive writer lock, a context manager (an OS file lock: released when the
    process ends, however it ends, so a lock is never stale). Held by another process: raises
    :class:`ResultsFolderError` at once, or waits for it with ``wait``."""
    from contextlib import contextmanager

    from filelock import FileLock, Timeout

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ResultsFolderError(f"{out} is a file, not a folder; give --out a folder")
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK), timeout=-1 if wait else 0, mode=FILE_MODE)

    @contextmanager
    def held():
        try:
            lock.acquire()
        except Timeout:
            raise ResultsFolderError(f"{out} is being written by another gamelab process (it holds {out / LOCK}); "
                                     "wait for it to finish (--wait) or use another --out") from None
        try:
            adopt_legacy_names(out)
            yield
        finally:
            lock.release()

    return held()


def write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_bytes(Path(out) / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def load(out) -> "pandas.DataFrame":  # noqa: F821
    """A results folder (a sweep's or a transformer run's) as one tidy table: :func:`load_results`
    (``pandas.read_parquet(out)`` reads the same rows, unsorted)."""
    return load_results(out)


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
