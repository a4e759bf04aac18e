"""Real preference data (gamelab.votes) and "which Nash" (gamelab.nash: the Nash set and its
maximum-entropy member): closed forms on hand-made votes, properties of the estimators, recovery of
known generating models, known Nash sets, which member each algorithm's last iterate selects, and
`gamelab nash --votes` (in process)."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import gamelab_cli as gamelab
from gamelab import votes as V
from gamelab.nash import (exact_nash, maxent_nash, nash_bounds, nash_vertices, regularized_nash)

LLMFAO = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmfao"
RPS = np.array([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])

HAND = """id,prompt,left,right,worker,winner
0,p1,A,B,w1,left
1,p1,B,A,w2,tie
2,p2,A,B,w1,right
3,p2,B,C,w2,left
4,p1,C,B,w1,tie
5,p2,A,C,w3,left
6,p2,C,A,w3,left
"""


def hand_file(tmp_path, text=HAND, name="votes.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def duplicated_rps():
    """RPS with scissors duplicated (responses R, P, S, S'): Nash set {(⅓, ⅓, a, ⅓ − a)}, maximum
    entropy at a = 1/6."""
    P = np.full((4, 4), 0.5)
    P[:3, :3] = RPS
    P[3, :3], P[:3, 3] = RPS[2], RPS[:, 2]
    return P


def cut_rps(c=0.3, c2=0.1):
    """duplicated_rps plus a response Q with P(Q ≻ S) = ½ + c, P(Q ≻ S') = ½ − c2: Q is never played
    and cuts the Nash set to a ≤ c2/(3(c + c2)) — the maximum-entropy Nash sits on that cut (a = 1/12
    for c = 0.3, c2 = 0.1), where an inequality binds that does not bind on the rest of the set."""
    P = np.full((5, 5), 0.5)
    P[:4, :4] = duplicated_rps()
    P[4, 2], P[2, 4], P[4, 3], P[3, 4] = 0.5 + c, 0.5 - c, 0.5 - c2, 0.5 + c2
    return P


# ------------------------------------------------------------------------------------------ loading
def test_empirical_matrix_closed_form(tmp_path):
    v = V.load_votes(hand_file(tmp_path))
    assert v.names == ("A", "B", "C") and v.size == 7
    assert list(v.annotator) == ["w1", "w2", "w1", "w2", "w1", "w3", "w3"]
    P = V.empirical_matrix(v)
    # A–B: A won, tie, B won → A has 1.5 of 3; B–C: B won, tie → B has 1.5 of 2; A–C: A won, C won.
    expected = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.75], [0.5, 0.25, 0.5]])
    np.testing.assert_allclose(P, expected, atol=0, rtol=0)
    np.testing.assert_allclose(V.win_rates(v), [2.5 / 5, 3 / 5, 1.5 / 4])
    per_prompt = V.empirical_matrix(V.select(v, prompts=["p1"]))
    assert per_prompt[0, 1] == 0.75 and per_prompt[1, 2] == 0.5 and per_prompt[0, 2] == 0.5  # A–C unseen on p1
    only_w3 = V.empirical_matrix(V.select(v, annotators=["w3"]))
    assert only_w3[0, 2] == 0.5 and only_w3[0, 1] == 0.5
    assert V.empirical_matrix(V.select(v, exclude_annotators=["w3"]))[0, 2] == 0.5


def test_unseen_pairs_and_fixed_names(tmp_path):
    v = V.load_votes(hand_file(tmp_path), names=["A", "B", "C", "D"])
    P = V.empirical_matrix(v)
    assert P.shape == (4, 4) and np.all(P[3] == 0.5) and np.all(P[:, 3] == 0.5)
    assert np.isnan(V.win_rates(v)[3])


def test_jsonl_with_named_columns(tmp_path):
    rows = [{"a": "x", "b": "y", "res": "left", "judge": "j1"}, {"a": "y", "b": "x", "res": "tie", "judge": "j2"},
            {"a": "x", "b": "z", "res": "RIGHT", "judge": "j1"}]
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    v = V.load_votes(path, left="a", right="b", winner="res", annotator="judge", prompt=None)
    assert v.prompt is None and list(v.annotator) == ["j1", "j2", "j1"]
    P = V.empirical_matrix(v)
    assert P[0, 1] == 0.75 and P[0, 2] == 0.0 and P[2, 0] == 1.0


@pytest.mark.parametrize("text, kwargs, message", [
    ("left,right,result\nA,B,left\n", {}, "no winner column 'winner'"),
    ("left,right,winner\nA,B,left\nA,B,draw\n", {}, "line 3: winner 'draw'"),
    ("left,right,winner\nA,,left\n", {}, "line 2: empty right"),
    ("left,right,winner\n", {}, "no votes"),
    ("", {}, "empty"),
    ("left,right,winner\nA,B,left\n", {"annotator": "judge"}, "no annotator column 'judge'"),
    ("left,right,winner\nA,A,left\n", {}, "at least 2 items"),
])
def test_bad_vote_files(tmp_path, text, kwargs, message):
    with pytest.raises(V.VoteFileError, match=message):
        V.load_votes(hand_file(tmp_path, text), **kwargs)


def test_missing_file_and_bad_filters(tmp_path):
    with pytest.raises(V.VoteFileError, match="no such vote file"):
        V.load_votes(tmp_path / "nope.csv")
    v = V.load_votes(hand_file(tmp_path))
    with pytest.raises(ValueError, match=r"no votes with prompt \['p9'\]"):
        V.select(v, prompts=["p9"])
    with pytest.raises(ValueError, match="no annotator column"):
        V.select(v._replace(annotator=None), annotators=["w1"])


votes_strategy = st.integers(0, 2**32 - 1).map(lambda seed: np.random.default_rng(seed)).map(
    lambda rng: V.make_votes(rng.choice(list("abcdef"), 40), rng.choice(list("abcdef"), 40),
                             rng.choice(["left", "right", "tie"], 40), annotator=rng.choice(["u", "v", "w"], 40)))


@given(votes_strategy)
def test_empirical_is_a_valid_preference(v):
    P = V.empirical_matrix(v)
    np.testing.assert_array_equal(P + P.T, np.ones_like(P))
    np.testing.assert_array_equal(np.diag(P), 0.5)
    assert P.min() >= 0 and P.max() <= 1


@given(votes_strategy, st.sampled_from(["votes", "annotators"]))
def test_batched_counts_are_weighted_counts(v, resample):
    """A resample's counts equal the counts of its votes repeated by their weights."""
    W = V.resample_weights(v, 3, resample, seed=1)
    assert W.shape == (3, v.size) and np.all(W.sum(1) > 0)
    batched = V.pair_counts(v, W)
    for b in range(3):
        rows = np.repeat(np.arange(v.size), W[b].astype(int))
        single = V.pair_counts(V.subset(v, rows))
        np.testing.assert_allclose(batched.N[b], single.N)
        np.testing.assert_allclose(batched.wins[b], single.wins)
    if resample == "annotators":  # all of an annotator's votes come in together
        for who in set(v.annotator):
            assert np.all(W[:, v.annotator == who] == W[:, v.annotator == who][:, :1])


# ------------------------------------------------------------------------------------- estimators
def sample_votes(P, votes_per_pair, rng, names=None):
    """Every unordered pair compared ``votes_per_pair`` times, Bernoulli(P) winners (no ties)."""
    n = P.shape[0]
    i, j = np.triu_indices(n, 1)
    i, j = np.repeat(i, votes_per_pair), np.repeat(j, votes_per_pair)
    won = rng.random(i.size) < P[i, j]
    names = names or [f"m{k:02d}" for k in range(n)]
    return V.make_votes(np.array(names)[i], np.array(names)[j], np.where(won, "left", "right"), names=names)


def test_bradley_terry_recovers_rewards():
    rng = np.random.default_rng(0)
    r = np.linspace(-1.5, 1.5, 8)
    v = sample_votes(V.bt_matrix(r), 400, rng)
    fit = V.bradley_terry_rewards(v, ridge=1e-6)
    assert np.abs(fit - (r - r.mean())).max() < 0.1
    np.testing.assert_array_equal(V.rankings(v).bt_rank, np.arange(8, 0, -1))


def test_gpm_recovers_a_cyclic_model_and_beats_bt():
    rng = np.random.default_rng(1)
    n = 9
    angle = 2 * np.pi * np.arange(n) / n  # a rank-1 "disc game": intransitive, no BT can fit it
    truth = V.GPM(0.3 * np.arange(n) / n, 1.5 * np.cos(angle)[:, None], 1.5 * np.sin(angle)[:, None], 0.0, True)
    Ptrue = truth.matrix()
    v = sample_votes(Ptrue, 300, rng)
    fit = V.fit_gpm(v, 1, ridge=1e-3)
    assert fit.converged and np.abs(fit.matrix() - Ptrue).max() < 0.06
    assert np.abs(V.bradley_terry(v) - Ptrue).max() > 0.3
    assert V.count_cycles(Ptrue, 0.6) > 0 and V.count_cycles(fit.matrix(), 0.6) == V.count_cycles(Ptrue, 0.6)
    h = V.held_out(v, by="pair", splits=5, ranks=(0, 1))
    s = h.summary()
    assert s["gpm1"]["minus_bt"] > 5 * s["gpm1"]["minus_bt_se"] > 0  # measurably intransitive
    same_ridge = h.summary("gpm0")["gpm1"]  # against BT fitted with the GPM's own ridge
    assert same_ridge["minus_gpm0"] > 5 * same_ridge["minus_gpm0_se"] > 0
    with pytest.raises(ValueError, match="base must be one of"):
        h.summary("gpm7")
    best, means = V.select_rank(v, ranks=(0, 1, 2), splits=5)
    assert best in (1, 2) and means[1] > means[0]


def test_gpm_gradient_and_rank_zero_is_bradley_terry():
    rng = np.random.default_rng(2)
    v = sample_votes(V.bt_matrix(rng.normal(size=6)), 50, rng)
    ridge = 1e-4
    g = V.fit_gpm(v, 0, ridge=ridge)
    # the BT fit counts every vote once too; its ridge is on r alone, as the GPM's is at rank 0
    np.testing.assert_allclose(g.r, V.bradley_terry_rewards(v, ridge=ridge), atol=1e-5)
    with pytest.raises(ValueError, match="rank"):
        V.fit_gpm(v, -1)


def test_cycles_and_confident_cycles():
    assert V.count_cycles(RPS) == 1 and V.count_cycles(V.bt_matrix(np.arange(5.0))) == 0
    rng = np.random.default_rng(3)
    strong = sample_votes(np.where(RPS == 1, 0.9, np.where(RPS == 0, 0.1, 0.5)), 40, rng, names=["r", "p", "s"])
    assert V.confident_cycles(strong) == 1
    weak = sample_votes(np.where(RPS == 1, 0.9, np.where(RPS == 0, 0.1, 0.5)), 2, rng, names=["r", "p", "s"])
    assert V.confident_cycles(weak) == 0  # two votes a pair prove nothing at 95 %


def test_bootstrap_lottery_of_a_noisy_cycle():
    rng = np.random.default_rng(4)
    P = np.where(RPS == 1, 0.8, np.where(RPS == 0, 0.2, 0.5))
    v = sample_votes(P, 200, rng, names=["r", "p", "s"])
    lot = V.bootstrap_lottery(v, 200, seed=0)
    assert lot.exploitability <= 1e-12 and lot.max_exploitability <= 1e-9
    assert lot.samples.shape == (200, 3) and np.all(lot.in_support == 1.0)
    assert np.all(lot.low <= lot.policy) and np.all(lot.policy <= lot.high)
    assert np.all(lot.low > 0.15) and np.all(lot.high < 0.55)
    with pytest.raises(ValueError, match="no annotator column"):
        V.bootstrap_lottery(v, 10, resample="annotators")


# ----------------------------------------------------------------------------------- which Nash
KNOWN_MAXENT = [
    ("rps", RPS, np.full(3, 1 / 3)),
    ("duplicated rps", duplicated_rps(), np.array([1 / 3, 1 / 3, 1 / 6, 1 / 6])),
    ("cut rps (a binding cut)", cut_rps(), np.array([1 / 3, 1 / 3, 1 / 12, 1 / 4, 0.0])),
    ("all ties", np.full((5, 5), 0.5), np.full(5, 0.2)),
    ("Condorcet winner over a cycle", np.block([[np.full((1, 1), 0.5), np.full((1, 3), 0.7)],
                                                [np.full((3, 1), 0.3), RPS]]), np.array([1.0, 0, 0, 0])),
    ("two tied Condorcet winners", np.block([[np.full((2, 2), 0.5), np.full((2, 3), 0.9)],
                                             [np.full((3, 2), 0.1), RPS]]), np.array([0.5, 0.5, 0, 0, 0])),
]


@pytest.mark.parametrize("name, P, expected", KNOWN_MAXENT, ids=[k[0] for k in KNOWN_MAXENT])
def test_maxent_nash_known_answers(name, P, expected):
    sol = maxent_nash(P)
    assert np.abs(sol.policy - expected).max() < 1e-8, (name, sol.policy)
    assert sol.exploitability <= 1e-12 and sol.kkt_residual <= 1e-10


def test_nash_set_vertices_and_bounds():
    np.testing.assert_allclose(nash_vertices(duplicated_rps()), [[1 / 3, 1 / 3, 0, 1 / 3], [1 / 3, 1 / 3, 1 / 3, 0]])
    np.testing.assert_allclose(nash_vertices(cut_rps()), [[1 / 3, 1 / 3, 0, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 12, 1 / 4, 0]])
    b = nash_bounds(cut_rps())
    np.testing.assert_allclose(b.low, [1 / 3, 1 / 3, 0, 1 / 4, 0], atol=1e-9)
    np.testing.assert_allclose(b.high, [1 / 3, 1 / 3, 1 / 12, 1 / 3, 0], atol=1e-9)
    assert not b.unique and nash_bounds(RPS).unique
    assert len(nash_vertices(np.full((4, 4), 0.5))) == 4  # the whole simplex
    with pytest.raises(ValueError, match="at most"):
        nash_vertices(np.full((11, 11), 0.5))


@given(st.integers(0, 2**32 - 1))
def test_maxent_nash_is_the_most_entropic_vertex_mixture(seed):
    """On random games with duplicated responses the maximum-entropy Nash is a Nash, and no mixture
    of the Nash set's vertices has more entropy (checked against a grid of mixtures)."""
    from conftest import random_matrix

    rng = np.random.default_rng(seed)
    base = random_matrix(rng, 4)
    dup = rng.integers(4)
    idx = np.r_[np.arange(4), dup]
    P = base[np.ix_(idx, idx)]  # response 4 copies response dup
    sol = maxent_nash(P)
    assert sol.exploitability <= 1e-15 and sol.kkt_residual <= 1e-10  # a Nash, and the KKT point
    verts = nash_vertices(P)
    w = rng.dirichlet(np.ones(len(verts)), size=500)
    mixtures = w @ verts
    H = -np.sum(np.where(mixtures > 0, mixtures * np.log(np.where(mixtures > 0, mixtures, 1)), 0), axis=1)
    assert H.max() <= sol.entropy + 1e-10
    assert abs(sol.policy[dup] - sol.policy[4]) < 1e-9  # a copy shares its response's mass equally


@pytest.mark.parametrize("seed", [632, 686])
def test_maxent_nash_stays_in_the_nash_set_where_the_dual_solver_left_it(seed):
    """Two games of the property above on which the earlier dual Newton solver ended off the Nash
    set (exploitability 5.8e-4 and 9.8e-12; 29 of 3000 such games above 1e-12): the barrier path
    keeps every iterate a Nash. Seed 686's Nash is unique, with a probability of 0.0012."""
    from conftest import random_matrix

    rng = np.random.default_rng(seed)
    base = random_matrix(rng, 4)
    idx = np.r_[np.arange(4), rng.integers(4)]
    P = base[np.ix_(idx, idx)]
    sol = maxent_nash(P)
    assert sol.exploitability <= 1e-15 and sol.kkt_residual <= 1e-10
    assert abs(sol.policy.sum() - 1) < 1e-15
    # the multipliers are the certificate's: π ∝ exp(−Pᵀλ) on the support
    S = sol.support
    z = -(P[:, S].T @ sol.multipliers)
    np.testing.assert_allclose(sol.policy[S], np.exp(z - z.max()) / np.exp(z - z.max()).sum(), rtol=1e-8)
    b = nash_bounds(P)
    assert np.all(sol.policy >= b.low - 1e-9) and np.all(sol.policy <= b.high + 1e-9)


def test_regularized_nash_tends_to_the_maxent_nash():
    """Tikhonov: the KL-regularized Nash toward uniform tends to the maximum-entropy Nash as τ → 0,
    (here a little slower than linearly in τ) — the limit INPO/MMD/Nash-MD select."""
    P = cut_rps()
    target = maxent_nash(P).policy
    d = [np.abs(regularized_nash(P, tau=tau).policy - target).sum() for tau in (1e-2, 1e-3, 1e-4, 1e-5)]
    assert all(a / b > 5 for a, b in zip(d, d[1:])) and d[-1] < 1e-3  # measured: 0.157, 0.027, 0.0039, 0.0005


SELECTION_INIT = np.array([0.2, 0.3, 0.35, 0.15])  # S : S' = 0.7 : 0.3


@pytest.mark.parametrize("algorithm, hparams, steps, expect", [
    ("comal", {}, 3000, "init ratio, exact Nash"),
    ("mpo", {}, 3000, "exact Nash, measured ratio"),
    ("omwu", {"eta": 0.5}, 4000, "init ratio, exact Nash"),
    ("extragradient", {"eta": 0.5}, 4000, "init ratio, exact Nash"),
    ("mwu", {}, 2000, "init ratio"),
    ("inpo", {"eta": 0.2, "tau": 0.02}, 20000, "equal split"),
    ("mmd", {"eta": 0.2, "tau": 0.02}, 20000, "equal split"),
    ("nash_md", {"eta": 0.2, "tau": 0.02}, 20000, "equal split"),
    ("regret_matching", {}, 2000, "equal split"),
    ("fictitious_play", {}, 2000, "measured"),
])
def test_which_nash_each_algorithm_selects(algorithm, hparams, steps, expect):
    """Duplicated RPS from an init with S : S' = 0.7 : 0.3. Responses S and S' have identical rows,
    so a multiplicative update (MWU, OMWU, extragradient; COMAL's prox steps) keeps their ratio
    exactly: those select the member ⅓·(1, 1, 0.7, 0.3), not the maximum-entropy ⅓·(1, 1, ½, ½).
    Updates pulled toward the uniform reference (INPO, MMD, Nash-MD) equalize the copies and select
    the maximum-entropy member up to their O(τ) bias. Regret matching splits the copies equally
    (equal regrets). MPO's magnet refresh lands between (measured); fictitious play's last iterate
    is a best response (a vertex) and converges to no Nash."""
    from gamelab.run import run

    P = duplicated_rps()
    r = run(algorithm, P, steps=steps, record_every=steps, init=SELECTION_INIT, target=None,
            metrics=("exploitability",), **hparams)
    p = np.asarray(r.policy)
    e = float(r.final["exploitability"])
    maxent = maxent_nash(P).policy
    if "init ratio" in expect:
        assert abs(p[2] / (p[2] + p[3]) - 0.7) < 1e-9
    if "equal split" in expect:
        assert abs(p[2] - p[3]) < 1e-9
    if "exact Nash" in expect:
        assert e < 1e-8
        if "init ratio" in expect:  # the member ⅓·(1, 1, 0.7, 0.3)
            assert np.abs(p - np.array([1, 1, 0.7, 0.3]) / 3).max() < 1e-8
    if algorithm in ("inpo", "mmd", "nash_md"):  # at the τ = 0.02 regularized Nash (Nash-MD: up to its O(η) bias),
        assert np.abs(p - regularized_nash(P, tau=0.02).policy).sum() < (1e-10 if algorithm != "nash_md" else 0.005)
        assert np.abs(p - maxent).sum() < 0.025  # which is 0.019 from the maximum-entropy Nash (L1)
    if algorithm == "mpo":  # measured: a Nash strictly between the init's split and the equal split
        assert 0.5 < p[2] / (p[2] + p[3]) < 0.7
    if algorithm == "fictitious_play":
        assert e > 0.4 and p.max() == 1.0
    if algorithm == "mwu":
        assert e > 0.1  # the last iterate does not converge


# ------------------------------------------------------------------------------------------ CLI
def test_cli_votes_json_and_matrix_round_trip(tmp_path):
    path = hand_file(tmp_path)
    out_csv = tmp_path / "m.csv"
    r = gamelab("nash", "--votes", path, "--write-matrix", out_csv, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["names"] == ["A", "B", "C"] and out["votes_used"] == 7 and out["estimator"] == "empirical"
    P = V.empirical_matrix(V.load_votes(path))
    np.testing.assert_allclose(out["policy"], exact_nash(P).policy, atol=1e-12)
    assert out["exploitability"] <= 1e-12 and len(out["bt_rank"]) == 3
    assert out_csv.read_text().splitlines()[0] == "A,B,C"
    back = json.loads(gamelab("nash", out_csv, "--json").stdout)
    assert back["names"] == ["A", "B", "C"]
    np.testing.assert_allclose(back["policy"], out["policy"], atol=1e-12)
    from gamelab.games import load_game_file

    np.testing.assert_allclose(np.asarray(load_game_file(out_csv).P), P, atol=0)


def test_cli_votes_filters_estimators_and_bootstrap(tmp_path):
    path = hand_file(tmp_path)
    one = json.loads(gamelab("nash", "--votes", path, "--prompt", "p1", "--json").stdout)
    assert one["votes_used"] == 3
    bt = json.loads(gamelab("nash", "--votes", path, "--estimator", "bt", "--json").stdout)
    assert bt["exploitability"] <= 1e-9
    gpm = json.loads(gamelab("nash", "--votes", path, "--estimator", "gpm", "--rank", "1", "--json").stdout)
    assert gpm["rank"] == 1
    boot = json.loads(gamelab("nash", "--votes", path, "--bootstrap", "50", "--resample", "annotators",
                              "--json").stdout)
    b = boot["bootstrap"]
    assert b["resamples"] == 50 and len(b["in_support"]) == 3 and all(0 <= x <= 1 for x in b["in_support"])
    text = gamelab("nash", "--votes", path, "--bootstrap", "20")
    assert text.returncode == 0 and "Pr(in support)" in text.stdout and "bt #" in text.stdout


@pytest.mark.parametrize("args, message", [
    (["--estimator", "elo"], "--estimator must be one of empirical, bt, gpm"),
    (["--prompt", "p9"], "no votes with prompt"),
    (["--rank", "2"], "--rank takes an integer"),
    (["--bootstrap", "5", "--estimator", "bt"], "--bootstrap resamples the empirical matrix"),
    (["--resample", "prompts", "--bootstrap", "5"], "--resample must be"),
    (["--winner-column", "result"], "no winner column 'result'"),
    (["--antisymmetrize"], "--antisymmetrize applies to cross-tables"),
])
def test_cli_votes_errors(tmp_path, args, message):
    r = gamelab("nash", "--votes", hand_file(tmp_path), *args)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_cli_game_or_votes(tmp_path):
    for args in ([], ["comal3", "--votes", hand_file(tmp_path)]):
        r = gamelab("nash", *args)
        assert r.returncode == 2 and "give a game or --votes FILE" in r.stderr
    r = gamelab("nash", "comal3", "--bootstrap", "10")
    assert r.returncode == 2 and "--bootstrap applies to --votes" in r.stderr
    r = gamelab("nash", "--votes", tmp_path / "none.csv")
    assert r.returncode == 2 and "no such vote file" in r.stderr


# ------------------------------------------------------------------------------------ real data
def test_llmfao_crowd_votes(tmp_path):
    crowd = LLMFAO / "crowd-comparisons.csv"
    if not crowd.is_file():
        pytest.skip(f"the LLMFAO votes are not at {LLMFAO} (../shared/data/llmfao beside the repository)")
    out_csv = tmp_path / "crowd.csv"
    r = gamelab("nash", "--votes", crowd, "--write-matrix", out_csv, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 59 and len(out["names"]) == 59 and out["votes_used"] == 8931
    assert out["exploitability"] <= 1e-9
    from gamelab.games import load_named_matrix

    names, M = load_named_matrix(out_csv)
    assert M.shape == (59, 59) and list(names) == out["names"]
    v = V.load_votes(crowd)
    assert len(set(v.annotator)) == 124 and len(set(v.prompt)) == 13
    N = V.pair_counts(v).N
    assert int(np.count_nonzero(np.triu(N, 1))) == 927  # the README's observed pairs
    np.testing.assert_array_equal(M, V.empirical_matrix(v))


def test_maxent_nash_target_in_runs_and_sweeps(tmp_path):
    """target='maxent_nash': kl_to_target is KL(maximum-entropy Nash ‖ π), the sweep metric of which
    Nash a run selects. COMAL from S : S' = 0.7 : 0.3 ends at ⅓·(1, 1, 0.7, 0.3), at KL
    (1/6)·[log(0.5/0.7) + log(0.5/0.3)] from ⅓·(1, 1, ½, ½)."""
    from gamelab.run import run
    from gamelab.sweep import SpecError, make_spec, plan, run_chunk

    P = duplicated_rps()
    r = run("comal", P, steps=3000, record_every=3000, init=SELECTION_INIT, target="maxent_nash",
            metrics=("exploitability", "kl_to_target"))
    expected = (np.log(0.5 / 0.7) + np.log(0.5 / 0.3)) / 6
    assert abs(float(r.final["kl_to_target"]) - expected) < 1e-9
    game = tmp_path / "duplicated_rps.csv"
    np.savetxt(game, P, delimiter=",")
    spec = make_spec(algorithms=["mmd"], games=[str(game)], steps=20000, target="maxent_nash", grid={"eta": [0.2],
                     "tau": [0.02]}, metrics=["kl_to_target"], init="random", seeds=[0, 1])
    df = run_chunk(spec, plan(spec)[0])
    last = df[(df.step == df.step.max()) & (df.iterate == "last")]
    assert len(last) == 2
    # both random starts reach the τ = 0.02 regularized Nash, 0.019 (L1) from the maximum-entropy one
    kl = np.sum(maxent_nash(P).policy * np.log(maxent_nash(P).policy / regularized_nash(P, tau=0.02).policy))
    np.testing.assert_allclose(last["kl_to_target"], kl, atol=1e-9)
    with pytest.raises(SpecError, match="maxent_nash"):
        make_spec(algorithms=["mmd"], games=["rps"], steps=5, target="maxent")


def test_annotator_groups_recover_two_opposed_groups():
    """Annotators of two hidden groups with opposite Bradley–Terry rewards (ties where the rewards
    are close): EM over the votes finds the groups, and each group's reward has the sign of its truth."""
    from gamelab.feedback import cluster_accuracy

    rng = np.random.default_rng(5)
    r = np.linspace(-1.5, 1.5, 5)
    names = [f"m{k}" for k in range(5)]
    left, right, winner, who, truth = [], [], [], [], []
    for a in range(12):
        group = a % 2
        for _ in range(60):
            i, j = rng.choice(5, 2, replace=False)
            p = V.bt_matrix(r if group == 0 else -r)[i, j]
            u = rng.random()
            left.append(names[i]), right.append(names[j]), who.append(f"annot-{a}")
            winner.append("tie" if abs(u - p) < 0.05 else ("left" if u < p else "right"))
        truth.append(group)
    v = V.make_votes(left, right, winner, annotator=who, names=names)
    g = V.annotator_groups(v, 2, restarts=3, iterations=10)
    order = np.argsort([int(x.split("-")[1]) for x in g.annotators])
    assert cluster_accuracy(g.assignment[order], np.array(truth), 2) == 1.0
    assert sorted(np.sign(np.corrcoef(np.vstack([g.rewards, r]))[-1, :2]).tolist()) == [-1.0, 1.0]
    assert g.votes_per_group.sum() == v.size and len(g.restarts) == 3
    with pytest.raises(ValueError, match="no annotator column"):
        V.annotator_groups(v._replace(annotator=None), 2)


NOTEBOOK_SMALL = """
RESAMPLES = 40
SPLITS = 3
RANKS = (0, 1)
STEPS = 300
ALGORITHMS = ["omwu", "inpo"]
"""


def test_llmfao_notebook(tmp_path):
    """notebooks/llmfao_votes.ipynb executes on the real votes with small settings (the suite's
    notebook runner, tests/test_notebooks.py) and shows what it promises."""
    if not (LLMFAO / "crowd-comparisons.csv").is_file():
        pytest.skip(f"the LLMFAO votes are not at {LLMFAO}")
    pytest.importorskip("nbclient", reason="notebook tests need nbclient (pip install -e '.[dev]')")
    pytest.importorskip("ipykernel", reason="notebook tests need ipykernel (pip install -e '.[dev]')")
    from test_notebooks import execute, images, text_of

    nb = execute("llmfao_votes.ipynb", NOTEBOOK_SMALL, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert "8931 votes over 59 models" in text_of(nb, "load_votes") and "Nash unique: False" in text_of(nb, "load_votes")
    assert "40 resamples" in text_of(nb, "bootstrap_lottery") and "in_support" in text_of(nb, "bootstrap_lottery")
    assert images(nb, "hlines") == 1
    assert "gpm1" in text_of(nb, "held_out") and "minus_gpm0" in text_of(nb, "held_out")
    algorithms = text_of(nb, "target=\"maxent_nash\"")
    assert "omwu" in algorithms and "inpo" in algorithms and "KL(maxent || last)" in algorithms
