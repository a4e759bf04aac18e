"""Compiled programs remembered across processes, and found again without tracing.

JAX's persistent compilation cache (:mod:`gamelab`) saves XLA's compilation, but a warm process
still traces each program to a jaxpr and lowers it to StableHLO before it can look the program
up: for the transformer's first step that is 0.9 s of a 2.4 s start, for a 60-run sweep 0.4 s.
A :class:`Program` is ``jax.jit(fn, ...)`` that also keeps each executable it compiles in
``<cache>/executables`` (the compilation cache's folder), under a key computed from what the
program is made of instead of from its trace:

* the function and its static arguments, described by value (:func:`describe`): numbers,
  strings, tuples, dicts, dataclasses and NamedTuples field by field, arrays by their bytes,
  functions by module and name where that names them (the module's code is in the source hash)
  and otherwise by their code, defaults and closure, recursively;
* each dynamic argument's type (shape, dtype, weak type) and sharding, and the pytree around them;
* every source file of gamelab, the current value of every plain constant at the top of its
  modules (a test's monkeypatch changes the key), the versions of Python, JAX, jaxlib, NumPy,
  Flax and Optax, every JAX configuration value, ``XLA_FLAGS`` and the devices.

Whatever the description cannot name by value (an object of an unknown class, a function that
refers to itself, a gamelab function replaced at run time by something that is not gamelab's)
is compiled as ``jax.jit`` would and held by this process only, never kept on disk: the key can
miss, never name the wrong program.
A stored executable also checks its arguments' types when called. ``GAMELAB_CACHE_DIR=off``
turns the store off with the compilation cache; ``GAMELAB_EXECUTABLES=off`` turns off the store
alone. Several processes (``jax.distributed``) and ``jax.disable_jit`` go through ``jax.jit``.

Only a real compilation is kept. JAX (0.10.2) serializes an executable that it read from its own
persistent cache without its code, and a later process that runs it fails ("NOT_FOUND: Function
<fusion> not found"). So a compile that JAX's cache answered is used but not kept. The store fills
where JAX's cache does not already hold the program: always on a fresh cache, but not after an
edit to gamelab that leaves a program's lowered module as it was (those runs trace as before).
Entries are written whole or not at all; one that cannot be read is deleted and compiled again.
The folder is unbounded, like the compilation cache: delete it to reclaim the space.

``Program(..., keep="result")`` is for a program of static arguments only (the transformer's
parameter draw): its result is kept instead of its executable, and read back as NumPy leaves.
In a process, a call finds its executable by a key of its static arguments, its arguments' types
and placements and JAX's trace context; a call with the very objects of the previous call skips
even that.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import operator
import os
import pickle
import re
import sys
import threading
import types
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gamelab.defaults import OFF, compilation_cache_dir
from gamelab.lazy import jax

__all__ = ["Program", "Unnamed", "describe", "forget", "store_dir", "LOAD_EVENT"]

FORMAT = 2  # of a stored entry: pickle of (FORMAT, device ids, serialized executable, in tree, out tree)
LOAD_EVENT = "/gamelab/executables/load"  # jax.monitoring event: an executable read from the store
_ROOT = Path(__file__).resolve().parent  # gamelab's sources
_PLAIN = (type(None), bool, int, float, complex, str, bytes)
GAMELAB_NAME = re.compile(r"(?:ref|fn)\((gamelab[\w.]*):")  # a gamelab module a description names


class Unnamed(Exception):
    """An object the key cannot describe by value: that program is not kept on disk."""


def store_dir() -> Path | None:
    """The store's folder, or None where it is off (``GAMELAB_EXECUTABLES=off`` or the
    compilation cache off). Read from the environment at each call (made once per setting: every
    call of a Program asks)."""
    env = os.environ
    return _store_dir(env.get("GAMELAB_EXECUTABLES"), env.get("GAMELAB_CACHE_DIR"), env.get("XDG_CACHE_HOME"))


@functools.lru_cache(maxsize=16)
def _store_dir(switch, cache_dir, xdg) -> Path | None:
    if (switch or "on").strip().lower() in OFF:
        return None
    cache = compilation_cache_dir()
    return None if cache is None else cache / "executables"


# ------------------------------------------------------------------------------ describing
def describe(obj) -> str:
    """A deterministic description of ``obj`` by value (equal in every process for equal
    objects); raises :class:`Unnamed` for what it cannot describe."""
    out: list[str] = []
    _describe(obj, out, set())
    return "".join(out)


def _by_name(obj) -> str | None:
    """``module:qualname@version`` where importing that name gives ``obj`` itself and the name
    pins the code: a gamelab module (its source is in the key) or a package with a version.
    Else None: the object is described by value."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<locals>" in qualname:
        return None
    found = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not obj:
        return None
    version = _version(module)
    return None if version is None else f"{module}:{qualname}@{version}"


