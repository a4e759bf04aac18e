"""`gamelab llm run ALGO --model …`: a real decoder trained on the game of its own responses under
a judge, through train() and the segment loop — its metrics against the base model, the results
store, resume after a kill, and the same losses sharded over 8 fake CPU devices.

Every run here uses a tiny random Llama checkpoint (2 layers, width 32, a 64-token byte vocabulary)
that the tests write themselves, never SmolLM2: each run takes seconds.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import llm_run as invoke, tiny_llama

pytest.importorskip("gguf")
# responses of 3 tokens over A, - and B; the judge's words are split on '-', so all 3 classes occur
REAL = ["--judge", "cyclic:sep=-", "--response-tokens", "A,-,B", "--max-new-tokens", "3", "--batch", "16"]
RTOL = 1e-5  # float32 model: sharded and unsharded sums differ in order (losses: we see ~1e-7 relative)
METRIC_RTOL = 1e-4  # metrics after a few Adam steps: the rounding differences grow a little


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny random Llama checkpoint folder and a prompts file."""
    return tiny_llama(tmp_path_factory.mktemp("tiny"), "Say A\nSay B or C\n\nPick one\n")


@pytest.fixture(scope="module")
def env():
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def test_a_real_model_run_records_metrics_against_its_base_model(model, tmp_path):
    from gamelab.results import load_results

    folder, prompts = model
    out = tmp_path / "run"
    code, stdout, err = invoke("inpo", "--model", str(folder), "--prompts", str(prompts), *REAL, "--lora", "2",
                               "--steps", "10", "--record-every", "5", "--lr", "1e-2", "--out", str(out), "--json")
    assert code == 0, err
    result = json.loads(stdout)
    rows = result["trace"]
    assert len(rows) == 3 and result["config"]["reference"] == "initial"
    assert result["config"]["model"]["lora"]["rank"] == 2 and result["config"]["game"] == "judge cyclic:sep=-"
    first, last = rows[0], rows[-1]
    # at step 0 the policy is its base model: win rate ½ and KL 0 against it, exactly
    assert first["win_rate_vs_ref"] == pytest.approx(0.5, abs=1e-12) and first["kl_to_ref"] == pytest.approx(0, abs=1e-9)
    assert last["kl_to_ref"] > 1e-4 and last["win_rate_vs_ref"] != first["win_rate_vs_ref"]
    assert 0 <= last["duality_gap"] <= 1 and np.isfinite(last["kl_to_class_nash"])
    assert {"prompt2_win_rate_vs_ref", "prompt0_kl_to_ref"} <= set(last)  # 3 prompts (the blank line skipped)
    assert (out / "_manifest.json").exists() and (out / "_run.json").exists() and (out / "_checkpoints").is_dir()
    assert json.loads((out / "_manifest.json").read_text())["kind"] == "llm"
    frame = load_results(out)
    assert {"win_rate_vs_ref", "kl_to_ref"} <= set(frame.columns) and len(frame) == 3


def test_sampled_metrics_give_the_kl_to_the_base_model_with_an_interval(model, tmp_path):
    folder, prompts = model
    code, stdout, err = invoke("dpo", "--model", str(folder), "--prompts", str(prompts), *REAL, "--steps", "4",
                               "--record-every", "4", "--lr", "3e-2", "--metrics", "sampled", "--eval-samples", "2000",
                               "--out", str(tmp_path / "run"), "--json")
    assert code == 0, err
    exact = json.loads(invoke("dpo", "--model", str(folder), "--prompts", str(prompts), *REAL, "--steps", "4",
                              "--record-every", "4", "--lr", "3e-2", "--out", str(tmp_path / "exact"), "--json")[1])
    row, truth = json.loads(stdout)["trace"][-1], exact["trace"][-1]
    assert row["kl_to_ref_lo"] <= row["kl_to_ref"] <= row["kl_to_ref_hi"]
    assert row["win_rate_vs_ref_lo"] <= row["win_rate_vs_ref"] <= row["win_rate_vs_ref_hi"]
    # the same training draws: the Monte-Carlo estimates bracket the exact values (3 prompts' means)
    assert row["kl_to_ref_lo"] - 0.02 <= truth["kl_to_ref"] <= row["kl_to_ref_hi"] + 0.02
    assert abs(row["win_rate_vs_ref"] - truth["win_rate_vs_ref"]) < 0.05


