"""The ``llm:MODEL`` judge on a real (tiny, random) Llama checkpoint, and the empirical-game gap that
``gamelab llm run --empirical K`` records at the end of a run.

- ``parse_judge("llm:FOLDER")`` gives a valid preference matrix (P + Pᵀ = 1, diagonal ½) whose
  one-order probabilities are the two label tokens' softmax of the model's own last logits, computed
  here independently, row by row without padding: a row's value does not depend on the left-padded
  batch it is judged in (prompts of different lengths, one batch or several, chat template or not).
- ``gamelab llm run --judge llm:FOLDER`` trains and records its metrics.
- ``--empirical K`` samples K answers per prompt from the base model and the final policy, judges
  every pair, prints and writes (``_empirical.json``) and returns (``--json``) each one's
  exploitability within the pool with its bootstrap interval and Nash weight.

The checkpoint is the one tests/test_llm_real_run.py uses (2 layers, width 32, a 64-token byte
vocabulary of '!'..'`': lowercase letters and spaces are not tokens of it, so the texts here are
upper case). Its tokenizer has single tokens for the labels "A" and "B".
"""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import llm_run as invoke, tiny_llama

FLOAT32 = 2e-6  # the model computes in float32: a row alone and in a padded batch agree to ~1e-7


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A copy of the tiny checkpoint folder and a prompts file."""
    return tiny_llama(tmp_path_factory.mktemp("tiny"), "SAY A\nPICK ONE OF X, Y OR Z: WHICH IS BEST?\n\nQ\n")


@pytest.fixture(scope="module")
def judge(model):
    from gamelab.llm.judges import LLMJudge, parse_judge

    j = parse_judge(f"llm:{model[0]}")
    assert isinstance(j, LLMJudge)
    return j


def label_softmax(lm, text, labels=("A", "B")):
    """P(first label) from the model's last logits of ``text`` alone (no padding), by hand."""
    from gamelab.llm.decoder import forward
    from gamelab.llm.text import encode

    ids = encode(lm, text, add_bos=False if lm.chat_template else None)
    logits = np.asarray(forward(lm.graph, lm.params, jnp.asarray([ids]), jnp.ones((1, len(ids)), bool)))[0, -1]
    pair = logits[[encode(lm, label, add_bos=False)[0] for label in labels]].astype(np.float64)
    e = np.exp(pair - pair.max())
    return e[0] / e.sum(), len(ids)


ROWS = (["SAY A", "PICK ONE OF X, Y OR Z: WHICH IS BEST? EXPLAIN.", "Q", "WHY?", "A OR B?"],
        ["A-B", "B", "THE ANSWER IS A, BECAUSE B IS WRONG.", "NO", "B-B-B"],
        ["B", "A-A-A", "C", "YES!", "A"])


def test_the_llm_judge_matrix_is_a_valid_preference_matrix(judge):
    from gamelab.llm.judges import judged_matrix

    answers = ["A", "B-B", "A-B-A", "ZZZ", "B-B", "!"]  # a repeated answer: rows 1 and 4
    P = judged_matrix(judge, "PICK ONE", answers)
    assert P.shape == (6, 6) and np.all((P >= 0) & (P <= 1))
    np.testing.assert_allclose(P + P.T, 1.0, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(np.diag(P), 0.5)
    assert np.abs(P - 0.5).max() > 1e-3  # a real judgement, not ½ everywhere
    assert P[1, 4] == pytest.approx(0.5, abs=FLOAT32)  # an answer against itself: ½ by the symmetrisation
    np.testing.assert_allclose(P[1], P[4], atol=FLOAT32)  # ... and the same answer judges the same
    # prob symmetrises the two orders: P(a ≻ b) + P(b ≻ a) = 1 from separate calls too
    a, b = judge.prob(["Q"] * 3, answers[:3], answers[3:]), judge.prob(["Q"] * 3, answers[3:], answers[:3])
    np.testing.assert_allclose(a + b, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 2, 8])
