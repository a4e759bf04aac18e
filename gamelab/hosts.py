"""Using every core of a CPU host: its cores as JAX CPU devices, and a mesh over the local devices.

JAX runs a computation on one CPU device with (for the small per-step programs of this engine)
one thread, however many cores the host has. Exposed as several CPU devices — JAX's own
``jax_num_cpu_devices`` setting, the same machinery as ``--xla_force_host_platform_device_count``
— the cores run the pieces of a sharded batch at once: a sweep (``gamelab sweep``, which shards
over every local device) or ``run_batch(..., mesh=local_mesh(B))`` then uses them all, with results
bit-identical to one device (each device runs the same per-run program on its runs).

The setting must be made before JAX starts its backends (the first computation or device query);
the ``gamelab`` command makes it at start-up (``--cpu-devices``). A library user calls
:func:`use_cpu_cores` first thing, e.g. at the top of a notebook.
"""
from __future__ import annotations

import numbers
import os
import re
import sys
import warnings

from gamelab.executables import LOAD_EVENT, forget
from gamelab.lazy import jax

_FORCED = re.compile(r"--xla_force_host_platform_device_count=(\d+)")


def available_memory() -> int | None:
    """Bytes this process can still allocate: the system's available memory, or the address-space
    limit (``ulimit -v``) if lower; None where neither can be read."""
    import resource

    found = []
    try:
        with open("/proc/meminfo") as fh:
            found += [int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:")]
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        found.append(int(soft))
    return min(found) if found else None


def host_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def use_cpu_cores(count: int | None = None) -> int:
    """Expose ``count`` (default: every core of this host) CPU devices to JAX; returns the number
    of CPU devices JAX will have.

    Left as it is (and returned) when ``XLA_FLAGS`` already forces a device count, and when
    JAX's backends have started already (then an explicit ``count`` that differs warns: it can no
    longer change). Accelerators are unaffected: on a GPU or TPU host the default device stays
    the accelerator. Before JAX is imported this sets ``JAX_NUM_CPU_DEVICES`` (read by JAX on import,
    and inherited by subprocesses), so that calling it does not import JAX.
    """
    explicit = count is not None
    if count is None:
        count = host_cores()
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"the number of CPU devices must be a positive integer, got {count!r}")
    forced = _FORCED.search(os.environ.get("XLA_FLAGS", ""))
    if forced:
        return int(forced.group(1))
    if "jax" not in sys.modules:
        os.environ["JAX_NUM_CPU_DEVICES"] = str(int(count))
        return int(count)
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        current = len(jax.devices("cpu"))
        if explicit and current != count:
            warnings.warn(f"JAX has started with {current} CPU device(s); use_cpu_cores({count}) must be called "
                          f"before the first JAX computation", stacklevel=2)
        return current
    jax.config.update("jax_num_cpu_devices", int(count))
    return int(count)


def local_mesh(runs: int | None = None, axis: str = "runs") -> Mesh | None:
    """A one-axis mesh over this process's devices for a batch of ``runs``: the most devices
    (at most all of them) that divide ``runs`` evenly; None where that is one device."""
    import numpy as np
    from jax.sharding import Mesh

    devices = jax.local_devices()
    k = len(devices)
    if runs is not None:
        k = max(d for d in range(1, k + 1) if runs % d == 0)
    return Mesh(np.array(devices[:k]), (axis,)) if k > 1 else None


def shard_runs(tree, mesh: Mesh | None):
    """Every array of ``tree`` split along its leading (run) axis over ``mesh``'s one axis (None:
    placed whole on the default device), in one transfer; each device then computes its runs with
    no communication."""
    if mesh is None:
        return jax.device_put(tree)
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])))


# ------------------------------------------------------------------ memory mappings
# XLA:CPU maps each loaded program's code into memory regions of its own, and a program stays
# loaded while JAX's caches hold it. The kernel caps a process's regions (vm.max_map_count, 65530
# by default); at the cap, XLA segfaults while compiling or loading the next program (measured:
# 65,313 regions at the crash). A process that loads thousands of distinct programs (a long
# notebook, a sweep over many algorithms and sizes) reaches it. Reading the count takes 46 ms at
# 40,000 regions, so it is read once per CHECK_EVERY programs loaded (compiled, or read from the
# persistent cache), counted through jax.monitoring.
CHECK_EVERY = 256  # programs loaded between two readings of the mapping count
RELEASE_AT = 0.5  # share of the limit above which JAX's compiled programs are dropped
_LOADED = [-1]  # programs loaded since the count was last read (-1: not counting yet)
# a program read from the persistent cache, one compiled, one read from gamelab's store
# (jax.monitoring's event names)
_LOAD_EVENTS = frozenset({"/jax/compilation_cache/cache_hits", "/jax/core/compile/backend_compile_duration",
                          LOAD_EVENT})


def mappings() -> tuple[int, int] | None:
    """(this process's memory mappings, the kernel's limit on them); None where unknown."""
    try:
        with open("/proc/self/maps", "rb") as maps, open("/proc/sys/vm/max_map_count") as limit:
            return maps.read().count(b"\n"), int(limit.read())
    except (OSError, ValueError):
        return None


def _loaded(event: str, *args, **kwargs) -> None:
    if event in _LOAD_EVENTS:
        _LOADED[0] += 1


def release_programs() -> bool:
    """Drop JAX's compiled programs (``jax.clear_caches``, and the executables
    :func:`gamelab.executables.forget` holds) when this process holds more than
    :data:`RELEASE_AT` of its memory-mapping limit, read once per :data:`CHECK_EVERY` programs
    loaded; True when dropped. A dropped program is traced again when
    next called and read back from the persistent compilation cache. Called before each run of
    the driver (:func:`gamelab.run.execute`)."""
    import jax  # the module itself, not gamelab.lazy's stand-in (which keeps what it read once)

    if _LOADED[0] < 0:  # the first call: start counting
        jax.monitoring.register_event_listener(_loaded)
        jax.monitoring.register_event_duration_secs_listener(_loaded)
        _LOADED[0] = 0
    if _LOADED[0] < CHECK_EVERY:
        return False
    _LOADED[0] = 0
    counts = mappings()
    if counts is None or counts[0] <= RELEASE_AT * counts[1]:
        return False
    jax.clear_caches()
    forget()  # and the executables read from gamelab's store
    return True
