"""Figures, summaries and verdicts from a results table, and the `plot` / `report` commands.

The table is built from real runs on the COMAL game (and one 5-response game), through the same
trace_to_frame / write_chunk path the sweep uses.
"""
import math
import re

import numpy as np
import pandas as pd
import pytest

from conftest import gamelab_cli as gamelab
from gamelab import plots
from gamelab.games import parse_game
from gamelab.report import classify, format_table, summarize, tail_stats
from gamelab.results import load_results, trace_to_frame, write_chunk, write_manifest
from gamelab.run import run_batch

# (algorithm, game, hyper-parameter name -> per-run values, seeds, steps, record_every, init)
RUNS = [
    ("omwu", "comal3", {"eta": [1.0, 1.0, 0.5, 0.5]}, [0, 1, 0, 1], 2000, 10, None),
    ("inpo", "comal3", {"eta": [0.1, 0.1, 1.0, 1.0], "tau": [0.1, 0.05, 0.1, 0.05]}, [0], 2000, 10, None),
    ("mwu", "comal3", {"eta": [0.1]}, [0], 2000, 10, None),
    ("iterative_dpo", "comal3", {"beta": [1.0]}, [0], 2000, 10, None),
    ("comal", "comal3", {"eta": [0.1], "tau": [0.1], "inner": [200]}, [0], 20, 1, None),
    ("mwu", "cyclic:n=5", {"eta": [0.1, 0.1]}, [0, 1], 300, 10, "random"),
]
# the verdicts the issue asks for, on the COMAL game: (algorithm, hyper-parameters) -> verdict
EXPECTED = {
    ("omwu", (("eta", 1.0),)): "converged",
    ("inpo", (("eta", 0.1), ("tau", 0.1))): "plateau",
    ("mwu", (("eta", 0.1),)): "cycled",
    ("iterative_dpo", (("beta", 1.0),)): "diverged",
    ("comal", (("eta", 0.1), ("inner", 200.0), ("tau", 0.1))): "converged",
}


def _frame(record_policy=True) -> pd.DataFrame:
    frames, run0 = [], 0
    for algo, game, hp, seeds, steps, every, init in RUNS:
        B = max([len(seeds)] + [len(v) for v in hp.values()])
        hp = {k: np.broadcast_to(np.asarray(v, float), (B,)) for k, v in hp.items()}
        seeds = np.broadcast_to(np.asarray(seeds), (B,))
        g = parse_game(game)
        r = run_batch(algo, [g], steps=steps, record_every=every, hparams=hp, seeds=seeds, init=init,
                      record_policy=record_policy)
        runs = [{"run": run0 + i, "algorithm": algo, "game": game, "n": g.n, "seed": int(seeds[i]),
                 **{k: float(v[i]) for k, v in hp.items()}} for i in range(B)]
        frames.append(trace_to_frame(r.trace, r.steps, runs, chunk=f"{algo}-{g.n}"))
        run0 += B
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def df():
    return _frame()


def _rows(df, algorithm, game="comal3", **hp):
    mask = (df["algorithm"] == algorithm) & (df["game"] == game)
    for k, v in hp.items():
        mask &= df[k] == v
    return df[mask]


def _trace(df, algorithm, **hp):
    sub = _rows(df, algorithm, **hp)
    sub = sub[sub["run"] == sub["run"].min()]
    last = sub[sub["iterate"] == "last"].sort_values("step")
    avg = sub[sub["iterate"] == "average"].sort_values("step")
    return last["step"].to_numpy(), last["duality_gap"].to_numpy(), avg["duality_gap"].to_numpy()


def _written(paths):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    png, svg = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 5000


# ---------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize("case", sorted(EXPECTED, key=str), ids=lambda c: c[0])
def test_classify_real_runs_on_comal_game(df, case):
    algorithm, hp = case
    steps, last, avg = _trace(df, algorithm, **dict(hp))
    assert classify(steps, last, avg) == EXPECTED[case], tail_stats(steps, last, avg)


