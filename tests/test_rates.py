"""Rate certificates (gamelab.rates, `gamelab rates`): fits recover known rates exactly, the game
classes are those of known games, and on real runs the verdicts are what theory says: OMWU and
extragradient converge linearly near a unique interior Nash, MWU's last iterate does not, INPO
converges linearly in the regularized game."""
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamelab import rates
from gamelab.algorithms import algorithm_names
from gamelab.games import parse_game
from conftest import gamelab_cli

T = np.arange(0, 2001, 10, dtype=np.float64)


@given(rho=st.floats(0.9, 0.999), C=st.floats(1e-3, 10.0))
@settings(max_examples=30, deadline=None)
def test_a_geometric_trace_is_fitted_as_linear_with_its_rho(rho, C):
    v = C * rho ** T
    fit = rates.fit_rate(T, v)
    assert fit.kind == "linear"
    assert fit.value == pytest.approx(rho, rel=1e-9) and fit.lo <= rho <= fit.hi * (1 + 1e-12)
    if np.any(v <= rates.FLOOR):  # the fit stops where the trace reaches rounding level
        assert fit.floor_step == T[np.argmax(v <= rates.FLOOR)] and fit.stop < fit.floor_step


@given(alpha=st.floats(0.3, 3.0), C=st.floats(1e-2, 10.0))
@settings(max_examples=30, deadline=None)
def test_a_power_law_trace_is_fitted_as_a_power_law_with_its_alpha(alpha, C):
    fit = rates.fit_rate(T, C * np.maximum(T, 1) ** (-alpha))
    assert fit.kind == "power" and fit.value == pytest.approx(alpha, rel=1e-9)


def test_cycles_plateaus_and_growth_are_not_convergence():
    rng = np.random.default_rng(0)
    cycling = 0.1 + 0.05 * np.sin(T / 37.0) + 0.01 * rng.standard_normal(T.size)
    growing = 0.01 * 1.0005 ** T
    plateau = 1e-3 + 1e-3 * 0.9 ** T
    for trace in (cycling, growing, plateau):
        fit = rates.fit_rate(T, trace)
        assert fit.kind == "none", fit
        assert fit.hi >= 1.0, fit  # the linear slope's interval reaches "no decrease"


def test_solved_short_and_invalid_traces():
    assert rates.fit_rate(T, np.zeros_like(T)).kind == "solved"
    assert rates.fit_rate([0, 1, 2], [1.0, 0.5, 0.25]).kind == "too_short"
    fast = rates.fit_rate(T, np.where(T < 30, 0.5 ** T, 0.0))  # at rounding level after 3 recordings
    assert fast.kind == "fast" and fast.floor_step == 30
    with pytest.raises(ValueError, match="same length"):
        rates.fit_rate([0, 1], [1.0])
    with pytest.raises(ValueError, match="tail"):
        rates.fit_rate(T, 0.9 ** T, tail=0)


@pytest.mark.parametrize("spec, cls", [("rps", "unique_interior"), ("comal3", "unique_interior"),
                                       ("random:n=5,seed=0", "unique_interior"), ("transitive:n=5", "pure"),
                                       ("random:n=10,seed=1", "pure"), ("random:n=10,seed=0", "unique")])
def test_game_classes_of_known_games(spec, cls):
    assert rates.game_class(parse_game(spec).P) == cls


def test_a_cross_table_is_classed_as_the_sweep_read_it():
    """RRPS's bot table is a game only once antisymmetrized (as its sweep does): classed that way,
    not left to a silent default; a game that cannot be rebuilt is 'unknown'."""
    import pandas as pd

    rrps = Path(__file__).resolve().parents[2] / "shared" / "data" / "openspiel" / "rrps_bot_table.txt"
    if not rrps.is_file():
        pytest.skip(f"{rrps} is not here")
    df = pd.DataFrame({"run": 0, "algorithm": "omwu", "game": str(rrps), "step": T, "iterate": "last",
                       "duality_gap": 0.1 * 0.99 ** T})
    assert rates.certify(df, antisymmetrize=True)["class"].item() == "unique"
    assert rates.certify(df)["class"].item() == "unknown"  # refused as it stands: not guessed


def test_a_game_with_a_duplicated_response_has_many_nash():
    P = parse_game("rps").P
    P = np.block([[P, P[:, :1]], [P[:1, :], np.full((1, 1), 0.5)]])  # a copy of rock: a segment of Nash
    assert rates.game_class(P) == "general"


def test_the_theory_table_names_registered_algorithms_and_known_classes():
    names = set(algorithm_names())
    for (algo, cls), pred in rates.THEORY.items():
        assert algo in names, algo
        assert cls in (*rates.GAME_CLASSES, "any")
        assert pred.kind in rates.PREDICTED_KINDS and pred.source


