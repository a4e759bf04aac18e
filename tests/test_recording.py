"""What the runner records and what that costs: a chosen subset of metrics (``metrics=``), no
average iterate when it is not asked for, vectorized host validation of a stack of games."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import COMAL3, random_matrix
from gamelab.algorithms import REGISTRY
from gamelab.games import Game, InvalidGameError, validate_matrices, validate_matrix
from gamelab.metrics import METRIC_NAMES
from gamelab.prepare import metric_names
from gamelab.run import run, run_batch, simulate, simulate_batch_jit
from gamelab.sweep import SpecError, execute, make_spec


def _games(k=3, n=4, seed=2):
    rng = np.random.default_rng(seed)
    return [random_matrix(rng, n) for _ in range(k)]


@pytest.mark.parametrize("name", ["mwu", "omwu", "inpo", "comal"])
@pytest.mark.parametrize("subset", [("exploitability",), ("duality_gap", "entropy"), ("kl_to_target",)])
def test_a_subset_of_metrics_is_the_same_numbers(name, subset):
    hp = {"inner": 10} if name == "comal" else {}
    full = run_batch(name, _games(), steps=7, record_every=2, hparams=hp)
    part = run_batch(name, _games(), steps=7, record_every=2, hparams=hp, metrics=subset)
    assert set(part.trace) == set(subset) | {f"avg_{m}" for m in subset}
    assert set(part.final) == set(part.trace)
    for key, values in part.trace.items():
        np.testing.assert_array_equal(np.asarray(values), np.asarray(full.trace[key]), err_msg=key)
    np.testing.assert_array_equal(np.asarray(part.logp), np.asarray(full.logp))


def test_metric_names_are_checked_and_canonical():
    assert metric_names(None) is None
    assert metric_names("duality_gap") == ("duality_gap",)
    assert metric_names(["entropy", "exploitability"]) == ("exploitability", "entropy")  # METRIC_NAMES order
    assert metric_names(list(reversed(METRIC_NAMES))) == METRIC_NAMES
    with pytest.raises(ValueError, match="unknown metric 'gap'"):
        run("mwu", COMAL3, steps=3, metrics=["gap"])
    with pytest.raises(ValueError, match="'regularized_gap' needs a τ"):
        run("mwu", COMAL3, steps=3, metrics=["regularized_gap"])
    with pytest.raises(ValueError, match="'kl_to_target' needs a target"):
        run_batch("mwu", [COMAL3], steps=3, metrics=["kl_to_target"], target=None)
    with pytest.raises(ValueError, match="target must be 'nash'"):  # still validated when not solved
        run("mwu", COMAL3, steps=3, metrics=["exploitability"], target="nsah")
    r = run("mwu", COMAL3, steps=3, metrics=["regularized_gap"], metric_tau=0.5)
    assert set(r.trace) == {"regularized_gap", "avg_regularized_gap"}


def test_the_same_subset_in_another_order_does_not_recompile():
    run_batch("omwu", [COMAL3], steps=3, metrics=("duality_gap", "exploitability"), target=None)
    before = simulate_batch_jit.cache_size()
    run_batch("omwu", [COMAL3], steps=3, metrics=["exploitability", "duality_gap"], target=None,
              hparams={"eta": 0.3})
    assert simulate_batch_jit.cache_size() == before


def test_no_metrics_at_all_still_runs():
    r = run_batch("mwu", _games(), steps=5, metrics=(), record_average=False, target=None)
    assert r.trace == {} and r.final == {}
    full = run_batch("mwu", _games(), steps=5, target=None)
    np.testing.assert_array_equal(np.asarray(r.logp), np.asarray(full.logp))


@pytest.mark.parametrize("jit", [True, False])
def test_without_average_the_average_iterate_is_not_tracked(jit):
    r = run("inpo", COMAL3, steps=6, record_average=False, record_policy=True, jit=jit)
    assert r.avg_policy is None
    assert not [k for k in r.trace if k.startswith("avg_")]
    with_avg = run("inpo", COMAL3, steps=6, record_policy=True, jit=jit)
    for key in r.trace:
        np.testing.assert_array_equal(np.asarray(r.trace[key]), np.asarray(with_avg.trace[key]), err_msg=key)
    b = run_batch("inpo", [COMAL3, COMAL3], steps=6, record_average=False, jit=jit)
    assert b.avg_policy is None


def test_gap_only_recording_compiles_to_the_update_plus_a_maximum():
    """No average iterate, only the gap: the loop holds the update's one product with P and no
    exponential beyond the update's own (MWU: one exp for π_t, one in the log-softmax)."""
    algo = REGISTRY["mwu"]
    P, lp = jnp.asarray(random_matrix(np.random.default_rng(0), 50)), jnp.full(50, -np.log(50))
    hp = algo.hparams(eta=jnp.asarray(0.1))
    fn = jax.jit(simulate, static_argnames=("algo", "rows", "record_policy", "record_average", "metrics"))

    def hlo(**kw):
        return fn.lower(algo, Game(P), hp, lp, lp, None, None, 10, 1, rows=16, **kw).compile().as_text()

    lean, full = hlo(record_average=False, metrics=("exploitability",)), hlo(record_average=True)
    # the recording-and-first-step body's (one shared product), and the loop over the interval's other steps
    assert len(re.findall(r" dot\(", lean)) == 2
    assert len(re.findall(r" exponential\(", lean)) < len(re.findall(r" exponential\(", full))