def test_first_preferred_is_the_label_softmax_of_each_row_alone(model, batch):
    """Rows of different lengths, left-padded together (batch 8: all in one; 2: three batches, the last
    half empty; 1: each alone): each equals the softmax over the two label logits of the model run on
    that row's rendered question alone."""
    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.judges import JUDGE_QUESTION, LLMJudge
    from gamelab.llm.text import render_chat

    lm = load_model(model[0])
    judge = LLMJudge(lm, batch=batch)
    got = judge.first_preferred(*ROWS)
    want, lengths = zip(*(label_softmax(lm, render_chat(lm, [{"role": "user", "content": JUDGE_QUESTION.format(
        prompt=p, first=a, second=b)}])) for p, a, b in zip(*ROWS)))
    assert len(set(lengths)) == len(lengths) and max(lengths) > 2 * min(lengths), lengths  # really padded
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT32)
    assert np.ptp(got) > 1e-2  # the rows are judged differently (a constant would hide a mix-up of rows)
    # the symmetrised probability is built from the same one-order values
    flipped = [label_softmax(lm, render_chat(lm, [{"role": "user", "content": JUDGE_QUESTION.format(
        prompt=p, first=b, second=a)}]))[0] for p, a, b in zip(*ROWS)]
    np.testing.assert_allclose(judge.prob(*ROWS), 0.5 * (np.array(want) + 1 - np.array(flipped)), atol=FLOAT32)


def test_first_preferred_without_a_chat_template_and_with_other_labels(model):
    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.judges import JUDGE_QUESTION, LLMJudge

    lm = load_model(model[0])._replace(chat_template=None)
    question = JUDGE_QUESTION.replace("letter A or B", "digit 1 or 2")
    judge = LLMJudge(lm, question=question, labels=("1", "2"), batch=3)
    got = judge.first_preferred(*ROWS)
    want = [label_softmax(lm, question.format(prompt=p, first=a, second=b) + "\nAnswer:", ("1", "2"))[0]
            for p, a, b in zip(*ROWS)]
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT32)


def test_the_llm_judge_refuses_what_it_cannot_judge(judge, model):
    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.judges import LLMJudge, parse_judge

    with pytest.raises(ValueError, match="exceeds .* context of 128 tokens"):
        judge.first_preferred(["Q"], ["A" * 200], ["B"])  # 200 tokens: the model's positions end at 128
    with pytest.raises(ValueError, match="1 prompts, 2 first and 2 second"):
        judge.first_preferred(["Q"], ["A", "B"], ["B", "A"])
    assert judge.prob([], [], []).shape == (0,)
    with pytest.raises(ValueError, match="single tokens"):
        LLMJudge(load_model(model[0]), labels=("A", "AB"))
    with pytest.raises(ValueError, match="unknown judge 'llm:'"):
        parse_judge("llm:")


def test_a_run_under_the_llm_judge_records_its_metrics_and_empirical_gap(model, tmp_path):
    folder, prompts = model
    out = tmp_path / "run"
    code, stdout, err = invoke("inpo", "--model", str(folder), "--prompts", str(prompts), "--judge", f"llm:{folder}",
                               "--response-tokens", "A,B", "--max-new-tokens", "2", "--batch", "8", "--lora", "2",
                               "--steps", "2", "--record-every", "1", "--lr", "3e-2", "--empirical", "3", "--out",
                               str(out), "--json")
    assert code == 0, err
    result = json.loads(stdout)
    rows = result["trace"]
    assert result["config"]["game"] == f"judge llm:{folder}" and len(rows) == 3
    assert rows[0]["win_rate_vs_ref"] == pytest.approx(0.5, abs=1e-12)  # the base model against itself
    for row in rows:
        assert 0 <= row["duality_gap"] <= 1 and 0 <= row["win_rate_vs_ref"] <= 1 and row["kl_to_ref"] >= -1e-12
    assert rows[-1]["kl_to_ref"] > 0 and np.isfinite(rows[-1]["loss"])
    pool = result["empirical"]
    assert [p["policy"] for p in pool["policies"]] == ["base", "final"] and pool["judge"] == f"llm:{folder}"
    assert json.loads((out / "_empirical.json").read_text()) == pool


def test_a_run_under_a_learned_text_preference_model(model, tmp_path):
    """--judge gpm:PATH, a saved text GPM (gamelab llm fit-judge), judges every pair of a run's answers."""
    from gamelab.llm import preference_model as PM

    rng = np.random.default_rng(0)
    settings = PM.FeatureSettings(hash_bits=6, ngrams=2)
    path = PM.TextGPM(rng.normal(size=settings.dim), rng.normal(size=(settings.dim, 1)),
                      rng.normal(size=(settings.dim, 1)), settings).save(tmp_path / "judge.npz")
    folder, prompts = model
    code, stdout, err = invoke("inpo", "--model", str(folder), "--prompts", str(prompts), "--judge", f"gpm:{path}",
                               "--response-tokens", "A,B", "--max-new-tokens", "2", "--batch", "8", "--lora", "2",
                               "--steps", "2", "--record-every", "1", "--lr", "3e-2", "--json",
                               "--out", str(tmp_path / "run"))  # not the default folder under the checkout
    assert code == 0, err
    result = json.loads(stdout)
    rows = result["trace"]
    assert result["config"]["game"] == f"judge gpm:{path}" and len(rows) == 3
    assert rows[0]["win_rate_vs_ref"] == pytest.approx(0.5, abs=1e-12)  # the base model against itself
    assert all(0 <= row["duality_gap"] <= 1 for row in rows) and rows[-1]["kl_to_ref"] > 0