def _version(module: str) -> str | None:
    """What pins the code of ``module``: "" for gamelab's (its sources are in the key) and the
    standard library's (Python's version is), a package's version, else None."""
    top = module.partition(".")[0]
    if top in ("gamelab", "builtins") or top in sys.stdlib_module_names:
        return ""
    version = getattr(sys.modules.get(top), "__version__", None)
    return version if isinstance(version, str) else None


def _module(module: types.ModuleType) -> str:
    version = _version(module.__name__)
    if version is None:
        raise Unnamed(f"module {module.__name__} has no version")
    return f"module({module.__name__}@{version})"


def _describe(obj, out: list, active: set) -> None:
    kind = type(obj)
    if kind in _PLAIN:
        out.append(f"{kind.__name__}({obj!r})")
        return
    if isinstance(obj, (np.dtype, np.generic)):
        out.append(f"np({obj.dtype.str if isinstance(obj, np.generic) else obj.str},"
                   f"{obj.tobytes().hex() if isinstance(obj, np.generic) else ''})")
        return
    if isinstance(obj, enum.Enum):
        out.append(f"enum({_type_name(kind)}.{obj.name})")
        return
    if isinstance(obj, types.CodeType):
        _code(obj, out, active)
        return
    if isinstance(obj, types.ModuleType):  # gamelab.lazy's stand-ins too
        out.append(_module(obj))
        return
    name = _by_name(obj) if callable(obj) and hasattr(obj, "__qualname__") else None  # classes, functions
    if name is not None:
        out.append(f"ref({name})")
        return
    if id(obj) in active:
        raise Unnamed(f"{kind.__name__} refers to itself")
    active.add(id(obj))
    try:
        _value(obj, kind, out, active)
    finally:
        active.discard(id(obj))


def _type_name(kind: type) -> str:
    name = _by_name(kind)
    if name is None:
        raise Unnamed(f"type {kind.__qualname__} of module {kind.__module__}")
    return name