def test_classify_rule_edges():
    steps = np.arange(0, 1000, 10)
    assert classify(steps, np.full(100, 0.02), np.full(100, 0.02)) == "plateau"
    assert classify(steps, np.full(100, 0.02), np.full(100, 0.001)) == "cycled"  # level orbit, average inside
    assert classify(steps, 0.1 * np.exp(-steps / 200), None) == "converging"  # 0.1 → 7e-4, steady
    assert classify(steps, 0.1 * 10 ** (-steps / 500), None) == "converging"  # steady fall, still above 1e-3
    assert classify(steps, np.where(steps < 500, 0.05, 0.45), None) == "diverged"  # absolute
    assert classify(steps, np.linspace(0.05, 0.2, 100), None) == "diverged"  # grew ×4 and stayed up
    wave = 0.05 * 10 ** (0.5 * np.sin(steps / 40.0))
    assert classify(steps, wave, np.full(100, 0.005)) == "cycled"
    assert classify(steps, np.r_[np.full(99, 0.1), 0.0], None) == "converged"  # exact 0 at the end
    assert classify(steps, np.r_[np.full(99, 0.1), np.nan], None) == "plateau"  # NaN rows are dropped
    assert classify([0], [0.3]) == "plateau" and classify([0], [1e-8]) == "converged"
    with pytest.raises(ValueError, match="at least one"):
        classify([0, 1], [np.nan, np.nan])


# ---------------------------------------------------------------------------- summary
def test_summarize_thresholds_and_verdicts(df):
    s = summarize(df)
    assert {"first_step_le_1e-03", "first_step_le_1e-06", "first_step_le_1e-09"} <= set(s.columns)
    assert len(s) == 1 + 1 + 4 + 1 + 1 + 1 + 1  # omwu η=1, omwu η=.5, inpo ×4, mwu ×2 games, dpo, comal
    omwu = s[(s["algorithm"] == "omwu") & (s["eta"] == 1.0)].iloc[0]
    assert omwu["seeds"] == 2 and omwu["verdict"] == "converged"
    first = [omwu[c] for c in ("first_step_le_1e-03", "first_step_le_1e-06", "first_step_le_1e-09")]
    assert 0 < first[0] < first[1] < first[2] < 800  # recorded every 10 steps: 180, 480, 790
    assert all(f % 10 == 0 for f in first)
    assert omwu["final_last"] <= 1e-12 and omwu["best_last"] <= omwu["final_last"] and omwu["final_step"] == 2000
    assert 1e-5 < omwu["final_average"] < 1e-3  # the average iterate lags far behind
    inpo = s[(s["algorithm"] == "inpo") & (s["eta"] == 0.1) & (s["tau"] == 0.1)].iloc[0]
    assert inpo["verdict"] == "plateau" and math.isnan(inpo["first_step_le_1e-03"])
    assert inpo["final_last"] == pytest.approx(0.0245, abs=5e-4)  # the gap of π*_τ
    comal = s[s["algorithm"] == "comal"].iloc[0]
    assert comal["final_step"] == 20 and comal["first_step_le_1e-09"] <= 20  # outer iterations
    assert "beta" in s.columns and math.isnan(omwu["beta"])
    # thresholds are configurable; another metric can be summarized
    s2 = summarize(df, thresholds=(1e-2,), metric="exploitability")
    assert [c for c in s2.columns if c.startswith("first_step")] == ["first_step_le_1e-02"]
    with pytest.raises(ValueError, match="metric"):
        summarize(df, metric="nope")


def test_format_table(df):
    lines = format_table(summarize(df)).splitlines()
    assert lines[0].split()[:3] == ["algorithm", "game", "config"] and set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + 10
    omwu = next(line for line in lines if re.match(r"omwu +comal3 +eta=1 ", line))
    assert "converged" in omwu and " 790 " in omwu
    assert "2.45e-02" in next(line for line in lines if line.startswith("inpo") and "eta=0.1, tau=0.1" in line)
    for header in ("final last", "best last", "final avg"):  # right-aligned under their headers, %.2e
        end = lines[0].index(header) + len(header)
        assert all(re.fullmatch(r"\d\.\d\de[+-]\d\d", line[end - 8:end]) for line in lines[2:]), header


