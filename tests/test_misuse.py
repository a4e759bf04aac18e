"""Misuse that once ended in a traceback, a hang or silent acceptance: each is refused by name,
before anything is written."""
import pytest

from gamelab.llm.model import TransformerPolicy
from gamelab.sweep import SpecError, execute, make_spec

BASE = dict(algorithms=["mwu"], games=["rps"], steps=10)


@pytest.mark.parametrize("extra, message", [
    ({"algorithm": 5}, "algorithm must be a table"),
    ({"algorithm": {"mwu": 5}}, r"\[algorithm.mwu\] must be a table"),
    ({"algorithm": {"mwu": {"steps": 10**20}}}, r"\[algorithm.mwu\] steps must be a positive integer"),
    ({"seeds": [2**63]}, r"seeds: 9223372036854775808 is not a whole number in \[0, 2\^31\)"),
    ({"seeds": [1, 1]}, "seeds lists a seed twice"),
    ({"games": ["rps", "comal3", "rps"]}, "games lists 'rps' more than once"),
    ({"steps": 10**20}, "steps must be a positive integer of at most 2147483647"),
    ({"record_every": 2**40}, "record_every must be a positive integer of at most"),
    ({"record_policy": "yes"}, "record_policy must be true or false"),
    ({"target": "foo"}, "target must be 'nash'"),
    ({"metric_tau": -1.0}, "metric_tau must be a positive number"),
    ({"batch": True}, "batch must be a positive integer"),
    ({"feedback": []}, "feedback must be 'closed', 'exact' or 'sampled'"),
])
def test_bad_specs_are_refused_by_name_and_leave_no_folder(tmp_path, extra, message):
    with pytest.raises(SpecError, match=message):
        execute(make_spec(**{**BASE, **extra}), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model, message", [
    ({"d_model": 0}, "d_model must be a positive integer"),
    ({"heads": 0}, "heads must be a positive integer"),
    ({"layers": -1}, "layers must be a positive integer"),
    ({"d_model": 6, "heads": 4}, r"d_model \(6\) must be a multiple of heads \(4\)"),
])
def test_a_transformer_of_impossible_shape_is_refused(model, message):
    with pytest.raises(ValueError, match=message):
        TransformerPolicy(4, 2, **model)


# ------------------------------------------------------------------ the Python API
@pytest.mark.parametrize("hparams, message", [
    ({"eta": "0.1"}, "eta must be a number"),
    ({"eta": None}, "eta must be a number"),
    ({"eta": [0.1, 0.2]}, "one run takes one value"),
])
def test_run_refuses_hyperparameters_that_are_not_one_number(hparams, message):
    from gamelab.games import rps
    from gamelab.run import run

    with pytest.raises(ValueError, match=message):
        run("mwu", rps(), steps=2, **hparams)


def test_run_batch_refuses_strings_and_matrices_of_hyperparameters():
    from gamelab.games import rps
    from gamelab.run import run_batch

    with pytest.raises(ValueError, match="eta must be a number"):
        run_batch("mwu", [rps(), rps()], steps=2, hparams={"eta": ["0.1", "0.2"]})
    with pytest.raises(ValueError, match=r"one number per run, got an array of shape \(1, 2\)"):
        run_batch("mwu", [rps(), rps()], steps=2, hparams={"eta": [[0.1, 0.2]]})
    with pytest.raises(ValueError, match="each must be 1 or the batch size, got games 2, seeds 1, eta 3"):
        run_batch("mwu", [rps(), rps()], steps=2, hparams={"eta": [0.1, 0.2, 0.3]})


# ------------------------------------------------------------------ files
def test_a_byte_order_mark_is_not_data(tmp_path):
    from gamelab.games import parse_game
    from gamelab.sweep import load_spec

    (tmp_path / "g.csv").write_text("0.5,0.2,0.7\n0.8,0.5,0.1\n0.3,0.9,0.5\n", encoding="utf-8-sig")
    assert parse_game(str(tmp_path / "g.csv")).P[0, 1] == 0.2
    (tmp_path / "s.toml").write_text('algorithms = ["mwu"]\ngames = ["rps"]\nsteps = 5\n', encoding="utf-8-sig")
    assert load_spec(tmp_path / "s.toml").steps == 5


