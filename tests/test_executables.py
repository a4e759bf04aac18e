"""The store of compiled programs (gamelab.executables): keys found without tracing that are equal
across processes and change with everything the program is made of, a fallback to jax.jit for what
cannot be described, damaged entries compiled again, and the numbers of a stored program equal to
the jitted program's bit for bit — also where JAX's own cache held the program first (JAX keeps a
program it read from its cache without its code when serialized again)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gamelab.defaults
from gamelab import executables
from gamelab.executables import Program, Unnamed, describe
from gamelab.prepare import prepare
from gamelab.run import driver_call


def _path(prep):
    fn, args, kwargs = driver_call(prep)
    return fn.path(*args, **kwargs)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A store of its own, empty, and nothing held in memory."""
    monkeypatch.setenv("GAMELAB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GAMELAB_EXECUTABLES", raising=False)
    executables.forget()
    yield tmp_path / "executables"
    executables.forget()


# ------------------------------------------------------------------------------ describing
def _closure(scale):
    def f(x):
        return x * scale
    return f


def _recursive(n):
    return 1 if n <= 0 else _recursive(n - 1)


class _Opaque:  # a class of a module without a version: its objects are not described
    pass


def test_descriptions_are_by_value():
    assert describe({1, 2, 3}) == describe({3, 2, 1})  # a set's order is not its value
    assert describe((1, 2.0)) != describe((1, 2))  # an int is not a float
    assert describe(np.arange(3.0)) == describe(np.arange(3.0)) != describe(np.arange(3.0) + 1e-16 * 4)
    assert describe(_closure(1.0)) == describe(_closure(1.0)) != describe(_closure(2.0))
    assert describe(jnp.sum).startswith("ref(")  # a function of a versioned package: by name
    with pytest.raises(Unnamed):
        describe(_Opaque())
    with pytest.raises(Unnamed):
        describe(_recursive)  # it reads itself as a global: no finite description


def test_the_key_changes_with_what_makes_the_program(store, monkeypatch):
    base = _path(prepare("mwu", "rps", steps=100))
    assert base is not None and base.parent.parent == store
    assert _path(prepare("mwu", "rps", steps=100)) == base
    assert _path(prepare("mwu", "rps", steps=120, hparams={"eta": 0.3})) == base  # counts (one row bucket), η: arguments
    assert _path(prepare("omwu", "rps", steps=100)) != base
    assert _path(prepare("mwu", "random:n=4,seed=0", steps=100)) != base  # shapes
    assert _path(prepare("mwu", "rps", steps=100, dtype=jnp.float32)) != base  # dtypes
    assert _path(prepare("mwu", "rps", steps=100, metrics="duality_gap")) != base  # static choices
    monkeypatch.setattr(gamelab.defaults, "SEED", 12345)  # a constant of a module the driver reaches
    assert _path(prepare("mwu", "rps", steps=100)) != base
    monkeypatch.undo()
    monkeypatch.setenv("GAMELAB_CACHE_DIR", str(store.parent))
    assert _path(prepare("mwu", "rps", steps=100)) == base
    with jax.default_matmul_precision("highest"):  # JAX's configuration, also set in a context
        assert _path(prepare("mwu", "rps", steps=100)) != base


def test_under_disable_jit_nothing_is_compiled(store):
    fn = Program(_scaled, static_argnums=1)
    with jax.disable_jit():
        assert isinstance(fn(np.ones(2), None)[0], np.ndarray | jax.Array)
    assert fn.cache_size() == 0 and not store.exists()


def test_a_replaced_gamelab_function_without_a_name_turns_the_store_off_for_that_call(store, monkeypatch):
    import gamelab.metrics

    monkeypatch.setattr(gamelab.metrics, "entropy", lambda p: jnp.zeros(()))
    assert _path(prepare("mwu", "rps", steps=100)) is None


def test_the_store_can_be_turned_off(store, monkeypatch):
    monkeypatch.setenv("GAMELAB_EXECUTABLES", "off")
    assert executables.store_dir() is None and _path(prepare("mwu", "rps", steps=100)) is None
    monkeypatch.setenv("GAMELAB_EXECUTABLES", "on")
    monkeypatch.setenv("GAMELAB_CACHE_DIR", "off")
    assert executables.store_dir() is None


