"""Golden traces: the engine reproduces tests/golden/traces.json to 1e-12.

The file holds, for every registered algorithm on ``comal3`` and ``random:n=6,seed=7``, the
last-iterate duality-gap trace and final policy of ``gamelab.run.run`` (60 steps; COMAL 6 outer ×
50 inner), with the hyper-parameters, initial policy and reference used. It is written by
``python tests/golden/regenerate.py`` (which first checks the engine against tests/reference.py);
no golden number appears in this file. A failure here means the engine's output changed: if that
was intended, regenerate and say why in the commit message.

1e-12 rather than exact equality: XLA may reassociate sums differently across versions and CPUs
(~1e-16 per step); the dynamics here stay well-conditioned enough over 60 steps for 1e-12.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import gamelab  # noqa: F401  (float64)
from gamelab.algorithms import algorithm_names, get_algorithm
from gamelab.games import parse_game
from gamelab.run import run

GOLDEN = Path(__file__).resolve().parent / "golden" / "traces.json"
REGENERATE = "python tests/golden/regenerate.py"
ATOL = 1e-12


@lru_cache(maxsize=None)
def golden() -> dict:
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: run `{REGENERATE}` from the repository root")
    return json.loads(GOLDEN.read_text())


def entries_of(name: str) -> list[dict]:
    return [e for e in golden()["entries"] if e["algorithm"] == name]


@pytest.mark.parametrize("name", algorithm_names())
def test_every_registered_algorithm_has_golden_entries(name):
    games = golden()["header"]["games"]
    have = {e["game"] for e in entries_of(name)}
    missing = [g for g in games if g not in have]
    assert not missing, (
        f"algorithm {name!r} has no golden entry for {missing} in {GOLDEN.name}: run `{REGENERATE}` "
        f"and commit the updated tests/golden/traces.json"
    )


def test_every_golden_entry_is_a_registered_algorithm():
    stale = sorted({e["algorithm"] for e in golden()["entries"]} - set(algorithm_names()))
    assert not stale, f"golden entries for unregistered algorithms {stale}: run `{REGENERATE}`"


@pytest.mark.parametrize("spec", ["comal3", "random:n=6,seed=7"])
def test_golden_games_are_unchanged(spec):
    """Tells a change in a game (e.g. its generator) apart from a change in an algorithm."""
    recorded = np.asarray(golden()["header"]["matrices"][spec])
    np.testing.assert_array_equal(
        np.asarray(parse_game(spec).P), recorded,
        err_msg=f"game {spec!r} is no longer the one the golden traces were recorded on",
    )


@pytest.mark.parametrize("name", algorithm_names())
def test_engine_reproduces_golden_traces(name):
    entries = entries_of(name)
    if not entries:
        pytest.fail(f"algorithm {name!r} has no golden entry: run `{REGENERATE}` and commit the result")
    for e in entries:
        P = np.asarray(parse_game(e["game"]).P)
        res = run(name, P, steps=e["steps"], record_every=1, init=np.asarray(e["init"]),
                  ref=np.asarray(e["ref"]), target=None, **e["hparams"])
        where = f"{name} on {e['game']} (hparams {e['hparams']})"
        np.testing.assert_allclose(
            np.asarray(res.trace["duality_gap"]), e["duality_gap"], rtol=0, atol=ATOL,
            err_msg=f"{where}: duality-gap trace differs from the golden one; if intended, run `{REGENERATE}`",
        )
        np.testing.assert_allclose(
            np.asarray(res.policy), e["final_policy"], rtol=0, atol=ATOL,
            err_msg=f"{where}: final policy differs from the golden one; if intended, run `{REGENERATE}`",
        )


@pytest.mark.parametrize("name", algorithm_names())
def test_golden_hyperparameters_are_the_defaults_plus_the_recorded_fixed_ones(name):
    """The golden runs use each algorithm's defaults; a changed default is a visible decision."""
    for e in entries_of(name):
        expected = get_algorithm(name).make_hparams(**e["fixed"])._asdict()
        assert {k: float(v) for k, v in expected.items()} == {k: float(v) for k, v in e["hparams"].items()}, (
            f"{name}: the default hyper-parameters changed since the golden traces were recorded; "
            f"if intended, run `{REGENERATE}`"
        )