def test_a_symlink_loop_and_a_runaway_line_are_named(tmp_path):
    from gamelab.games import InvalidGameError, parse_game

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InvalidGameError, match="symbolic link that leads nowhere"):
        parse_game(str(tmp_path / "a"))
    (tmp_path / "t.txt").write_text('("x", "y", ' + "-" * 100_000 + "1)\n")
    with pytest.raises(InvalidGameError, match=r"line 1: cannot parse .*… \(100013 characters\)") as err:
        parse_game(str(tmp_path / "t.txt"))
    assert len(str(err.value)) < 300


def test_grid_and_set_values_must_be_finite_numbers():
    from typer.testing import CliRunner

    from gamelab.cli import app

    for args, message in ((["sweep", "--algorithms", "mwu", "--games", "rps", "--steps", "5", "--grid", "eta=nan",
                            "--out", "unused"], "--grid eta: 'nan' is not a finite number"),
                          (["run", "mwu", "rps", "--set", "eta=0.1x"], "--set eta: '0.1x' is not a number")):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_the_example_spec_is_valid_and_documents_record_policy():
    from pathlib import Path

    from gamelab.sweep import load_spec, plan

    spec = load_spec(Path(__file__).resolve().parents[1] / "experiments" / "example_sweep.toml")
    assert spec.record_policy and {c.padded for c in plan(spec)} == {True}


def test_nash_of_a_cross_table_names_its_responses_and_prints_the_correction():
    from pathlib import Path

    from typer.testing import CliRunner

    from gamelab.cli import app

    table = Path(__file__).resolve().parents[2] / "shared" / "data" / "openspiel" / "rrps_bot_table.txt"
    if not table.is_file():
        pytest.skip(f"the shared data is not beside the checkout: {table}")
    result = CliRunner().invoke(app, ["nash", str(table), "--antisymmetrize"])
    assert result.exit_code == 0, result.output
    assert "max |V + Vᵀ| was 35.202" in result.output and "support (5 of 43): randbot 0.89" in result.output


# ------------------------------------------------------------------ resources
def test_a_game_too_large_for_memory_is_refused_before_it_is_built():
    from typer.testing import CliRunner

    from gamelab.cli import app

    result = CliRunner().invoke(app, ["run", "mwu", "random:n=1000000", "--steps", "2"])
    assert result.exit_code == 2 and "a run on 1000000 responses needs about 37" in result.output, result.output


def test_target_auto_skips_the_dense_lp_above_its_size(monkeypatch):
    from gamelab import defaults
    from gamelab.games import parse_game
    from gamelab.run import run

    monkeypatch.setattr(defaults, "EXACT_NASH_MAX_N", 3)
    assert "kl_to_target" in run("mwu", parse_game("rps"), steps=2).trace
    assert "kl_to_target" not in run("mwu", parse_game("random:n=5,seed=0"), steps=2).trace
    assert "kl_to_target" in run("mwu", parse_game("random:n=5,seed=0"), steps=2, target="nash").trace
    with pytest.raises(ValueError, match="pass target='nash' to solve its LP"):
        run("mwu", parse_game("random:n=5,seed=0"), steps=2, metrics=["kl_to_target"])


