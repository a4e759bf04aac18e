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
    unchanged); each device then computes its runs with no communication."""
    if mesh is None:
        return tree
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])))
