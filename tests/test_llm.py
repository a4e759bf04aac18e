"""Issue 6's scale-out and reliability guarantees for `gamelab llm run` (the transformer backend).

- Tabular logits over the enumerated sequences give the tabular engine's numbers (same interface).
- The sharded run on 8 fake CPU devices (data parallel, and FSDP) gives the unsharded run's losses
  to float32 tolerance, and the compiled program really is partitioned (collectives in its HLO).
- Two local processes through ``jax.distributed`` train one data-parallel model over a global
  mesh: both get the single-process numbers.
- A run killed with SIGKILL resumes from its last finished orbax checkpoint and ends with the
  uninterrupted run's trace bit for bit; a different config in the same folder is refused.
- Bad input fails with exit code 2 and a one-line message.

Every subprocess shares the suite's persistent compilation cache (tests/conftest.py), so a program
compiled once (the small transformer's training segment) is not compiled again by the next
process, nor by the next run of the suite: XLA compilation, not training, is what costs time on a
small CPU.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from gamelab.cli import app
from gamelab.llm.games import parse_sequence_game
from gamelab.run import run

# A game whose uniform start is not a Nash: 'count' classes (number of 0 tokens) are unequal,
# of 8, 12 and 7 sequences for the tabular tests' V = L = 3, of 27, 27 and 10 for V = 4, L = 3.
GAME, V, L = "cyclic:rule=count", 3, 3
# The one small transformer configuration of this file (its training segment compiles once):
# 64 sequences; 12 pairs per step, so each loss reads 24 sampled sequences — fewer than 64, so
# the batch itself (not the enumeration) is split, 3 sequences per device on 8 devices.
TV, TL, BATCH = 4, 3, 12
TRANSFORMER = ["--vocab", str(TV), "--length", str(TL), "--game", GAME, "--d-model", "16", "--layers", "1",
               "--batch", str(BATCH), "--record-every", "1", "--checkpoint-every", "1", "--quiet"]
TRAIN_KW = dict(record_every=1, checkpoint_every=1, batch=BATCH, progress=False,
                model={"d_model": 16, "heads": 2, "layers": 1}, hparams={"lr": 3e-3})
RTOL = 1e-5  # float32 model: sharded and unsharded sums differ in order; we see about 3e-7 relative


@pytest.fixture(scope="module")
def env():
    """Subprocess environment: 8 fake CPU devices (unsharded runs use one of them; the cache is
    keyed by the device topology, so every process that shares programs has the same); the
    suite's compilation cache comes with os.environ."""
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def python(code, env, *args, timeout=300):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "gamelab.cli", "llm", "run", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def invoke(*args):
    """`gamelab llm run ARGS --json` in this process: (exit code, parsed JSON or None, stderr)."""
    r = CliRunner().invoke(app, ["llm", "run", *args, "--json", "--quiet"])
    return r.exit_code, (json.loads(r.stdout) if r.exit_code == 0 else None), r.stderr


def same(a: dict, b: dict) -> bool:
    """Equal lists of floats, bit for bit (NaN equal to NaN)."""
    return a.keys() == b.keys() and all(np.array_equal(np.array(a[k], float), np.array(b[k], float), equal_nan=True)
                                        for k in a)


def column(rows, key):
    return np.array([np.nan if row[key] is None else row[key] for row in rows], dtype=float)


# ------------------------------------------------------------------ 1. tabular equivalence
COMMON = ["duality_gap", "exploitability", "regularized_gap", "entropy", "win_rate_vs_ref"]


def test_tabular_policy_from_exact_feedback_gives_the_closed_form_engines_numbers(tmp_path):
    """The parametric driver with tabular logits, exact feedback and enough SGD updates per step
    minimizes INPO's population loss, whose minimizer is the closed-form update: the llm command
    gives the tabular engine's trace (the lifted game's tied sequences stay tied in both)."""
    steps = 12
    code, out, err = invoke("inpo", "--policy", "tabular", "--feedback", "exact", "--optimizer", "sgd",
                            "--set", "updates=300", "--lr", "0.6", "--steps", str(steps), "--record-every", "1",
                            "--vocab", str(V), "--length", str(L), "--game", GAME, "--out", str(tmp_path / "llm"))
    assert code == 0, err
    engine = run("inpo", parse_sequence_game(GAME, V, L).matrix(0), steps=steps, record_every=1)
    gap = column(out["trace"], "duality_gap")
    assert gap[0] > 0.1 and np.ptp(gap) > 1e-3  # not a run that stands still at a Nash
    for key in COMMON:
        np.testing.assert_allclose(column(out["trace"], key), np.asarray(engine.trace[key]), rtol=0, atol=1e-9,
                                   err_msg=key)  # the issue asks 1e-6; we see 2e-14