def test_a_very_large_sweep_asks_first(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from gamelab import defaults
    from gamelab.cli import app

    monkeypatch.setattr(defaults, "SWEEP_CONFIRM_RUNS", 10)
    args = ["sweep", "--algorithms", "mwu", "--games", "random:n=3,seed=0..11", "--steps", "2", "--out",
            str(tmp_path / "out"), "--quiet"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "this sweep has 12 runs" in refused.output and "--yes" in refused.output
    assert not (tmp_path / "out").exists()
    assert CliRunner().invoke(app, [*args, "--yes"]).exit_code == 0


def test_planning_a_large_range_does_not_build_every_game(monkeypatch):
    """A generated game's size comes from its parameters: 20,000 seeds build one game, not 20,000."""
    import gamelab.sweep as S

    built = []
    real = S.parse_game
    monkeypatch.setattr(S, "parse_game", lambda spec, **kw: built.append(spec) or real(spec, **kw))
    S._game.cache_clear()
    S._has_groups.cache_clear()
    spec = S.make_spec(algorithms=["mwu", "inpo"], games=["random:n=10,seed=0..19999"], steps=10,
                       grid={"eta": [0.1, 0.2], "tau": [0.1]})
    chunks = S.plan(spec)
    assert S.count_runs(spec) == sum(len(c.runs) for c in chunks) == 80_000
    assert len(set(built)) <= 2, built[:5]


def test_a_range_of_too_many_games_is_refused_before_it_is_listed():
    """10^7 games: refused at once with the count (listing and checking them took two minutes)."""
    import time

    from gamelab import defaults
    from gamelab.sweep import SpecError, make_spec

    started = time.perf_counter()
    with pytest.raises(SpecError, match=f"expand to 10,000,001 games; a sweep takes at most "
                                        f"{defaults.SWEEP_MAX_GAMES:,}"):
        make_spec(algorithms=["mwu"], games=["rps", "random:n=3,seed=0..9999999"], steps=10)
    assert time.perf_counter() - started < 1.0
    assert make_spec(algorithms=["mwu"], games=["random:n=3..4,seed=7..8"], steps=10).games == (
        "random:n=3,seed=7", "random:n=3,seed=8", "random:n=4,seed=7", "random:n=4,seed=8")
    with pytest.raises(SpecError, match="empty range 5..4"):
        make_spec(algorithms=["mwu"], games=["random:n=3,seed=5..4"], steps=10)


def test_a_run_shown_with_progress_has_the_same_trace_bit_for_bit(capfd):
    """The progress bar cuts the run into calls of the driver from its carry: nothing changes."""
    import numpy as np

    from gamelab.games import parse_game
    from gamelab.prepare import prepare
    from gamelab.run import execute

    for name, batched in (("omwu", False), ("comal", True), ("regret_matching", True)):
        games = [parse_game("rps"), parse_game("comal3")] if batched else parse_game("random:n=5,seed=2")
        args = dict(steps=333, record_every=7, batched=batched, record_policy=True, init="random", seeds=[0, 1][:1 + batched])
        if not batched:
            args["seeds"] = 0
        whole, cut = execute(prepare(name, games, **args)), execute(prepare(name, games, **args), progress=True)
        for key in whole.trace:
            np.testing.assert_array_equal(cut.trace[key], whole.trace[key], err_msg=f"{name} {key}")
        np.testing.assert_array_equal(np.asarray(cut.logp), np.asarray(whole.logp))
    assert "333/333" in capfd.readouterr().err


# ------------------------------------------------------------------ a fuzz of sweep specs
def _spec_values():
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**64), st.floats(allow_nan=True),
                        st.sampled_from(["mwu", "rps", "comal3", "yes", "", "float32", "uniform", "random",
                                         "random:n=4,seed=0..2", "nope", "closed", "sampled"]))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.sampled_from(["eta", "tau", "mwu",
                                                                                          "steps", "x"]),
                                                                         inner, max_size=2)), max_leaves=4)


def test_any_spec_is_either_valid_or_refused_by_name():
    """Whatever a TOML file can hold under the spec's keys: a SweepSpec, or one SpecError — never
    another exception."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gamelab.sweep import SPEC_KEYS

    base = {"algorithms": ["mwu"], "games": ["rps"], "steps": 3}

    @settings(max_examples=150, deadline=None)
    @given(st.dictionaries(st.sampled_from(sorted(SPEC_KEYS)), _spec_values(), max_size=4))
    def check(raw):
        try:
            make_spec(**{**base, **raw})
        except SpecError:
            pass

    check()
