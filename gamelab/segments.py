"""The checkpointed segment loop: one long run of the one driver, cut into segments, saved after
each, resumed from the last finished save, guarded by the run's config.

A run of ``steps`` steps recording every ``record_every`` is ``steps / record_every`` intervals of
the driver's loop body (:func:`gamelab.run.segment`), taken ``checkpoint_every`` intervals at a
time. After each segment the whole carry (whatever the algorithm's state holds: parameters,
optimizer state, reference, PRNG key, step) and the rows recorded so far are saved with orbax
(``out/_checkpoints``: written to a temporary folder and renamed when complete, so a killed run
never leaves a checkpoint that looks finished); the same call resumes from the latest one and
produces bit for bit the trace of an uninterrupted run. ``out/_run.json`` holds the run's config:
a folder that holds another run is refused, naming what differs.

Nothing here knows which algorithm, game or policy it runs: the caller passes them with

* a **recorder** (static, hashable): ``recorder(game, aux, carry) -> dict`` of arrays, one
  recording; None records the driver's own metrics of ``game.P`` (with the policies);
* a **layout** (static, hashable, optional): ``layout(carry) -> carry`` pins the carry's sharding
  over a mesh, so that every segment compiles once.

The mesh may span several processes (``jax.distributed``): every process calls with the same
arguments and gets the same rows; process 0 writes the files.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gamelab import defaults
from gamelab.executables import Program
from gamelab.prepare import check_steps
from gamelab.results import CHECKPOINTS, LOCK, RUN_CONFIG
from gamelab.run import final_row, segment, start

# The segmented driver records the policies and no average iterate (a parametric policy's
# average is not a policy of its family); every metric it can compute.
_DRIVER = dict(record_policy=True, record_average=False, metrics=None)


class Segments(NamedTuple):
    rows: dict  # metric -> (intervals + 1, ...) host arrays: one row per recording and the final one
    carry: Any  # the driver's final carry (state, average, step)
    resumed: int  # intervals restored from a checkpoint (0: a fresh run)
    seconds: float  # wall time of this call


def _recording(recorder, game, aux):
    return None if recorder is None else (lambda carry: recorder(game, aux, carry))


def _laid_out(layout, carry):
    return carry if layout is None else layout(carry)


def _begin(algo, layout, game, hp, init_logp, ref_logp):
    return _laid_out(layout, start(algo, game, hp, init_logp, ref_logp, record_average=False))


def advance_segment(algo, recorder, layout, game, aux, hp, carry, ref_logp, tau, *, intervals, record_every):
    carry, rows = segment(algo, game, hp, carry, ref_logp, None, tau, intervals=intervals, record_every=record_every,
                          record=_recording(recorder, game, aux), **_DRIVER)
    return _laid_out(layout, carry), rows


def _end(algo, recorder, game, aux, hp, carry, ref_logp, tau):
    return final_row(algo, game, hp, carry, ref_logp, None, tau, record=_recording(recorder, game, aux), **_DRIVER)


# Jitted once per (algorithm, recorder, layout, segment length): a second run of the same
# configuration in one process compiles nothing, and a later process reads them from the store
# of compiled programs (gamelab.executables) without tracing them. The carry is donated: a
# segment's parameters and optimizer state replace the previous ones in place instead of holding
# both on the device.
_start = Program(_begin, static_argnums=(0, 1))
segment_jit = Program(advance_segment, static_argnums=(0, 1, 2), static_argnames=("intervals", "record_every"),
                      donate_argnames=("carry",))
_final = Program(_end, static_argnums=(0, 1))


def multiprocess(mesh) -> bool:
    """Whether ``mesh`` spans devices of several processes."""
    return mesh is not None and len({d.process_index for d in mesh.devices.flat}) > 1


def to_global(tree, mesh, like=None):
    """Every leaf as a global array over ``mesh`` — replicated, or laid out like the matching leaf
    of ``like`` — built from this host's copy, which every process holds identically: what a jit
    over a mesh spanning several processes needs (and, for ``like``, the layout it compiled for)."""
    if mesh is None:
        return tree
    from jax.sharding import NamedSharding, PartitionSpec

    replicated = NamedSharding(mesh, PartitionSpec())

    def put(x, model=None):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = put(jax.random.key_data(x), None if model is None else jax.random.key_data(model))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x  # already global
        v = np.asarray(x)
        sharding = replicated if model is None else model.sharding
        return jax.make_array_from_callback(v.shape, sharding, lambda index: v[index])

    return jax.tree.map(put, tree) if like is None else jax.tree.map(put, tree, like)


def to_host(tree, mesh):
    """NumPy copies of (possibly global, possibly sharded) arrays, the same on every process."""
    if not multiprocess(mesh):
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    def fetch(x):
        return np.asarray(x) if x.is_fully_replicated else multihost_utils.process_allgather(x, tiled=True)

    return jax.tree.map(fetch, tree)


def barrier(name: str, mesh) -> None:
    if multiprocess(mesh):
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _kept(tree, frozen) -> list:
    """Per leaf of ``tree``: whether a checkpoint holds it — not an empty leaf (a state's placeholder
    view, which orbax cannot save) nor one ``frozen`` marks as never changing."""
    leaves = jax.tree.leaves(tree)
    marks = [False] * len(leaves) if frozen is None else jax.tree.leaves(frozen(tree))
    if len(marks) != len(leaves):
        raise ValueError(f"frozen() marked {len(marks)} leaves of a carry with {len(leaves)}")
    return [bool(x.size) and not bool(m) for x, m in zip(leaves, marks)]


def _saveable(tree, mesh=None, frozen=None) -> dict:
    """The kept leaves (:func:`_kept`) by index as NumPy, typed PRNG keys as their raw key data."""
    chosen = {f"{i:05d}": jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
              for i, (x, k) in enumerate(zip(jax.tree.leaves(tree), _kept(tree, frozen))) if k}
    return to_host(chosen, mesh)


def _restore(saved: dict, like, frozen=None):
    """The carry of a checkpoint: its saved leaves, and ``like``'s (the fresh start's) where a leaf is
    not kept (empty, or frozen: unchanged since the start, so equal to it)."""
    leaves, treedef = jax.tree.flatten(like)
    keep = _kept(like, frozen)
    if len(saved) != sum(keep):
        raise ValueError("the checkpoint does not match this run's state (a different algorithm or model?)")
    new = []
    for i, (x, k) in enumerate(zip(leaves, keep)):
        if not k:
            new.append(x)
            continue
        v = saved[f"{i:05d}"]
        new.append(jax.random.wrap_key_data(jnp.asarray(v)) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
                   else jnp.asarray(v, x.dtype))
    return jax.tree.unflatten(treedef, new)


def check_config(out: Path, config: dict, mesh=None) -> None:
    """``out`` must be fresh or hold this very run; its _run.json is written atomically (process 0)."""
    saved_config, wanted = out / RUN_CONFIG, json.loads(json.dumps(config))
    strays = sorted(p.name for p in out.iterdir() if p.name != LOCK) if not saved_config.exists() else []
    if strays:  # files this run did not write: nothing of them is touched
        raise ValueError(f"{out} is not empty and holds no run ({', '.join(strays[:5])}"
                         f"{', …' if len(strays) > 5 else ''}); use another --out")
    if saved_config.exists():
        try:
            old = json.loads(saved_config.read_text())
        except ValueError:
            raise ValueError(f"{saved_config} is not a run's config (unreadable JSON); use another --out") from None
        if old != wanted:
            changed = sorted(k for k in set(wanted) | set(old) if old.get(k) != wanted.get(k))
            raise ValueError(f"{out} holds a different run (differs in {', '.join(changed)}); use another --out")
    barrier("gamelab: config checked", mesh)  # no process may read _run.json while it is written
    if not saved_config.exists() and jax.process_index() == 0:
        tmp = out / f".{RUN_CONFIG}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(config, indent=1))
        os.replace(tmp, saved_config)


def check_segments(steps, record_every, checkpoint_every) -> None:
    """Positive whole numbers, ``steps`` a multiple of ``record_every`` (raises ValueError)."""
    check_steps(steps, record_every)
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
            or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")


def run_segments(algo, game, hp, init_logp, ref_logp, tau=None, *, steps: int, record_every: int,
                 checkpoint_every: int = defaults.LLM_CHECKPOINT_EVERY, recorder: Callable | None = None, aux=None,
                 layout: Callable | None = None, frozen: Callable | None = None, out=None,
                 config: dict | None = None, mesh=None, progress: bool = True, desc: str = "") -> Segments:
    """Run ``algo`` for ``steps`` steps (a multiple of ``record_every``) in checkpointed segments
    of ``checkpoint_every`` recordings; see the module docstring. ``game``, ``hp``, the policies,
    ``tau`` (of the driver's regularized gap) and ``aux`` (what the recorder reads besides the
    game) are device arrays, global over ``mesh`` when it spans processes. ``out``: the run's
    folder (None: nothing written, no resume), checked against ``config`` before anything
    compiles. ``frozen``: carry -> a pytree of bools like it, True where a leaf never changes in
    the run (a pretrained policy's frozen base weights): checkpoints leave it out and a resume
    takes it from the fresh start. A tqdm bar shows progress when ``progress``."""
    check_segments(steps, record_every, checkpoint_every)
    intervals = steps // record_every
    t0 = time.time()
    if out is not None:  # before anything compiles: a wrong folder fails at once
        out = Path(out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        check_config(out, config or {}, mesh)
    carry = _start(algo, layout, game, hp, init_logp, ref_logp)
    rows: list[dict] = []
    done, manager = 0, None
    if out is not None:
        import orbax.checkpoint as ocp

        manager = ocp.CheckpointManager(out / CHECKPOINTS, options=ocp.CheckpointManagerOptions(max_to_keep=2))
        damaged = []
        # only finished checkpoints are listed (orbax renames a complete temporary folder); a damaged
        # one (a file truncated or lost since) is reported and the one before it used instead
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                saved = manager.restore(step, args=ocp.args.StandardRestore())
                restored = to_global(_restore(saved["carry"], carry, frozen), mesh, like=carry)
                rows = [{k: np.asarray(v)[i] for k, v in saved["rows"].items()} for i in range(step)]
            except Exception as exc:  # orbax and tensorstore raise many types for a damaged file
                print(f"warning: checkpoint {step} in {out / CHECKPOINTS} is damaged ({type(exc).__name__}): "
                      "computing its steps again", file=sys.stderr)
                damaged.append(step)
                rows = []
                continue
            carry, done = restored, int(step)
            break
        if damaged:  # removed, so that the steps computed again can be saved under their number
            manager.close()
            for step in damaged:
                shutil.rmtree(out / CHECKPOINTS / str(step))
            manager = ocp.CheckpointManager(out / CHECKPOINTS,
                                            options=ocp.CheckpointManagerOptions(max_to_keep=2))
    resumed = done
    bar = None
    if progress and jax.process_index() == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=done * record_every, unit="step", desc=desc or None)
    while done < intervals:
        k = min(checkpoint_every, intervals - done)
        carry, new = segment_jit(algo, recorder, layout, game, aux, hp, carry, ref_logp, tau, intervals=k,
                              record_every=record_every)
        new = to_host(new, mesh)
        rows += [{key: v[i] for key, v in new.items()} for i in range(k)]
        done += k
        if manager is not None:
            import orbax.checkpoint as ocp

            stacked = {key: np.stack([r[key] for r in rows]) for key in rows[0]}
            saved = {"carry": _saveable(carry, mesh, frozen), "rows": stacked}
            manager.save(done, args=ocp.args.StandardSave(saved))
            manager.wait_until_finished()
        if bar is not None:
            bar.update(k * record_every)
    if bar is not None:
        bar.close()
    if manager is not None:
        manager.close()
    final = to_host(_final(algo, recorder, game, aux, hp, carry, ref_logp, tau), mesh)
    stacked = {key: np.stack([r[key] for r in rows] + [final[key]]) for key in final}
    return Segments(stacked, carry, resumed, time.time() - t0)