def test_tabular_policy_from_sampled_feedback_is_the_engines_run_bit_for_bit(tmp_path):
    """Sampled feedback with the same seed: the same draws, the same Adam steps, the same trace."""
    steps, seed = 12, 3
    code, out, err = invoke("inpo", "--policy", "tabular", "--feedback", "sampled", "--optimizer", "adam",
                            "--batch", "64", "--lr", "0.05", "--steps", str(steps), "--record-every", "1",
                            "--seed", str(seed), "--vocab", str(V), "--length", str(L), "--game", GAME,
                            "--out", str(tmp_path / "llm"))
    assert code == 0, err
    engine = run("inpo", parse_sequence_game(GAME, V, L).matrix(0), steps=steps, record_every=1, feedback="sampled",
                 policy="tabular", optimizer="adam", batch=64, lr=0.05, seed=seed)
    for key in COMMON + ["loss"]:
        got, want = column(out["trace"], key), np.asarray(engine.trace[key])
        if key == "regularized_gap":  # computed by another XLA program (other metrics recorded): 1 ulp apart
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        else:
            assert np.array_equal(got, want, equal_nan=True), key


# ------------------------------------------------------------------ 2. sharded = unsharded
SHARDED = f"""
import json, shutil, sys, numpy as np, jax
from jax.sharding import Mesh
import gamelab.llm.train as T
import gamelab.segments as S
from gamelab.llm.games import parse_sequence_game

assert jax.device_count() == 8, jax.devices()
original, compiled, hlo = S.segment_jit, {{}}, {{}}

def spy(algo, recorder, layout, *args, **static):
    # the segment train() runs, compiled ahead of time so that its optimized HLO can be read
    key = (name, static["intervals"])
    if key not in compiled:
        compiled[key] = original.lower(algo, recorder, layout, *args, **static).compile()
        hlo[name] = compiled[key].as_text()
    return compiled[key](*args)

S.segment_jit = spy
game = parse_sequence_game({GAME!r}, {TV}, {TL})
runs = {{}}
for name, devices, fsdp in [("one", 1, False), ("eight", 8, False), ("fsdp", 8, True)]:
    mesh = None if devices == 1 else Mesh(np.array(jax.devices()[:devices]), ("data",))
    out = sys.argv[1] + "/" + name if fsdp else None  # checkpointed: resumed below
    r = T.train("inpo", game, steps=4, mesh=mesh, fsdp=fsdp, out=out, **{TRAIN_KW!r})
    text = hlo[name]
    runs[name] = {{"loss": r.trace["loss"].tolist(), "duality_gap": r.trace["duality_gap"].tolist(),
                  "logp": r.logp.tolist(),
                  "collectives": {{op: text.count(op + "(") for op in ("all-reduce", "all-gather", "reduce-scatter",
                                                                       "all-to-all", "collective-permute")}},
                  "partitions": int(text.split("num_partitions=")[1].split(",")[0].split()[0])
                  if "num_partitions=" in text else 1}}

# Resume the FSDP run from its step-3 checkpoint: the restored carry must come back with the
# sharding the compiled segment expects (the spy's ahead-of-time executable refuses any other)
shutil.rmtree(out + "/_checkpoints/4")
again = T.train("inpo", game, steps=4, mesh=mesh, fsdp=True, out=out, **{TRAIN_KW!r})
runs["fsdp_resumed"] = {{"resumed_from": again.resumed_from, "equal": all(np.array_equal(again.trace[k], r.trace[k],
                        equal_nan=True) for k in r.trace) and np.array_equal(again.logp, r.logp)}}

# Batches that do not split evenly (20 sequences over 8 devices; 70 indices, where the policy
# enumerates all 64 sequences and indexes them): padded, never the partitioner's abort.
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from gamelab.llm.model import TransformerPolicy
y20, y70 = jax.random.randint(jax.random.key(1), (20,), 0, 64), jax.random.randint(jax.random.key(2), (70,), 0, 64)
uneven = []
for mesh in (None, Mesh(np.array(jax.devices()), ("data",))):
    policy = TransformerPolicy(4, 3, d_model=16, layers=1, mesh=mesh)
    flat, unravel = ravel_pytree(policy.init(None))
    params = unravel(flat + 0.1 * jax.random.normal(jax.random.key(3), flat.shape, flat.dtype))  # not uniform
    loss = lambda p: jnp.sum(policy.logprob(p, y20) ** 2) + jnp.sum(jnp.sin(policy.logprob(p, y70)))
    value, grad = jax.jit(jax.value_and_grad(loss))(params)
    uneven.append([float(value)] + ravel_pytree(grad)[0].tolist())
runs["uneven"] = uneven
print(json.dumps(runs))
"""