@pytest.mark.parametrize("measured, predicted, verdict", [
    (("linear", 0.99, 0.98, 0.995), ("linear", math.nan), "as predicted"),
    (("linear", 0.99, 0.98, 0.995), ("linear", 0.9), "slower"),
    (("power", 0.5, 0.4, 0.6), ("linear", math.nan), "slower"),
    (("linear", 0.99, 0.98, 0.995), ("power", 0.5), "faster"),
    (("power", 0.5, 0.45, 0.55), ("power", 0.5), "as predicted"),
    (("power", 0.2, 0.1, 0.3), ("power", 0.5), "slower"),
    (("power", 0.9996, 0.9995, 0.9998), ("power", 1.0), "as predicted"),  # within POWER_TOLERANCE
    (("fast", math.nan, math.nan, math.nan), ("linear", math.nan), "as predicted"),
    (("fast", math.nan, math.nan, math.nan), ("none", math.nan), "faster"),
    (("power", 1.0, 0.9, 1.1), ("power", 0.5), "faster"),
    (("none", 1.0, 0.99, 1.01), ("linear", math.nan), "no convergence"),
    (("none", 1.0, 0.99, 1.01), ("none", math.nan), "as predicted"),
    (("linear", 0.99, 0.98, 0.995), ("none", math.nan), "faster"),
    (("none", 1.0, 0.99, 1.01), ("plateau", math.nan), "as predicted"),
    (("solved", math.nan, math.nan, math.nan), ("none", math.nan), "started solved"),
])
def test_verdicts(measured, predicted, verdict):
    fit = rates.RateFit(*measured, 1.0, 1.0, 2.0, 10, math.nan, 0.0, 0.0)
    assert rates.verdict(fit, rates.Prediction(*predicted, "a source")) == verdict
    assert rates.verdict(fit, None) in ("no prediction", "started solved")


SPEC = """algorithms = ["mwu", "omwu", "extragradient", "inpo"]
games = ["comal3", "random:n=5,seed=0"]
steps = 3000
record_every = 20

[grid]
eta = [0.5, 1.0]
tau = [0.1]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rates")
    (folder / "spec.toml").write_text(SPEC)
    r = gamelab_cli("sweep", folder / "spec.toml", "--out", folder / "out", "--quiet")
    assert r.returncode == 0, r.stderr
    return folder / "out"


def test_a_regularized_run_without_its_regularized_gap_is_judged_by_its_plateau(swept):
    """A sweep batch mixing τ = 0 and τ > 0 records no DG_τ: extragradient at τ = 0.1 is then
    judged on its duality gap, which theory says stops at π*_τ's."""
    from gamelab.results import load

    df = load(swept)
    df = df[df["algorithm"] == "extragradient"].assign(regularized_gap=np.nan)
    table = rates.certify(df)
    assert set(table["metric"]) == {"duality_gap"} and set(table["class"]) == {"regularized"}
    assert set(table["predicted"]) == {"plateau"} and set(table["verdict"]) == {"as predicted"}, table


def test_real_runs_get_the_verdicts_theory_predicts(swept):
    from gamelab.results import load

    table = rates.certify(load(swept))
    by = {(r.algorithm, r.game, r.eta): r for r in table.itertuples()}
    for game in ("comal3", "random:n=5,seed=0"):
        for eta in (0.5, 1.0):
            mwu, omwu, eg, inpo = (by[(a, game, eta)] for a in ("mwu", "omwu", "extragradient", "inpo"))
            assert mwu.kind == "none" and mwu.verdict == "as predicted", mwu  # MWU's last iterate: no convergence
            assert omwu.kind == "linear" and omwu.hi < 1 and omwu.verdict == "as predicted", omwu
            assert eg.metric == "regularized_gap" and eg.kind == "linear", eg  # τ = 0.1: the regularized game
            assert inpo.metric == "regularized_gap" and inpo.kind == "linear" and inpo.verdict == "as predicted"
            # linearized at π*_τ, INPO's log-space error contracts by (1 − ητ) and the game part
            # only rotates it, so the gap (quadratic in the error) contracts no faster than (1 − ητ)²
            assert (1 - eta * 0.1) ** 2 - 1e-6 <= inpo.value < 1, inpo


def test_the_rates_command_prints_the_table_writes_csv_and_a_figure(swept, tmp_path):
    r = gamelab_cli("rates", swept, "--csv", tmp_path / "rates.csv", "--plot", tmp_path / "rates", "--sources")
    assert r.returncode == 0, r.stderr
    assert "verdicts: " in r.stdout and "as predicted" in r.stdout and "Bailey & Piliouras" in r.stdout
    assert (tmp_path / "rates.png").stat().st_size > 10_000 and (tmp_path / "rates.csv").is_file()
    bad = gamelab_cli("rates", swept, "--tail", "2")
    assert bad.returncode == 2 and "--tail must be in (0, 1]" in bad.stderr + bad.stdout
    missing = gamelab_cli("rates", tmp_path / "nothing")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
