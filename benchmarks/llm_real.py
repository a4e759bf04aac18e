"""A real model on this CPU: load time, sampling and scoring tokens/s, a training step's time and peak memory.

    taskset -c 0 python benchmarks/llm_real.py                 # SmolLM2-135M-Instruct, one core (≈ 4 minutes)
    python benchmarks/llm_real.py --model PATH --batch 8 --tokens 128 --json out.json
    python benchmarks/llm_real.py --model random:smollm2-135m   # its shape, random weights (no download)

Each measurement runs in its own process (so each peak resident memory is its own): ``load`` (the
GGUF read, dequantized, placed), ``generate`` (greedy, ``--new-tokens`` per prompt, batch 1 and
``--batch``; the compiled call timed after a first one), ``score`` (teacher forcing over a batch of
``--batch`` × ``--tokens``), and a training step (value and gradient of the response log-likelihood
of ``--batch`` sequences of ``--tokens`` tokens, half prompt and half response, and an Adam update)
with every weight trained (``train-full``) or rank-8 LoRA adapters on every projection
(``train-lora``). Tokens per second count every token of the batch.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("load", "generate", "score", "train-full", "train-lora")


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB


def timed(fn, *args):
    import jax

    jax.block_until_ready(fn(*args))  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


# SmolLM2-135M-Instruct's shape, as its GGUF states it (tests/test_llama.py checks this against the
# file when it is cached). A device machine reaches no package registry, so the GPU check times a
# random decoder of this shape (``--model random:smollm2-135m``): the same FLOPs and bytes per token.
SHAPES = {"smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30, num_heads=9,
                               num_kv_heads=3, head_dim=64, rms_norm_eps=1e-5, rope_theta=100000.0,
                               tie_embeddings=True, max_position=8192)}


def random_model(name: str):
    """A LanguageModel of a known shape (``random:NAME``, NAME in SHAPES) with random weights."""
    from gamelab.llm.checkpoints import LanguageModel
    from gamelab.llm.decoder import DecoderConfig, init_decoder

    shape = name.partition(":")[2]
    if shape not in SHAPES:
        sys.exit(f"error: unknown shape {shape!r} (random:{' | random:'.join(SHAPES)})")
    config = DecoderConfig(**SHAPES[shape])
    graph, params = init_decoder(config)
    return LanguageModel(config, graph, params, None, None, None, (), 0, False, name)


def measure(part: str, model: str, batch: int, tokens: int, new_tokens: int) -> dict:
    sys.path.insert(0, ROOT)
    import gamelab  # noqa: F401
    import jax
    import numpy as np
    import optax

    from gamelab.llm.checkpoints import load_model
    from gamelab.llm.decoder import LoraConfig, generate, init_lora, pack, sequence_logprobs, with_lora

    t0 = time.perf_counter()
    lm = random_model(model) if model.startswith("random:") else load_model(model)
    row = {"part": part, "load_s": time.perf_counter() - t0}
    rng = np.random.default_rng(0)
    half = tokens // 2
    seqs = [list(rng.integers(3, lm.config.vocab_size, tokens)) for _ in range(batch)]
    b = pack([s[:half] for s in seqs], [s[half:] for s in seqs], length=tokens)
    if part == "generate":
        for size in (1, batch):
            prompts = [s[:half] for s in seqs[:size]]
            run = lambda: generate(lm.config, lm.graph, lm.params, prompts, jax.random.key(0),  # noqa: E731
                                   max_new_tokens=new_tokens, eos_ids=()).tokens
            run()
            t0 = time.perf_counter()
            run()
            row[f"generate_batch{size}_tokens_per_s"] = size * new_tokens / (time.perf_counter() - t0)
    elif part == "score":
        score = jax.jit(sequence_logprobs, static_argnums=0)
        row["score_tokens_per_s"] = batch * tokens / timed(score, lm.graph, lm.params, b.tokens, b.mask,
                                                            b.response_mask)
    elif part.startswith("train"):
        opt = optax.adam(1e-5)
        lora = LoraConfig(rank=8, alpha=16.0, targets=("q", "k", "v", "o", "gate", "up", "down"))
        trained = lm.params if part == "train-full" else init_lora(lm.params, lora, jax.random.key(0))

        def loss(p, base):
            weights = p if part == "train-full" else with_lora(base, p, lora)
            return -sequence_logprobs(lm.graph, weights, b.tokens, b.mask, b.response_mask).mean()

        @jax.jit
        def step(p, o, base):
            v, g = jax.value_and_grad(loss)(p, base)
            u, o = opt.update(g, o, p)
            return optax.apply_updates(p, u), o, v

        state = opt.init(trained)
        s = timed(lambda: step(trained, state, lm.params))
        row.update(step_s=s, train_tokens_per_s=batch * tokens / s,
                   trainable_params=int(sum(x.size for x in jax.tree.leaves(trained))))
    row["peak_rss_gib"] = peak_gb()
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # a child process: one part
    args = parser.parse_args(argv)
    if args.part:
        print(json.dumps(measure(args.part, args.model, args.batch, args.tokens, args.new_tokens)))
        return
    rows = []
    for part in args.only.split(","):
        if part not in PARTS:
            parser.error(f"unknown part {part!r} (parts: {', '.join(PARTS)})")
        cmd = [sys.executable, __file__, "--part", part, "--model", args.model, "--batch", str(args.batch),
               "--tokens", str(args.tokens), "--new-tokens", str(args.new_tokens)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"error: {part} failed: {done.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "batch": args.batch, "tokens": args.tokens, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