def _value(obj, kind, out: list, active: set) -> None:
    if isinstance(obj, type):  # a class made at run time (a NamedTuple of hyper-parameters)
        if not (issubclass(obj, tuple) and hasattr(obj, "_fields")):
            raise Unnamed(f"class {obj.__qualname__}")
        out.append(f"namedtuple({obj.__qualname__},{obj._fields!r},")
        _describe(obj._field_defaults, out, active)
        out.append(")")
    elif isinstance(obj, types.FunctionType):
        out.append(f"fn({obj.__module__}:{obj.__qualname__},")
        for part in (obj.__code__, obj.__defaults__, obj.__kwdefaults__):
            _describe(part, out, active)
        for cell in obj.__closure__ or ():
            try:
                _describe(cell.cell_contents, out, active)
            except ValueError:  # an empty cell
                out.append("empty")
        for name in _global_names(obj.__code__):  # the module globals its code reads, as they are now
            if name in obj.__globals__:
                out.append(f"{name}=")
                _describe(obj.__globals__[name], out, active)
        out.append(")")
    elif isinstance(obj, types.MethodType):
        out.append("method(")
        _describe(obj.__func__, out, active)
        _describe(obj.__self__, out, active)
        out.append(")")
    elif isinstance(obj, functools.partial):
        out.append("partial(")
        for part in (obj.func, obj.args, obj.keywords):
            _describe(part, out, active)
        out.append(")")
    elif isinstance(obj, (tuple, list)):
        head = "list" if kind is list else "tuple" if kind is tuple else _type_or_local(kind, active)
        out.append(f"{head}[")
        for item in obj:
            _describe(item, out, active)
            out.append(",")
        out.append("]")
    elif isinstance(obj, (dict, Mapping)):
        out.append("dict{" if kind is dict else f"{_type_name(kind)}{{")
        for key, value in obj.items():
            _describe(key, out, active)
            out.append(":")
            _describe(value, out, active)
            out.append(",")
        out.append("}")
    elif isinstance(obj, (set, frozenset)):
        out.append(f"set{{{','.join(sorted(describe(x) for x in obj))}}}")
    elif isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        out.append(f"array({data.dtype.str},{data.shape},{hashlib.sha256(data.tobytes()).hexdigest()})")
    elif isinstance(obj, jax.Array):
        if not obj.is_fully_addressable:
            raise Unnamed("an array spread over several processes")
        out.append("jax")
        _value(np.asarray(obj), np.ndarray, out, active)
    elif isinstance(obj, (jax.sharding.Sharding, jax.sharding.Mesh, jax.tree_util.PyTreeDef)):
        out.append(f"{kind.__name__}({obj})")
    elif dataclasses.is_dataclass(obj):
        out.append(f"{_type_name(kind)}(")
        for field in dataclasses.fields(obj):
            out.append(f"{field.name}=")
            _describe(getattr(obj, field.name), out, active)
            out.append(",")
        out.append(")")
    elif kind.__module__.partition(".")[0] == "gamelab" and hasattr(obj, "__dict__"):
        out.append(f"{_type_name(kind)}(")  # a gamelab object (a policy): its attributes
        for key in sorted(vars(obj)):
            out.append(f"{key}=")
            _describe(vars(obj)[key], out, active)
            out.append(",")
        out.append(")")
    elif _by_name(kind) is not None and not jax.tree_util.all_leaves([obj]):  # a pytree node (Flax's variables)
        leaves, tree = jax.tree.flatten(obj)
        out.append(f"pytree({tree})[")
        for leaf in leaves:
            _describe(leaf, out, active)
            out.append(",")
        out.append("]")
    else:
        raise Unnamed(f"an object of type {kind.__module__}.{kind.__qualname__}")


def _type_or_local(kind: type, active: set) -> str:
    part: list[str] = []
    _describe(kind, part, active)
    return "".join(part)


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return sorted(set(names))


def _code(code: types.CodeType, out: list, active: set) -> None:
    out.append(f"code({code.co_code.hex()},{code.co_names!r},{code.co_varnames!r},{code.co_freevars!r},"
               f"{code.co_argcount},{code.co_kwonlyargcount},{code.co_flags},")
    for const in code.co_consts:
        _describe(const, out, active)
        out.append(",")
    out.append(")")


