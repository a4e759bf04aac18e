"""The results store under misuse: folders of another kind, two writers, damaged chunks, modes.

Each case ends in a clear refusal that changes nothing, or in the result an uninterrupted run
gives."""
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gamelab.llm.games import parse_sequence_game
from gamelab.llm.train import train
from gamelab.results import CHUNKS, FILE_MODE, LOCK, ResultsFolderError, load_results, writer_lock
from gamelab.sweep import execute, make_spec

SPEC = dict(algorithms=["mwu", "omwu"], games=["rps", "comal3"], steps=20, record_every=5, chunk_size=2)
LLM = dict(steps=2, record_every=1, policy="tabular", feedback="exact", optimizer="sgd", progress=False)


def checksums(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK}


def test_a_sweep_and_a_transformer_run_refuse_each_others_folders_and_change_nothing(tmp_path):
    sweep_dir, run_dir = tmp_path / "sweep", tmp_path / "run"
    execute(make_spec(**SPEC), sweep_dir, progress=False)
    game = parse_sequence_game("cyclic:rule=count", 2, 2)
    train("mwu", game, out=run_dir, **LLM)
    before = checksums(sweep_dir), checksums(run_dir)
    with pytest.raises(ResultsFolderError, match="holds the results of a sweep"):
        train("mwu", game, out=sweep_dir, **LLM)
    with pytest.raises(ResultsFolderError, match="holds the results of a transformer run"):
        execute(make_spec(**SPEC), run_dir, progress=False)
    assert (checksums(sweep_dir), checksums(run_dir)) == before


def test_a_transformer_run_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no run"):
        train("mwu", parse_sequence_game("cyclic:rule=count", 2, 2), out=tmp_path, **LLM)
    assert [p.name for p in tmp_path.iterdir() if p.name != LOCK] == ["notes.txt"]


def test_a_damaged_chunk_is_computed_again_and_the_table_equals_an_uninterrupted_run(tmp_path, capfd):
    whole, damaged = tmp_path / "whole", tmp_path / "damaged"
    execute(make_spec(**SPEC), whole, progress=False)
    execute(make_spec(**SPEC), damaged, progress=False)
    files = sorted((damaged / CHUNKS).glob("*.parquet"))
    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated: no Parquet footer
    files[1].write_bytes(b"")  # empty
    stats = execute(make_spec(**SPEC), damaged, progress=False)
    assert stats["ran"] == 2 and sorted(name for name, _ in stats["damaged"]) == sorted(f.stem for f in files[:2])
    assert "is damaged" in capfd.readouterr().err
    assert load_results(damaged).equals(load_results(whole))
    assert execute(make_spec(**SPEC), damaged, progress=False)["ran"] == 0  # now whole: nothing to do


def test_results_files_get_the_mode_the_umask_gives(tmp_path):
    execute(make_spec(**SPEC), tmp_path, progress=False)
    for path in [tmp_path / "_manifest.json", *(tmp_path / CHUNKS).glob("*.parquet")]:
        assert path.stat().st_mode & 0o777 == FILE_MODE, path


HOLD = """
import sys, time
from gamelab.results import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_is_refused_at_once_or_waits_when_asked(tmp_path):
    """Another process holds the folder (a real process: the lock is the OS's): a sweep is refused
    with that reason and nothing is written; with wait it runs once the other is done."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD), str(tmp_path), "3"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(ResultsFolderError, match="being written by another gamelab process"):
            execute(make_spec(**SPEC), tmp_path, progress=False)
        assert time.monotonic() - started < 2 and not (tmp_path / "_manifest.json").exists()
        stats = execute(make_spec(**SPEC), tmp_path, progress=False, wait=True)
        # it ran after the holder let go of the lock; the holder may still be shutting down then
        assert stats["ran"] == stats["chunks"] > 0 and holder.wait(timeout=60) == 0
    finally:
        holder.kill()
        holder.wait()
    with writer_lock(tmp_path):  # released: free again
        pass


def test_a_damaged_checkpoint_is_not_resumed_from_and_the_trace_equals_an_uninterrupted_run(tmp_path, capfd):
    import numpy as np

    game = parse_sequence_game("cyclic:rule=count", 2, 2)
    kw = dict(LLM, steps=4, checkpoint_every=1)
    whole = train("mwu", game, out=tmp_path / "whole", **kw)
    train("mwu", game, out=tmp_path / "hurt", **kw)
    (tmp_path / "hurt" / "chunks" / "llm.parquet").unlink()
    for path in (tmp_path / "hurt" / "_checkpoints" / "4").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # every file cut in half
    again = train("mwu", game, out=tmp_path / "hurt", **kw)
    assert "checkpoint 4" in capfd.readouterr().err and again.resumed_from == 3
    for key, want in whole.trace.items():
        np.testing.assert_array_equal(again.trace[key], want, err_msg=key)


def test_a_full_disk_or_a_file_as_out_is_one_error_line_and_the_sweep_resumes(tmp_path, monkeypatch):
    import errno

    from typer.testing import CliRunner

    import gamelab.results as R
    from gamelab.cli import app

    args = ["sweep", "--algorithms", "mwu,omwu", "--games", "rps;comal3", "--steps", "10", "--chunk-size", "2",
            "--quiet", "--out"]
    (tmp_path / "a_file").write_text("x")
    result = CliRunner().invoke(app, [*args, str(tmp_path / "a_file")])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output and "Traceback" not in result.output
    real, calls = R.os.replace, []

    def full(src, dst):  # the second chunk finds the disk full
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(R.os, "replace", full)
    result = CliRunner().invoke(app, [*args, str(tmp_path / "out")])
    assert result.exit_code == 2 and "error: no space left on the device: " in result.output, result.output
    assert not list((tmp_path / "out" / CHUNKS).glob(".*.tmp"))  # nothing half-written left behind
    monkeypatch.setattr(R.os, "replace", real)
    result = CliRunner().invoke(app, [*args, str(tmp_path / "out")])
    assert result.exit_code == 0 and "1 already finished" in result.output, result.output