# ------------------------------------------------------------------------------ calling
def _scaled(x, how):
    """x·2 (``how`` None) or x·3, and a number of ``how`` as a second output: a program no earlier
    run has compiled, so that JAX's own cache (which the store does not copy from) cannot hold it."""
    factor, nonce = (2.0, 0) if how is None else how
    return x * factor, jnp.asarray(nonce)


@pytest.fixture
def nonce():
    return int.from_bytes(os.urandom(6), "little")


def test_what_cannot_be_described_is_jitted_as_usual(store, nonce):
    fn = Program(_scaled, static_argnums=1)
    np.testing.assert_array_equal(fn(np.ones(3), (3.0, nonce))[0], 3.0 * np.ones(3))  # described: kept
    assert len(list(store.rglob("*.exe"))) == 1 and fn.cache_size() == 1
    opaque = (3.0, _Opaque())
    assert fn.path(np.ones(3), opaque) is None
    with pytest.raises(TypeError):  # jitted: its static argument reaches the trace (an object, not a number)
        fn(np.ones(3), opaque)
    assert len(list(store.rglob("*.exe"))) == 1


def test_a_damaged_entry_is_compiled_again_and_replaced(store, nonce):
    fn = Program(_scaled, static_argnums=1)
    x = np.arange(4.0)
    np.testing.assert_array_equal(fn(x, (2.0, nonce))[0], 2.0 * x)
    (entry,) = store.rglob("*.exe")
    whole = entry.read_bytes()
    entry.write_bytes(whole[: len(whole) // 3])  # a file cut short
    executables.forget()
    assert fn.executable(x, (2.0, nonce)) is None and not entry.exists()  # removed, not run
    out, got = fn(x, (2.0, nonce))  # compiled again (JAX's cache answers: nothing is kept from it)
    np.testing.assert_array_equal(out, 2.0 * x)
    assert int(got) == nonce


# ------------------------------------------------------------------------------ across processes
_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import jax
    from gamelab.run import run_batch
    from gamelab.games import parse_game
    events = []
    jax.monitoring.register_event_listener(lambda e, **k: events.append(e))
    jax.monitoring.register_event_duration_secs_listener(lambda e, d, **k: events.append(e))
    games = [parse_game("random:n=5,seed=3"), parse_game("random:n=5,seed=4")]
    r = run_batch("omwu", games, steps=60, record_every=7, hparams={"eta": [0.1, 0.3]})
    digest = hashlib.sha256()
    for key in sorted(r.trace):
        digest.update(key.encode() + r.trace[key].tobytes())
    print(json.dumps({"trace": digest.hexdigest(), "loads": events.count("/gamelab/executables/load"),
                      "compiles": events.count("/jax/core/compile/backend_compile_duration"),
                      "jax_hits": events.count("/jax/compilation_cache/cache_hits")}))
""")


def _run(env):
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_stored_programs_give_the_jitted_numbers_bit_for_bit_in_later_processes(tmp_path):
    """A process with empty caches keeps its programs; a later one reads them, compiling and
    tracing nothing: the same trace bit for bit as with the store off."""
    env = {**os.environ, "GAMELAB_CACHE_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    keeping = _run(env)
    reading = _run(env)
    plain = _run({**env, "GAMELAB_EXECUTABLES": "off"})
    assert keeping["trace"] == reading["trace"] == plain["trace"]
    assert keeping["loads"] == 0 and len(list((tmp_path / "executables").rglob("*.exe"))) >= 2
    assert reading["loads"] >= 2  # the random game's program and the driver
    assert reading["compiles"] == 0 and reading["jax_hits"] == 0


def test_programs_read_from_jaxs_cache_are_not_kept(tmp_path):
    """JAX keeps a program it read from its persistent cache without its code when serialized
    again (it fails in the process that loads it: 'Function ... not found'): where JAX's cache
    answers, the store keeps nothing, and every later process still runs right."""
    env = {**os.environ, "GAMELAB_CACHE_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    plain = _run({**env, "GAMELAB_EXECUTABLES": "off"})  # fills JAX's cache only
    after = [_run(env) for _ in range(2)]
    assert not list((tmp_path / "executables").rglob("*.exe"))
    assert all(r["trace"] == plain["trace"] and r["loads"] == 0 and r["jax_hits"] >= 2 for r in after)


def _draw(n, seed):
    return {"w": jax.random.normal(jax.random.key(seed), (n, 3)), "b": jnp.arange(n, dtype=jnp.float32)}


def test_a_constant_program_keeps_its_result(store, nonce):
    """keep='result': a program of static arguments only keeps its output (the transformer's
    weights), read back bit for bit and uncommitted, as the program's own outputs are."""
    fn = Program(_draw, static_argnums=(0, 1), keep="result")
    first = fn(4, nonce % 1000)
    (entry,) = store.rglob("*.result")
    loads = []
    listener = lambda e, **k: loads.append(e) if e == executables.LOAD_EVENT else None  # noqa: E731
    jax.monitoring.register_event_listener(listener)
    try:
        again = fn(4, nonce % 1000)
    finally:
        jax.monitoring.unregister_event_listener(listener)
    assert loads and jax.tree.structure(again) == jax.tree.structure(first)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        assert a.dtype == b.dtype and not b.committed
        np.testing.assert_array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))
    entry.write_bytes(b"not a pickle")
    np.testing.assert_array_equal(fn(4, nonce % 1000)["w"], first["w"])  # damaged: computed again
    with pytest.raises(TypeError):
        Program(_scaled, static_argnums=1, keep="result")(np.ones(2), None)
    with pytest.raises(ValueError):
        Program(_scaled, keep="output")


