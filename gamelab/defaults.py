"""Every default of a run's options, in one place (and importable without JAX, for the CLI).

An algorithm's own hyper-parameters (η, τ, …) default in its registered NamedTuple
(``gamelab list`` shows them), and a sampled form's replacements in its ``SampledForm.defaults``;
the optimizers' learning rates in :data:`gamelab.algorithms.parametric.DEFAULT_LR`. Everything
else a run takes when it is not given is here; the library's signatures, the command line and
the sweep spec all read these names.
"""
import os
from pathlib import Path

STEPS = 1000  # `gamelab run` and `gamelab llm run`
RECORD_EVERY = 1  # gamelab.run.run / run_batch / `gamelab run`: every step
SEED = 0
EXACT_NASH_MAX_N = 1000  # target 'auto': the LP Nash (for kl_to_target) up to this many responses
SWEEP_RECORDS = 100  # a sweep records every max(1, steps // SWEEP_RECORDS) steps unless told
SWEEP_CHUNK_SIZE = 256  # runs per results file
SWEEP_CONFIRM_RUNS = 1_000_000  # `gamelab sweep` asks (or wants --yes) above this many runs
SWEEP_MAX_GAMES = 1_000_000  # a sweep's games (ranges expanded): more is refused before they are listed

# parametric policies (feedback 'exact' or 'sampled')
BATCH = 256  # sampled pairs per step
OPTIMIZER = "sgd"  # for tabular and low-capacity policies

# the transformer backend (gamelab.llm)
LLM_RECORD_EVERY = 10
LLM_CHECKPOINT_EVERY = 10  # recordings per checkpointed segment
LLM_OPTIMIZER = "adam"
TRANSFORMER_LR = 3e-3  # the transformer's learning rate (tabular logits keep the optimizer's DEFAULT_LR)
TRANSFORMER = {"d_model": 32, "heads": 2, "layers": 2}  # width, attention heads, blocks
EVAL_SAMPLES = 4096  # sampled metrics: responses per prompt and recording
LEVEL = 0.95  # sampled metrics: confidence level of the intervals

# real preference data (gamelab.votes and `gamelab nash --votes`)
VOTE_COLUMNS = {"left": "left", "right": "right", "winner": "winner", "annotator": "worker", "prompt": "prompt"}
VOTE_ESTIMATOR = "empirical"  # ties half a win each side, votes pooled over prompts, unseen pairs ½
VOTE_RESAMPLE = "votes"  # what a bootstrap of the maximal lottery resamples ('votes' or 'annotators')
BOOTSTRAP = 1000  # resamples of gamelab.votes.bootstrap_lottery
VOTE_SPLITS = 5  # held-out folds of gamelab.votes (held_out, select_rank) and `gamelab llm fit-judge`

# real language models (gamelab.llm.decoder and text; `gamelab llm generate`)
LLM_MAX_NEW_TOKENS = 64
LLM_TEMPERATURE = 0.0  # greedy decoding
LLM_TOP_P = 1.0  # no nucleus truncation

# `gamelab llm run --model`: a real model trained on the game of its own responses under a judge
LLM_JUDGE = "cyclic"  # gamelab.llm.judges.parse_judge
LLM_RESPONSE_TOKENS = (" yes", " no", " maybe", ".")  # the V tokens a response is made of (one token each)
LLM_RESPONSE_LENGTH = 3  # response tokens L: V^L responses, enumerated for the exact class-level gap
DECODER_LR = 1e-4  # a pretrained model's learning rate (its weights, or its LoRA adapters)
LLM_EMPIRICAL = 0  # --empirical K: answers per prompt from the final policy and the base model at the end (0: off)

# rate certificates (gamelab.rates, `gamelab rates`)
RATE_TAIL = 0.5  # the fraction of each trace (its end, above rounding level) that is fitted
RATE_FLOOR = 1e-12  # a metric at or below this is at rounding level: a fit stops where it gets there


OFF = ("", "0", "off", "none", "false")  # what turns GAMELAB_CACHE_DIR / GAMELAB_EXECUTABLES off


def compilation_cache_dir():
    """The persistent compilation cache's folder, a :class:`pathlib.Path` (None: disabled by
    ``GAMELAB_CACHE_DIR=off``): ``$GAMELAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/gamelab/jax``
    (``~/.cache/gamelab/jax``). gamelab's store of executables and its LP Nash solutions live in it."""
    value = os.environ.get("GAMELAB_CACHE_DIR")
    if value is not None and value.strip().lower() in OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gamelab" / "jax"