@pytest.mark.parametrize("args, message", [
    (["--model", "/no/such/model"], "no such model"),
    (["--judge", "nope"], "unknown judge 'nope'"),
    (["--judge", "cyclic:margin=2"], "margin must be in [0, 0.5]"),
    (["--prompts", "EMPTY"], "no prompts"),
    (["--response-tokens", "A,AB"], "'AB' is not one token"),
    (["--lora", "0"], "--lora must be a positive rank"),
])
def test_bad_inputs_are_one_error_line(model, tmp_path, args, message):
    folder, prompts = model
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    base = {"--model": str(folder), "--prompts": str(prompts), "--judge": "cyclic", "--response-tokens": "A,B"}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = str(empty) if value == "EMPTY" else value
    code, _, err = invoke("inpo", *[x for kv in base.items() for x in kv], "--steps", "2", "--record-every", "1",
                          "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- killed and resumed

def finished_steps(folder):
    return sorted(int(p.name) for p in (folder / "_checkpoints").glob("*") if p.name.isdigit()) \
        if (folder / "_checkpoints").exists() else []


def test_a_killed_real_model_run_resumes_to_the_uninterrupted_trace(model, env, tmp_path):
    folder, prompts = model
    run = ["llm", "run", "inpo", "--model", str(folder), "--prompts", str(prompts), *REAL, "--lora", "2",
           "--steps", "24", "--record-every", "1", "--checkpoint-every", "1", "--lr", "1e-2", "--quiet"]
    whole = subprocess.run([sys.executable, "-m", "gamelab.cli", *run, "--json", "--out", str(tmp_path / "whole")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "gamelab.cli", *run, "--out", str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.time() + 240
        while proc.poll() is None and max(finished_steps(out), default=0) < 2 and time.time() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: " + log.read_text()
    killed_at = max(finished_steps(out))
    assert 2 <= killed_at < 24 and not (out / "_manifest.json").exists()
    again = subprocess.run([sys.executable, "-m", "gamelab.cli", *run, "--json", "--out", str(out)],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    got, want = json.loads(again.stdout), json.loads(whole.stdout)
    assert got["resumed_from"] == killed_at and want["resumed_from"] == 0
    assert got["trace"] == want["trace"]  # every metric of every row, bit for bit


# ---------------------------------------------------------------------------- sharded = unsharded
SHARDED = """
import json, sys, numpy as np, jax
from jax.sharding import Mesh
from gamelab.llm.checkpoints import load_model
from gamelab.llm.judges import CyclicLengthJudge, policy_game
from gamelab.llm.policy import DecoderPolicy
from gamelab.llm.decoder import LoraConfig
from gamelab.llm.text import encode
from gamelab.llm.train import train

assert jax.device_count() == 8, jax.devices()
lm = load_model(sys.argv[1])
prompts = ["Say A", "Say B or C", "Pick"]
runs = {}
# the LoRA pair runs ONPO, whose second policy π̂ must be laid out (FSDP: sharded) as the parameters are
for name, devices, fsdp, lora, algo in [("one", 1, False, None, "inpo"), ("eight", 8, False, None, "inpo"),
                                        ("fsdp", 8, True, None, "inpo"), ("lora_one", 1, False, 2, "onpo"),
                                        ("lora_fsdp", 8, True, 2, "onpo")]:
    mesh = None if devices == 1 else Mesh(np.array(jax.devices()[:devices]), ("data",))
    pol = DecoderPolicy(lm, [encode(lm, p) for p in prompts], [encode(lm, c)[0] for c in "A-B"], 3, mesh=mesh,
                        fsdp=fsdp, lora=None if lora is None else LoraConfig(rank=lora))
    game = policy_game(CyclicLengthJudge(separator="-"), pol, prompts, "cyclic")
    r = train(algo, game, steps=3, record_every=1, policy=pol, batch=12, hparams={"lr": 3e-3}, mesh=mesh,
              fsdp=fsdp, progress=False)
    runs[name] = {k: r.trace[k].tolist() for k in ("loss", "duality_gap", "kl_to_ref", "win_rate_vs_ref")}
print(json.dumps(runs))
"""


def test_sharded_decoder_runs_on_8_fake_devices_give_the_unsharded_losses(model, env):
    folder, _ = model
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SHARDED), str(folder)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    for name, base in (("eight", "one"), ("fsdp", "one"), ("lora_fsdp", "lora_one")):
        assert np.all(np.isfinite(runs[base]["loss"][1:])) and runs[base]["kl_to_ref"][-1] > 0
        for key in ("loss", "duality_gap", "kl_to_ref", "win_rate_vs_ref"):
            np.testing.assert_allclose(runs[name][key], runs[base][key], rtol=RTOL if key == "loss" else METRIC_RTOL,
                                       atol=1e-7, err_msg=f"{name} {key}")


def test_lora_keeps_no_optimizer_state_for_the_frozen_base(model):
    import jax

    from gamelab.algorithms import get_algorithm
    from gamelab.algorithms.parametric import make_parametric
    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.decoder import LoraConfig
    from gamelab.llm.games import sequence_game
    from gamelab.llm.policy import DecoderPolicy
    from gamelab.llm.text import encode

    lm = load_model(model[0])
    size = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
    game = sequence_game(vocab=3, length=2)
    for lora in (None, LoraConfig(rank=2)):
        pol = DecoderPolicy(lm, [encode(lm, "AB")], [encode(lm, c)[0] for c in "ABC"], 2, lora=lora)
        algo = make_parametric(get_algorithm("dpo"), pol, "sampled", 8, "adam")
        state = algo.init(game.matrix(0), algo.make_hparams(), np.full(9, -np.log(9)), np.full(9, -np.log(9)))
        learnt = size(state.params) if lora is None else size(state.params["lora"])
        assert size(state.opt) == 2 * learnt + 1  # Adam's two moments of what learns, and its count


@pytest.mark.parametrize("algo, copies", [("dpo", 4), ("onpo", 5)])
def test_a_lora_checkpoint_holds_the_adapters_not_the_frozen_base(model, tmp_path, algo, copies):
    """The base weights never change under LoRA: a checkpoint leaves them out (segments' ``frozen``
    hook) and a resume takes them from the loaded model (the kill/resume test above checks that the
    trace is still bit for bit). ONPO's second policy π̂ adds one more copy of the adapters."""
    import jax
    import orbax.checkpoint as ocp

    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.decoder import LoraConfig
    from gamelab.llm.games import sequence_game
    from gamelab.llm.policy import DecoderPolicy
    from gamelab.llm.text import encode
    from gamelab.llm.train import train

    lm = load_model(model[0])
    size = lambda tree: sum(np.size(x) for x in jax.tree.leaves(tree))  # noqa: E731
    pol = DecoderPolicy(lm, [encode(lm, "AB")], [encode(lm, c)[0] for c in "ABC"], 2, lora=LoraConfig(rank=2))
    out = tmp_path / "run"
    train(algo, sequence_game(vocab=3, length=2), steps=2, record_every=1, checkpoint_every=1, policy=pol,
          out=out, progress=False)
    manager = ocp.CheckpointManager(out / "_checkpoints")
    saved = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())["carry"]
    manager.close()
    lora, base = size(pol.params0["lora"]), size(pol.params0["base"])
    # parameters', reference's and Adam's two moments' adapters (ONPO: and π̂'s), plus the two
    # enumerated views of the 9 responses (exact metrics), a few scalars and the key
    assert copies * lora <= size(saved) <= copies * lora + 2 * 9 + 16 < base


def test_the_kv_cache_sampler_draws_what_a_pass_per_position_draws(model):
    """DecoderPolicy.sample runs the prompts once and one position per token; a pass over the
    prompt and the tokens so far at every position (the plain definition) draws the same
    responses from the same keys, for one prompt, fewer rows than prompts and more."""
    import jax
    import jax.numpy as jnp

    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.decoder import LoraConfig
    from gamelab.llm.model import sequence_index
    from gamelab.llm.policy import DecoderPolicy

    lm = load_model(model[0])
    pol = DecoderPolicy(lm, [[1, 5, 9], [1, 7], [1, 3, 4, 8, 2], [2]], [5, 6, 7], 3, lora=LoraConfig(rank=2))
    params = pol.init(None)
    params["lora"] = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(3), a.shape, a.dtype),
                                  params["lora"])

    one_row = jax.jit(lambda x1, d1: pol._next_logp(params, x1, d1)[0])  # one program for every row and case

    def per_position(key, x, count):
        digits = jnp.zeros((count, pol.length), jnp.int32)
        xs = jnp.broadcast_to(jnp.asarray(x), (count,))
        for t, k in enumerate(jax.random.split(key, pol.length)):
            logp = jnp.stack([one_row(xs[i:i + 1], digits[i:i + 1])[t] for i in range(count)])
            digits = digits.at[:, t].set(jax.random.categorical(k, logp).astype(jnp.int32))
        return sequence_index(digits, pol.vocab)

    for x in (1, jnp.array([0, 3, 2]), jnp.array([0, 1, 2, 3, 3, 1, 0, 2, 1])):
        count = 6 if jnp.ndim(x) == 0 else len(x)
        for seed in range(3):
            key = jax.random.key(seed)
            np.testing.assert_array_equal(pol.sample(params, key, (count,), x), per_position(key, x, count))