def test_repeated_calls_with_the_same_objects_still_see_the_configuration(store, nonce, monkeypatch):
    """The shortcut for a call with the same objects as the last one (no key built) is left when
    JAX's configuration or the store's setting changes."""
    fn = Program(_scaled, static_argnums=1)
    x, how = np.arange(3.0), (2.0, nonce)
    fn(x, how)
    executables._MEMORY.clear()  # a call that built its key would now read the store back
    loads = []
    listener = lambda e, **k: loads.append(e) if e == executables.LOAD_EVENT else None  # noqa: E731
    jax.monitoring.register_event_listener(listener)
    try:
        np.testing.assert_array_equal(fn(x, how)[0], 2.0 * x)
    finally:
        jax.monitoring.unregister_event_listener(listener)
    assert loads == []  # the same objects: the last executable, no key, no read
    np.testing.assert_array_equal(fn(x.copy(), how)[0], 2.0 * x)  # equal, not the same: the key is built
    held = fn.cache_size()
    with jax.default_matmul_precision("highest"):  # another context: another program
        fn(x, (2.0, nonce))
    assert fn.cache_size() == held + 1
    monkeypatch.setenv("GAMELAB_EXECUTABLES", "off")
    before = fn.jitted._cache_size()  # jit's cache is shared by every jit of _scaled in this process
    fn(x, (2.0, nonce))
    assert fn.jitted._cache_size() == before + 1  # the store off: jax.jit's own path
    monkeypatch.setenv("GAMELAB_EXECUTABLES", "on")
    executables.forget()
    assert fn._last is None


_LLM = textwrap.dedent("""
    import json, sys
    import jax
    events = []
    jax.monitoring.register_event_listener(lambda e, **k: events.append(e))
    jax.monitoring.register_event_duration_secs_listener(lambda e, d, **k: events.append(e))
    from gamelab.llm.train import train
    from gamelab.llm.games import parse_sequence_game
    r = train("mwu", parse_sequence_game("cyclic:rule=count", 4, 4), steps=4, record_every=2, checkpoint_every=1,
              progress=False, hparams={"lr": float(sys.argv[1])})
    print(json.dumps({"trace": {k: v.tolist() for k, v in sorted(r.trace.items()) if v.ndim == 1},
                      "loads": events.count("/gamelab/executables/load"),
                      "compiles": events.count("/jax/core/compile/backend_compile_duration")}))
""")


def test_the_transformer_reads_its_programs_and_weights_back_in_a_later_process(tmp_path):
    """The transformer's start, segment and end programs and its initial weights are kept by the
    first process and read by the next, which then traces nothing of them; the trace is the same
    bit for bit, and another learning rate (a hyper-parameter: an argument) reuses them too."""
    env = {**os.environ, "GAMELAB_CACHE_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def train(lr):
        out = subprocess.run([sys.executable, "-c", _LLM, str(lr)], env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second, other = train(0.1), train(0.1), train(0.05)
    kept = sorted(p.name.partition("-")[0] for p in (tmp_path / "executables").rglob("*-*.*"))
    assert kept == ["_begin", "_end", "_parameters", "advance_segment"]
    assert second["trace"] == first["trace"] and other["trace"] != first["trace"]
    assert second["loads"] >= 4 and other["loads"] >= 4
    assert second["compiles"] < first["compiles"] and other["compiles"] == second["compiles"]
