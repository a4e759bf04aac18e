"""The command line: output contracts and clean errors. Commands run in this process (typer's
CliRunner: the same app, arguments, exit codes and streams); a few run as real processes
(`python -m gamelab.cli`), where the interpreter's own exit code and streams are the point."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import COMAL3_NASH, gamelab_cli as gamelab

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "openspiel"


def process(*args):
    """`gamelab ARGS` as a real process."""
    return subprocess.run([sys.executable, "-m", "gamelab.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [[], ["list"], ["nash"], ["run"], ["demo"], ["sweep"], ["plot"], ["report"]])
def test_help_everywhere(command):
    out = gamelab(*command, "--help")
    assert out.returncode == 0 and "Usage" in out.stdout


def test_list_names_every_algorithm_and_game():
    from gamelab.algorithms import algorithm_names
    from gamelab.games import game_names

    out = gamelab("list").stdout
    for name in algorithm_names() + game_names():
        assert name in out


def test_nash_json():
    out = json.loads(gamelab("nash", "comal3", "--tau", "0.1", "--json").stdout)
    np.testing.assert_allclose(out["policy"], COMAL3_NASH, atol=1e-12)
    assert out["duality_gap"] < 1e-12
    np.testing.assert_allclose(out["regularized"]["policy"], [0.33714, 0.28346, 0.37940], atol=5e-6)


def test_run_json_contract():  # a real process: its stdout is exactly one JSON document
    out = process("run", "comal", "comal3", "--steps", "16", "--tau", "0.1", "--inner", "200", "--eta", "0.1", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("policy", "exploitability", "duality_gap", "trace"):
        assert key in data
    assert data["duality_gap"] < 1e-9 and abs(data["duality_gap"] - 2 * data["exploitability"]) < 1e-15
    assert len(data["trace"]) == 17 and data["trace"][0]["step"] == 0
    assert {"duality_gap", "avg_duality_gap", "kl_to_target"} <= set(data["trace"][-1])


def test_run_with_parametrized_game_and_set():
    out = gamelab("run", "mpo", "random:n=10,seed=3", "--steps", "50", "--record-every", "10",
                  "--set", "refresh_every=20", "--json")
    data = json.loads(out.stdout)
    assert data["hparams"]["refresh_every"] == 20 and len(data["policy"]) == 10 and len(data["trace"]) == 6


def test_run_human_output():
    out = gamelab("run", "omwu", "rps", "--steps", "100", "--eta", "0.5", "--init", "0.5,0.3,0.2")
    assert out.returncode == 0 and "last-iterate policy" in out.stdout and "duality gap" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope", "rps"], "unknown algorithm 'nope'"),
        (["run", "mwu", "nope"], "unknown game 'nope'"),
        (["run", "mwu", "cyclic:m=3"], "has no parameter 'm'; valid parameters: n, margin"),
        (["run", "mwu", "rps", "--eta", "-1"], "eta must be > 0"),
        (["run", "inpo", "rps", "--tau", "0"], "tau must be > 0"),
        (["run", "mwu", "rps", "--tau", "0.1"], "mwu does not take tau"),
        (["run", "mwu", "rps", "--set", "eta"], "--set takes NAME=VALUE"),
        (["run", "mwu", "rps", "--init", "1,2"], "initial policy must have 3 entries"),
        (["run", "mwu", "/no/such/file.txt"], "no such game file"),
        (["nash", "comal3", "--tau", "-1"], "tau must be a positive"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line_and_no_traceback(args, message):
    out = gamelab(*args)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_invalid_matrix_file(tmp_path):  # a real process: exit code 2 and one line, no traceback
    path = tmp_path / "bad.txt"
    path.write_text("0.5 0.7\n0.7 0.5\n")
    out = process("nash", str(path))
    assert out.returncode == 2 and "P + P.T must equal 1" in out.stderr and "Traceback" not in out.stderr


def test_real_data_files():
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    soccer = json.loads(gamelab("nash", str(SHARED / "soccer_win_rates.txt"), "--json").stdout)
    assert soccer["n"] == 10 and soccer["duality_gap"] < 1e-9
    strict = gamelab("nash", str(SHARED / "rrps_bot_table.txt"))
    assert strict.returncode == 2 and "antisymmetrize" in strict.stderr
    rrps = json.loads(gamelab("nash", str(SHARED / "rrps_bot_table.txt"), "--antisymmetrize", "--json").stdout)
    assert rrps["n"] == 43 and rrps["duality_gap"] < 1e-9


def test_demo_writes_table_and_figure(tmp_path):
    out = gamelab("demo", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "comal" in out.stdout and "omwu" in out.stdout
    assert (tmp_path / "gap_curves_comal3.png").stat().st_size > 10_000
    assert (tmp_path / "gap_curves_comal3.svg").exists()
