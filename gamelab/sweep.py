"""Sweeps: the Cartesian product algorithms × games × hyper-parameter grid × seeds.

A spec (TOML or keyword arguments) is normalized into a :class:`SweepSpec`; :func:`plan` enumerates
its runs in a canonical order (run ids are stable) and groups them into chunks: one algorithm,
one game size n, at most ``chunk_size`` runs. A chunk is computed in vmapped pieces of one fixed
width per group (set by n and the group's size, never by ``chunk_size``; the last piece padded),
so a group compiles once and — XLA's arithmetic depending on the batch shape only, not on a
run's position or neighbours — results are bit-identical whatever the chunk size.

Scale-out uses JAX's own machinery. On a host with several devices (GPUs, TPU cores, or CPU
devices: the ``gamelab`` command exposes every core as one, see :mod:`gamelab.hosts`) D pieces run
at once as one computation sharded over a one-axis ``jax.sharding.Mesh``: each device computes exactly one piece, the same
shape as unsharded, so the results are bit-identical. Across hosts (``jax.distributed``), process
p of P takes the chunks whose index is p mod P; process 0 writes the manifest, the others wait for
it at a barrier. Runs are independent, so no collective is ever needed.
:func:`execute` runs the chunks not yet on disk, each as one vmapped, jitted computation, and
writes each atomically: killing a sweep loses at most the chunk in flight, and re-running the same
command finishes it without recomputing or duplicating anything.

Spec keys (TOML)::

    algorithms = ["mwu", "omwu", "inpo", "comal"]
    games = ["comal3", "random:n=10,seed=0..49"]   # a..b expands to a range of values
    steps = 2000
    seeds = [0, 1, 2]
    record_every = 20          # default: steps // 100 (gamelab.defaults)
    chunk_size = 256           # runs per results file (the default)
    init = "uniform"           # or "random" (from the seed) or "ref"
    ref = "uniform"            # or "random"
    record_policy = false
    dtype = "float64"
    feedback = "closed"        # or "exact" / "sampled": the algorithms' loss forms on a parametric
    batch = 256                #   policy (batch: sampled pairs per step), trained by this optax
    optimizer = "sgd"          #   optimizer; lr, updates and flip are then grid hyper-parameters
    policy = "tabular"         #   or "linear:d=K"
    metrics = ["exploitability", "duality_gap"]   # default: every metric; others are NaN columns
    pad = true                 # games of several sizes (n <= 16, then per power of two) run as one
                               #   program, padded with responses of probability 0 (false: one each)
    [grid]                     # every key is a hyper-parameter; algorithms ignore keys they lack
    eta = [0.05, 0.1, 0.5]
    tau = [0.1]
    [algorithm.comal]          # per-algorithm overrides: steps, record_every, or fixed grid values
    steps = 20
    inner = [200]
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh

from gamelab import defaults
from gamelab.algorithms import get_algorithm
from gamelab.games import parse_game
from gamelab.games.named import spec_size
from gamelab.prepare import MAX_STEPS, learning_options, metric_names, resolve_algorithm
from gamelab.prepare import prepare as prepare_runs
from gamelab.run import execute as execute_runs
from gamelab.results import (LOCK, adopt_legacy_names, check_kind, finished_chunks, read_manifest, trace_to_table, write_chunk,
                             write_manifest, writer_lock)
from gamelab.run import program, program_key

SPEC_KEYS = {"algorithms", "games", "steps", "seeds", "grid", "record_every", "chunk_size", "init", "ref",
             "record_policy", "dtype", "target", "metric_tau", "antisymmetrize", "algorithm", "metrics", "feedback",
             "batch", "optimizer", "policy", "pad"}
LEARNING_KEYS = ("feedback", "batch", "optimizer", "policy")  # a parametric sweep (None: not given)
OVERRIDE_KEYS = {"steps", "record_every"}
TYPED_KEYS = (  # (key, accepted types, how to say it): checked before any value is used
    ("feedback", (str,), "'closed', 'exact' or 'sampled'"), ("batch", (int,), "a positive integer"),
    ("optimizer", (str,), "an optimizer's name"), ("policy", (str,), "a policy ('tabular' or 'linear:d=K')"),
    ("init", (str,), "'uniform', 'random' or 'ref'"), ("ref", (str,), "'uniform' or 'random'"),
    ("dtype", (str,), "'float64' or 'float32'"), ("target", (str, type(None)), "'nash' or 'maxent_nash'"),
    ("metric_tau", (int, float, type(None)), "a positive number"), ("record_policy", (bool,), "true or false"),
    ("antisymmetrize", (bool,), "true or false"), ("pad", (bool,), "true or false"),
)
MATRIX_BYTES_PER_PIECE = 512 * 2**20  # cap on the stacked game matrices of one vmapped piece
PLAN_BYTES_PER_RUN = 320  # the plan's dict per run (measured with tracemalloc: 200,000 runs, two hyper-parameters)
MAX_SEED = 2**31  # seeds seed jax.random keys and parametric runs' sampling (gamelab.algorithms.base "seed")
MAX_WIDTH = 64  # runs per vmapped piece (12.7 s vs 13.0 s at 128 for the 4500-run sweep)


class SpecError(ValueError):
    """A sweep spec that cannot be run; the message names the key and the problem."""


@dataclass(frozen=True)
class SweepSpec:
    algorithms: tuple[str, ...]
    games: tuple[str, ...]
    steps: int
    seeds: tuple[int, ...] = (0,)
    grid: dict = field(default_factory=dict)
    record_every: int | None = None
    chunk_size: int = defaults.SWEEP_CHUNK_SIZE
    init: str = "uniform"
    ref: str = "uniform"
    record_policy: bool = False
    dtype: str = "float64"
    target: str | None = "nash"
    metric_tau: float | None = None
    antisymmetrize: bool = False
    algorithm: dict = field(default_factory=dict)  # per-algorithm overrides
    metrics: tuple[str, ...] | None = None  # metrics recorded (None: all); the rest are NaN columns
    feedback: str = "closed"
    batch: int | None = None
    optimizer: str | None = None
    policy: str | None = None
    pad: bool = True  # games of several sizes in one size bucket: one program, padded (False: one per size)

    def canonical(self) -> dict:
        spec = asdict(self)
        if self.pad:  # the default, absent: folders made before the key existed keep their digest
            del spec["pad"]
        if spec["metrics"] is None:  # absent, as before the key existed: old results folders keep their digest
            del spec["metrics"]
        if self.feedback == "closed":  # closed-form sweeps keep the digest they had before these keys
            for key in LEARNING_KEYS:
                del spec[key]
        return json.loads(json.dumps(spec, sort_keys=True))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


RANGE = re.compile(r"(\w+)=(-?\d+)\.\.(-?\d+)")


def _ranges(spec: str) -> list[tuple[int, int]]:
    """The (lo, hi) of every 'key=lo..hi' range of a game spec; an empty one is refused."""
    found = [(int(m.group(2)), int(m.group(3))) for m in RANGE.finditer(spec)]
    for lo, hi in found:
        if hi < lo:
            raise SpecError(f"game {spec!r}: empty range {lo}..{hi}")
    return found


def _expand_ranges(spec: str) -> list[str]:
    """'random:n=10,seed=0..3' -> four specs (several ranges: their product, the first one
    slowest); a spec without 'a..b' is returned as is."""
    ranges = _ranges(spec)
    if not ranges:
        return [spec]
    template = RANGE.sub(lambda m: m.group(1) + "={}", spec.replace("{", "{{").replace("}", "}}"))
    return [template.format(*values) for values in itertools.product(*(range(lo, hi + 1) for lo, hi in ranges))]


def _count_games(specs) -> int:
    """How many games the specs expand to, without listing them."""
    return sum(math.prod(hi - lo + 1 for lo, hi in _ranges(s)) for s in specs)


def _list(value, key, kind=None):
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise SpecError(f"{key} must not be empty")
    if kind is not None:
        for v in values:
            if isinstance(v, bool) or not isinstance(v, kind):
                raise SpecError(f"{key}: {v!r} is not a {kind.__name__ if isinstance(kind, type) else 'number'}")
    return tuple(values)


def make_spec(**raw) -> SweepSpec:
    """Validate and normalize a spec given as keywords (the keys of a TOML spec)."""
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise SpecError(f"unknown spec key(s) {', '.join(unknown)}; known: {', '.join(sorted(SPEC_KEYS))}")
    for key in ("algorithms", "games", "steps"):
        if key not in raw:
            raise SpecError(f"the spec needs '{key}'")
    algorithms = _list(raw["algorithms"], "algorithms", str)
    for name in algorithms:
        try:
            get_algorithm(name)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
    if len(set(algorithms)) != len(algorithms):
        raise SpecError("algorithms lists a name twice")
    game_specs = _list(raw["games"], "games", str)
    count = _count_games(game_specs)
    if count > defaults.SWEEP_MAX_GAMES:  # before 10^7 strings are listed and checked (minutes, gigabytes)
        raise SpecError(f"games expand to {count:,} games; a sweep takes at most {defaults.SWEEP_MAX_GAMES:,} "
                        "(split the ranges over several sweeps)")
    games = tuple(g for spec in game_specs for g in _expand_ranges(spec))
    if len(set(games)) != len(games):
        repeated = sorted(g for g, count in Counter(games).items() if count > 1)
        raise SpecError(f"games lists {', '.join(map(repr, repeated[:3]))} more than once")
    for key, kinds, what in TYPED_KEYS:
        if key in raw and (isinstance(raw[key], bool) is not (kinds == (bool,)) or not isinstance(raw[key], kinds)):
            raise SpecError(f"{key} must be {what}, got {raw[key]!r}")
    if raw.get("target", "nash") not in ("nash", "maxent_nash", None):
        raise SpecError(f"target must be 'nash' (the LP Nash of each game), 'maxent_nash' (its maximum-entropy "
                        f"Nash: kl_to_target then measures which Nash a run selects) or absent, got {raw['target']!r}")
    if raw.get("metric_tau") is not None and not (math.isfinite(raw["metric_tau"]) and raw["metric_tau"] > 0):
        raise SpecError(f"metric_tau must be a positive number, got {raw['metric_tau']!r}")
    learning = {k: raw[k] for k in LEARNING_KEYS if k in raw}
    try:
        algos = {name: resolve_algorithm(name, 3, learning_options(**learning)) for name in algorithms}
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    steps = raw["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise SpecError(f"steps must be a positive integer of at most {MAX_STEPS}, got {steps!r}")
    seeds = _list(raw.get("seeds", [0]), "seeds", int)
    for seed in seeds:
        if not 0 <= seed < MAX_SEED:
            raise SpecError(f"seeds: {seed} is not a whole number in [0, 2^31)")
    if len(set(seeds)) != len(seeds):
        raise SpecError("seeds lists a seed twice")
    grid = raw.get("grid", {}) or {}
    if not isinstance(grid, dict):
        raise SpecError("grid must be a table of hyper-parameter = [values]")
    grid = {k: list(_list(v, f"grid.{k}", (int, float))) for k, v in grid.items()}
    known_hp = {f for a in algos.values() for f in a.hparams._fields} - {"seed"}  # seeds: the spec's seeds
    stray = sorted(set(grid) - known_hp)
    if stray:
        raise SpecError(f"grid key(s) {', '.join(stray)} are not hyper-parameters of any algorithm in the sweep "
                        f"(they take: {', '.join(sorted(known_hp))})")
    overrides = raw.get("algorithm", {}) or {}
    if not isinstance(overrides, dict):
        raise SpecError("algorithm must be a table of per-algorithm tables ([algorithm.NAME] with steps, "
                        "record_every or hyper-parameter values)")
    for name, table in overrides.items():
        if not isinstance(table, dict):
            raise SpecError(f"[algorithm.{name}] must be a table (steps, record_every or hyper-parameter values), "
                            f"got {table!r}")
        if name not in algorithms:
            raise SpecError(f"[algorithm.{name}] overrides an algorithm that is not in 'algorithms'")
        fields = set(algos[name].hparams._fields) - {"seed"}
        bad = sorted(set(table) - OVERRIDE_KEYS - fields)
        if bad:
            raise SpecError(f"[algorithm.{name}]: {', '.join(bad)} is neither steps/record_every nor a "
                            f"hyper-parameter of {name}")
    record_every = raw.get("record_every")
    chunk_size = raw.get("chunk_size", defaults.SWEEP_CHUNK_SIZE)
    checked = [("record_every", record_every), ("chunk_size", chunk_size)]
    checked += [(f"[algorithm.{name}] {key}", table[key]) for name, table in overrides.items()
                for key in OVERRIDE_KEYS if key in table]
    for key, v in checked:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_STEPS):
            raise SpecError(f"{key} must be a positive integer of at most {MAX_STEPS}, got {v!r}")
    for key, allowed in (("init", ("uniform", "random", "ref")), ("ref", ("uniform", "random")),
                         ("dtype", ("float64", "float32"))):
        if key in raw and raw[key] not in allowed:
            raise SpecError(f"{key} must be one of {', '.join(allowed)}, got {raw[key]!r}")
    metrics = raw.get("metrics")
    if metrics is not None:
        try:
            metrics = metric_names(_list(metrics, "metrics", str))
        except ValueError as exc:
            raise SpecError(f"metrics: {exc}") from None
        if "kl_to_target" in metrics and "target" in raw and raw["target"] is None:
            raise SpecError("metrics: 'kl_to_target' needs a target")
    spec = SweepSpec(algorithms=algorithms, games=games, steps=steps, seeds=seeds, grid=grid,
                     record_every=record_every, chunk_size=chunk_size, metrics=metrics,
                     **{k: raw[k] for k in ("init", "ref", "record_policy", "dtype", "target", "metric_tau",
                                            "antisymmetrize", "pad") if k in raw},
                     algorithm={k: dict(v) for k, v in overrides.items()}, **learning)
    built = set()  # fail before any work on a bad game: a generated game's parameters are read for every
    for g in spec.games:  # spec, one game is built per spec that differs in more than its seed
        try:
            if _kind(g) not in built:
                built.add(_kind(g))
                load_game(spec, g)
        except ValueError as exc:
            raise SpecError(f"game {g!r}: {exc}") from None
    return spec


def count_runs(spec: SweepSpec) -> int:
    """The sweep's number of runs, without planning it."""
    total = 0
    for name in spec.algorithms:
        fields = spec_algorithm(spec, name, 3).hparams._fields
        over = spec.algorithm.get(name, {})
        combos = 1
        for f in fields:
            if f in over:
                combos *= len(_list(over[f], f))
            elif f in spec.grid:
                combos *= len(spec.grid[f])
        total += combos * len(spec.games) * len(spec.seeds)
    return total


