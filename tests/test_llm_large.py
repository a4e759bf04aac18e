"""Issue 6 beyond enumeration: sampled metrics with confidence intervals, V^L far too large to
enumerate, and games with several prompts (gamelab.llm.train with metrics='sampled' / prompts).

- The sampled metrics' intervals cover the exact class-level values at about their nominal level,
  at the class Nash itself (where exploitability is 0 and a percentile bootstrap of the plug-in
  never covers it) as well as away from it; and they are not wide for nothing. Likewise entropy,
  win rate against the reference and the regularized gap (0 at π*_τ) from the responses'
  log-probabilities.
- A run over V^L = 16^5 ≈ 1e6 responses trains a small transformer with sampled metrics, and
  nothing in its compiled segment is as large as V^L² (nor even 2·V^L).
- EXO (groups of candidates) on a transformer with sampled metrics, and on several prompts.
- Several prompts with tabular logits and exact feedback: each prompt's trace is the tabular
  engine's on that prompt's lifted matrix (the prompts' logits are independent); a transformer
  shared by the prompts lowers the mean gap.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gamelab.llm.games import class_intervals, class_marginal, class_metrics, present_classes, sampled_metrics, \
    sequence_game
from gamelab.llm.train import train
from gamelab.run import run

LEVEL = 0.95


def class_policy(game, q):
    """A policy over the sequences with class marginal q (uniform within each class)."""
    sizes = np.bincount(game.classes, minlength=game.m)
    return np.asarray(q)[game.classes] / sizes[game.classes]


@pytest.mark.parametrize("where", ["nash", "uniform", "skewed"])
def test_sampled_intervals_cover_the_exact_metrics_at_their_level(where):
    game = sequence_game(4, 3, rule="count")  # classes of 27, 27 and 10 sequences
    pi = {"nash": class_policy(game, game.class_nash()), "uniform": np.full(game.n, 1 / game.n),
          "skewed": class_policy(game, [0.6, 0.3, 0.1])}[where]
    q = np.asarray(class_marginal(game, jnp.log(jnp.asarray(pi))))
    exact = {k: float(v) for k, v in class_metrics(game, jnp.asarray(q)).items()}
    reps, K = 400, 2000
    counts = np.random.default_rng(0).multinomial(K, q, size=reps)
    C, star, present = (jnp.asarray(a) for a in (game.C[0], game.class_nash(), present_classes(game)))
    out = jax.jit(jax.vmap(lambda c, k: class_intervals(c, C, star, present, k, (LEVEL,))))(
        jnp.asarray(counts), jax.random.split(jax.random.key(1), reps))
    for name in ("exploitability", "duality_gap", "kl_to_class_nash"):
        _, lo, hi = (np.asarray(a) for a in out[name])
        covered = np.mean((lo[:, 0] <= exact[name] + 1e-12) & (exact[name] - 1e-12 <= hi[:, 0]))
        assert covered >= LEVEL - 0.03, (where, name, covered)  # 3 binomial sd below nominal at 400 reps
    # not wide for nothing: the exploitability interval is at most ±3 standard errors of the best
    # class's win rate (a 95% interval for one mean is ±1.96)
    v = game.C[0] @ q
    best = np.argmax(np.where(present, v, -np.inf))
    se = np.sqrt((game.C[0, best] ** 2 @ q - v[best] ** 2) / K)
    _, lo, hi = (np.asarray(a) for a in out["exploitability"])
    assert np.mean(hi[:, 0] - lo[:, 0]) <= 2 * 3.0 * se, (where, np.mean(hi - lo), se)
    if where == "nash":  # where the plug-in estimate is always > 0 but the truth is 0
        assert exact["exploitability"] < 1e-12 and np.all(np.asarray(out["exploitability"][0]) > 0)


@pytest.mark.parametrize("where", ["regularized_nash", "uniform", "rough"])
def test_reference_intervals_cover_entropy_win_rate_and_regularized_gap(where):
    """The metrics that need the responses' log-probabilities: entropy, win rate against the uniform
    reference and the regularized gap toward it, at π*_τ (where DG_τ = 0 and the plug-in's noise
    cancels to first order), at the reference itself, and at a policy that is not uniform within
    its classes (so its entropy is not a function of its class marginal)."""
    from gamelab.metrics import entropy, regularized_gap, win_rate
    from gamelab.nash import regularized_nash

    game, tau = sequence_game(4, 3, rule="count"), 0.5
    P, n = game.matrix(0), game.n
    pi = {"regularized_nash": regularized_nash(P, tau=tau).policy, "uniform": np.full(n, 1 / n),
          "rough": np.random.default_rng(3).dirichlet(np.full(n, 0.5))}[where]
    logpi, ref = np.log(pi), np.full(n, -np.log(n))
    exact = {"entropy": float(entropy(logpi)), "win_rate_vs_ref": float(win_rate(P, logpi, ref)),
             "regularized_gap": float(regularized_gap(P, logpi, ref, tau))}
    reps, K = 400, 2000
    y = np.random.default_rng(0).choice(n, size=(reps, K), p=pi)
    counts = np.stack([np.bincount(game.classes[r], minlength=game.m) for r in y]).astype(float)
    sizes = np.bincount(game.classes, minlength=game.m) / n
    C, star, present = (jnp.asarray(a) for a in (game.C[0], game.class_nash(), present_classes(game)))
    out = jax.jit(jax.vmap(lambda c, lp, k: class_intervals(c, C, star, present, k, (LEVEL,), logp=lp,
                                                             ref_q=jnp.asarray(sizes), log_n=np.log(n), tau=tau)))(
        jnp.asarray(counts), jnp.asarray(logpi[y]), jax.random.split(jax.random.key(1), reps))
    for name, truth in exact.items():
        point, lo, hi = (np.asarray(a) for a in out[name])
        assert np.all(lo[:, 0] <= point + 1e-12) and np.all(point <= hi[:, 0] + 1e-12)
        covered = np.mean((lo[:, 0] <= truth + 1e-12) & (truth - 1e-12 <= hi[:, 0]))
        assert covered >= LEVEL - 0.03, (where, name, covered)
    # not wide for nothing: each piece's margin is at most 3 of its standard errors
    q = np.asarray(class_marginal(game, jnp.log(jnp.asarray(pi))))
    v = game.C[0] @ q
    se_v = np.sqrt(np.maximum(game.C[0] ** 2 @ q - v**2, 0) / K)
    se_h = np.std(logpi[y[0]]) / np.sqrt(K)
    width = np.mean(np.asarray(out["regularized_gap"][2]) - np.asarray(out["regularized_gap"][1]))
    assert width <= 2 * 2 * 3.0 * (se_v.max() + tau * se_h), (where, width, se_v.max(), se_h)
    if where == "regularized_nash":
        assert exact["regularized_gap"] < 1e-12
    if where == "uniform":  # log π(y) is the same for every y: the entropy is known exactly
        assert np.allclose(np.asarray(out["entropy"][1]), np.log(n)) and np.allclose(np.asarray(out["entropy"][2]),
                                                                                       np.log(n))


def test_sampled_metrics_from_responses():
    game = sequence_game(4, 3, rule="count")
    pi = class_policy(game, [0.6, 0.3, 0.1])
    y = np.random.default_rng(2).choice(game.n, size=4096, p=pi)
    got = sampled_metrics(game, y, level=LEVEL)
    exact = class_metrics(game, class_marginal(game, jnp.log(jnp.asarray(pi))))
    for name, (point, lo, hi) in got.items():
        assert lo <= point <= hi and lo <= float(exact[name]) <= hi, (name, got[name], float(exact[name]))
    with pytest.raises(ValueError, match="samples must be"):
        sampled_metrics(game, [game.n])


def _sizes(jaxpr):
    """Element counts of every value in a jaxpr and its sub-jaxprs (scan, while, cond bodies)."""
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            yield int(np.prod(var.aval.shape, dtype=np.int64)) if hasattr(var.aval, "shape") else 0
        for param in eqn.params.values():
            for sub in (param if isinstance(param, (tuple, list)) else [param]):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _sizes(inner)


def test_a_million_responses_train_with_sampled_metrics_and_nothing_of_size_VL_squared(monkeypatch):
    import gamelab.segments as S

    game = sequence_game(16, 5, rule="count")  # 16^5 = 1,048,576 responses
    n = game.n
    monkeypatch.setattr(type(game), "matrix", lambda *a: pytest.fail("the lifted matrix was built"))
    seen = {}
    original = S.segment_jit

    def spy(algo, recorder, layout, *args, **static):
        seen["largest"] = max(_sizes(jax.make_jaxpr(lambda *a: S.advance_segment(algo, recorder, layout, *a,
                                                                                 **static))(*args).jaxpr))
        return original(algo, recorder, layout, *args, **static)

    monkeypatch.setattr(S, "segment_jit", spy)
    r = train("inpo", game, steps=2, record_every=1, batch=16, eval_samples=256, progress=False,
              model={"d_model": 8, "heads": 1, "layers": 1}, hparams={"lr": 3e-3})
    assert r.config["metrics"] == "sampled" and r.logp is None  # chosen automatically beyond MAX_ENUMERATED
    assert seen["largest"] < 2 * n, seen  # the classes array (n,) is the largest thing; never n²
    for name in ("exploitability", "duality_gap", "kl_to_class_nash", "entropy", "win_rate_vs_ref", "regularized_gap"):
        lo, point, hi = r.trace[f"{name}_lo"], r.trace[name], r.trace[f"{name}_hi"]
        assert lo.shape == (3,) and np.all(lo <= point) and np.all(point <= hi), name
    assert r.trace["exploitability"][0] > 0.1  # count classes of a uniform policy: far from the Nash
    # the initial transformer is exactly uniform: its entropy log V^L, its win rate ½, from samples
    assert r.trace["entropy_lo"][0] == pytest.approx(np.log(n)) and r.trace["entropy_hi"][0] == pytest.approx(np.log(n))
    assert r.trace["win_rate_vs_ref_lo"][0] <= 0.5 <= r.trace["win_rate_vs_ref_hi"][0]
    assert np.all(np.isfinite(r.trace["loss"][1:]))


def test_a_sampled_run_folder_from_before_a_metric_was_added_is_refused(tmp_path):
    """Resuming appends new recordings to the saved ones: a folder whose recordings lack a metric
    (made by an older gamelab) is refused by name instead of failing half-way."""
    import json

    game = sequence_game(4, 3, rule="count")
    kw = dict(steps=2, record_every=1, batch=8, eval_samples=64, progress=False, metrics="sampled",
              model={"d_model": 8, "heads": 1, "layers": 1}, hparams={"tau": 0.5}, out=tmp_path)
    first = train("inpo", game, **kw)
    assert json.loads((tmp_path / "_run.json").read_text())["recorded"] == [
        "exploitability", "duality_gap", "kl_to_class_nash", "entropy", "win_rate_vs_ref", "regularized_gap"]
    assert np.array_equal(train("inpo", game, **kw).trace["regularized_gap"], first.trace["regularized_gap"])
    old = json.loads((tmp_path / "_run.json").read_text())
    del old["recorded"]
    (tmp_path / "_run.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="differs in recorded"):
        train("inpo", game, **kw)


def test_algorithms_that_sample_from_the_mixture_are_refused_with_sampled_metrics():
    game = sequence_game(4, 3, rule="count")
    with pytest.raises(ValueError, match="geometric mixture"):
        train("nash_md", game, steps=1, record_every=1, metrics="sampled", policy="tabular", progress=False)
    with pytest.raises(ValueError, match="inner_tol"):
        train("comal", game, steps=1, record_every=1, metrics="sampled", policy="tabular", progress=False,
              hparams={"inner_tol": 1e-3, "inner": 2})


def test_several_prompts_with_tabular_logits_give_each_prompts_engine_run():
    """Tabular logits per prompt, exact feedback, SGD to convergence each step: the prompts do not
    interact, so prompt k's trace is the closed-form engine's on prompt k's lifted matrix (the SGD
    step is scaled by the prompt's weight ½, hence twice the single-prompt learning rate)."""
    game = sequence_game(3, 3, rule="count", prompts=2)  # prompt 1: the classes relabelled
    steps = 8
    r = train("inpo", game, steps=steps, record_every=1, policy="tabular", feedback="exact", optimizer="sgd",
              hparams={"updates": 300, "lr": 1.2}, progress=False)
    means = []
    for k in range(2):
        engine = run("inpo", game.matrix(k), steps=steps, record_every=1)
        assert np.ptp(np.asarray(engine.trace["duality_gap"])) > 1e-3  # a run that moves
        for name in ("duality_gap", "exploitability", "regularized_gap", "entropy", "win_rate_vs_ref"):
            np.testing.assert_allclose(r.trace[f"prompt{k}_{name}"], np.asarray(engine.trace[name]), rtol=0,
                                       atol=1e-9, err_msg=f"prompt {k} {name}")
        means.append(np.asarray(engine.trace["duality_gap"]))
    np.testing.assert_allclose(r.trace["duality_gap"], np.mean(means, axis=0), rtol=0, atol=1e-9)
    assert r.logp.shape == (2, game.n)


