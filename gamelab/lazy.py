"""JAX imported on first use, so that the modules the command line reads at start-up (the algorithm
registry, the games, the losses and metrics) import without it: ``gamelab --help``, ``gamelab list``
and an error about a bad argument answer in a fraction of JAX's import time.

    from gamelab.lazy import jax, jnp, lax

``jax``, ``jnp`` and ``lax`` stand for ``jax``, ``jax.numpy`` and ``jax.lax``: the first attribute
read (``jnp.exp``, ``jax.Array``, …) imports the real module; each attribute is then kept on the
stand-in, so a later read costs what a module attribute costs. Module-level code of a module that
imports these must not read an attribute (that would import JAX at start-up): keep such uses inside
functions. Type annotations are fine under ``from __future__ import annotations``.
"""
from __future__ import annotations

import functools
import importlib
import types

__all__ = ["LazyModule", "jax", "jit", "jnp", "lax", "jsp_special"]


class LazyModule(types.ModuleType):
    """A stand-in for module ``name`` that imports it on the first attribute read."""

    def __getattr__(self, attr: str):  # only called for attributes not yet kept
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # copy, pickle, doctest probing: do not import
        value = getattr(importlib.import_module(self.__name__), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
lax = LazyModule("jax.lax")
jsp_special = LazyModule("jax.scipy.special")


def jit(fun=None, /, **options):
    """``jax.jit(fun, **options)``, made on the first call: for a module-level jitted function
    (a decorator, ``@jit`` or ``@jit(static_argnames=...)``) in a module imported at start-up."""
    if fun is None:
        return functools.partial(jit, **options)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        if call.jitted is None:
            call.jitted = jax.jit(fun, **options)
        return call.jitted(*args, **kwargs)

    call.jitted = None
    return call