# ---------------------------------------------------------------------------- figures
def test_plot_gaps(df, tmp_path):
    _written(plots.plot_gaps(df, tmp_path / "gaps"))  # two games: two panels
    _written(plots.plot_gaps(df, tmp_path / "one", game="comal3", select={"algorithm": ["omwu", "inpo"]}))
    _written(plots.plot_gaps(df, tmp_path / "ent", metric="entropy"))
    with pytest.raises(ValueError, match="not in the results"):
        plots.plot_gaps(df, tmp_path / "x", game="rps")


def test_plot_simplex(df, tmp_path):
    _written(plots.plot_simplex(df, tmp_path / "simplex"))  # skips the 5-response game
    _written(plots.plot_simplex(df, tmp_path / "simplex_m", game="comal3", matrix=parse_game("comal3").P))
    with pytest.raises(ValueError, match="3-response"):
        plots.plot_simplex(df, tmp_path / "bad", game="cyclic:n=5")
    with pytest.raises(ValueError, match="3-response"):
        plots.plot_simplex(df[df["game"] == "cyclic:n=5"], tmp_path / "bad")
    with pytest.raises(ValueError, match="policy"):
        plots.plot_simplex(df.drop(columns="policy"), tmp_path / "bad")


def test_plot_heatmap_and_policy(df, tmp_path):
    _written(plots.plot_heatmap(df, tmp_path / "heat", algorithm="inpo"))
    _written(plots.plot_heatmap(df, tmp_path / "heat_all"))  # inpo and comal panels
    with pytest.raises(ValueError, match="beta"):
        plots.plot_heatmap(df, tmp_path / "bad", x="eta", y="beta")
    with pytest.raises(ValueError, match="column"):
        plots.plot_heatmap(df, tmp_path / "bad", x="eta", y="gamma")
    _written(plots.plot_policy_evolution(df, tmp_path / "policy"))
    five = int(df.loc[df["game"] == "cyclic:n=5", "run"].min())
    _written(plots.plot_policy_evolution(df, tmp_path / "policy5", run=five))
    with pytest.raises(ValueError, match="run 999"):
        plots.plot_policy_evolution(df, tmp_path / "bad", run=999)
    with pytest.raises(ValueError, match="policy"):
        plots.plot_policy_evolution(df.drop(columns="policy"), tmp_path / "bad")


def test_plot_gap_curves_for_demo(tmp_path):
    x = np.arange(0, 100, 10)
    _written(plots.plot_gap_curves({"a": (x, np.r_[0.1 / (1 + x[:-1]), 0.0])}, tmp_path / "demo",
                                   averages={"a": (x, 0.2 / (1 + x))}))


# ---------------------------------------------------------------------------- command line
def _folder(path, frame):
    write_manifest(path, {"spec": {"note": "written by tests/test_plots_report.py"}, "chunks": {}})
    for chunk, part in frame.groupby("chunk"):
        write_chunk(path, chunk, part)
    return path


@pytest.fixture(scope="module")
def cli(df, tmp_path_factory):
    """Every command, run once in this process (CliRunner), keyed by name."""
    root = tmp_path_factory.mktemp("cli")
    full = _folder(root / "full", df)
    bare = _folder(root / "bare", df[df["algorithm"] == "mwu"].drop(columns="policy"))
    commands = {
        "all": ("plot", full, "--out", root / "figs"),
        "simplex_default_out": ("plot", full, "--kind", "simplex", "--game", "comal3"),
        "report": ("report", full, "--csv", root / "summary.csv"),
        "plot_bare": ("plot", bare, "--metric", "exploitability"),
        "missing": ("plot", root / "nowhere"),
        "no_policy": ("plot", bare, "--kind", "simplex"),
        "not_three": ("plot", full, "--kind", "simplex", "--game", "cyclic:n=5"),
        "bad_kind": ("plot", full, "--kind", "pie"),
    }
    return root, full, {name: gamelab(*command) for name, command in commands.items()}


