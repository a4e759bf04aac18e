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
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gamelab.algorithms import get_algorithm
from gamelab.algorithms.parametric import make_parametric
from gamelab.llm.games import SequenceGame, class_marginal
from gamelab.llm.model import TransformerPolicy
from gamelab.policies import Policy, TabularPolicy
from gamelab.run import _check_steps, _device_args, _metric_tau, final_row, recorded_steps, segment, start

METRICS = ("exploitability", "duality_gap", "regularized_gap", "entropy", "win_rate_vs_ref")
# The exact metrics (and the driver's oracle) enumerate all V^L responses and hold the lifted
# (V^L, V^L) preference matrix in float64 — 2.1 GB at 16384, on the host and again on the device;
# beyond this, train refuses rather than exhaust memory (raise it on a large accelerator).
MAX_ENUMERATED = 16384


class TrainResult(NamedTuple):
    steps: np.ndarray  # (R,) recorded steps
    trace: dict  # metric -> (R,) arrays, plus kl_to_class_nash and class_marginal (R, m)
    logp: np.ndarray  # final log-distribution over the V^L sequences
    config: dict  # everything that defines the run (also written to out/run.json)
    seconds: float  # wall time of this call (a resumed run: since the resume)
    resumed_from: int  # recorded intervals restored from a checkpoint (0: fresh)


def make_policy(kind: str, game: SequenceGame, *, seed: int = 0, mesh=None, fsdp: bool = False, **model) -> Policy:
    """The policy of a run; one object per configuration (so a second run of the same
    configuration in this process hits the jit caches instead of compiling again)."""
    if kind == "transformer":
        return _transformer(game.vocab, game.length, game.C.shape[0], seed, mesh, fsdp, tuple(sorted(model.items())))
    if kind == "tabular":
        return _tabular(game.n)
    raise ValueError(f"policy must be 'transformer' or 'tabular', got {kind!r}")


@lru_cache(maxsize=16)
def _transformer(vocab, length, prompts, seed, mesh, fsdp, model) -> TransformerPolicy:
    return TransformerPolicy(vocab, length, prompts=prompts, seed=seed, mesh=mesh, fsdp=fsdp, **dict(model))


@lru_cache(maxsize=16)
def _tabular(n: int) -> TabularPolicy:
    return TabularPolicy(n)


# The driver's pieces, jitted once per (algorithm, policy, mesh, segment length): train() called
# twice in one process with the same configuration compiles nothing the second time.
_STATIC = dict(record_policy=True, record_average=False, metrics=None)


def _canonical(carry, policy, mesh):
    """The carry in one fixed layout over ``mesh``: parameters, reference and every parameter-shaped
    part of the optimizer state as ``policy.param_sharding`` says (FSDP: sharded), the rest
    replicated. Both the start and every segment return it, so the segment's input shardings never
    change and it compiles once (otherwise FSDP's sharded output would compile a second program)."""
    if mesh is None:
        return carry
    from jax.sharding import NamedSharding, PartitionSpec

    state, avg, t = carry
    replicated = NamedSharding(mesh, PartitionSpec())
    wsc = jax.lax.with_sharding_constraint
    if hasattr(policy, "param_sharding") and getattr(policy, "mesh", None) is not None:
        spec = policy.param_sharding(state.params)
    else:
        spec = jax.tree.map(lambda _: replicated, state.params)
    shape = jax.tree.structure(state.params)
    like_params = lambda x: jax.tree.structure(x) == shape  # noqa: E731
    rep = lambda tree: jax.tree.map(lambda x: wsc(x, replicated), tree)  # noqa: E731
    opt = jax.tree.map(lambda x: wsc(x, spec) if like_params(x) else rep(x), state.opt, is_leaf=like_params)
    state = state._replace(params=wsc(state.params, spec), ref=wsc(state.ref, spec), opt=opt,
                           **{f: rep(getattr(state, f)) for f in ("logp", "ref_logp", "key", "t", "loss")})
    return state, rep(avg), rep(t)


def _begin(algo, policy, mesh, G, hp, init_logp, ref_logp):
    return _canonical(start(algo, G, hp, init_logp, ref_logp, record_average=False), policy, mesh)


def _advance(algo, policy, mesh, G, hp, carry, ref_logp, tau, *, intervals, record_every):
    carry, rows = segment(algo, G, hp, carry, ref_logp, None, tau, intervals=intervals, record_every=record_every,
                          **_STATIC)
    return _canonical(carry, policy, mesh), rows


def _end(algo, G, hp, carry, ref_logp, tau):
    return final_row(algo, G, hp, carry, ref_logp, None, tau, **_STATIC)


_start = jax.jit(_begin, static_argnums=(0, 1, 2))
_segment = jax.jit(_advance, static_argnums=(0, 1, 2), static_argnames=("intervals", "record_every"))
_final = jax.jit(_end, static_argnums=(0,))


def _multiprocess(mesh) -> bool:
    return mesh is not None and len({d.process_index for d in mesh.devices.flat}) > 1


def _global(tree, mesh, like=None):
    """Every leaf as a global array over ``mesh`` — replicated, or laid out like the matching leaf
    of ``like`` — built from this host's copy, which every process holds identically: what a jit
    over a mesh spanning several processes needs (and, for ``like``, the layout it compiled for)."""
    if mesh is None:
        return tree
    from jax.sharding import NamedSharding, PartitionSpec

    replicated = NamedSharding(mesh, PartitionSpec())

    def put(x, model=None):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = put(jax.random.key_data(x), None if model is None else jax.random.key_data(model))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x  # already global
        v = np.asarray(x)
        sharding = replicated if model is None else model.sharding
        return jax.make_array_from_callback(v.shape, sharding, lambda index: v[index])

    return jax.tree.map(put, tree) if like is None else jax.tree.map(put, tree, like)