# ------------------------------------------------------------------------------ the key
@functools.lru_cache(maxsize=None)
def _sources() -> str:
    """sha256 of gamelab's source files (paths and bytes), read once per process."""
    digest = hashlib.sha256()
    for path in sorted(_ROOT.rglob("*.py")):
        digest.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _constants(modules: frozenset) -> str:
    """The plain constants at the top of ``modules`` (gamelab modules) as they are now, and the
    names of the functions and classes there (a function replaced by a test's or a user's:
    another key, or :class:`Unnamed` where the replacement has no name that pins its code)."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        for attr, value in sorted(vars(sys.modules[name]).items()):
            if attr.startswith("__"):
                continue
            if type(value) in _PLAIN or isinstance(value, (tuple, frozenset)) and _plain(value):
                shown = sorted(map(repr, value)) if isinstance(value, frozenset) else value  # sets: in no fixed order
                digest.update(f"{name}.{attr}={shown!r};".encode())
            elif isinstance(value, (types.FunctionType, type)):
                named = _by_name(value) or _ours(value)
                if named is None:
                    raise Unnamed(f"{name}.{attr} has no name that pins its code")
                digest.update(f"{name}.{attr}->{named};".encode())
    return digest.hexdigest()


def _gamelab_module(value) -> str | None:
    name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    return name if isinstance(name, str) and name.partition(".")[0] == "gamelab" and name in sys.modules else None


@functools.lru_cache(maxsize=None)
def _reachable(roots: frozenset) -> frozenset:
    """The gamelab modules that ``roots`` reach through the modules, functions and classes at the
    top of each: the same set in every process (imports made inside functions are not followed,
    nor a package's submodules, which become its attributes when anything imports them)."""
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        module = sys.modules[name]
        package = hasattr(module, "__path__")  # its submodules are its attributes once imported: not followed
        stack += [m for v in vars(module).values()
                  if isinstance(v, (types.FunctionType, type)) or isinstance(v, types.ModuleType) and not package
                  if (m := _gamelab_module(v))]
    return frozenset(seen)


def _ours(value) -> str | None:
    """``gamelab:qualname`` for a function or class whose code is in gamelab's sources (a
    wrapper made at import, such as :func:`gamelab.lazy.jit`'s), else None."""
    code = getattr(value, "__code__", None)
    if code is not None:
        return f"gamelab:{value.__qualname__}" if Path(code.co_filename).resolve().is_relative_to(_ROOT) else None
    return f"gamelab:{value.__qualname__}" if value.__module__.partition(".")[0] == "gamelab" else None


def _plain(values) -> bool:
    return all(type(v) in _PLAIN or isinstance(v, tuple) and _plain(v) for v in values)


def _config() -> tuple:
    """Every JAX configuration value (a context manager's included), in a fixed order."""
    return tuple(sorted((k, repr(v)) for k, v in jax.config.values.items()))


def _environment() -> str:
    versions = [sys.version]
    for module in ("jax", "jaxlib", "numpy", "ml_dtypes", "flax", "optax"):
        versions.append(f"{module}={getattr(sys.modules.get(module), '__version__', None)}")
    devices = [(d.platform, d.device_kind, d.id, d.process_index) for d in jax.devices()]
    return repr((FORMAT, versions, devices, os.environ.get("XLA_FLAGS", ""), _config()))


def _signature(x):
    """A dynamic argument's type and placement, hashable (the in-memory key: no strings made)."""
    if isinstance(x, np.ndarray):
        return x.shape, x.dtype
    if isinstance(x, jax.Array):
        return x.aval, x.sharding if x.committed else None
    if isinstance(x, (np.generic, bool, int, float, complex)):
        return type(x)  # its type is its JAX type (weak for Python's numbers), in a given x64 mode
    return jax.typeof(x), None


def _context() -> tuple:
    """What JAX's own in-memory jit cache keys on beside the arguments: the configuration that
    a context manager can change (matmul precision, ...) and the x64 mode."""
    return _trace_context()(), jax.config.jax_enable_x64


@functools.lru_cache(maxsize=None)
def _trace_context():
    try:
        from jax._src.config import trace_context  # the key of jit's own cache; no public equivalent
    except ImportError:  # a JAX without it: every configuration value (slower: 80 us a call)
        return _config
    return trace_context


def _argument(x) -> str:
    """A dynamic argument as the program sees it: its type ("~" marks a weak one), and its
    sharding where it is placed."""
    sharding = x.sharding if isinstance(x, jax.Array) and x.committed else None
    return f"{jax.typeof(x)}|{sharding}"


# ------------------------------------------------------------------------------ the store
_MEMORY: dict = {}  # in-process: (program, static arguments, pytree, argument types, context) -> executable


_PROGRAMS: "weakref.WeakSet" = weakref.WeakSet()  # every Program, for forget()
_DESCRIPTIONS: dict = {}  # in-process: static arguments -> their description's digest and its gamelab names


def _described(static) -> str:
    """A static argument's description, shortened to its digest and the gamelab modules it
    names; made once per process for equal arguments (a transformer's algorithm, described with
    its initial weights, is a static argument of three programs)."""
    try:
        return _DESCRIPTIONS[static]
    except KeyError:
        pass
    except TypeError:  # unhashable: described each time
        return _shortened(describe(static))
    _DESCRIPTIONS[static] = _shortened(describe(static))
    return _DESCRIPTIONS[static]


def _shortened(described: str) -> str:
    names = sorted(set(GAMELAB_NAME.findall(described)))
    return f"static({hashlib.sha256(described.encode()).hexdigest()};{','.join(f'ref({n}:' for n in names)})"


def forget() -> None:
    """Drop the executables this process holds (:func:`gamelab.hosts.release_programs`); the
    store on disk is kept."""
    _MEMORY.clear()
    _DESCRIPTIONS.clear()
    for program in list(_PROGRAMS):
        program._last = None


_HITS = threading.local()  # persistent-cache hits in this thread since the count was set to 0


@functools.lru_cache(maxsize=None)
def _listen() -> None:  # once per process
    jax.monitoring.register_event_listener(_hit)


def _hit(event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _HITS.count = getattr(_HITS, "count", 0) + 1


def _load(path: Path):
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        fmt, devices, payload, in_tree, out_tree = pickle.loads(data)
        if fmt != FORMAT:
            raise ValueError(f"format {fmt}")
        by_id = {d.id: d for d in jax.devices()}
        executable = deserialize_and_load(payload, in_tree, out_tree, execution_devices=[by_id[i] for i in devices])
    except Exception:  # noqa: BLE001 - a damaged or foreign entry: compiled again and replaced
        path.unlink(missing_ok=True)
        return None
    jax.monitoring.record_event(LOAD_EVENT)
    return executable


def _save(path: Path, executable) -> None:
    """Keep ``executable`` at ``path``, whole or not at all; one that cannot be kept (a pytree
    of a class made at run time, a full disk) is only not kept."""
    from jax.experimental.serialize_executable import serialize

    try:
        shardings = jax.tree.leaves((executable.input_shardings, executable.output_shardings))
        devices = sorted({d.id for sh in shardings for d in sh.device_set}) or [jax.devices()[0].id]
        data = pickle.dumps((FORMAT, devices, *serialize(executable)))
    except Exception:  # noqa: BLE001 - e.g. pickling a pytree node class defined in a function
        return
    _write(path, data)


def _write(path: Path, data: bytes) -> None:
    from gamelab.results import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError:  # a full disk, a read-only folder: not kept
        pass


class Program:
    """``jax.jit(fn, static_argnums=..., static_argnames=..., **options)`` (made on first use),
    whose executables are kept in the store (module doc). Call it as the jitted function;
    :meth:`find` gives the executable itself, called with the dynamic arguments only."""

    def __init__(self, fn, *, static_argnums=(), static_argnames=(), keep: str = "program", **options):
        if keep not in ("program", "result"):
            raise ValueError(f"keep must be 'program' or 'result', got {keep!r}")
        self.keep = keep
        static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.fn, self.static_argnums, self.static_argnames = fn, static_argnums, static_argnames
        self.options = options
        # static by position or by name, as jax.jit does
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self._static_at = frozenset(static_argnums) | {names.index(n) for n in static_argnames if n in names}
        self._static_names = frozenset(static_argnames) | {names[i] for i in static_argnums if i < len(names)}
        self._jitted = None
        # (args, kwargs, context, store folder, executable, dynamic args, dynamic kwargs) of the last
        # call through the store: a loop calling with the same objects skips building the key (30 us
        # beside a 0.4 ms run of 64 games × 100 steps)
        self._last = None
        functools.update_wrapper(self, fn)
        _PROGRAMS.add(self)

    @property
    def jitted(self):
        if self._jitted is None:
            self._jitted = jax.jit(self.fn, static_argnums=sorted(self._static_at),
                                   static_argnames=sorted(self._static_names), **self.options)
        return self._jitted

    def cache_size(self) -> int:
        """How many programs this process holds for this function: compiled or read from the store,
        and jitted by JAX where the store does not apply."""
        held = sum(1 for key in _MEMORY if key[0] is self)
        return held + (0 if self._jitted is None else self._jitted._cache_size())

    def lower(self, *args, **kwargs):
        return self.jitted.lower(*args, **kwargs)

    def _split(self, args, kwargs):
        static = tuple(a for i, a in enumerate(args) if i in self._static_at)
        static_kw = tuple(sorted((k, v) for k, v in kwargs.items() if k in self._static_names))
        dynamic = tuple(a for i, a in enumerate(args) if i not in self._static_at)
        dynamic_kw = {k: v for k, v in kwargs.items() if k not in self._static_names}
        return static, static_kw, dynamic, dynamic_kw

    def _keyed(self, args, kwargs) -> tuple:
        """(this process's key for these arguments, their dynamic part, its keywords)."""
        static, static_kw, dynamic, dynamic_kw = self._split(args, kwargs)
        leaves, tree = jax.tree.flatten((dynamic, dynamic_kw))
        return (self, static, static_kw, tree, tuple(map(_signature, leaves)), _context()), dynamic, dynamic_kw

    def path(self, *args, **kwargs) -> Path | None:
        """Where the executable for these arguments is kept; None where the store is off or the
        arguments cannot be described."""
        folder = store_dir()
        if folder is None or jax.process_count() > 1:
            return None
        static, static_kw, dynamic, dynamic_kw = self._split(args, kwargs)
        leaves, tree = jax.tree.flatten((dynamic, dynamic_kw))
        try:
            described = describe((self.fn, self.static_argnums, self.static_argnames, self.options)) + \
                "".join(map(_described, (*static, static_kw)))
            roots = frozenset(m for m in GAMELAB_NAME.findall(described) if m in sys.modules)
            constants = _constants(_reachable(roots))
        except Unnamed:
            return None
        key = hashlib.sha256("\n".join((_sources(), constants, _environment(), described, str(tree),
                                        *map(_argument, leaves))).encode()).hexdigest()
        return folder / key[:2] / f"{self.fn.__name__}-{key}.exe"

    def find(self, args: tuple, kwargs: dict, *, compile: bool):
        """The executable for ``fn(*args, **kwargs)``: held by this process, else read from the
        store, else (``compile``) compiled now and kept (on disk where the arguments can be
        described); None if there is none and not ``compile``."""
        return self._find(args, kwargs, compile)[0]

    def executable(self, *args, **kwargs):
        """:meth:`find` without compiling."""
        return self.find(args, kwargs, compile=False)

    def _find(self, args, kwargs, compile: bool) -> tuple:
        memory, dynamic, dynamic_kw = self._keyed(args, kwargs)
        executable = _MEMORY.get(memory)
        if executable is None:
            path = self.path(*args, **kwargs)
            executable = None if path is None else _load(path)
            if executable is None and compile:
                executable = self._compile(args, kwargs, path)
            if executable is not None:
                _MEMORY[memory] = executable
        return executable, memory, dynamic, dynamic_kw

    def _compile(self, args, kwargs, path: Path | None):
        """Compile, and keep the executable at ``path`` (None: arguments not described, held by
        this process only, as jit would)."""
        lowered = self.lower(*args, **kwargs)
        _listen()
        _HITS.count = 0
        executable = lowered.compile()
        if path is not None and not _HITS.count:  # one read from JAX's cache is kept without its code (module doc)
            _save(path, executable)
        return executable

    def _result(self, args, kwargs):
        """``keep='result'``: a program of static arguments only is a constant; its result (NumPy
        leaves and their pytree) is kept and read back instead of its executable (the transformer's
        parameter draw: 1 MB of code that takes 0.11 s to load, for 30 kB of weights)."""
        if jax.tree.leaves(self._split(args, kwargs)[2:]):
            raise TypeError(f"{self.fn.__name__}: keep='result' takes static arguments only")
        path = self.path(*args, **kwargs)
        if path is None:
            return self.jitted(*args, **kwargs)
        path = path.with_suffix(".result")
        try:
            fmt, tree, leaves = pickle.loads(path.read_bytes())
            if fmt == FORMAT:
                jax.monitoring.record_event(LOAD_EVENT)
                return jax.tree.unflatten(tree, jax.device_put(leaves))  # uncommitted, as the program's outputs
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - a damaged or foreign entry: computed again and replaced
            path.unlink(missing_ok=True)
        result = self.jitted(*args, **kwargs)
        leaves, tree = jax.tree.flatten(result)
        try:
            data = pickle.dumps((FORMAT, tree, [np.asarray(x) for x in leaves]))
        except Exception:  # noqa: BLE001 - a pytree of a class made in a function: not kept
            return result
        _write(path, data)
        return result

    def __call__(self, *args, **kwargs):
        last = self._last  # the same objects as the last call, in the same configuration: its executable
        if last is not None and len(args) == len(last[0]) and all(map(operator.is_, args, last[0])) \
                and kwargs.keys() == last[1].keys() and all(kwargs[k] is last[1][k] for k in kwargs) \
                and last[2] == _context() and store_dir() is last[3]:
            return last[4](*last[5], **last[6])
        if store_dir() is None or jax.config.jax_disable_jit or jax.process_count() > 1:
            return self.jitted(*args, **kwargs)  # jit's own rules (op by op under disable_jit; global programs)
        if self.keep == "result":
            return self._result(args, kwargs)
        executable, memory, dynamic, dynamic_kw = self._find(args, kwargs, compile=True)
        self._last = (args, kwargs, memory[-1], store_dir(), executable, dynamic, dynamic_kw)
        return executable(*dynamic, **dynamic_kw)
