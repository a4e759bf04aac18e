"""Training a policy on a sequence game: the same algorithms, the same driver, checkpointed segments.

:func:`train` runs a registered algorithm's loss form (``gamelab.algorithms.parametric``) on a
:class:`~gamelab.llm.model.TransformerPolicy` — or on tabular logits over the same enumerated
sequences, which must give the tabular engine's numbers — through the driver's own loop body
(:func:`gamelab.run.segment`), in segments of ``checkpoint_every`` recordings. After each segment
the whole carry (parameters, optimizer state, reference, PRNG key, step) and the trace so far are
saved with orbax (``out/checkpoints``, written to a temporary folder and renamed when complete,
so a killed run never leaves a checkpoint that looks finished); the same command resumes from the
latest one and produces bit for bit the trace of an uninterrupted run. A tqdm bar shows progress.

Metrics are exact (the policy's distribution over all V^L sequences is enumerated each recording):
exploitability, duality gap, regularized gap against the reference (the initial, frozen
transformer: the uniform policy), entropy, win rate against the reference, and — from the class
marginal — KL(class-level Nash ‖ class marginal). The trace is stored like a sweep's
(``out/manifest.json``, ``out/chunks/*.parquet``), so ``gamelab plot`` and ``gamelab report`` read it.
"""
from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gamelab.algorithms import get_algorithm
from gamelab.algorithms.parametric import make_parametric
from gamelab.llm.games import SequenceGame, class_marginal, class_metrics
from gamelab.llm.model import TransformerPolicy
from gamelab.policies import Policy, TabularPolicy
from gamelab.run import _device_args, _metric_tau, final_row, recorded_steps, segment, start

METRICS = ("exploitability", "duality_gap", "regularized_gap", "entropy", "win_rate_vs_ref")


class TrainResult(NamedTuple):
    steps: np.ndarray  # (R,) recorded steps
    trace: dict  # metric -> (R,) arrays, plus kl_to_class_nash and class_marginal (R, m)
    logp: np.ndarray  # final log-distribution over the V^L sequences
    config: dict  # everything that defines the run (also written to out/run.json)
    seconds: float  # wall time of this call (a resumed run: since the resume)
    resumed_from: int  # recorded intervals restored from a checkpoint (0: fresh)


def make_policy(kind: str, game: SequenceGame, *, seed: int = 0, mesh=None, fsdp: bool = False, **model) -> Policy:
    if kind == "transformer":
        return TransformerPolicy(game.vocab, game.length, prompts=game.C.shape[0], seed=seed, mesh=mesh, fsdp=fsdp,
                                 **model)
    if kind == "tabular":
        return TabularPolicy(game.n)
    raise ValueError(f"policy must be 'transformer' or 'tabular', got {kind!r}")


def _saveable(tree) -> dict:
    """Leaves by index as NumPy (typed PRNG keys as their raw key data)."""
    leaves = jax.tree.leaves(tree)
    out = {}
    for i, x in enumerate(leaves):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        out[f"{i:05d}"] = np.asarray(x)
    return out


def _restore(saved: dict, like):
    leaves, treedef = jax.tree.flatten(like)
    if len(saved) != len(leaves):
        raise ValueError("the checkpoint does not match this run's state (a different algorithm or model?)")
    new = []
    for i, x in enumerate(leaves):
        v = saved[f"{i:05d}"]
        new.append(jax.random.wrap_key_data(jnp.asarray(v)) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
                   else jnp.asarray(v, x.dtype))
    return jax.tree.unflatten(treedef, new)