def test_the_loaded_weights_are_an_argument_of_the_start_program_not_a_constant(model):
    """Compiled in, SmolLM2's weights made a 324 MB program (and its cache entry); passed through
    ``Policy.start_point`` the program holds none of them."""
    import jax
    import jax.numpy as jnp

    from gamelab.algorithms import get_algorithm
    from gamelab.algorithms.parametric import make_parametric
    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.games import sequence_game
    from gamelab.llm.pairs import ClassOracle, PromptPairs
    from gamelab.llm.policy import DecoderPolicy
    from gamelab.llm.text import encode
    from gamelab.run import start

    lm = load_model(model[0])
    pol = DecoderPolicy(lm, [encode(lm, "AB")], [encode(lm, c)[0] for c in "ABC"], 2)
    algo = make_parametric(get_algorithm("dpo"), pol, "sampled", 8, "adam", PromptPairs("sampled", 8, 1, False))
    game = sequence_game(vocab=3, length=2)
    oracle = ClassOracle(jnp.asarray(game.classes), jnp.asarray(game.C), jnp.ones(1))
    point = pol.start_point(jnp.zeros(9))
    text = jax.jit(lambda p: start(algo, oracle, algo.make_hparams(), p, p)).lower(point).as_text()
    weight_bytes = sum(x.nbytes for x in jax.tree.leaves(pol.params0))
    assert len(text) < weight_bytes / 4
    inlined = jax.jit(lambda: start(algo, oracle, algo.make_hparams(), pol.init(None), pol.init(None))).lower()
    assert len(inlined.as_text()) > weight_bytes  # the test can fail: what the old path compiled in
