"""A judge from a general preference model learned from votes over answer texts
(gamelab.llm.preference_model): exact antisymmetry, the exact gradient, recovery of a known
non-transitive preference that a reward over texts cannot hold, the real LLMFAO crowd votes,
saving/loading and `gpm:PATH`, the judged matrix, and `gamelab llm fit-judge` (in process)."""
import ast
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from conftest import gamelab_cli as gamelab
from gamelab import votes as V
from gamelab.llm import preference_model as PM
from gamelab.llm.judges import CyclicLengthJudge, judged_matrix, parse_judge

LLMFAO = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmfao"
SMALL = PM.FeatureSettings(hash_bits=6, ngrams=2)
WORDS = ("alpha", "beta", "gamma", "delta", "echo", "fox", "golf", "hotel", "india", "juliet", "kilo", "lima")


def random_model(rng, settings=SMALL, rank=2, scale=1.0) -> PM.TextGPM:
    d = settings.dim
    return PM.TextGPM(scale * rng.normal(size=d), scale * rng.normal(size=(d, rank)),
                      scale * rng.normal(size=(d, rank)), settings)


def cyclic_data(rng, *, prompts=4, models=12, votes=800, margin=0.4):
    """Synthetic answers (1–9 words from WORDS) of `models` models to `prompts` prompts, and votes
    between two models' answers to one prompt drawn from CyclicLengthJudge (no ties)."""
    judge = CyclicLengthJudge(margin)
    prompt_text = {str(p): f"question {p} about {WORDS[p % len(WORDS)]}" for p in range(prompts)}
    names = [f"m{i:02d}" for i in range(models)]
    answers = {(p, m): " ".join(rng.choice(WORDS, size=rng.integers(1, 10))) for p in prompt_text for m in names}
    p = rng.integers(0, prompts, size=votes).astype(str)
    i = rng.integers(0, models, size=votes)
    j = (i + rng.integers(1, models, size=votes)) % models
    left, right = [names[k] for k in i], [names[k] for k in j]
    prob = judge.prob([prompt_text[x] for x in p], [answers[x, a] for x, a in zip(p, left)],
                      [answers[x, b] for x, b in zip(p, right)])
    winner = np.where(rng.random(votes) < prob, "left", "right")
    return V.make_votes(left, right, winner, prompt=p), PM.Answers(answers, prompt_text), judge


# ------------------------------------------------------------------------------------------ features
def test_features_are_fixed_and_documented():
    X = PM.featurize(["What is two plus two?"] * 3, ["Four.", "four", "- one\n- two\n```x```"], SMALL)
    assert X.shape == (3, 64 + PM.LENGTH_BINS + len(PM.DENSE)) and X.dtype == np.float64
    dense = X[:, -len(PM.DENSE):].toarray()
    np.testing.assert_array_equal(dense[:, 0], 1.0)
    np.testing.assert_allclose(dense[0, 1], np.log(2) / np.log(1001))
    assert dense[2, 3] == pytest.approx(np.log(3) / np.log(101)) and dense[2, 4] == pytest.approx(np.log(3) / np.log(11))
    np.testing.assert_allclose(dense[:2, 5], 0.0)  # "four" is not a word of the prompt ("two", …)
    assert PM.featurize(["two"], ["two two"], SMALL)[0, -1] == 1.0
    np.testing.assert_array_equal(X[0].toarray(), X[1].toarray())  # case is ignored, punctuation too
    h = zlib.crc32(b"1:four")  # the documented hash: crc32 of "n:words", low bits the column, bit 31 the sign
    assert X[0, :64].nnz == 1 and X[0, h & 63] == (-1.0 if h >> 31 else 1.0)  # one word: ±log 2, normalized
    assert np.sum(X[2, :64].toarray() ** 2) == pytest.approx(1.0)
    assert X[0, 64 + 1] == 1.0 and X[2, 64 + 5] == 1.0  # word-count one-hot: "Four." 1 word; the list 5 pieces
    assert [PM.length_bin(n) for n in (0, 15, 16, 31, 32, 4095, 4096, 10 ** 6)] == [0, 15, 16, 16, 17, 23, 24, 24]
    with pytest.raises(ValueError, match="2 prompts for 1 texts"):
        PM.featurize(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="texts must be strings"):
        PM.featurize(["a"], [None])
    with pytest.raises(ValueError, match="hash_bits must be an integer in"):
        PM.featurize(["a"], ["b"], PM.FeatureSettings(hash_bits=40))


