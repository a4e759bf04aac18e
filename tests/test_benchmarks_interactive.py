"""benchmarks/interactive.py: its plain-NumPy reference does the work of `gamelab run` (the same
trace, every metric, every step), and its table comparison is bit for bit. Nothing is timed here."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gamelab.games import parse_game
from gamelab.nash import exact_nash
from gamelab.run import run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import interactive  # noqa: E402


@pytest.fixture(scope="module")
def reference():
    return interactive.numpy_namespace()


def test_numpy_reference_is_gamelab_run_on_rps(reference):
    P = np.asarray(parse_game("rps").P)
    assert np.array_equal(reference["RPS"], P)  # the game `gamelab run mwu rps` runs
    ours = reference["mwu_trace"]()  # 1000 steps, eta 0.1 (gamelab's default), from uniform
    theirs = run("mwu", P, steps=1000)
    assert set(ours) == set(theirs.trace)  # every metric the CLI run records, both iterates
    for k, v in ours.items():
        np.testing.assert_allclose(v, theirs.trace[k], rtol=0, atol=1e-9, err_msg=k)


def test_numpy_reference_off_the_nash(reference):
    """From a non-uniform start on another 3-response game every metric moves; still the same trace."""
    P = np.asarray(parse_game("comal3").P)
    init = np.array([0.6, 0.3, 0.1])
    ours = reference["mwu_trace"](P, steps=1000, eta=0.3, init=init, nash=exact_nash(P).policy)
    theirs = run("mwu", P, steps=1000, init=init, eta=0.3)
    assert np.ptp(ours["duality_gap"]) > 0.01
    for k, v in ours.items():
        np.testing.assert_allclose(v, theirs.trace[k], rtol=0, atol=1e-9, err_msg=k)


def test_identical_compares_bits():
    a = pd.DataFrame({"run": [0, 1], "x": [0.0, np.nan], "iterate": ["last", "last"]})
    assert interactive.identical(a, a.copy())[0]  # NaN in the same place is the same
    b = a.copy()
    b.loc[0, "x"] = -0.0  # equal as numbers, not as bits
    same, why = interactive.identical(a, b)
    assert not same and "x" in why


def test_compilations_are_split_into_real_ones_and_cache_hits():
    events = [{"fun": "jit(simulate_batch)", "s": 1.0, "hit": False}, {"fun": "jit(stage)", "s": 0.1, "hit": False},
              {"fun": "jit(simulate_batch)", "s": 0.01, "hit": True}]
    c = interactive.summarize_compiles(events)
    assert (c["real"], c["hits"], c["simulation_real"], c["simulation_hits"]) == (2, 1, 1, 1)
