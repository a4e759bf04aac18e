"""Scale-out with JAX's own machinery, on one CPU: 8 fake devices (a device mesh over the run axis)
and two local processes (jax.distributed). Both must give bit-identical results to one device."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import gamelab_cli
from gamelab.algorithms import algorithm_names
from gamelab.results import load_results

SPEC = f"""algorithms = {algorithm_names()!r}
games = ["random:n=5,seed=0..5"]
steps = 60
seeds = [0, 1]
record_every = 10
chunk_size = 16
init = "random"
[grid]
eta = [0.1, 0.4]
tau = [0.1]
[algorithm.comal]
steps = 3
inner = [15]
"""


def python(code, env=None, timeout=600):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_sharded_sweep_on_8_fake_devices_is_bit_identical(tmp_path):
    (tmp_path / "spec.toml").write_text(SPEC)
    out = python(f"""
        import jax
        from gamelab.sweep import load_spec, execute
        from gamelab.results import load_results
        assert jax.device_count() == 8, jax.devices()
        spec = load_spec({str(tmp_path / 'spec.toml')!r})
        execute(spec, {str(tmp_path / 'one')!r}, progress=False, devices=jax.devices()[:1])
        execute(spec, {str(tmp_path / 'eight')!r}, progress=False)
        a, b = load_results({str(tmp_path / 'one')!r}), load_results({str(tmp_path / 'eight')!r})
        print("rows", len(a), "identical", a.equals(b))
        """, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert "identical True" in out, out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_through_jax_distributed_share_the_sweep(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace(f"algorithms = {algorithm_names()!r}",
                                 'algorithms = ["mwu", "inpo", "comal", "iterative_dpo"]'))
    port = free_port()
    cmd = [sys.executable, "-m", "gamelab.cli", "sweep", str(spec), "--out", str(tmp_path / "multi"), "--quiet",
           "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = [subprocess.Popen(cmd + ["--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stdout + stderr
    ran = [int(stdout.split(" run now")[0].split(": ")[-1]) for stdout, _ in outs]
    assert min(ran) > 0, ran  # both processes did part of the work
    single = gamelab_cli("sweep", spec, "--out", tmp_path / "single", "--quiet")  # one process: this one
    assert single.returncode == 0, single.stderr
    a, b = load_results(tmp_path / "single"), load_results(tmp_path / "multi")
    assert a.equals(b)
    assert not b.duplicated(["run", "step", "iterate"]).any()


def test_use_cpu_cores_exposes_cores_as_devices_and_run_batch_shards_over_them():
    """``use_cpu_cores(k)`` before JAX starts gives k CPU devices; ``local_mesh`` takes the most
    that divide the batch; run_batch over that mesh gives one device's iterates bit for bit (metrics
    to an ulp: each device runs a smaller batch, the sweep keeps its shape); later calls
    cannot change the count (an explicit different one warns), and a forced XLA_FLAGS count wins."""
    out = python("""
        import warnings
        import numpy as np, jax
        from gamelab.hosts import use_cpu_cores, local_mesh
        from gamelab.run import run_batch
        assert use_cpu_cores(4) == 4
        assert len(jax.devices("cpu")) == 4, jax.devices()
        assert local_mesh(6).size == 3 and local_mesh(8).size == 4 and local_mesh(3).size == 3 and local_mesh(5) is None and local_mesh(1) is None
        assert local_mesh().size == 4 and local_mesh().axis_names == ("runs",)
        games = [np.asarray(g) for g in np.random.default_rng(0).uniform(size=(8, 5, 5))]
        games = [np.triu(g, 1) + np.tril(1 - np.triu(g, 1).T, -1) + 0.5 * np.eye(5) for g in games]
        for algo in ("mwu", "inpo", "comal"):
            one = run_batch(algo, games, steps=30, record_every=3, hparams={"eta": 0.3})
            many = run_batch(algo, games, steps=30, record_every=3, hparams={"eta": 0.3}, mesh=local_mesh(8))
            assert len(many.logp.sharding.device_set) == 4, many.logp.sharding
            assert np.array_equal(np.asarray(one.logp), np.asarray(many.logp)), algo
            for k in one.trace:  # a dot over n may round differently at another per-device batch shape
                a, b = np.asarray(one.trace[k]), np.asarray(many.trace[k])
                assert np.array_equal(a, b) if "exploitability" in k else np.max(np.abs(a - b)) <= 4.5e-16, (algo, k)
        assert use_cpu_cores() == 4  # started: the default keeps the count, silently
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert use_cpu_cores(2) == 4
        assert any("before the first JAX computation" in str(w.message) for w in caught), caught
        for bad in (0, -1, 1.5, True):
            try:
                use_cpu_cores(bad)
            except ValueError:
                pass
            else:
                raise AssertionError(bad)
        print("ok")
        """, env={"XLA_FLAGS": ""})
    assert "ok" in out
    forced = python("""
        import jax
        from gamelab.hosts import use_cpu_cores
        assert use_cpu_cores(2) == 3 and jax.device_count() == 3
        print("ok")
        """, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=3"})
    assert "ok" in forced


def test_the_gamelab_command_uses_every_core_and_gives_the_same_sweep(tmp_path):
    """`gamelab --cpu-devices 3 sweep` shards over 3 CPU devices and writes exactly the results
    of `--cpu-devices 1`; a bad count is a clear error."""
    cmd = [sys.executable, "-m", "gamelab.cli"]
    env = {**os.environ, "XLA_FLAGS": ""}
    args = ["sweep", "--algorithms", "mwu,omwu", "--games", "random:n=6,seed=0..8", "--steps", "40",
            "--quiet", "--grid", "eta=0.1,0.3"]
    for k in (1, 3):
        done = subprocess.run(cmd + ["--cpu-devices", str(k)] + args + ["--out", str(tmp_path / f"d{k}")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    a, b = load_results(tmp_path / "d1"), load_results(tmp_path / "d3")
    assert len(a) > 0 and a.equals(b)
    bad = gamelab_cli("--cpu-devices", "0", "list")  # refused before JAX is touched: in this process
    assert bad.returncode == 2 and "positive integer" in bad.stderr
