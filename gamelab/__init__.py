"""gamelab: last-iterate convergence of alignment algorithms on general-preference games.

Importing gamelab does not import JAX (``gamelab --help`` and argument errors answer at once); it
configures JAX for when it is imported:

* float64 mode (``jax_enable_x64``): tabular work defaults to float64 (float32 bottoms out near
  1e-7, and exact-Nash convergence is only visible below that). Pass ``dtype=float32`` to the
  runner for single precision.
* the persistent compilation cache, so that a program compiled once is read from disk by every
  later process: ``$GAMELAB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/gamelab/jax``, i.e.
  ``~/.cache/gamelab/jax``, unbounded); ``GAMELAB_CACHE_DIR=off`` disables it. A cache folder set through
  JAX's own ``JAX_COMPILATION_CACHE_DIR`` is left alone.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["Game", "InvalidGameError", "make_game", "compilation_cache_dir"]
__version__ = "0.1.0"

CACHE_MIN_COMPILE_SECONDS = 0.0  # cache every program: a cold CLI run is many small compilations
# Unbounded: to bound it, JAX reads the size and age of every entry, under a lock all processes
# share, each time it writes one (90 ms a write at 1,900 entries). A program is 10-200 kB; delete
# the folder to reclaim the space.
CACHE_MAX_BYTES = -1


def compilation_cache_dir() -> Path | None:
    """The persistent compilation cache's folder (None: disabled by ``GAMELAB_CACHE_DIR=off``)."""
    value = os.environ.get("GAMELAB_CACHE_DIR")
    if value is not None and value.strip().lower() in ("", "0", "off", "none", "false"):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gamelab" / "jax"


def _configure_jax() -> None:
    cache = compilation_cache_dir()
    settings = {"jax_enable_x64": True}
    if cache is not None and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        settings.update(jax_compilation_cache_dir=str(cache),
                        jax_persistent_cache_min_compile_time_secs=CACHE_MIN_COMPILE_SECONDS,
                        jax_compilation_cache_max_size=CACHE_MAX_BYTES)
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