def test_the_module_imports_no_jax():
    source = Path(PM.__file__).read_text()
    names = {a.name.split(".")[0] for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
             for a in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.ImportFrom) and node.module}
    assert not names & {"jax", "jaxlib", "flax", "optax"}, names


# ------------------------------------------------------------------------------------- antisymmetry
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), rank=st.integers(0, 3), scale=st.sampled_from([0.01, 1.0, 30.0]),
       texts=st.lists(st.text(max_size=40), min_size=2, max_size=5), prompt=st.text(max_size=20))
def test_probabilities_are_exactly_antisymmetric(seed, rank, scale, texts, prompt):
    judge = PM.GPMJudge(random_model(np.random.default_rng(seed), rank=rank, scale=scale))
    i, j = np.meshgrid(np.arange(len(texts)), np.arange(len(texts)), indexing="ij")
    a, b = [texts[k] for k in i.ravel()], [texts[k] for k in j.ravel()]
    P = judge.prob([prompt] * len(a), a, b).reshape(i.shape)
    assert P.dtype == np.float64 and np.all((P >= 0) & (P <= 1))
    np.testing.assert_array_equal(P + P.T, 1.0)  # exactly, not to a tolerance
    np.testing.assert_array_equal(np.diag(P), 0.5)
    np.testing.assert_array_equal(judged_matrix(judge, prompt, texts), P)


def test_antisymmetric_expit():
    s = np.array([-800.0, -37.0, -1e-17, 0.0, -0.0, 1e-300, 3.0, 40.0, 800.0])
    p = PM.antisymmetric_expit(s)
    np.testing.assert_array_equal(p + PM.antisymmetric_expit(-s), 1.0)
    np.testing.assert_allclose(p, expit(s), rtol=1e-15, atol=2.3e-16)  # 1 − σ(−s): absolute error ≤ ε/2