@pytest.fixture(scope="module")
def sharded(env, tmp_path_factory):
    """The same small training (transformer, sampled feedback, 24 sequences per loss) unsharded,
    data parallel over 8 fake devices, and FSDP over 8."""
    return python(SHARDED, env, tmp_path_factory.mktemp("sharded"))


def test_sharded_run_on_8_fake_devices_gives_the_unsharded_losses(sharded):
    one = sharded["one"]
    assert np.isnan(one["loss"][0]) and np.all(np.isfinite(one["loss"][1:]))
    for name in ("eight", "fsdp"):
        for key in ("loss", "duality_gap", "logp"):
            np.testing.assert_allclose(sharded[name][key], one[key], rtol=RTOL, atol=0, err_msg=f"{name} {key}")


def test_a_resumed_fsdp_run_is_bit_for_bit_the_uninterrupted_one(sharded):
    assert sharded["fsdp_resumed"] == {"resumed_from": 3, "equal": True}


def test_uneven_batches_are_padded_and_give_the_unsharded_values(sharded):
    one, split = (np.array(v) for v in sharded["uneven"])  # the loss, then its gradient
    assert np.abs(one[1:]).max() > 1  # a real gradient
    np.testing.assert_allclose(split[0], one[0], rtol=RTOL)
    np.testing.assert_allclose(split[1:], one[1:], rtol=0, atol=RTOL * np.abs(one[1:]).max())


def test_the_sharded_programs_really_are_partitioned(sharded):
    """What makes the equality above non-trivial: the unsharded segment has no collective, the
    data-parallel one all-reduces over 8 partitions (the batch is split), FSDP also all-gathers
    its sharded weights."""
    assert sharded["one"]["partitions"] == 1 and not any(sharded["one"]["collectives"].values())
    eight, fsdp = sharded["eight"], sharded["fsdp"]
    assert eight["partitions"] == 8 and fsdp["partitions"] == 8
    assert eight["collectives"]["all-reduce"] > 0, eight["collectives"]
    assert fsdp["collectives"]["all-gather"] > eight["collectives"]["all-gather"], (fsdp, eight)


