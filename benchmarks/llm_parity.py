"""gamelab's decoder against an independent implementation (Hugging Face transformers, CPU torch).

Run by hand, never by the test suite (torch and transformers are not gamelab dependencies):

    pip install torch --index-url https://download.pytorch.org/whl/cpu; pip install transformers
    python benchmarks/llm_parity.py goldens     # rewrite tests/golden/llm/{llama,qwen2}/ (≈ 70 kB)
    python benchmarks/llm_parity.py smollm2     # SmolLM2-135M: transformers' own GGUF loader vs gamelab

``goldens`` builds a tiny random Llama (GQA, separate head, llama3 rope scaling, bfloat16 weights,
transformers-4 style config keys) and a tiny random Qwen2 (q/k/v biases, tied embeddings, float16
weights, transformers-5 style ``rope_parameters``), saves each as a Hugging Face folder (safetensors,
config, a 64-token byte-level tokenizer, a chat template) and stores transformers' float32 logits on
fixed tokens and its greedy continuation in ``golden.npz``; tests/test_llama.py loads the folders
with gamelab and compares. ``smollm2`` loads the Q4_1 GGUF with transformers (its own dequantization,
Q/K un-permutation and tokenizer conversion) and with gamelab, and prints both perplexities of a
paragraph, the logits' max abs difference, both greedy continuations and gamelab's load time and
tokens/s (add ``--json FILE`` to keep them).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "llm"
PARAGRAPH = ROOT / "tests" / "golden" / "llm" / "paragraph.txt"
VOCAB = [chr(33 + i) for i in range(64)]  # byte-level BPE symbols of the bytes '!' … '`' (themselves)
CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")
TOKENS_SEED, LENGTH = 0, 24


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(VOCAB)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def write_golden(name: str) -> dict:
    import torch
    import transformers

    torch.manual_seed({"llama": 1, "qwen2": 2}[name])
    common = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, max_position_embeddings=128,
                  bos_token_id=1, eos_token_id=2, initializer_range=0.3)  # large weights: logits of order 1+
    if name == "llama":
        config = transformers.LlamaConfig(num_attention_heads=2, num_key_value_heads=1, rms_norm_eps=1e-5,
                                          tie_word_embeddings=False, rope_theta=5000.0,
                                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                        "high_freq_factor": 4.0,
                                                        "original_max_position_embeddings": 64}, **common)
        model, dtype = transformers.LlamaForCausalLM(config), torch.bfloat16
    else:
        config = transformers.Qwen2Config(num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                                          tie_word_embeddings=True, rope_theta=1e6, **common)
        model, dtype = transformers.Qwen2ForCausalLM(config), torch.float16
    with torch.no_grad():  # random norm weights and biases too (transformers initializes them to 1 and 0)
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))
    out = GOLDEN / name
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*"):
        stale.unlink()
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    cfg = json.loads((out / "config.json").read_text())
    if name == "llama":  # the keys of checkpoints written by transformers 4 (most files in the wild)
        params = cfg.pop("rope_parameters")
        cfg["rope_theta"] = params.pop("rope_theta")
        cfg["rope_scaling"] = params
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
    tiny_tokenizer().save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE, "bos_token": VOCAB[1],
                                                           "eos_token": VOCAB[2], "add_bos_token": False}))
    reloaded = type(model).from_pretrained(out, dtype=torch.float32).eval()
    tokens = np.random.default_rng(TOKENS_SEED).integers(3, 64, (2, LENGTH))
    with torch.no_grad():
        logits = reloaded(torch.tensor(tokens)).logits.numpy()
        greedy = reloaded.generate(torch.tensor(tokens[:, :6]), max_new_tokens=8, do_sample=False,
                                   eos_token_id=None, pad_token_id=0).numpy()[:, 6:]
    np.savez_compressed(out / "golden.npz", tokens=tokens, logits=logits.astype(np.float32), greedy=greedy,
                        transformers=transformers.__version__, torch=torch.__version__)
    size = sum(f.stat().st_size for f in out.glob("*"))
    print(f"{name}: wrote {out.relative_to(ROOT)} ({size / 1e3:.1f} kB; transformers {transformers.__version__})")
    return {"folder": str(out), "bytes": size}


def smollm2(json_out: str | None) -> dict:
    import torch
    import transformers

    sys.path.insert(0, str(ROOT))
    import gamelab  # noqa: F401
    from gamelab.llm.checkpoints import load_model, smollm2_path
    from gamelab.llm.decoder import forward
    from gamelab.llm.text import complete, encode, perplexity

    path = smollm2_path()
    text = PARAGRAPH.read_text()
    t0 = time.perf_counter()
    ref = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                            dtype=torch.float32).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    hf_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m")
    load_s = time.perf_counter() - t0
    ids = encode(lm, text)
    ref_ids = ref_tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ref_logits = ref(torch.tensor([ids])).logits[0].numpy()
    ref_lp = torch.log_softmax(torch.tensor(ref_logits[:-1]), -1).numpy()[np.arange(len(ids) - 1), ids[1:]]
    ref_ppl = float(np.exp(-ref_lp.mean()))
    ours = np.asarray(forward(lm.graph, lm.params, np.array([ids]), np.ones((1, len(ids)), bool))[0])
    prompt = "The capital of France is"
    with torch.no_grad():
        ref_gen = ref.generate(torch.tensor([encode(lm, prompt)]), max_new_tokens=8, do_sample=False)
    ref_text = ref_tok.decode(ref_gen[0, len(encode(lm, prompt)):], skip_special_tokens=True)
    complete(lm, [prompt], max_new_tokens=64)  # compile (max_new_tokens is static)
    t0 = time.perf_counter()
    ours_text = complete(lm, [prompt], max_new_tokens=64)[0]
    gen_s = time.perf_counter() - t0
    new_tokens = len(lm.tokenizer.encode(ours_text, add_special_tokens=False).ids)
    perplexity(lm, text)  # compile
    t0 = time.perf_counter()
    ppl = perplexity(lm, text)
    score_s = time.perf_counter() - t0
    row = {"tokens": len(ids), "same_tokenization_as_transformers": ids == ref_ids,
           "perplexity_gamelab": ppl, "perplexity_transformers": ref_ppl,
           "logits_max_abs_diff": float(np.abs(ours - ref_logits).max()),
           "greedy_gamelab": complete(lm, [prompt], max_new_tokens=8)[0], "greedy_transformers": ref_text,
           "load_s_gamelab": load_s, "load_s_transformers": hf_load,
           "generate_tokens_per_s": new_tokens / gen_s, "score_tokens_per_s": len(ids) / score_s,
           "transformers": transformers.__version__, "torch": torch.__version__}
    for k, v in row.items():
        print(f"{k:>34}: {v}")
    if json_out:
        Path(json_out).write_text(json.dumps(row, indent=2))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["goldens", "smollm2"])
    parser.add_argument("--json", default=None, help="smollm2: write the figures to this file")
    args = parser.parse_args(argv)
    if args.what == "goldens":
        for name in ("llama", "qwen2"):
            write_golden(name)
    else:
        smollm2(args.json)


if __name__ == "__main__":
    main()