# ------------------------------------------------------------------------------------------ gradient
@pytest.mark.parametrize("rank", [0, 2])
def test_gradient_equals_finite_differences(rank):
    rng = np.random.default_rng(rank)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(0, 8))) for _ in range(9)]
    Phi = PM.featurize(["q"] * 9, texts, PM.FeatureSettings(hash_bits=4, ngrams=1))
    m = 40
    left, right = rng.integers(0, 9, m), rng.integers(0, 9, m)
    outcome = rng.choice([0.0, 0.5, 1.0], m)
    f = V.gpm_objective(Phi, left, right, outcome, rank, 0.3, weight=rng.uniform(0.5, 2, m))
    x = 0.5 * rng.normal(size=Phi.shape[1] * (1 + 2 * rank))
    value, grad = f(x)
    h = 1e-6
    fd = np.array([(f(x + h * e)[0] - f(x - h * e)[0]) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)
    assert np.abs(grad).max() > 0.1  # a gradient worth checking
    with pytest.raises(ValueError, match="must index the 9 items"):
        V.gpm_objective(Phi, left + 9, right, outcome, rank, 0.3)


# ------------------------------------------------------------------------------------------ recovery
def test_a_rank_one_text_gpm_recovers_the_cyclic_judge_and_rank_zero_cannot():
    rng = np.random.default_rng(0)
    votes, answers, judge = cyclic_data(rng)
    models = {k: PM.fit_text_gpm(votes, answers, k, ridge=3.0, settings=SMALL) for k in (0, 1)}
    assert all(m.converged for m in models.values())
    # fresh answers, never voted on: the cycle is learned over the features, not memorized
    fresh = [" ".join(rng.choice(WORDS, size=n)) for n in rng.integers(1, 10, size=400)]
    a, b, question = fresh[:200], fresh[200:], ["question 0 about alpha"] * 200
    truth = judge.prob(question, a, b)
    cross = truth != 0.5
    p = {k: m.prob(question, a, b) for k, m in models.items()}
    acc = {k: np.mean((p[k][cross] > 0.5) == (truth[cross] > 0.5)) for k in p}
    assert acc[1] > 0.95 and acc[0] < 0.75, acc  # a reward orders the 3 classes: one pair in 3 wrong
    # the best reward for a balanced cycle is near ½ everywhere: mean error ≈ ⅔·0.4 over all pairs
    assert np.abs(p[1] - truth).mean() < 0.15 < 0.25 < np.abs(p[0] - truth).mean()
    # the cycle itself (texts of 1, 2, 3 words: classes 1, 2, 0)
    P = judged_matrix(PM.GPMJudge(models[1]), "q", ["alpha", "alpha beta", "alpha beta gamma"])
    assert P[0, 1] > 0.65 and P[1, 2] > 0.65 and P[2, 0] > 0.65
    assert V.count_cycles(P, 0.6) == 1 and V.count_cycles(judged_matrix(PM.GPMJudge(models[0]), "q", fresh[:30])) == 0
    h = PM.held_out_text(votes, answers, ranks=(0, 1), by="pair", splits=3, ridge=3.0, settings=SMALL)
    s = h.summary("text0")
    assert s["text1"]["minus_text0"] > 0.1 and s["text1"]["minus_text0"] > 10 * s["text1"]["minus_text0_se"]
    # against the judge's own coin flips: at best ⅔·0.9 + ⅓·½ ≈ 0.77 (same-class pairs are ½), a reward ≈ 0.59
    assert s["text1"]["accuracy"] > 0.7 > 0.63 > s["text0"]["accuracy"], s
    assert s["coin"]["log_likelihood"] == pytest.approx(-np.log(2))


def test_fit_errors_name_the_problem():
    rng = np.random.default_rng(1)
    votes, answers, _ = cyclic_data(rng, votes=50)
    with pytest.raises(ValueError, match="no answer text for 1 .*'m03'"):
        PM.fit_text_gpm(votes, {k: v for k, v in answers.texts.items() if k != ("0", "m03")}, 0,
                        prompts=answers.prompts, settings=SMALL)
    with pytest.raises(ValueError, match="prompts' texts are needed"):
        PM.fit_text_gpm(votes, answers.texts, 0, settings=SMALL)
    with pytest.raises(ValueError, match="no prompt column"):
        PM.fit_text_gpm(votes._replace(prompt=None), answers, 0, settings=SMALL)
    with pytest.raises(ValueError, match="rank must be an integer"):
        PM.fit_text_gpm(votes, answers, -1, settings=SMALL)
    with pytest.raises(ValueError, match="ridge must be positive"):
        PM.fit_text_gpm(votes, answers, 1, ridge=0.0, settings=SMALL)
    with pytest.raises(ValueError, match="ranks must be distinct"):
        PM.held_out_text(votes, answers, ranks=(1, 1), settings=SMALL)


# ------------------------------------------------------------------------------------ save and load
def test_save_load_parse_judge_and_damaged_files(tmp_path):
    model = random_model(np.random.default_rng(3))._replace(ridge=2.5, log_likelihood=-12.0, converged=False, votes=7)
    path = model.save(tmp_path / "judge.npz")
    assert path == tmp_path / "judge.npz" and path.is_file()
    back = PM.TextGPM.load(path)
    for field in ("w", "A", "B"):
        np.testing.assert_array_equal(getattr(back, field), getattr(model, field))
    assert (back.settings, back.ridge, back.log_likelihood, back.converged, back.votes) == (SMALL, 2.5, -12.0, False, 7)
    judge = parse_judge(f"gpm:{path}")
    assert isinstance(judge, PM.GPMJudge)
    texts = ["one", "two words", "three words here", "```code```"]
    args = (["p"] * 4, texts, texts[::-1])
    np.testing.assert_array_equal(judge.prob(*args), model.prob(*args))

    good = path.read_bytes()
    damaged = {"truncated.npz": good[:len(good) // 2], "noise.npz": b"not a zip file at all"}
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(PM.JudgeFileError, match=name):
            parse_judge(f"gpm:{tmp_path / name}")
    meta = json.loads(str(np.load(path)["meta"]))
    for name, change, message in (("hash.npz", {"hash": "md5"}, "written with hash 'md5'"),
                                  ("format.npz", {"format": 99}, "written with format 99"),
                                  ("rank.npz", {"rank": 5}, "do not match its header"),
                                  ("kind.npz", {"kind": "other"}, "not a gamelab GPM judge file")):
        with open(tmp_path / name, "wb") as fh:
            np.savez(fh, w=model.w, A=model.A, B=model.B, meta=np.array(json.dumps({**meta, **change})))
        with pytest.raises(PM.JudgeFileError, match=f"{name}.*{message}|{message}.*{name}"):
            PM.TextGPM.load(tmp_path / name)
    with open(tmp_path / "nometa.npz", "wb") as fh:
        np.savez(fh, w=model.w)
    with pytest.raises(PM.JudgeFileError, match=r"nometa.npz: not a gamelab GPM judge file \(no A, B, meta\)"):
        PM.TextGPM.load(tmp_path / "nometa.npz")
    np.save(tmp_path / "array.npy", model.w)
    with pytest.raises(PM.JudgeFileError, match=r"array.npy: not a gamelab GPM judge file \(a single array"):
        PM.TextGPM.load(tmp_path / "array.npy")
    with pytest.raises(PM.JudgeFileError, match="no such judge file: .*missing.npz"):
        parse_judge(f"gpm:{tmp_path / 'missing.npz'}")
    with pytest.raises(ValueError, match="unknown judge 'gpm'.*gpm:PATH"):
        parse_judge("gpm")


# ------------------------------------------------------------------------------------------ real votes
def test_on_the_llmfao_crowd_votes():
    if not (LLMFAO / "crowd-comparisons.csv").is_file():
        pytest.skip(f"the LLMFAO votes are not at {LLMFAO} (../shared/data/llmfao beside the repository)")
    answers = PM.llmfao_answers(LLMFAO / "results.jsonl", LLMFAO / "prompts.jsonl")
    assert answers.texts["8", "Airoboros L2 70B"] == answers.texts["8", "97"]  # by model name or id
    votes = V.load_votes(LLMFAO / "crowd-comparisons.csv")
    fold = V.folds(votes, "pair", 5, seed=0)
    train, test = V.subset(votes, fold != 0), V.subset(votes, fold == 0)
    settings_ = PM.FeatureSettings(hash_bits=8)
    model = PM.fit_text_gpm(train, answers, 1, settings=settings_)
    judge = PM.GPMJudge(model)
    prompt = lambda p: answers.prompts[p]
    name = lambda i: test.names[i]
    p = judge.prob([prompt(x) for x in test.prompt], [answers.texts[x, name(i)] for x, i in zip(test.prompt, test.left)],
                   [answers.texts[x, name(i)] for x, i in zip(test.prompt, test.right)])
    assert p.shape == (test.size,) and np.all((p > 0) & (p < 1))
    held = np.mean(V.half_win_log_likelihood(p, test.outcome))
    assert held > -np.log(2) + 0.03, held  # held-out pairs: better than the constant ½
    assert V.decided_accuracy(p, test.outcome) > 0.65
    texts = [answers.texts["8", m] for m in votes.names[:6]]
    a, b = zip(*[(x, y) for x in texts for y in texts])
    both = judge.prob([prompt("8")] * len(a), a, b) + judge.prob([prompt("8")] * len(a), b, a)
    np.testing.assert_array_equal(both, 1.0)  # the judge itself, both orders (judged_matrix builds this in)
    P = judged_matrix(judge, prompt("8"), texts)
    assert np.ptp(P) > 0.05  # it tells the answers apart


# ------------------------------------------------------------------------------------------ command line
def write_cyclic_files(tmp_path, rng):
    votes, answers, _ = cyclic_data(rng, votes=600)
    with open(tmp_path / "votes.csv", "w") as fh:
        fh.write("prompt,left,right,winner\n")
        for p, i, j, o in zip(votes.prompt, votes.left, votes.right, votes.outcome):
            fh.write(f"{p},{votes.names[i]},{votes.names[j]},{'left' if o == 1 else 'right'}\n")
    with open(tmp_path / "results.jsonl", "w") as fh:
        for (p, m), text in answers.texts.items():
            fh.write(json.dumps({"model": m, "prompt": int(p), "result": text}) + "\n")
    with open(tmp_path / "prompts.jsonl", "w") as fh:
        for p, text in answers.prompts.items():
            fh.write(json.dumps({"id": int(p), "text": text}) + "\n")
    return [f"--votes={tmp_path / 'votes.csv'}", f"--answers={tmp_path / 'results.jsonl'}",
            f"--prompts-file={tmp_path / 'prompts.jsonl'}"]


def test_fit_judge_command(tmp_path):
    files = write_cyclic_files(tmp_path, np.random.default_rng(5))
    out = tmp_path / "judge.npz"
    r = gamelab("llm", "fit-judge", *files, "--rank", "1", "--out", out, "--hash-bits", "6", "--ridge", "3",
                "--by", "pair", "--splits", "3")
    assert r.returncode == 0, r.stderr
    assert "held out by pair (3 folds, 600 votes" in r.stdout and "text1" in r.stdout and "model_bt" in r.stdout
    assert f"saved {out} (use it as --judge gpm:{out})" in r.stdout
    judge = parse_judge(f"gpm:{out}")
    assert judge.model.rank == 1 and judge.model.settings == SMALL and judge.model.votes == 600
    assert judge.prob(["q"], ["a b"], ["a b c"])[0] > 0.6  # class 2 beats class 0

    r = gamelab("llm", "fit-judge", *files, "--rank", "0", "--out", tmp_path / "bt.npz", "--hash-bits", "6",
                "--by", "prompt", "--splits", "2", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["rank"] == 0 and set(report["held_out"]) == {"prompt"}
    assert set(report["held_out"]["prompt"]) == {"text0", "model_bt", "coin"}

    for args, message in ((["--rank", "-1"], "--rank must be >= 0"), (["--by", "fold"], "--by must be prompt"),
                          (["--splits", "1"], "--splits must be >= 2"), (["--hash-bits", "40"], "hash_bits must be"),
                          (["--ridge", "0"], "--ridge must be a positive number")):
        r = gamelab("llm", "fit-judge", *files, "--out", tmp_path / "x.npz", *args)
        assert r.returncode == 2 and f"error: {message}" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    bad = files[:1] + [f"--answers={tmp_path / 'none.jsonl'}"] + files[2:]
    r = gamelab("llm", "fit-judge", *bad, "--out", tmp_path / "x.npz")
    assert r.returncode == 2 and "error: no such file: " in r.stderr and "none.jsonl" in r.stderr
    (tmp_path / "short.jsonl").write_text('{"model": "m00", "prompt": 0, "result": "a"}\n')
    bad = files[:1] + [f"--answers={tmp_path / 'short.jsonl'}"] + files[2:]
    r = gamelab("llm", "fit-judge", *bad, "--out", tmp_path / "x.npz")
    assert r.returncode == 2 and "error: no answer text for" in r.stderr
    # answers as CSV with a field past the csv module's limit: one error line, not csv.Error's traceback
    (tmp_path / "huge.csv").write_text("model,prompt,result\nm00,0," + "a" * 200_000 + "\n")
    bad = files[:1] + [f"--answers={tmp_path / 'huge.csv'}"] + files[2:]
    r = gamelab("llm", "fit-judge", *bad, "--out", tmp_path / "x.npz")
    assert r.returncode == 2 and "malformed CSV" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "x.npz").exists()


def test_fit_judge_help_and_bad_arguments_import_no_jax(tmp_path):
    code = """
import json, sys
from typer.testing import CliRunner
from gamelab.cli import app
runs = [CliRunner().invoke(app, a) for a in (["llm", "fit-judge", "--help"],
        ["llm", "fit-judge", "--votes", "v", "--answers", "a", "--prompts-file", "p", "--out", "o", "--rank", "-2"])]
print(json.dumps([[r.exit_code, r.stdout, r.stderr] for r in runs] + [sorted({m.split(".")[0] for m in sys.modules}
      & {"jax", "scipy"})]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (help_code, help_text, _), (code_, _, err), imported = json.loads(out.stdout)
    assert help_code == 0 and "--prompts-file" in help_text
    assert code_ == 2 and "--rank must be >= 0" in err
    assert imported == []