def _host(tree, mesh):
    """NumPy copies of (possibly global, possibly sharded) arrays, the same on every process."""
    if not _multiprocess(mesh):
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    def fetch(x):
        return np.asarray(x) if x.is_fully_replicated else multihost_utils.process_allgather(x, tiled=True)

    return jax.tree.map(fetch, tree)


def _barrier(name: str, mesh) -> None:
    if _multiprocess(mesh):
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _saveable(tree, mesh=None) -> dict:
    """Leaves by index as NumPy (typed PRNG keys as their raw key data)."""
    leaves = [jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
              for x in jax.tree.leaves(tree)]
    return {f"{i:05d}": x for i, x in enumerate(_host(leaves, mesh))}


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


def _check_config(out: Path, config: dict, mesh) -> None:
    """``out`` must be fresh or hold this very run; its run.json is written atomically (process 0)."""
    saved_config, wanted = out / "run.json", json.loads(json.dumps(config))
    if saved_config.exists():
        try:
            old = json.loads(saved_config.read_text())
        except ValueError:
            raise ValueError(f"{saved_config} is not a run's config (unreadable JSON); use another --out") from None
        if old != wanted:
            changed = sorted(k for k in set(wanted) | set(old) if old.get(k) != wanted.get(k))
            raise ValueError(f"{out} holds a different run (differs in {', '.join(changed)}); use another --out")
    _barrier("gamelab.llm: config checked", mesh)  # no process may read run.json while it is written
    if not saved_config.exists() and jax.process_index() == 0:
        tmp = out / f".run.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(config, indent=1))
        os.replace(tmp, saved_config)


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
    ``fsdp`` its weights too. The mesh may span several processes (``jax.distributed``): each
    process then calls ``train`` with the same arguments and gets the same result; process 0
    writes the files. An ``out`` that holds a different run (another config) raises ValueError.
    """
    _check_steps(steps, record_every)
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
            or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    if game.n > MAX_ENUMERATED:
        raise ValueError(f"V^L = {game.n} responses: train enumerates every response and the lifted {game.n}×{game.n} "
                         f"preference matrix ({8 * game.n**2 / 2**30:.0f} GiB); at most "
                         f"gamelab.llm.train.MAX_ENUMERATED = {MAX_ENUMERATED} responses")
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
    G, hp_dev, init_l, ref_l, _, tau_dev = _global(args, mesh)
    intervals = steps // record_every
    rows: list[dict] = []
    done, manager = 0, None
    writer = jax.process_index() == 0
    t0 = time.time()
    if out is not None:  # before anything compiles: a wrong --out fails at once
        out = Path(out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        _check_config(out, config, mesh)
    carry = _start(algo, pol, mesh, G, hp_dev, init_l, ref_l)
    if out is not None:
        import orbax.checkpoint as ocp

        manager = ocp.CheckpointManager(out / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=2))
        latest = manager.latest_step()  # only finished checkpoints: orbax renames a complete temporary folder
        if latest is not None:
            saved = manager.restore(latest, args=ocp.args.StandardRestore())
            carry = _global(_restore(saved["carry"], carry), mesh, like=carry)
            rows = [{k: np.asarray(v)[i] for k, v in saved["rows"].items()} for i in range(latest)]
            done = int(latest)
    resumed = done
    bar = None
    if progress and writer:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=done * record_every, unit="step", desc=f"{algorithm} on {game.spec}")
    while done < intervals:
        k = min(checkpoint_every, intervals - done)
        carry, new = _segment(algo, pol, mesh, G, hp_dev, carry, ref_l, tau_dev, intervals=k,
                              record_every=record_every)
        new = _host(new, mesh)
        rows += [{key: v[i] for key, v in new.items()} for i in range(k)]
        done += k
        if manager is not None:
            import orbax.checkpoint as ocp

            stacked = {key: np.stack([r[key] for r in rows]) for key in rows[0]}
            manager.save(done, args=ocp.args.StandardSave({"carry": _saveable(carry, mesh), "rows": stacked}))
            manager.wait_until_finished()
        if bar is not None:
            bar.update(k * record_every)
    if bar is not None:
        bar.close()
    if manager is not None:
        manager.close()
    final = _host(_final(algo, G, hp_dev, carry, ref_l, tau_dev), mesh)
    trace = {key: np.stack([r[key] for r in rows] + [final[key]]) for key in final}
    q = np.asarray(jax.vmap(lambda p: class_marginal(game, jnp.log(p)))(jnp.asarray(trace["policy"])))
    trace["class_marginal"] = q
    star = game.class_nash(0)  # one LP, not one per row
    support = star > 0
    with np.errstate(divide="ignore"):
        terms = star * (np.log(np.where(support, star, 1.0)) - np.log(q))
    trace["kl_to_class_nash"] = np.sum(np.where(support, terms, 0.0), axis=-1)
    result = TrainResult(recorded_steps(steps, record_every), trace, _host(carry[0].logp, mesh), config,
                         time.time() - t0, resumed)
    if out is not None and writer:
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