def game_size(spec: SweepSpec, game: str) -> int:
    """A game's number of responses: from a generated game's parameters, else from the game."""
    n = spec_size(game)
    return n if n is not None else load_game(spec, game).shape[0]


def load_spec(path) -> SweepSpec:
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no such spec file: {str(path)!r}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is not TOML
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return make_spec(**raw)


@lru_cache(maxsize=4096)
def _game(game: str, antisymmetrize: bool):
    return parse_game(game, antisymmetrize=antisymmetrize)


def _game_matrix(game: str, antisymmetrize: bool) -> np.ndarray:
    return np.asarray(_game(game, antisymmetrize).P)


def load_game(spec: SweepSpec, game: str) -> np.ndarray:
    return _game_matrix(game, spec.antisymmetrize)


# ------------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class Chunk:
    name: str
    algorithm: str
    n: int
    steps: int
    record_every: int
    width: int  # runs per vmapped piece (the same for every chunk of a group: one compile)
    runs: tuple  # dicts: run, algorithm, game, n, seed, hyper-parameters
    padded: bool = False  # games of several sizes, padded to n responses (gamelab.prepare.pad_matrix)


def vmap_width(n: int, group_runs: int) -> int:
    """Runs per vmapped piece for a group of ``group_runs`` runs on n×n games: a power of two up to
    MAX_WIDTH, no wider than the group needs, small enough that the matrices fit in memory."""
    memory_cap = max(1, MATRIX_BYTES_PER_PIECE // (8 * n * n))
    width = 1 << max(0, (group_runs - 1).bit_length())
    return max(1, min(width, MAX_WIDTH, 1 << (memory_cap.bit_length() - 1)))


def spec_algorithm(spec: SweepSpec, name: str, n: int):
    """The algorithm a sweep runs under ``name`` on n responses: closed-form, or its loss form on
    the spec's policy, feedback and optimizer."""
    return resolve_algorithm(name, n, learning_options(**{k: getattr(spec, k) for k in LEARNING_KEYS}))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def plan(spec: SweepSpec) -> list[Chunk]:
    """Every run of the sweep, in canonical order, grouped into chunks."""
    chunks, run_id = [], 0
    for name in spec.algorithms:
        algo = spec_algorithm(spec, name, 3)  # the hyper-parameter fields do not depend on n
        over = spec.algorithm.get(name, {})
        steps = over.get("steps", spec.steps)
        record_every = over.get("record_every", spec.record_every or max(1, steps // defaults.SWEEP_RECORDS))
        axes = {f: list(_list(over[f], f)) if f in over else spec.grid[f] for f in algo.hparams._fields
                if f in over or f in spec.grid}
        own = {k: v for k, v in algo.hparams()._asdict().items() if k != "seed"}  # the run's seed
        combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        groups: dict[tuple, list] = {}
        checked = set()
        for game in spec.games:
            n = game_size(spec, game)
            group = groups.setdefault(size_group(spec, game, n), [])
            for combo in combos:
                hp = {**own, **combo}
                if n not in checked:  # validate every configuration (per size) before running any
                    try:
                        for c in combos:
                            spec_algorithm(spec, name, n).make_hparams(**{**own, **c})
                    except ValueError as exc:
                        raise SpecError(str(exc)) from None
                    checked.add(n)
                for seed in spec.seeds:
                    group.append({"run": run_id, "algorithm": name, "game": game, "n": n, "seed": int(seed), **hp})
                    run_id += 1
        for runs in groups.values():
            sizes = {r["n"] for r in runs}
            n, padded = max(sizes), len(sizes) > 1  # several sizes: one program, padded to the largest
            width = vmap_width(n, len(runs))
            size = spec.chunk_size
            for k in range(0, len(runs), size):
                chunks.append(Chunk(f"{_slug(name)}-n{n}-{k // size:05d}", name, n, steps, record_every, width,
                                    tuple(runs[k:k + size]), padded))
    return chunks


def _kind(game: str) -> str:
    """A game spec with its seed blanked: generated games that differ only in their seed are alike."""
    return re.sub(r"seed=-?\d+", "seed=0", game) if spec_size(game) is not None else game


@lru_cache(maxsize=4096)
def _has_groups(game: str, antisymmetrize: bool) -> bool:
    return _game(game, antisymmetrize).groups is not None


def size_group(spec: SweepSpec, game: str, n: int) -> tuple:
    """Which runs share a compiled program: plain games under the closed-form update by size
    bucket (n ≤ 16, then each power of two: padded to the bucket's largest game), the rest by n."""
    if spec.pad and spec.feedback == "closed" and not _has_groups(_kind(game), spec.antisymmetrize):
        return ("bucket", max(4, (n - 1).bit_length()))
    return ("n", n)


# ------------------------------------------------------------------------------------ running
def run_chunk(spec: SweepSpec, chunk: Chunk, devices=None, programs: dict | None = None):
    """One chunk, in vmapped pieces of the group's width, ``len(devices)`` pieces at a time sharded
    over those devices; returns its tidy DataFrame (:func:`chunk_table`'s rows)."""
    return chunk_table(spec, chunk, devices, programs).to_pandas()


def chunk_table(spec: SweepSpec, chunk: Chunk, devices=None, programs: dict | None = None):
    """:func:`run_chunk`'s rows as an Arrow table, the chunk's file as written. ``programs``:
    compiled drivers by :func:`gamelab.run.program_key` (:func:`compile_programs`); others are
    jitted on the way."""
    import pyarrow as pa

    devices = list(devices or jax.local_devices()[:1])
    mesh = Mesh(np.array(devices), ("runs",)) if len(devices) > 1 else None
    tables = []
    for group in _piece_groups(chunk, len(devices)):
        prep, keep = _prepare_pieces(spec, chunk, group, mesh, len(devices))
        result = execute_runs(prep, compiled=(programs or {}).get(program_key(prep)))
        trace = {k: np.asarray(v)[keep] for k, v in result.trace.items()}
        runs = [r for p in group for r in p]
        sizes = [r["n"] for r in runs] if chunk.padded else None  # each run's own responses, not the padding
        tables.append(trace_to_table(trace, result.steps, runs, chunk.name, sizes))
    return pa.concat_tables(tables, promote_options="default")


def _piece_groups(chunk: Chunk, slots: int) -> list[list]:
    """The chunk's pieces of ``width`` runs, ``slots`` pieces side by side at a time."""
    pieces = [list(chunk.runs[k:k + chunk.width]) for k in range(0, len(chunk.runs), chunk.width)]
    return [pieces[k:k + slots] for k in range(0, len(pieces), slots)]


def _prepare_pieces(spec: SweepSpec, chunk: Chunk, group: list, mesh, slots: int):
    """Pieces side by side, each padded to the width, the group padded to ``slots`` pieces:
    (the prepared batch, the indices of the rows kept)."""
    padded = [p + [p[-1]] * (chunk.width - len(p)) for p in group]
    padded += [padded[-1]] * (slots - len(padded))  # idle devices repeat the last piece
    runs = [r for p in padded for r in p]
    algo = spec_algorithm(spec, chunk.algorithm, chunk.n)
    hparams = {f: [r[f] for r in runs] for f in algo.hparams._fields}  # a parametric run's seed is its seed
    metrics = spec.metrics
    if metrics is not None and "regularized_gap" in metrics and spec.metric_tau is None \
            and min(hparams.get("tau", [0.0])) <= 0:  # this algorithm has no τ: a NaN column
        metrics = tuple(m for m in metrics if m != "regularized_gap")
    target = spec.target  # the LP Nash: solved once per distinct game in the process (gamelab.prepare)
    if metrics is not None and "kl_to_target" not in metrics:
        target = None  # not recorded: no LP
    # Game objects, not matrices: a multi-group game carries its groups (per-group metrics, maxmin)
    prep = prepare_runs(algo, [_game(r["game"], spec.antisymmetrize) for r in runs], steps=chunk.steps,
                        record_every=chunk.record_every, hparams=hparams, init=spec.init, ref=spec.ref,
                        target=target, metric_tau=spec.metric_tau, seeds=[r["seed"] for r in runs], dtype=spec.dtype,
                        record_policy=spec.record_policy, metrics=metrics, mesh=mesh,
                        pad_to=chunk.n if chunk.padded else None)
    keep = np.concatenate([np.arange(i * chunk.width, i * chunk.width + len(p)) for i, p in enumerate(group)])
    return prep, keep


def compile_programs(spec: SweepSpec, chunks: list[Chunk], devices) -> dict:
    """The drivers that ``chunks`` need, read from the store of compiled programs or compiled at
    once on every core (XLA compiles one program on one core): {program key: executable}. One per
    group of chunks (algorithm, size, width, steps); a piece whose key is not among them (another
    metric set) is jitted instead."""
    from concurrent.futures import ThreadPoolExecutor

    devices = list(devices)
    mesh = Mesh(np.array(devices), ("runs",)) if len(devices) > 1 else None
    firsts = {(c.algorithm, c.n, c.padded, c.width, c.steps, c.record_every): c for c in reversed(chunks)}
    preps = {}
    for chunk in firsts.values():
        prep, _ = _prepare_pieces(spec, chunk, _piece_groups(chunk, len(devices))[0], mesh, len(devices))
        preps.setdefault(program_key(prep), prep)
    programs = {key: program(prep, compile=False) for key, prep in preps.items()}  # held, or in the store
    missing = [key for key, found in programs.items() if found is None]
    if len(missing) < 2:  # nothing to overlap: the first piece compiles it
        return {key: found for key, found in programs.items() if found is not None}
    with ThreadPoolExecutor(max_workers=min(len(missing), os.cpu_count() or 1)) as pool:
        programs.update(zip(missing, pool.map(lambda key: program(preps[key]), missing)))
    return programs


def _git_revision() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("gamelab", "jax", "jaxlib", "numpy", "scipy", "pandas", "pyarrow"):
        loaded = getattr(sys.modules.get(pkg), "__version__", None)  # no metadata read (2 ms each)
        try:
            out[pkg] = loaded if isinstance(loaded, str) else version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def prepare(spec: SweepSpec, out) -> list[Chunk]:
    """Plan the sweep and create or check the results folder's manifest.

    Raises :class:`SpecError` if ``out`` already holds results of a different spec.
    """
    out = Path(out)
    chunks = plan(spec)
    adopt_legacy_names(out)  # a folder of older gamelab; idempotent (every process of a distributed sweep)
    check_kind(out, "sweep")
    manifest = read_manifest(out)
    if manifest is not None:
        if manifest.get("spec_digest") != spec.digest():
            raise SpecError(f"{out} holds results of a different sweep spec (digest {manifest.get('spec_digest')} "
                            f"vs {spec.digest()}); use a new --out folder")
        planned = {c.name: [c.runs[0]["run"], c.runs[-1]["run"]] for c in chunks}
        if "chunks" in manifest and manifest["chunks"] != planned:
            raise SpecError(f"{out} holds this spec's results chunked another way (made by another gamelab version: "
                            "before games of several sizes were padded, resume it with pad = false); use a new --out "
                            "folder")
        return chunks
    if out.exists() and any(p.name != LOCK for p in out.iterdir()):
        raise SpecError(f"{out} exists, is not empty and is not a gamelab results folder")
    write_manifest(out, {
        "kind": "sweep", "spec": spec.canonical(), "spec_digest": spec.digest(), "versions": _versions(),
        "git_revision": _git_revision(), "seeds": list(spec.seeds), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "chunks": {c.name: [c.runs[0]["run"], c.runs[-1]["run"]] for c in chunks},
        "total_runs": sum(len(c.runs) for c in chunks),
    })
    return chunks


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def execute(spec: SweepSpec, out, *, progress: bool = True, on_chunk: Callable | None = None,
            devices=None, wait: bool = False) -> dict:
    """Run every chunk not yet finished under ``out`` (this process's share of them when running
    under ``jax.distributed``), sharding pieces over ``devices`` (default: every local device).
    Returns counts of chunks and runs: total, run now, already finished, and the damaged chunk
    files found (name, reason), which are computed again. A single process holds the folder's
    writer lock throughout (:func:`gamelab.results.writer_lock`; ``wait``: wait for another
    writer instead of being refused); the processes of one ``jax.distributed`` sweep share it."""
    out = Path(out)
    if jax.process_count() > 1:
        return _execute(spec, out, progress, on_chunk, devices)
    with writer_lock(out, wait=wait):
        return _execute(spec, out, progress, on_chunk, devices)


def _execute(spec: SweepSpec, out: Path, progress: bool, on_chunk, devices) -> dict:
    from tqdm.auto import tqdm

    devices = list(devices if devices is not None else jax.local_devices())
    if jax.process_index() == 0:
        chunks = prepare(spec, out)
    _barrier("gamelab-manifest")
    if jax.process_index() != 0:
        chunks = prepare(spec, out)
    count, index = jax.process_count(), jax.process_index()
    damaged: list = []
    done = finished_chunks(out, {c.name: [c.runs[0]["run"], c.runs[-1]["run"]] for c in chunks}, damaged)
    for name, reason in damaged:
        print(f"warning: chunk {name} is damaged ({reason}): computing it again", file=sys.stderr)
    mine = [c for k, c in enumerate(chunks) if k % count == index]
    todo = [c for c in mine if c.name not in done]
    skipped = len(chunks) - len(todo) if count == 1 else len(mine) - len(todo)
    total = sum(len(c.runs) for c in todo)
    bar = tqdm(total=total, unit="run", disable=not progress, dynamic_ncols=True, file=sys.stderr,
               desc=f"chunks {skipped}/{len(chunks)}")
    programs = compile_programs(spec, todo, devices)
    for k, chunk in enumerate(todo, 1):
        write_chunk(out, chunk.name, chunk_table(spec, chunk, devices, programs))
        bar.set_description(f"chunks {len(chunks) - len(todo) + k}/{len(chunks)}")
        bar.update(len(chunk.runs))
        if on_chunk is not None:
            on_chunk(chunk)
    bar.close()
    _barrier("gamelab-sweep-done")
    return {"chunks": len(chunks), "ran": len(todo), "skipped": skipped, "runs": total, "damaged": damaged}