def train(algorithm: str, game: SequenceGame, *, steps: int, record_every: int = 10, policy: str | Policy = "transformer",
          feedback: str = "sampled", batch: int = 256, optimizer: str = "adam", hparams: dict | None = None,
          seed: int = 0, out=None, checkpoint_every: int = 10, progress: bool = True, mesh=None, fsdp: bool = False,
          model: dict | None = None) -> TrainResult:
    """Train ``algorithm`` (a registered name with a loss form; comal's steps are outer iterations)
    on the sequence game's first prompt for ``steps`` steps, recording every ``record_every``.

    ``policy``: 'transformer' (``model``: d_model, heads, layers, dtype), 'tabular', or a Policy.
    ``out``: a folder for the run's config, checkpoints and results (None: nothing written, no
    resume). ``checkpoint_every``: recordings per segment (one checkpoint each). ``mesh``: a device
    mesh; the transformer shards its batches over its first axis (data parallel), and with
    ``fsdp`` its weights too.
    """
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    if game.C.shape[0] > 1:
        raise ValueError("train runs one prompt; this game has several (their matrices: game.C)")
    hparams = dict(hparams or {})
    pol = policy if isinstance(policy, Policy) else make_policy(policy, game, seed=seed, mesh=mesh, fsdp=fsdp,
                                                                **(model or {}))
    algo = make_parametric(get_algorithm(algorithm), pol, feedback, batch, optimizer)
    hp = algo.make_hparams(**{"seed": seed, **hparams})
    config = {"algorithm": algorithm, "game": game.spec, "steps": steps, "record_every": record_every,
              "policy": repr(pol), "model": getattr(pol, "config", None), "feedback": feedback, "batch": batch,
              "optimizer": optimizer, "hparams": {k: float(v) for k, v in hp._asdict().items()}, "seed": seed,
              "checkpoint_every": checkpoint_every, "devices": None if mesh is None else int(mesh.size),
              "fsdp": fsdp}
    n = game.n
    uniform = np.full(n, -np.log(n))
    tau = _metric_tau(algo, hp, None)
    args = _device_args(game.matrix(0), hp, uniform, uniform, None, tau, jnp.float64)
    G, hp_dev, init_l, ref_l, _, tau_dev = args
    static = dict(record_policy=True, record_average=False, metrics=None)
    first = jax.jit(partial(start, algo, record_average=False))
    run_segment = jax.jit(partial(segment, algo, intervals=checkpoint_every, record_every=record_every, **static))
    last = jax.jit(partial(final_row, algo, **static))
    carry = first(G, hp_dev, init_l, ref_l)
    intervals = steps // record_every
    rows: list[dict] = []
    done, manager = 0, None
    t0 = time.time()
    if out is not None:
        import orbax.checkpoint as ocp

        out = Path(out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        saved_config = out / "run.json"
        if saved_config.exists():
            old = json.loads(saved_config.read_text())
            if old != json.loads(json.dumps(config)):
                changed = sorted(k for k in config if old.get(k) != json.loads(json.dumps(config))[k])
                raise ValueError(f"{out} holds a different run (differs in {', '.join(changed)}); use another --out")
        else:
            saved_config.write_text(json.dumps(config, indent=1))
        manager = ocp.CheckpointManager(out / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=2))
        latest = manager.latest_step()
        if latest is not None:
            saved = manager.restore(latest, args=ocp.args.StandardRestore())
            carry = _restore(saved["carry"], carry)
            rows = [{k: np.asarray(v)[i] for k, v in saved["rows"].items()} for i in range(latest)]
            done = int(latest)
    resumed = done
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=done * record_every, unit="step", desc=f"{algorithm} on {game.spec}")
    while done < intervals:
        k = min(checkpoint_every, intervals - done)
        seg = run_segment if k == checkpoint_every else jax.jit(partial(segment, algo, intervals=k,
                                                                          record_every=record_every, **static))
        carry, new = seg(G, hp_dev, carry, ref_l, None, tau_dev)
        new = jax.tree.map(np.asarray, new)
        rows += [{key: v[i] for key, v in new.items()} for i in range(k)]
        done += k
        if manager is not None:
            import orbax.checkpoint as ocp

            stacked = {key: np.stack([r[key] for r in rows]) for key in rows[0]}
            manager.save(done, args=ocp.args.StandardSave({"carry": _saveable(carry), "rows": stacked}))
            manager.wait_until_finished()
        if bar is not None:
            bar.update(k * record_every)
    if bar is not None:
        bar.close()
    final = jax.tree.map(np.asarray, last(G, hp_dev, carry, ref_l, None, tau_dev))
    trace = {key: np.stack([r[key] for r in rows] + [final[key]]) for key in final}
    q = np.asarray(jax.vmap(lambda p: class_marginal(game, jnp.log(p)))(jnp.asarray(trace["policy"])))
    trace["class_marginal"] = q
    trace["kl_to_class_nash"] = np.array([float(class_metrics(game, jnp.asarray(r))["kl_to_class_nash"]) for r in q])
    result = TrainResult(recorded_steps(steps, record_every), trace, np.asarray(carry[0].logp), config,
                         time.time() - t0, resumed)
    if out is not None:
        write_results(result, out)
    return result


def write_results(result: TrainResult, out: Path) -> None:
    """The trace as a one-run results folder (manifest + one Parquet chunk), like a sweep's."""
    from gamelab.results import trace_to_frame, write_chunk, write_manifest

    c = result.config
    run_row = {"run": 0, "algorithm": c["algorithm"], "game": c["game"], "n": int(result.logp.shape[-1]),
               "seed": c["seed"], **c["hparams"]}
    scalars = {k: v[None] for k, v in result.trace.items() if np.ndim(v) == 1}
    frame = trace_to_frame(scalars, result.steps, [run_row], "llm")
    frame = frame[frame.iterate == "last"].reset_index(drop=True)  # no average iterate is tracked
    frame["kl_to_class_nash"] = result.trace["kl_to_class_nash"]
    write_manifest(out, {"kind": "llm", "spec": c, "chunks": ["llm"]})
    write_chunk(out, "llm", frame)