def test_cli_plot_all(cli, df):
    root, full, out = cli
    res = out["all"]
    assert res.returncode == 0, res.stderr
    paths = res.stdout.split()
    kinds = {p.split("/")[-1].split("_")[0].split(".")[0] for p in paths}
    assert kinds == {"gaps", "simplex", "heatmap", "policy"}
    assert len([p for p in paths if "policy_run" in p]) == 2 * df["algorithm"].nunique()
    for p in paths:
        assert p.startswith(str(root / "figs")) and (root / "figs" / p.split("/")[-1]).stat().st_size > 0
    res = out["simplex_default_out"]
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(full / "_figures" / "simplex_comal3.png"), str(full / "_figures" / "simplex_comal3.svg")]
    res = out["plot_bare"]  # no policies: the gap plot only, the rest skipped with a note
    assert res.returncode == 0 and "skipped simplex" in res.stderr
    assert res.stdout.split() == [str(root / "bare" / "_figures" / f"gaps_exploitability.{ext}") for ext in ("png", "svg")]


def test_cli_report(cli):
    root, _, out = cli
    res = out["report"]
    assert res.returncode == 0, res.stderr
    assert "converged" in res.stdout and "plateau" in res.stdout and "cycled" in res.stdout
    assert "diverged" in res.stdout and "step ≤ 1e-09" in res.stdout
    table = pd.read_csv(root / "summary.csv")
    assert len(table) == 10 and "first_step_le_1e-06" in table.columns


@pytest.mark.parametrize("name, message", [
    ("missing", "is not a folder"), ("no_policy", "policy"),
    ("not_three", "3-response"), ("bad_kind", "--kind"),
])
def test_cli_errors_are_one_line(cli, name, message):
    res = cli[2][name]
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error:") and message in res.stderr
    assert "Traceback" not in res.stderr


def test_results_folder_round_trip(cli, df):
    back = load_results(cli[1])
    assert len(back) == len(df) and isinstance(back["policy"].iloc[0], np.ndarray)
    assert summarize(back).equals(summarize(df))


def test_confidence_bounds_and_per_prompt_columns_are_metrics_not_hyper_parameters():
    """A sampled sequence-game run stores `<metric>_lo/_hi` and `prompt{k}_<metric>` columns; the
    report must not take them for hyper-parameters (they would split every run into its own config)."""
    from gamelab.report import hparam_columns
    from gamelab.results import is_metric

    for column in ("duality_gap_lo", "exploitability_hi", "kl_to_class_nash_hi", "prompt0_duality_gap",
                   "prompt12_kl_to_class_nash_lo", "group1_reward", "loss"):
        assert is_metric(column), column
    for column in ("eta", "tau", "lr", "prompt_weights", "refresh_every", "inner_lo_rate"):
        assert not is_metric(column), column
    df = pd.DataFrame({"run": [0], "algorithm": ["inpo"], "game": ["seq"], "n": [10], "seed": [0], "step": [0],
                       "iterate": ["last"], "eta": [0.1], "tau": [0.5], "duality_gap": [0.2], "duality_gap_lo": [0.1],
                       "duality_gap_hi": [0.3], "prompt0_duality_gap": [0.2]})
    assert hparam_columns(df) == ["eta", "tau"]


def test_gap_plot_draws_a_sampled_estimates_confidence_interval(tmp_path, monkeypatch):
    """A run with `<metric>_lo/_hi` (sampled metrics) gets a hatched band exactly spanning its
    interval; a run without them gets none, and no 'average iterate' legend entry without one."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or [])
    rows = {"run": 0, "algorithm": "inpo", "game": "seq", "n": 10, "seed": 0, "iterate": "last", "eta": 0.1}
    df = pd.DataFrame([{**rows, "step": s, "duality_gap": g, "duality_gap_lo": g - 0.05, "duality_gap_hi": g + 0.05}
                       for s, g in ((0, 0.3), (10, 0.2), (20, 0.1))])
    plots.plot_gaps(df, tmp_path / "ci")
    plots.plot_gaps(df.drop(columns=["duality_gap_lo", "duality_gap_hi"]), tmp_path / "no_ci")
    with_ci, without = (f.axes[0] for f in figures)
    hatched = [c for c in with_ci.collections if c.get_hatch()]
    assert len(hatched) == 1 and not [c for c in without.collections if c.get_hatch()]
    ys = hatched[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(ys.min(), 0.05) and np.isclose(ys.max(), 0.35)
    labels = [t.get_text() for t in with_ci.get_legend().get_texts()]
    assert any("confidence interval" in t for t in labels) and not any("average iterate" in t for t in labels)
