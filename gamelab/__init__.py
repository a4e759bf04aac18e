"""gamelab: last-iterate convergence of alignment algorithms on general-preference games.

Importing gamelab does not import JAX (``gamelab --help`` and argument errors answer at once); it
configures JAX for when it is imported:

* float64 mode (``jax_enable_x64``): tabular work defaults to float64 (float32 bottoms out near
  1e-7, and exact-Nash convergence is only visible below that). Pass ``dtype=float32`` to the
  runner for single precision.
* the persistent compilation cache, so that a program compiled once is read from disk by every
  later process: ``$GAMELAB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/gamelab/jax``, i.e.
  ``~/.cache/gamelab/jax``, unbounded); ``GAMELAB_CACHE_DIR=off`` disables it. A cache folder set through
  JAX's own ``JAX_COMPILATION_CACHE_DIR`` is left alone. JAX writes an entry in place and never
  replaces one, so an entry cut short (a process killed while writing it, a full disk) would be
  warned about and compiled around by every later process: gamelab deletes it when JAX warns
  that it cannot read it, and the program compiled instead is written whole
  (:func:`repair_cache`). Beside it, ``executables/`` keeps gamelab's own programs under keys
  found without tracing (:mod:`gamelab.executables`; ``GAMELAB_EXECUTABLES=off`` turns that off).
"""
from __future__ import annotations

import glob
import os
import re
import sys
import warnings
import zlib
from pathlib import Path

__all__ = ["Game", "InvalidGameError", "make_game", "compilation_cache_dir", "repair_cache"]
__version__ = "0.1.0"

from gamelab.defaults import compilation_cache_dir  # noqa: E402  (the folder, defined with the other defaults)

CACHE_MIN_COMPILE_SECONDS = 0.0  # cache every program: a cold CLI run is many small compilations
# Unbounded: to bound it, JAX reads the size and age of every entry, under a lock all processes
# share, each time it writes one (90 ms a write at 1,900 entries). A program is 10-200 kB; delete
# the folder to reclaim the space.
CACHE_MAX_BYTES = -1


# JAX's warning when a cache entry cannot be read; it names the program (or the entry's key)
DAMAGED_PREFIX = "Error reading persistent compilation cache entry for "
DAMAGED_ENTRY = re.compile(re.escape(DAMAGED_PREFIX) + r"'([^']+)'")


def repair_cache(folder: Path, name: str) -> list[Path]:
    """Delete the damaged entries of the program ``name`` (JAX's module name, e.g.
    ``jit_simulate_batch``, or one entry's key) in the compilation cache ``folder``: entries whose
    compressed stream ends early or does not decompress. Returns the paths deleted."""
    removed = []
    for path in {*folder.glob(f"{glob.escape(name)}-*-cache"), folder / f"{name}-cache"}:
        try:
            if _whole(path.read_bytes()):
                continue
            path.unlink()
        except OSError:  # absent, already repaired by another process, or not ours to delete
            continue
        removed.append(path)
    return sorted(removed)


def _whole(entry: bytes) -> bool:
    """Whether a compilation-cache entry's compressed stream is complete: zlib, or a zstd frame
    where a zstd module is at hand to check it (without one it is taken as whole)."""
    if entry[:4] == b"\x28\xb5\x2f\xfd":  # a zstd frame (JAX uses zstd where it finds a module for it)
        try:
            from compression import zstd  # Python 3.14
            decompress = zstd.decompress
        except ImportError:
            try:
                import zstandard
            except ImportError:
                return True
            decompress = zstandard.ZstdDecompressor().decompress
        try:
            decompress(entry)
        except Exception:  # noqa: BLE001 - each zstd module has its own error type
            return False
        return True
    stream = zlib.decompressobj()
    try:
        stream.decompress(entry)
    except zlib.error:
        return False
    return stream.eof


def _repair_on_warning(folder: Path) -> None:
    """Chain a repair onto :func:`warnings.showwarning`: when JAX says an entry of ``folder``
    cannot be read, delete it before JAX compiles the program again and writes the entry anew.
    That warning is always shown, ahead of the filters set so far (``-W error`` would make it end
    the run with a traceback; ``-W ignore`` would keep the entry damaged, every later run
    compiling again in silence)."""
    warnings.filterwarnings("default", message=re.escape(DAMAGED_PREFIX), category=UserWarning)
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        match = DAMAGED_ENTRY.search(str(message))
        removed = repair_cache(folder, match.group(1)) if match else []
        if removed:
            message = (f"{message} [gamelab deleted the damaged entry {', '.join(p.name for p in removed)}; "
                       "the program compiled now is cached whole]")
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def _configure_jax() -> None:
    cache = compilation_cache_dir()
    settings = {"jax_enable_x64": True}
    if cache is not None and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        settings.update(jax_compilation_cache_dir=str(cache),
                        jax_persistent_cache_min_compile_time_secs=CACHE_MIN_COMPILE_SECONDS,
                        jax_compilation_cache_max_size=CACHE_MAX_BYTES)
        _repair_on_warning(cache)
    if "jax" in sys.modules:  # imported before gamelab: set its configuration directly
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    else:  # read by JAX when it is imported (and inherited by subprocesses)
        for name, value in settings.items():
            os.environ[name.upper()] = str(value)


_configure_jax()


def __getattr__(name: str):  # the game API, imported (with JAX) on first use
    if name in ("Game", "InvalidGameError", "make_game"):
        from gamelab import games

        return getattr(games, name)
    raise AttributeError(f"module 'gamelab' has no attribute {name!r}")