def test_the_empirical_game_at_the_end_of_a_run(model, tmp_path):
    """Values in [−½, ½] (here ≥ 0: a policy's own answers win ½ against it), the bootstrap interval
    ordered and reaching the point estimate or above it (see gamelab.llm.empirical), Nash weights a
    distribution, the pool's win rates antisymmetric, the file the JSON, and the table printed."""
    from gamelab.results import load_results

    folder, prompts = model
    out = tmp_path / "run"
    args = ["inpo", "--model", str(folder), "--prompts", str(prompts), "--judge", "cyclic:sep=-",
            "--response-tokens", "A,-,B", "--max-new-tokens", "3", "--batch", "16", "--steps", "4",
            "--record-every", "2", "--lr", "3e-2", "--empirical", "12", "--out", str(out)]
    code, stdout, err = invoke(*args, "--json")
    assert code == 0, err
    pool = json.loads(stdout)["empirical"]
    assert [p["policy"] for p in pool["policies"]] == ["base", "final"]  # the base model is in the pool
    assert pool["samples"] == 12 and pool["prompts"] == 3 and pool["level"] == 0.95 and pool["bootstrap"] == 1000
    for p in pool["policies"]:
        assert -0.5 <= p["exploitability"] <= 0.5 and 0 <= p["exploitability"]
        assert -0.5 <= p["lo"] <= p["hi"] <= 0.5 and p["hi"] >= p["exploitability"] - 1e-12
    assert sum(p["nash_weight"] for p in pool["policies"]) == pytest.approx(1.0)
    W = np.array(pool["win_rate"])
    np.testing.assert_allclose(W + W.T, 1.0, atol=1e-12)
    assert json.loads((out / "_empirical.json").read_text()) == pool
    assert len(load_results(out)) == 3  # the results table reads past the '_' file
    # the same command again: the finished run resumes at its end, and the table is printed
    code, text, err = invoke(*args)
    assert code == 0, err
    assert "empirical game: 12 answers per prompt" in text and "_empirical.json" in text
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("policy"))
    assert "exploitability in the pool" in lines[head] and "nash weight" in lines[head]
    assert lines[head + 1].split()[0] == "base" and lines[head + 2].split()[0] == "final"
    assert float(lines[head + 1].split()[1]) == pytest.approx(pool["policies"][0]["exploitability"], abs=1e-4)


def test_answers_are_drawn_from_the_policy(model):
    """sample_answers draws from the policy's own distribution: the classes of 3000 draws per prompt
    match the enumerated class marginal (4 binomial sd); different prompts, different answers."""
    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.empirical import pool_game, sample_answers
    from gamelab.llm.judges import CyclicLengthJudge
    from gamelab.llm.policy import DecoderPolicy
    from gamelab.llm.text import encode

    lm = load_model(model[0])
    pol = DecoderPolicy(lm, [encode(lm, p) for p in ("SAY A", "PICK")], [encode(lm, c)[0] for c in "A-B"], 3)
    params = pol.init(None)
    answers = sample_answers(pol, params, 3000, seed=1)
    judge = CyclicLengthJudge(separator="-")
    classes = judge.classes(pol.response_texts())
    for x, drawn in enumerate(answers):
        q = np.bincount(classes, weights=np.exp(np.asarray(pol.log_probs(params, x), np.float64)), minlength=3)
        freq = np.bincount(judge.classes(drawn), minlength=3) / len(drawn)
        assert np.all(np.abs(freq - q) <= 4 * np.sqrt(q * (1 - q) / len(drawn)) + 1e-9), (x, freq, q)
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        sample_answers(pol, params, 0)
    with pytest.raises(ValueError, match="1 prompt texts for a policy of 2 prompts"):
        pool_game(judge, pol, {"base": params}, ["SAY A"], 4)


@pytest.mark.parametrize("args, message", [
    (["--empirical", "-1"], "--empirical must be >= 0"),
    (["--empirical", "2", "--no-model"], "--empirical needs --model"),
])
def test_bad_empirical_options_are_one_error_line(model, tmp_path, args, message):
    folder, prompts = model
    base = ["--model", str(folder), "--prompts", str(prompts)] if "--no-model" not in args else []
    code, _, err = invoke("inpo", *base, *[a for a in args if a != "--no-model"], "--steps", "2", "--out",
                          str(tmp_path / "out"))
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
