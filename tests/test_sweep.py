"""Sweeps: spec validation, planning, the results store, resuming after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gamelab.results import CHUNKS, load_results, read_manifest
from gamelab.sweep import SpecError, execute, load_spec, make_spec, plan

SMALL = dict(algorithms=["mwu", "inpo", "comal"], games=["comal3", "cyclic:n=3"], steps=40, seeds=[0, 1],
             grid={"eta": [0.1, 0.5], "tau": [0.1]}, record_every=10, algorithm={"comal": {"steps": 4, "inner": [20]}})


def test_hyperparameters_an_algorithm_lacks_are_not_multiplied():
    chunks = plan(make_spec(**SMALL))
    runs = [r for c in chunks for r in c.runs]
    count = {a: sum(r["algorithm"] == a for r in runs) for a in SMALL["algorithms"]}
    assert count == {"mwu": 2 * 2 * 2, "inpo": 2 * 2 * 1 * 2, "comal": 2 * 2 * 1 * 2}  # games × eta × (tau) × seeds
    assert all("tau" not in r for r in runs if r["algorithm"] == "mwu")
    assert [r["run"] for r in runs] == sorted(r["run"] for r in runs) == list(range(len(runs)))
    assert {c.steps for c in chunks if c.algorithm == "comal"} == {4}


def test_game_ranges_expand_and_sizes_share_a_padded_group():
    spec = make_spec(algorithms=["mwu"], games=["random:n=4,seed=0..9", "comal3"], steps=5, chunk_size=4)
    assert len(spec.games) == 11 and spec.games[3] == "random:n=4,seed=3"
    chunks = plan(spec)
    assert {(c.n, c.padded) for c in chunks} == {(4, True)}  # n = 3 and 4: one program, padded to 4
    assert len(chunks) == 3 and sorted(r["n"] for c in chunks for r in c.runs) == [3] + [4] * 10
    assert {c.width for c in chunks} == {16}  # one vmap width per group: 11 runs -> 16
    one_size = plan(make_spec(algorithms=["mwu"], games=["random:n=4,seed=0..9", "random:n=20,seed=0"], steps=5))
    assert {(c.n, c.padded) for c in one_size} == {(4, False), (20, False)}  # other buckets: not padded


@pytest.mark.parametrize("raw, message", [
    ({"algorithms": ["mwu"], "games": ["rps"]}, "needs 'steps'"),
    ({"algorithms": ["nope"], "games": ["rps"], "steps": 5}, "unknown algorithm"),
    ({"algorithms": ["mwu"], "games": ["nope"], "steps": 5}, "unknown game"),
    ({"algorithms": ["mwu"], "games": ["rps"], "steps": 0}, "steps must be a positive integer"),
    ({"algorithms": ["mwu"], "games": ["rps"], "steps": 5, "grid": {"tau": [0.1]}}, "not hyper-parameters"),
    ({"algorithms": ["mwu"], "games": ["rps"], "steps": 5, "grid": {"eta": [-1.0]}}, "eta must be > 0"),
    ({"algorithms": ["mwu"], "games": ["rps"], "steps": 5, "colour": 1}, "unknown spec key"),
    ({"algorithms": ["mwu"], "games": ["rps"], "steps": 5, "init": "zero"}, "init must be one of"),
])
def test_bad_specs_are_rejected_by_name(raw, message):
    with pytest.raises(SpecError, match=message):
        plan(make_spec(**raw))


def test_toml_spec(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('algorithms = ["mwu", "omwu", "inpo", "comal"]\ngames = ["comal3", "random:n=10,seed=0"]\n'
                    'steps = 2000\nseeds = [0, 1, 2]\n[grid]\neta = [0.05, 0.1, 0.5]\ntau = [0.1]\n')
    spec = load_spec(path)
    assert spec.algorithms == ("mwu", "omwu", "inpo", "comal") and spec.grid["eta"] == [0.05, 0.1, 0.5]
    (tmp_path / "bad.toml").write_text("steps = [")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(tmp_path / "bad.toml")


def test_execute_load_and_resume(tmp_path):
    spec = make_spec(**SMALL, record_policy=True)
    stats = execute(spec, tmp_path / "r", progress=False)
    df = load_results(tmp_path / "r")
    runs = sum(len(c.runs) for c in plan(spec))
    assert stats["runs"] == runs
    per_run = df.groupby("run").size()
    assert len(per_run) == runs
    assert set(df.iterate) == {"last", "average"}
    assert not df.duplicated(["run", "step", "iterate"]).any()
    assert len(df[(df.algorithm == "mwu")]) == 8 * 5 * 2  # 8 runs × (40/10 + 1) recordings × 2 iterates
    assert df[df.algorithm == "mwu"].tau.isna().all() and df[df.algorithm == "inpo"].tau.notna().all()
    assert len(df.policy.iloc[0]) == 3
    # the rows are the engine's numbers: 4 COMAL outer steps on comal3 halve the uniform gap 0.0667
    comal = df[(df.algorithm == "comal") & (df.game == "comal3") & (df.iterate == "last")]
    assert comal.groupby("run").duality_gap.last().max() < 0.0667 / 1.9
    assert sorted(comal.step.unique()) == [0, 4]  # record_every 10 > 4 steps: initial and final rows
    manifest = read_manifest(tmp_path / "r")
    assert manifest["spec"]["algorithms"] == ["mwu", "inpo", "comal"] and manifest["versions"]["jax"]
    assert "git_revision" in manifest and manifest["seeds"] == [0, 1]
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r" / CHUNKS).iterdir()}
    again = execute(spec, tmp_path / "r", progress=False)
    assert again["ran"] == 0 and again["skipped"] == stats["chunks"]
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r" / CHUNKS).iterdir()}
    with pytest.raises(SpecError, match="different sweep spec"):
        execute(make_spec(**{**SMALL, "steps": 41}), tmp_path / "r", progress=False)


def test_bit_identical_across_chunk_sizes_and_runs(tmp_path):
    """Same spec and seed → the same bits, whatever the chunk size, and again on a second run."""
    # iterative DPO is the most rounding-sensitive dynamics here (1e-8 apart across batch shapes
    # before the fix); MWU stands for the mirror methods (1e-15)
    base = dict(algorithms=["mwu", "iterative_dpo"], games=["random:n=6,seed=0..4"], steps=150, seeds=[0, 1],
                grid={"eta": [0.1, 0.3]}, init="random", record_every=10)
    frames = []
    for i, size in enumerate([1, 7, 256, 256]):
        execute(make_spec(**base, chunk_size=size), tmp_path / str(i), progress=False)
        frames.append(load_results(tmp_path / str(i)).drop(columns="chunk"))
    for other in frames[1:]:
        assert frames[0].equals(other)


def test_half_written_files_are_never_read(tmp_path):
    spec = make_spec(algorithms=["mwu"], games=["rps"], steps=4)
    execute(spec, tmp_path, progress=False)
    (tmp_path / CHUNKS / ".mwu-n3-00001.parquet.tmpxyz.tmp").write_bytes(b"PAR1 garbage")
    assert len(load_results(tmp_path)) == 2 * 5


BIG = """algorithms = ["mwu", "omwu", "extragradient", "inpo", "mmd", "nash_md"]
games = ["random:n=10,seed=0..49"]
steps = 2000
seeds = [0, 1, 2]
chunk_size = 64
[grid]
eta = [0.02, 0.05, 0.1, 0.2, 0.5]
tau = [0.1]
"""


def test_sigkill_half_way_then_resume_finishes_without_recomputing(tmp_path):
    """6 algorithms × 50 random games × 5 step sizes × 3 seeds × 2000 steps, killed mid-way."""
    spec_path, out = tmp_path / "big.toml", tmp_path / "out"
    spec_path.write_text(BIG)
    total_chunks = len(plan(load_spec(spec_path)))
    assert total_chunks == 6 * 12
    cmd = [sys.executable, "-m", "gamelab.cli", "sweep", str(spec_path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / CHUNKS).is_dir() and len(list((out / CHUNKS).glob("*.parquet"))) >= total_chunks // 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in (out / CHUNKS).glob("*.parquet")}
    assert total_chunks // 3 <= len(finished) < total_chunks
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} already finished" in resumed.stdout
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in (out / CHUNKS).glob("*.parquet")}
    assert len(after) == total_chunks
    assert all(after[name] == stamp for name, stamp in finished.items())  # nothing recomputed
    df = load_results(out)
    assert df.run.nunique() == 4500 and not df.duplicated(["run", "step", "iterate"]).any()
    assert len(df) == 4500 * 101 * 2
    assert not list((out / CHUNKS).glob(".*.tmp"))


def test_no_recompilation_across_hyperparameter_values_or_chunk_sizes(tmp_path):
    from gamelab.run import simulate_batch_jit

    base = dict(algorithms=["inpo"], games=["random:n=4,seed=0..7"], steps=30, seeds=[0, 1], record_every=10)
    execute(make_spec(**base, grid={"eta": [0.1, 0.2], "tau": [0.1]}, chunk_size=8), tmp_path / "a", progress=False)
    compiled = simulate_batch_jit.cache_size()
    for i, (etas, taus, size) in enumerate([([0.3, 0.4], [0.05], 3), ([0.5, 0.6], [0.2], 32), ([0.7, 0.8], [0.3], 5)]):
        execute(make_spec(**base, grid={"eta": etas, "tau": taus}, chunk_size=size), tmp_path / str(i), progress=False)
    assert simulate_batch_jit.cache_size() == compiled  # new values and chunk sizes: no new compile


def test_a_sweep_over_several_sizes_equals_one_sweep_per_size(tmp_path):
    """Games of sizes 3, 5 and 7 run as one padded program per algorithm; every row equals the
    row of a sweep over that size alone (to rounding), policies cut to the game's responses."""
    base = dict(algorithms=["omwu", "regret_matching"], steps=30, record_every=10, seeds=[0, 1], init="random",
                record_policy=True)
    games = ["rps", "random:n=5,seed=1", "random:n=7,seed=2"]
    execute(make_spec(games=games, **base), tmp_path / "mixed", progress=False)
    assert {c.padded for c in plan(make_spec(games=games, **base))} == {True}
    mixed = load_results(tmp_path / "mixed").set_index(["algorithm", "game", "seed", "step", "iterate"]).sort_index()
    for game in games:
        execute(make_spec(games=[game], **base), tmp_path / game, progress=False)
        alone = load_results(tmp_path / game).set_index(["algorithm", "game", "seed", "step", "iterate"]).sort_index()
        got = mixed.loc[alone.index]
        for col in ("exploitability", "duality_gap", "entropy", "kl_to_target", "win_rate_vs_ref"):
            np.testing.assert_allclose(got[col].to_numpy(), alone[col].to_numpy(), rtol=0, atol=1e-12, err_msg=col)
        for a, b in zip(got["policy"], alone["policy"]):
            assert len(a) == len(b)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_pad_false_keeps_one_program_per_size_and_flags_must_be_booleans():
    base = dict(algorithms=["mwu"], games=["rps", "random:n=5,seed=1"], steps=5)
    assert {(c.n, c.padded) for c in plan(make_spec(**base, pad=False))} == {(3, False), (5, False)}
    assert make_spec(**base).digest() != make_spec(**base, pad=False).digest()
    for key in ("pad", "record_policy", "antisymmetrize"):
        with pytest.raises(SpecError, match=f"{key} must be true or false"):
            make_spec(**base, **{key: "yes"})
