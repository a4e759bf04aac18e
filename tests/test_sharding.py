"""Scale-out with JAX's own machinery, on one CPU: 8 fake devices (a device mesh over the run axis)
and two local processes (jax.distributed). Both must give bit-identical results to one device."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest

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
    single = subprocess.run([sys.executable, "-m", "gamelab.cli", "sweep", str(spec), "--out",
                             str(tmp_path / "single"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    a, b = load_results(tmp_path / "single"), load_results(tmp_path / "multi")
    assert a.equals(b)
    assert not b.duplicated(["run", "step", "iterate"]).any()