@pytest.mark.parametrize("record_every", [1, 3])
def test_a_segment_traces_the_step_once(record_every):
    """A segment (the checkpointed loop of gamelab.llm) records a row then loops over record_every
    steps: the step — for a model, a whole parametric update — is traced once, not twice."""
    from gamelab.run import segment, start

    algo = REGISTRY["mwu"]
    traced = []

    def step(game, hp, state):
        traced.append(1)
        return algo.step(game, hp, state)

    counting = algo._replace(step=step)
    P, lp = jnp.asarray(COMAL3), jnp.full(3, -np.log(3))
    hp = algo.hparams(eta=jnp.asarray(0.1))
    carry = start(counting, Game(P), hp, lp, lp)
    carry, rows = segment(counting, Game(P), hp, carry, lp, None, None, intervals=2, record_every=record_every)
    assert len(traced) == 1
    once = simulate(algo, Game(P), hp, lp, lp, None, None, 2 * record_every, record_every, rows=4)[2]
    np.testing.assert_array_equal(np.asarray(rows["duality_gap"]), np.asarray(once["duality_gap"])[:2])


# ------------------------------------------------------------------ vectorized host validation
def test_a_stack_of_games_is_validated_at_once_with_the_same_messages():
    good = np.stack(_games(5))
    np.testing.assert_array_equal(validate_matrices(good), good)
    cases = []
    bad = good.copy(); bad[3, 1, 2] = np.nan; cases.append((bad, 3))  # noqa: E702
    bad = good.copy(); bad[2, 0, 1] = 1.5; bad[4, 0, 0] = 0.4; cases.append((bad, 2))  # noqa: E702
    bad = good.copy(); bad[1, 2, 2] = 0.6; cases.append((bad, 1))  # noqa: E702
    bad = good.copy(); bad[4, 0, 3] += 1e-6; cases.append((bad, 4))  # noqa: E702
    for stack, index in cases:
        with pytest.raises(InvalidGameError) as single:
            validate_matrix(stack[index])
        with pytest.raises(InvalidGameError) as batch:
            validate_matrices(stack)
        assert str(batch.value) == f"game {index}: {single.value}"
        with pytest.raises(InvalidGameError, match=f"^game {index}: " + re.escape(str(single.value))):
            run_batch("mwu", list(stack), steps=2, target=None)


def test_float32_games_keep_their_tolerance_in_a_stack():
    P = np.asarray(random_matrix(np.random.default_rng(0), 6), dtype=np.float32)
    P[0, 1] = np.nextafter(P[0, 1], np.float32(1))  # a float32 rounding off, within 8 ulps
    validate_matrix(P)
    validate_matrices(np.stack([P, P]))


def test_run_batch_accepts_every_form_of_a_stack_and_gives_the_same_run():
    games = _games(4)
    ref = run_batch("omwu", games, steps=5, target=None)
    for form in (np.stack(games), Game(jnp.asarray(np.stack(games))), [Game(jnp.asarray(g)) for g in games]):
        r = run_batch("omwu", form, steps=5, target=None)
        np.testing.assert_array_equal(np.asarray(r.trace["exploitability"]), np.asarray(ref.trace["exploitability"]))
    with pytest.raises(ValueError, match="same number of responses"):
        run_batch("mwu", [COMAL3, random_matrix(np.random.default_rng(0), 4)], steps=2)
    with pytest.raises(InvalidGameError, match="^game 1: preference matrix must be square"):
        run_batch("mwu", [COMAL3, np.full((3, 2), 0.5)], steps=2)


# ------------------------------------------------------------------ the sweep's metrics key
def test_sweep_records_only_the_metrics_asked_for(tmp_path):
    from gamelab.results import load_results

    base = dict(algorithms=["mwu", "inpo"], games=["comal3"], steps=20, record_every=5, grid={"eta": [0.1]})
    execute(make_spec(**base, metrics=["duality_gap", "regularized_gap"]), tmp_path / "a", progress=False)
    execute(make_spec(**base), tmp_path / "b", progress=False)
    a, b = load_results(tmp_path / "a"), load_results(tmp_path / "b")
    np.testing.assert_array_equal(a["duality_gap"], b["duality_gap"])
    assert a["entropy"].isna().all() and a["kl_to_target"].isna().all()
    assert a[a.algorithm == "mwu"]["regularized_gap"].isna().all()  # mwu has no τ: a NaN column
    np.testing.assert_array_equal(a[a.algorithm == "inpo"]["regularized_gap"], b[b.algorithm == "inpo"]["regularized_gap"])
    with pytest.raises(SpecError, match="metrics: unknown metric 'gap'"):
        make_spec(**base, metrics=["gap"])
    with pytest.raises(SpecError, match="kl_to_target' needs a target"):
        make_spec(**base, metrics=["kl_to_target"], target=None)


def test_a_spec_without_metrics_keeps_its_digest():
    spec = make_spec(algorithms=["mwu"], games=["rps"], steps=3)
    assert "metrics" not in spec.canonical()
    assert make_spec(algorithms=["mwu"], games=["rps"], steps=3, metrics=["exploitability"]).digest() != spec.digest()


def test_report_and_plots_say_when_a_metric_was_not_recorded(tmp_path):
    from gamelab.plots import plot_gaps
    from gamelab.report import summarize
    from gamelab.results import load_results

    spec = make_spec(algorithms=["mwu"], games=["comal3"], steps=10, record_every=5, metrics=["exploitability"])
    execute(spec, tmp_path / "r", progress=False)
    df = load_results(tmp_path / "r")
    with pytest.raises(ValueError, match=r"'duality_gap' was not recorded in these results \(recorded: exploitability\)"):
        summarize(df)
    assert len(summarize(df, metric="exploitability")) == 1
    with pytest.raises(ValueError, match="'duality_gap' was not recorded"):
        plot_gaps(df, tmp_path / "gaps")