def test_a_transformer_on_several_prompts_lowers_the_mean_gap():
    game = sequence_game(4, 3, rule="count", prompts=3)
    r = train("inpo", game, steps=120, record_every=60, batch=128, progress=False, seed=0,
              model={"d_model": 16, "heads": 2, "layers": 1}, hparams={"lr": 1e-3, "tau": 0.5})
    gap = r.trace["duality_gap"]  # from 0.213 toward INPO's target π*_τ (gap ≈ 0.13 at τ = 0.5)
    assert gap[-1] < 0.75 * gap[0], gap
    for k in range(3):
        assert r.trace[f"prompt{k}_duality_gap"][-1] < r.trace[f"prompt{k}_duality_gap"][0], k


def test_exo_trains_a_transformer_from_groups_of_sampled_candidates_and_tabular_prompts_exactly():
    """EXO's groups of K candidates come from the policy's own sampler (PromptPairs without the
    full distribution): a small transformer trains for a few steps with sampled metrics. With
    tabular logits per prompt and exact feedback (one group of all responses per prompt), each
    prompt's trace is the closed-form engine's (online IPO's step with τ = β)."""
    game = sequence_game(4, 3, rule="count")
    r = train("exo", game, steps=4, record_every=2, batch=32, metrics="sampled", eval_samples=256, progress=False,
              model={"d_model": 8, "heads": 1, "layers": 1}, hparams={"lr": 3e-3})
    assert r.config["algorithm"] == "exo" and np.all(np.isfinite(r.trace["loss"][1:]))
    assert np.all(np.isfinite(r.trace["duality_gap"]))
    game = sequence_game(3, 3, rule="count", prompts=2)
    r = train("exo", game, steps=4, record_every=1, policy="tabular", feedback="exact", optimizer="sgd",
              hparams={"updates": 300, "lr": 10.0, "beta": 0.5}, progress=False)
    for k in range(2):
        engine = run("exo", game.matrix(k), steps=4, record_every=1, beta=0.5)
        assert np.ptp(np.asarray(engine.trace["duality_gap"])) > 1e-3  # a run that moves
        np.testing.assert_allclose(r.trace[f"prompt{k}_duality_gap"], np.asarray(engine.trace["duality_gap"]),
                                   rtol=0, atol=1e-9)
