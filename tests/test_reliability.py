"""Hostile inputs: malformed games, files, hyper-parameters and specs are refused, through the
library and the CLI, with an error that names the problem, a non-zero exit and no traceback."""
import math
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gamelab.cli import app
from gamelab.games import InvalidGameError, make_game, parse_game

runner = CliRunner()


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    # a clean refusal is typer.Exit(2): result.exception is SystemExit; anything else escaped
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def valid(n, rng):
    U = np.triu(rng.uniform(size=(n, n)), 1)
    P = U + np.tril(1 - U.T, -1)
    np.fill_diagonal(P, 0.5)
    return P


@st.composite
def malformed_games(draw):
    """(array or text, expected message fragment): every way a matrix can be wrong."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    n = draw(st.integers(2, 6))
    P = valid(n, rng)
    kind = draw(st.sampled_from(["1d", "3d", "nonsquare", "empty", "1x1", "nan", "inf", "range", "asym", "diag",
                                 "ragged", "text", "complex"]))
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    if kind == "1d":
        return P[0], "must be 2-D"
    if kind == "3d":
        return np.stack([P, P]), "must be 2-D"
    if kind == "nonsquare":
        return P[:, :-1], "must be square"
    if kind == "empty":
        return np.zeros((0, 0)), ""
    if kind == "1x1":
        return np.array([[0.5]]), "at least 2 responses"
    if kind in ("nan", "inf"):
        P[i, j] = np.nan if kind == "nan" else draw(st.sampled_from([np.inf, -np.inf]))
        return P, "non-finite"
    if kind == "range":
        off = draw(st.floats(1e-3, 10))
        P[i, j] = 1 + off if draw(st.booleans()) else -off
        return P, "[0, 1]"
    if kind == "asym":
        k = (i + 1) % n if i == j else j
        P[i, k] = P[i, k] + (0.2 if P[i, k] < 0.5 else -0.2)
        return P, "P + P.T must equal 1"
    if kind == "diag":
        P[i, i] = draw(st.floats(0.0, 0.45))
        return P, "diagonal must be 1/2"
    if kind == "ragged":
        return "0.5,0.3\n0.7\n", "ragged"
    if kind == "complex":
        return P + 1j, "complex"
    token = draw(st.text(string.ascii_letters, min_size=1, max_size=5))
    return f"0.5 {token}\n0.5 0.5\n", "is not a number"


def write(tmp: Path, content, suffix: str) -> Path:
    path = tmp / f"game{suffix}"
    if isinstance(content, str):
        path.write_text(content)
    elif suffix == ".npy":
        np.save(path, content)
    else:
        arr = np.atleast_2d(content) if content.ndim < 3 else content.reshape(content.shape[0], -1)
        np.savetxt(path, arr, delimiter="," if suffix == ".csv" else " ")
    return path


@given(case=malformed_games(), suffix=st.sampled_from([".npy", ".csv", ".txt"]))
@settings(max_examples=60)
def test_malformed_game_files_are_refused_by_the_cli(case, suffix):
    content, message = case
    if isinstance(content, str):
        suffix = ".csv" if message == "ragged" else ".txt"  # text cases
    if not isinstance(content, str) and np.iscomplexobj(content) and suffix != ".npy":
        suffix = ".npy"  # text writers cannot hold complex numbers
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), content, suffix)
        for args in (["nash", path], ["run", "mwu", path, "--steps", "3"]):
            result = cli(*args)
            assert result.exit_code == 2, (args, result.output)
            assert result.output.startswith("error: ") and "Traceback" not in result.output
            if message and not (suffix != ".npy" and message in ("must be 2-D", "complex")):
                assert message in result.output, (message, result.output)


@given(case=malformed_games())
@settings(max_examples=40)
def test_malformed_matrices_are_refused_by_the_library(case):
    content, message = case
    if isinstance(content, str):
        return
    with pytest.raises(InvalidGameError, match=message.replace("[", r"\[").replace("+", r"\+") or None):
        make_game(content)


@pytest.mark.parametrize("path, message", [("/no/such/file.txt", "no such game file"),
                                           ("__binary__", ""), ("__empty__", "empty")])
def test_unreadable_files(tmp_path, path, message):
    if path == "__binary__":
        path = tmp_path / "garbage.npy"
        path.write_bytes(b"\x93NUMPY\x00garbage")
    elif path == "__empty__":
        path = tmp_path / "empty.txt"
        path.write_text("")
    result = cli("nash", path)
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output


BAD_HPARAMS = [
    (["run", "mwu", "rps", "--eta", "-0.5"], "eta must be > 0"),
    (["run", "mwu", "rps", "--eta", "nan"], "eta must be finite"),
    (["run", "inpo", "rps", "--tau", "nan"], "tau must be finite"),
    (["run", "inpo", "rps", "--tau", "0"], "tau must be > 0"),
    (["run", "mmd", "rps", "--tau", "-1"], "tau must be > 0"),
    (["run", "comal", "rps", "--inner", "0"], "inner must be a whole number"),
    (["run", "inpo", "rps", "--eta", "10", "--tau", "1"], "eta*tau must be <= 1"),
    (["run", "mwu", "rps", "--steps", "0"], "steps must be a positive integer"),
    (["run", "mwu", "rps", "--record-every", "0"], "record_every must be a positive integer"),
    (["run", "nope", "rps"], "unknown algorithm 'nope'"),
    (["run", "mwu", "nope"], "unknown game 'nope'"),
    (["run", "mwu", "random:n=1,seed=0"], "n must be"),
    (["run", "mwu", "random:n=x"], "n"),
    (["run", "mwu", "rps", "--init", "0,0,0"], "positive sum"),
    (["run", "inpo", "rps", "--ref", "1,0,1"], "positive probability"),
    (["nash", "rps", "--tau", "0"], "tau must be a positive"),
]


@pytest.mark.parametrize("args, message", BAD_HPARAMS)
def test_bad_hyperparameters_and_names_are_refused(args, message):
    result = cli(*args)
    assert result.exit_code == 2 and message in result.output, result.output


@given(eta=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 0)))
@settings(max_examples=40)
def test_any_invalid_eta_is_refused(eta):
    if isinstance(eta, float) and math.isfinite(eta) and eta > 0:
        return
    result = cli("run", "mwu", "rps", "--steps", "2", "--eta", repr(float(eta)))
    assert result.exit_code == 2 and "eta must be" in result.output


@pytest.mark.parametrize("text, message", [
    ("steps = [", "not valid TOML"),
    ('algorithms = ["mwu"]\ngames = ["rps"]\n', "needs 'steps'"),
    ('algorithms = ["mwu"]\ngames = ["rps"]\nsteps = 5\n[grid]\neta = [-1.0]\n', "eta must be > 0"),
    ('algorithms = ["mwu"]\ngames = ["rps"]\nsteps = 5\n[grid]\ntau = [0.1]\n', "not hyper-parameters"),
    ('algorithms = ["mwu"]\ngames = ["bogus:n=3"]\nsteps = 5\n', "unknown game"),
    ('algorithms = ["mwu"]\ngames = ["random:n=3,seed=5..2"]\nsteps = 5\n', "empty range"),
    ('algorithms = "mwu"\ngames = ["rps"]\nsteps = 5\nextra = 1\n', "unknown spec key"),
])
def test_bad_sweep_specs_are_refused(tmp_path, text, message):
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    result = cli("sweep", spec, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 2 and message in result.output, result.output


def test_rrps_gets_a_precise_error_and_a_way_through():
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "openspiel" / "rrps_bot_table.txt"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path}")
    with pytest.raises(InvalidGameError, match="antisymmetrize") as err:
        parse_game(str(path))
    assert "35.2" in str(err.value) or "35" in str(err.value)
    assert parse_game(str(path), antisymmetrize=True).P.shape == (43, 43)


def test_large_games_and_underflow_stay_finite():
    """n = 10^4 in float32 for a few steps: probabilities underflow to 0 but nothing is NaN."""
    from gamelab.run import run

    n = 10_000
    rng = np.random.default_rng(0)
    U = np.triu(rng.uniform(size=(n, n)).astype(np.float32), 1)
    P = U + np.tril(1 - U.T, -1)
    np.fill_diagonal(P, 0.5)
    r = run("mwu", P, steps=3, eta=1e3, dtype="float32", target=None)
    p = np.asarray(r.policy)
    assert np.all(np.isfinite(p)) and (p == 0).any() and abs(p.sum() - 1) < 1e-4
    assert all(np.all(np.isfinite(np.asarray(v))) for v in r.trace.values())


def test_validation_tolerance_follows_the_input_precision():
    P = valid(5, np.random.default_rng(1)).astype(np.float32)
    P = np.triu(P, 1) + np.tril(np.float32(1) - P.T, -1) + np.diag(np.full(5, 0.5, np.float32))
    make_game(P)  # sums to 1 in float32: valid
    with pytest.raises(InvalidGameError, match="P \\+ P.T must equal 1"):
        make_game(P.astype(np.float64) + np.triu(np.full((5, 5), 1e-7), 1))  # float64: held to 1e-9


# ---------------------------------------------------------------- the results store, real faults
# Real processes on a real file system: a tmpfs of a few kB (ENOSPC), and one remounted read-only
# (EROFS), each in a private mount namespace (`unshare -rm`: no privileges needed where user
# namespaces are allowed; skipped, saying so, where they are not).
import json
import os
import shlex
import shutil
import subprocess
import sys

SWEEP = ["sweep", "--algorithms", "mwu,omwu", "--games", "rps;comal3", "--steps", "10", "--chunk-size", "2",
         "--quiet", "--out"]


def private_mounts() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(not private_mounts(), reason="no user/mount namespaces here (`unshare -rm` "
                                                                "fails): the real ENOSPC/EROFS tests need them")


def in_private_mount(tmp_path, script: str) -> list[dict]:
    """Run ``script`` (bash; ``$MNT`` is a private tmpfs, ``$GAMELAB`` the CLI) in a private mount
    namespace; each ``step NAME CMD...`` records CMD's exit status and output as one JSON line."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    prelude = textwrap_dedent(f"""
        set -u
        MNT={mnt}; GAMELAB="{sys.executable} -m gamelab.cli"
        step() {{ name=$1; shift; out=$("$@" 2>&1); rc=$?
                  {sys.executable} -c 'import json,sys; print(json.dumps(dict(name=sys.argv[1], rc=int(sys.argv[2]), out=sys.argv[3])))' "$name" "$rc" "$out"; }}
    """)
    proc = subprocess.run(["unshare", "-rm", "bash", "-c", prelude + script], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def textwrap_dedent(text):
    import textwrap

    return textwrap.dedent(text)


@needs_mounts
def test_a_full_disk_is_one_error_line_nothing_half_written_and_the_sweep_resumes(tmp_path):
    steps = in_private_mount(tmp_path, """
        mount -t tmpfs -o size=12k tmpfs $MNT
        step full $GAMELAB {sweep} $MNT/out
        step leftovers bash -c "ls -A $MNT/out $MNT/out/chunks 2>/dev/null | grep -c '\\.tmp$' || true"
        mount -o remount,size=4m $MNT
        step again $GAMELAB {sweep} $MNT/out
        step table {python} -c "import pandas as pd; print(len(pd.read_parquet('$MNT/out')))"
    """.format(sweep=shlex.join(SWEEP), python=sys.executable))
    full, leftovers, again, table = steps
    assert full["rc"] == 2 and "error: no space left on the device" in full["out"], full
    assert "Traceback" not in full["out"] and len(full["out"].strip().splitlines()) == 1, full
    assert leftovers["out"].strip() == "0"  # no temporary file left behind
    assert again["rc"] == 0, again
    assert table["rc"] == 0 and int(table["out"]) == 4 * 11 * 2  # 4 runs × (steps 0..10) × 2 iterates


@needs_mounts
def test_a_read_only_folder_is_one_error_line_naming_it(tmp_path):
    steps = in_private_mount(tmp_path, """
        mount -t tmpfs -o size=4m tmpfs $MNT
        mkdir $MNT/out
        mount -o remount,ro $MNT
        step ro $GAMELAB {sweep} $MNT/out
        step ro_llm $GAMELAB llm run mwu --game cyclic:rule=count --steps 2 --record-every 1 --policy tabular --out $MNT/out
    """.format(sweep=shlex.join(SWEEP)))
    for step in steps:
        assert step["rc"] == 2 and "error:" in step["out"] and "read-only" in step["out"].lower(), step
        assert "Traceback" not in step["out"] and str(tmp_path / "mnt" / "out") in step["out"], step


def test_pandas_reads_a_results_folder_as_gamelab_does(tmp_path):
    """Everything in a results folder that is not a chunk is skipped by Arrow's readers (``_``/``.``
    names): a sweep's folder with its figures, and a transformer run's with its checkpoints."""
    import pandas as pd

    from conftest import gamelab_cli
    from gamelab.results import load

    sweep = tmp_path / "sweep"
    assert gamelab_cli(*SWEEP, sweep, "--record-policy").returncode == 0
    assert gamelab_cli("plot", sweep, "--kind", "gaps").returncode == 0
    assert list((sweep / "_figures").glob("*.png"))
    llm = tmp_path / "llm"
    r = gamelab_cli("llm", "run", "mwu", "--game", "cyclic:rule=count", "--steps", "4", "--record-every", "1",
                    "--checkpoint-every", "2", "--policy", "tabular", "--out", llm)
    assert r.returncode == 0, r.stderr
    assert (llm / "_checkpoints").is_dir() and (llm / "_run.json").is_file()
    for folder in (sweep, llm):
        ours = load(folder)
        theirs = pd.read_parquet(folder).sort_values(["run", "iterate", "step"], kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(theirs[ours.columns], ours)


def test_a_folder_written_by_older_gamelab_is_read_and_resumed(tmp_path):
    """Older gamelab wrote manifest.json/run.json/checkpoints: read in place, renamed by the next
    writer, which then finds every chunk finished."""
    from gamelab.results import load
    from conftest import gamelab_cli

    out = tmp_path / "old"
    assert gamelab_cli(*SWEEP, out).returncode == 0
    table = load(out)
    os.replace(out / "_manifest.json", out / "manifest.json")
    pd_table = load(out)
    assert pd_table.equals(table)
    r = gamelab_cli(*SWEEP, out)
    assert r.returncode == 0 and "2 already finished" in r.stdout + r.stderr, r.stdout + r.stderr
    assert (out / "_manifest.json").is_file() and not (out / "manifest.json").exists()


def test_a_chunk_with_one_altered_byte_is_found_by_its_page_checksums(tmp_path, capfd):
    from gamelab.results import CHUNKS, load
    from gamelab.sweep import execute, make_spec

    spec = make_spec(algorithms=["mwu"], games=["rps"], steps=40, record_every=1, chunk_size=1)
    whole, hurt = tmp_path / "whole", tmp_path / "hurt"
    execute(spec, whole, progress=False)
    execute(spec, hurt, progress=False)
    (chunk,) = (hurt / CHUNKS).glob("*.parquet")
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(chunk).metadata
    col = meta.row_group(0).column(meta.schema.names.index("exploitability"))  # a float column's data page
    data = bytearray(chunk.read_bytes())
    at = col.data_page_offset + col.total_compressed_size - 8  # inside the page's values, past its header
    data[at] ^= 0x01  # one bit: the footer, sizes and run ids all still look right
    chunk.write_bytes(bytes(data))
    stats = execute(spec, hurt, progress=False)
    assert stats["ran"] == 1 and [name for name, _ in stats["damaged"]] == [chunk.stem], stats
    assert "is damaged" in capfd.readouterr().err
    assert load(hurt).equals(load(whole))


# ------------------------------------------------------------------ memory mappings
def test_the_mapping_count_is_read_from_the_kernel():
    from gamelab.hosts import mappings

    counts = mappings()
    if counts is None:
        pytest.skip("no /proc/self/maps here")
    used, limit = counts
    assert 0 < used < limit


def test_near_the_mapping_limit_compiled_programs_are_dropped_and_the_run_is_unchanged(monkeypatch):
    """XLA segfaults once a process holds vm.max_map_count memory mappings (each loaded program
    holds some): past RELEASE_AT of the limit, read once per CHECK_EVERY programs loaded, the
    driver drops JAX's compiled programs before the next run, which is traced again and gives the
    same numbers; below it nothing is dropped."""
    import jax

    from gamelab import hosts
    from gamelab.games import rps
    from gamelab.run import run

    dropped = []
    monkeypatch.setattr(jax, "clear_caches", lambda: dropped.append(True))
    monkeypatch.setattr(hosts, "CHECK_EVERY", 0)  # read the count before every run
    monkeypatch.setattr(hosts, "mappings", lambda: (1000, 65530))
    calm = run("omwu", rps(), steps=30, record_every=10)
    assert dropped == []
    monkeypatch.undo()

    cleared = []
    real = jax.clear_caches
    monkeypatch.setattr(jax, "clear_caches", lambda: (cleared.append(True), real()))
    monkeypatch.setattr(hosts, "CHECK_EVERY", 0)
    monkeypatch.setattr(hosts, "mappings", lambda: (40000, 65530))  # past half the limit
    crowded = run("omwu", rps(), steps=30, record_every=10)
    assert len(cleared) == 1
    np.testing.assert_array_equal(np.asarray(crowded.logp), np.asarray(calm.logp))
    for key in calm.trace:
        np.testing.assert_array_equal(crowded.trace[key], calm.trace[key])


# ------------------------------------------------------------------ the compilation cache
def test_only_damaged_cache_entries_of_the_named_program_are_deleted(tmp_path):
    """repair_cache deletes the entries of one program whose compressed stream is cut short or
    corrupt, and keeps whole ones and other programs' entries (a cut entry of another program is
    that program's to repair, when JAX names it)."""
    import zlib

    from gamelab import repair_cache

    entry = zlib.compress(np.random.default_rng(0).bytes(50_000))
    files = {"whole": "jit_simulate-aa-cache", "cut": "jit_simulate-bb-cache", "bad": "jit_simulate-cc-cache",
             "other": "jit_simulate_batch-dd-cache", "key": "jit_start-ee-cache"}
    (tmp_path / files["whole"]).write_bytes(entry)
    (tmp_path / files["cut"]).write_bytes(entry[: len(entry) // 2])
    (tmp_path / files["bad"]).write_bytes(b"\x00" * 100)
    (tmp_path / files["other"]).write_bytes(entry[:100])
    (tmp_path / files["key"]).write_bytes(entry[:100])
    assert [p.name for p in repair_cache(tmp_path, "jit_simulate")] == [files["cut"], files["bad"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([files["whole"], files["other"], files["key"]])
    assert [p.name for p in repair_cache(tmp_path, "jit_start-ee")] == [files["key"]]  # named by its key
    assert repair_cache(tmp_path / "absent", "jit_simulate") == []


@pytest.mark.parametrize("flags", [[], ["-W", "error"], ["-W", "ignore"]], ids=["default", "W-error", "W-ignore"])
def test_a_cut_compilation_cache_entry_is_replaced_by_a_whole_one_in_the_run_that_reads_it(tmp_path, flags):
    """JAX writes a cache entry in place and never replaces one: an entry cut short (a process
    killed while writing it) would make every later process warn and compile again. Through
    gamelab's hook the run that reads it deletes it, compiles, and caches the program whole, so the
    next run reads it without a warning — also under ``-W error`` (where JAX's warning would end the
    run) and ``-W ignore`` (where it would never be repaired). A real process: the hook is on
    ``warnings.showwarning``, which pytest's own warning capture replaces."""
    script = textwrap_dedent("""
        import sys, warnings
        from pathlib import Path
        import gamelab, jax, jax.numpy as jnp
        folder = Path(sys.argv[1])
        def triple_sine(x):
            return jnp.sin(x) * 3 + 1
        jax.jit(triple_sine)(jnp.ones(7)).block_until_ready()
        (entry,) = folder.glob("jit_triple_sine-*-cache")
        data = entry.read_bytes()
        entry.write_bytes(data[: len(data) // 2])
        for run in ("damaged", "repaired"):
            jax.clear_caches()
            print(run, file=sys.stderr, flush=True)
            print(float(jax.jit(triple_sine)(jnp.ones(7))[0]), file=sys.stderr, flush=True)
        print(len(entry.read_bytes()) > len(data) // 2, gamelab.repair_cache(folder, "jit_triple_sine"))
    """)
    env = {**os.environ, "GAMELAB_CACHE_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, *flags, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "[]"], proc.stdout  # written again, and whole
    damaged, repaired = proc.stderr.split("repaired\n")
    assert "Error reading persistent compilation cache entry for 'jit_triple_sine'" in damaged, proc.stderr
    assert "gamelab deleted the damaged entry jit_triple_sine-" in damaged, proc.stderr
    assert "Error reading" not in repaired and "Warning" not in repaired, proc.stderr
    assert damaged.strip().endswith(str(float(np.sin(1.0) * 3 + 1))) and repaired.strip() == damaged.strip().split()[-1]