# ------------------------------------------------------------------ 3. two processes, jax.distributed
MULTI = f"""
import json, sys, jax
jax.distributed.initialize(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
import numpy as np
from jax.sharding import Mesh
from gamelab.llm.games import parse_sequence_game
from gamelab.llm.train import train

assert jax.process_count() == 2 and jax.device_count() == 8 and jax.local_device_count() == 4, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("data",))  # one global mesh over both processes' devices
r = train("inpo", parse_sequence_game({GAME!r}, {TV}, {TL}), steps=4, mesh=mesh, out=sys.argv[3], **{TRAIN_KW!r})
print(json.dumps({{"loss": r.trace["loss"].tolist(), "duality_gap": r.trace["duality_gap"].tolist(),
                  "resumed_from": r.resumed_from}}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(env, out, argv=None):
    """Run two local processes (4 fake CPU devices each) that meet at a coordinator; the last line
    of each one's output as JSON. ``argv(address, i)``: process i's command (default: MULTI)."""
    port = free_port()
    env = {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    argv = argv or (lambda address, i: [sys.executable, "-c", MULTI, address, str(i), str(out)])
    procs = [subprocess.Popen(argv(f"127.0.0.1:{port}", i), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (stdout, stderr) in zip(procs, outs):
        text = stderr.lower()
        if p.returncode != 0 and ("multiprocess computations aren't implemented" in text
                                  or ("collectives" in text and "unimplemented" in text)):
            # jax built without CPU collectives (gloo/MPI): say so rather than pretend
            pytest.skip("this jax cannot run collectives across CPU processes: " + stderr.strip().splitlines()[-1])
        assert p.returncode == 0, stdout + stderr
    return [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outs]


def test_two_processes_through_jax_distributed_train_one_data_parallel_model(sharded, env, tmp_path):
    """Two local processes, 4 fake CPU devices each, one mesh over all 8 (gloo collectives): both
    processes get the same losses, those of one process with 8 devices (and of one device);
    process 0 wrote the run, and the same command resumes from its checkpoints in both."""
    out = tmp_path / "multi"
    first = two_processes(env, out)
    assert same(first[0], first[1])  # the very same numbers in both processes
    for key in ("loss", "duality_gap"):
        for name in ("eight", "one"):
            np.testing.assert_allclose(first[0][key], sharded[name][key], rtol=RTOL, atol=0, err_msg=f"{name} {key}")
    assert (out / "_run.json").exists() and (out / "_manifest.json").exists()
    assert not list(out.glob("._run.json.*"))
    shutil.rmtree(out / "_checkpoints" / "4")
    again = two_processes(env, out)  # the last step again, from the step-3 checkpoint, in both processes
    assert [r.pop("resumed_from") for r in again + first] == [3, 3, 0, 0]
    assert same(again[0], first[0]) and same(again[1], first[0])  # bit for bit


def test_two_processes_through_the_command_line_with_sampled_metrics(env, tmp_path):
    """`gamelab llm run … --coordinator --num-processes 2 --process-id I` in two processes: one mesh
    over both processes' 8 devices by default; both print the same trace (sampled metrics with
    their intervals), and process 0 writes the results folder."""
    out = tmp_path / "cli"

    def argv(address, i):
        return [sys.executable, "-m", "gamelab.cli", "llm", "run", "inpo", *TRANSFORMER, "--steps", "3",
                "--metrics", "sampled", "--eval-samples", "64", "--json", "--coordinator", address,
                "--num-processes", "2", "--process-id", str(i), "--out", str(out)]

    first, second = two_processes(env, out, argv)
    assert first["config"]["devices"] == 8 and first["config"]["metrics"] == "sampled"
    assert len(first["trace"]) == 4 and first["trace"] == second["trace"]
    assert {"exploitability_lo", "exploitability_hi"} <= set(first["trace"][0])
    assert (out / "_manifest.json").exists() and (out / "_run.json").exists()


# ------------------------------------------------------------------ 4. killed and resumed
RUN = ["inpo", *TRANSFORMER, "--steps", "12"]


@pytest.fixture(scope="module")
def whole(env, tmp_path_factory):
    """An uninterrupted run of RUN: (its folder, its --json output)."""
    out = tmp_path_factory.mktemp("whole") / "run"
    done = cli(*RUN, "--json", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["resumed_from"] == 0 and len(result["trace"]) == 13
    return out, result


def finished_steps(folder):
    return sorted(int(p.name) for p in (folder / "_checkpoints").glob("*") if p.name.isdigit()) \
        if (folder / "_checkpoints").exists() else []


def test_a_killed_run_resumes_to_the_uninterrupted_trace_bit_for_bit(whole, env, tmp_path):
    import orbax.checkpoint as ocp

    from gamelab.results import load_results

    out, log = tmp_path / "killed", tmp_path / "killed.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "gamelab.cli", "llm", "run", *RUN, "--out", str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.time() + 240
        while proc.poll() is None and max(finished_steps(out), default=0) < 2 and time.time() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)  # mid-run: a checkpoint is saved every step, about 0.1 s each
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: " + log.read_text()
    assert not (out / "_manifest.json").exists()  # it really was cut short
    killed_at = max(finished_steps(out))
    assert 2 <= killed_at < 12

    # What a kill leaves: finished step folders and perhaps orbax's temporary folder of the save in
    # flight. Make sure there is one (a half-written later checkpoint): it is not taken as finished.
    partial = out / "_checkpoints" / f"{killed_at + 1}.orbax-checkpoint-tmp"  # orbax's own naming
    partial.mkdir(exist_ok=True)
    (partial / "garbage").write_text("half written")
    manager = ocp.CheckpointManager(out / "_checkpoints")
    assert manager.latest_step() == killed_at
    restored = manager.restore(killed_at, args=ocp.args.StandardRestore())
    manager.close()
    assert len(restored["rows"]["loss"]) == killed_at  # complete: killed_at recorded rows, as in the whole run
    expected = whole[1]
    np.testing.assert_array_equal(restored["rows"]["loss"][1:], column(expected["trace"], "loss")[1:killed_at])

    resumed = cli(*RUN, "--json", "--out", str(out), env=env)  # the same command again
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads(resumed.stdout)
    assert got["resumed_from"] == killed_at
    assert got["trace"] == expected["trace"]  # every metric of every row, bit for bit (JSON floats round-trip)
    assert load_results(out).equals(load_results(whole[0]))


def test_another_config_in_the_same_folder_is_refused(whole):
    out = whole[0]
    config = (out / "_run.json").read_text()
    for change, differs in ((["--steps", "24"], "steps"), (["--steps", "12", "--seed", "1"], "hparams, model, seed"),
                            (["--steps", "12", "--lr", "0.01"], "hparams"),
                            (["--steps", "12", "--batch", "32"], "batch")):
        code, _, err = invoke("inpo", *TRANSFORMER, *change, "--out", str(out))
        assert code == 2 and f"holds a different run (differs in {differs})" in err and "use another --out" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = invoke("iterative_ipo", *TRANSFORMER, "--steps", "12", "--out", str(out))
    assert code == 2 and "differs in algorithm" in err, err
    assert (out / "_run.json").read_text() == config  # refused runs write nothing


# ------------------------------------------------------------------ 5. bad input
@pytest.mark.parametrize("args, message", [
    (["--vocab", "1"], "vocab >= 2"),
    (["--length", "0"], "length >= 1"),
    (["--game", "bogus"], "class matrix must be one of"),
    (["--game", "cyclic:colour=3"], "unknown sequence game option"),
    (["--game", "cyclic:rule=zigzag"], "class rule must be one of"),
    (["--devices", "64"], "--devices 64: only"),
    (["--devices", "0"], "--devices must be >= 1"),
    (["--steps", "10", "--record-every", "3"], "multiple of record_every"),
    (["--record-every", "0"], "record_every must be a positive integer"),
    (["--checkpoint-every", "0"], "checkpoint_every must be a positive integer"),
    (["--batch", "0"], "batch must be a positive integer"),
    (["--policy", "lstm"], "policy must be"),
    (["--feedback", "oracle"], "feedback must be one of"),
    (["--optimizer", "lion"], "optimizer must be one of"),
    (["--vocab", "8", "--length", "5", "--metrics", "exact"], "V^L = 32768 responses"),
    (["--metrics", "approximate"], "metrics must be one of"),
    (["--metrics", "sampled", "--eval-samples", "0"], "eval_samples must be a positive integer"),
    (["--metrics", "sampled", "--feedback", "exact"], "not with sampled metrics"),
    (["--game", "cyclic:prompts=2", "--prompt-weights", "1,-1"], "prompt_weights must be 2"),
    (["--set", "eta=-1"], "eta"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    code, _, err = invoke("inpo", "--steps", "10", *args, "--out", str(tmp_path / "run"))
    assert code == 2, (code, err)
    assert message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_unknown_or_loss_free_algorithm_exits_2(tmp_path):
    for name, message in (("nonesuch", "nonesuch"), ("replicator", "no sampled (loss) form")):
        code, _, err = invoke(name, "--steps", "10", "--out", str(tmp_path / name))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
