"""The ``gamelab`` command line (typer; thin: parse, validate, call the library, print)."""
from __future__ import annotations

import gc
import json
import math
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from gamelab import defaults

# Each command imports what it uses: --help needs typer alone; `list` and an error about a bad
# argument only the registries (which import without JAX: gamelab.lazy); the engine
# (gamelab.run, gamelab.nash, JAX) is imported by a command that has work to do.
# Help and usage errors are click's plain text, not rich's panels: importing rich's markdown and
# syntax-highlighting stack cost 0.1 s, as much as the rest of `gamelab --help` together.
PLAIN = dict(no_args_is_help=True, rich_markup_mode=None)

app = typer.Typer(
    help="gamelab: which alignment algorithms reach the Nash policy of a preference game, in the last iterate?",
    add_completion=False,
    pretty_exceptions_enable=False,
    **PLAIN,
)

@app.callback()
def _host(
    cpu_devices: Optional[int] = typer.Option(
        None, "--cpu-devices", envvar="GAMELAB_CPU_DEVICES", show_default="every core",
        help="CPU cores exposed to JAX as devices: sweeps shard their runs over them (1: a single device; "
             "ignored where XLA_FLAGS forces a device count)"),
):
    """Before any command: expose the host's cores as JAX CPU devices (gamelab.hosts)."""
    from gamelab.hosts import use_cpu_cores

    try:
        use_cpu_cores(cpu_devices)
    except ValueError as exc:
        fail(str(exc))


GAME_HELP = "a named game (e.g. comal3, rps, cyclic:n=5, random:n=10,seed=3; see `gamelab list`) or a matrix file"


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path."""
    import errno

    if not isinstance(exc, OSError) or type(exc).__name__ == "ResultsFolderError" or exc.errno is None:
        return str(exc)
    what = {errno.ENOSPC: "no space left on the device", errno.EACCES: "permission denied",
            errno.EROFS: "read-only file system", errno.ENOTDIR: "not a folder", errno.EISDIR: "a folder, not a file",
            errno.EEXIST: "already exists", errno.EDQUOT: "disk quota exceeded"}.get(exc.errno, exc.strerror)
    return f"{what}: {exc.filename}" if exc.filename else what


def load_game(spec: str, antisymmetrize: bool = False):
    """The game of a spec; a generated game too large for this machine's memory is refused with
    the estimate before it is built."""
    from gamelab.games import InvalidGameError, parse_game
    from gamelab.games.named import run_memory, spec_size
    from gamelab.hosts import available_memory

    try:
        n = spec_size(spec)
        free = available_memory()
        if n is not None and free is not None and run_memory(n) > free:
            fail(f"{spec}: a run on {n} responses needs about {run_memory(n) / 2**30:.1f} GiB (a few copies of its "
                 f"{n}×{n} matrix, {8 * n * n / 2**30:.1f} GiB each, while it is built, checked and run); "
                 f"{free / 2**30:.1f} GiB are available")
        return parse_game(spec, antisymmetrize=antisymmetrize)
    except InvalidGameError as exc:
        fail(str(exc))


def load_table(spec: str, antisymmetrize: bool):
    """A tuple cross-table file (with its responses' names and correction), or None for any other
    game spec."""
    from gamelab.games import InvalidGameError
    from gamelab.games.io import is_crosstable_file, load_crosstable

    if not Path(spec).is_file():
        return None
    try:
        return load_crosstable(spec, antisymmetrize=antisymmetrize) if is_crosstable_file(spec) else None
    except InvalidGameError as exc:
        fail(str(exc))


def parse_policy(text: Optional[str]):
    """'uniform', 'random' or comma-separated weights."""
    if text is None or text in ("uniform", "random"):
        return text
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        fail(f"a policy is 'uniform', 'random' or comma-separated numbers, got {text!r}")


def init_distributed(coordinator, num_processes, process_id, distributed: bool = False) -> bool:
    """jax.distributed.initialize when asked (a coordinator, or --distributed); whether it was."""
    if not (distributed or coordinator is not None):
        return False
    import jax

    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (ValueError, RuntimeError) as exc:
        fail(f"jax.distributed.initialize failed: {exc}")
    return True


def parse_settings(items: List[str]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            fail(f"--set takes NAME=VALUE, got {item!r}")
        out[key] = parse_number(value, f"--set {key}")
    return out


def parse_number(text: str, where: str):
    """An int ('3') or a finite float ('0.1', '1e-3'); anything else fails naming ``where``."""
    try:
        number = float(text)
    except ValueError:
        fail(f"{where}: {text!r} is not a number")
    if not math.isfinite(number):
        fail(f"{where}: {text!r} is not a finite number")
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def jsonable(x):
    """Floats for JSON; non-finite values become null (JSON has no inf or NaN)."""
    import numpy as np

    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    arr = np.asarray(x)
    if arr.ndim:
        return [jsonable(v) for v in arr.tolist()]
    v = arr.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@app.command("list")
def list_cmd():
    """List the registered algorithms and the named games."""
    from gamelab.algorithms import REGISTRY, algorithm_names
    from gamelab.games import describe_games

    typer.echo("Algorithms (hyper-parameters with defaults; what the last iterate converges to):")
    for name in algorithm_names():
        algo = REGISTRY[name]
        hp = ", ".join(f"{f}={v}" for f, v in zip(algo.hparams._fields, algo.hparams())) or "-"
        typer.echo(f"  {name:<22} {hp:<48} -> {algo.target}")
        typer.echo(f"  {'':<22} {algo.description}")
        if algo.sampled is not None and algo.sampled.defaults:
            changed = ", ".join(f"{k}={v}" for k, v in algo.sampled.defaults)
            typer.echo(f"  {'':<22} (with --feedback sampled the defaults are {changed})")
    without = [n for n in algorithm_names() if REGISTRY[n].sampled is None]
    typer.echo(f"\nEvery algorithm but {', '.join(without)} also runs from sampled or exact feedback on a"
               " parametric policy (--feedback sampled|exact).")
    typer.echo("\nGames (NAME:param=value,...; or a path to a .npy/.csv/.txt matrix or a cross-table):")
    for name, params, description in describe_games():
        typer.echo(f"  {name:<12} {params:<34} {description}")


@app.command()
def nash(
    game: Optional[str] = typer.Argument(None, help=GAME_HELP + " (or --votes FILE)"),
    tau: Optional[float] = typer.Option(None, help="also compute the KL-regularized Nash for this τ (> 0)"),
    ref: Optional[str] = typer.Option(None, help="reference policy for --tau: 'uniform' or comma-separated weights"),
    antisymmetrize: bool = typer.Option(False, help="antisymmetrize a noisy cross-table before use"),
    votes: Optional[Path] = typer.Option(None, help="a file of pairwise votes (CSV with a header, or .jsonl): the game "
                                                   "is estimated from them (gamelab.votes)"),
    estimator: str = typer.Option(defaults.VOTE_ESTIMATOR, help="votes: empirical (ties half a win, unseen pairs ½) | bt "
                                                   "(Bradley–Terry) | gpm (general preference model)"),
    rank: Optional[int] = typer.Option(None, help="votes, --estimator gpm: the rank (default: by held-out likelihood)"),
    left_column: str = typer.Option(defaults.VOTE_COLUMNS["left"], help="votes: the column of the left item"),
    right_column: str = typer.Option(defaults.VOTE_COLUMNS["right"], help="votes: the column of the right item"),
    winner_column: str = typer.Option(defaults.VOTE_COLUMNS["winner"], help="votes: the column of the winner (left, right, tie)"),
    annotator_column: str = typer.Option(defaults.VOTE_COLUMNS["annotator"], help="votes: the annotator column (used if present)"),
    prompt_column: str = typer.Option(defaults.VOTE_COLUMNS["prompt"], help="votes: the prompt column (used if present)"),
    prompt: Optional[List[str]] = typer.Option(None, help="votes: only the votes on this prompt (repeatable)"),
    annotator: Optional[List[str]] = typer.Option(None, help="votes: only the votes by this annotator (repeatable)"),
    write_matrix: Optional[Path] = typer.Option(None, help="votes: write the estimated matrix as CSV with a header of "
                                                          "names (gamelab nash FILE reads it back)"),
    bootstrap: int = typer.Option(0, help="votes: bootstrap resamples of the maximal lottery (0: none; "
                                          f"e.g. {defaults.BOOTSTRAP})"),
    resample: str = typer.Option(defaults.VOTE_RESAMPLE, help="votes, --bootstrap: resample 'votes' or 'annotators'"),
    seed: int = typer.Option(defaults.SEED, help="votes: seed of the bootstrap and of the gpm fit"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Exact Nash policy by linear programming (and the regularized Nash with --tau); with --votes,
    the maximal lottery of a game estimated from pairwise votes."""
    import numpy as np

    from gamelab.nash import exact_nash, regularized_nash

    if (game is None) == (votes is None):
        fail("give a game or --votes FILE (one of them)")
    weights = parse_policy(ref) if tau is not None else None
    names, table, extra = None, None, {}
    if votes is not None:
        if antisymmetrize:
            fail("--antisymmetrize applies to cross-tables, not to --votes")
        P, names, extra = votes_game(votes, estimator=estimator, rank=rank, prompt=prompt, annotator=annotator,
                                     columns=dict(left=left_column, right=right_column, winner=winner_column,
                                                  annotator=annotator_column, prompt=prompt_column),
                                     write_matrix=write_matrix, bootstrap=bootstrap, resample=resample, seed=seed)
        game = str(votes)
    else:
        for flag, given in (("--write-matrix", write_matrix is not None), ("--bootstrap", bootstrap != 0),
                            ("--rank", rank is not None), ("--prompt", bool(prompt)), ("--annotator", bool(annotator))):
            if given:
                fail(f"{flag} applies to --votes")
        table = load_table(game, antisymmetrize)
        g = table.game if table is not None else load_game(game, antisymmetrize)
        P = np.asarray(g.P)
        names = table.names if table is not None else header_names(game)
    sol = exact_nash(P)
    out = {"game": game, "n": int(P.shape[0]), "policy": sol.policy, "exploitability": sol.exploitability,
           "duality_gap": sol.duality_gap}
    if names is not None:  # a cross-table, a matrix with a header or votes: the responses' names
        out["names"] = list(names)
    if table is not None and antisymmetrize:  # what antisymmetrizing changed
        out["correction"] = table.correction._asdict()
    out.update(extra)
    if tau is not None:
        try:
            reg = regularized_nash(P, None if weights in (None, "uniform") else weights, tau)
        except (ValueError, RuntimeError) as exc:
            fail(str(exc))
        out["regularized"] = {"tau": tau, "policy": reg.policy, "duality_gap": float(2 * max(P @ reg.policy) - 1),
                              "residual": reg.residual}
    if as_json:
        typer.echo(json.dumps(jsonable(out)))
        return
    what = "Maximal lottery" if votes is not None else "Nash"
    typer.echo(f"{what} of {game} (n = {out['n']}): exploitability {sol.exploitability:.3e}, duality gap {sol.duality_gap:.3e}")
    if votes is not None:
        typer.echo(f"  {out['votes_used']} votes, estimator {estimator}"
                   + (f" (rank {out['rank']})" if out.get("rank") is not None else ""))
    if "correction" in out:
        c = table.correction
        typer.echo(f"  antisymmetrized: max |V + Vᵀ| was {c.max_abs_asymmetry:.6g}, max |diagonal| {c.max_abs_diagonal:.6g};"
                   f" the largest change of P is {c.max_abs_change:.6g}")
    if names is not None:
        support = [i for i in np.argsort(-sol.policy, kind="stable") if sol.policy[i] > 1e-9]
        typer.echo(f"  support ({len(support)} of {out['n']}): "
                   + ", ".join(f"{names[i]} {sol.policy[i]:.6f}" for i in support))
    else:
        typer.echo("  policy: " + np.array2string(sol.policy, precision=6, max_line_width=100))
    if "bootstrap" in out:
        b = out["bootstrap"]
        typer.echo(f"  bootstrap ({b['resamples']} resamples of the {b['resample']}, {b['seconds']:.1f} s): "
                   f"{b['level']:.0%} intervals, Pr(in support), Bradley–Terry and win-rate ranks")
        order = np.argsort(-np.asarray(b["in_support"]) - np.asarray(sol.policy), kind="stable")
        width = max(len(x) for x in names)
        for i in order:
            if b["in_support"][i] > 0 or sol.policy[i] > 1e-9:
                typer.echo(f"    {names[i]:<{width}}  {sol.policy[i]:.4f} [{b['low'][i]:.4f}, {b['high'][i]:.4f}]  "
                           f"{b['in_support'][i]:.3f}  bt #{out['bt_rank'][i]}  win-rate #{out['win_rate_rank'][i]}")
    if write_matrix is not None:
        typer.echo(f"  matrix written to {write_matrix}")
    if tau is not None:
        r = out["regularized"]
        typer.echo(f"Regularized Nash (τ = {tau}): unregularized duality gap {r['duality_gap']:.5f}")
        typer.echo("  policy: " + np.array2string(np.asarray(r["policy"]), precision=6, max_line_width=100))


def header_names(spec: str):
    """The names in a matrix CSV's header row (None: not a file, or no header)."""
    from gamelab.games import InvalidGameError, load_named_matrix

    if not (Path(spec).is_file() and spec.lower().endswith(".csv")):
        return None
    try:
        return load_named_matrix(spec)[0]
    except InvalidGameError as exc:
        fail(str(exc))


def votes_game(path: Path, *, estimator: str, rank, prompt, annotator, columns: dict, write_matrix, bootstrap: int,
               resample: str, seed: int):
    """(P, names, extra output) of `gamelab nash --votes`: load, filter, estimate, optionally write
    the matrix and bootstrap the maximal lottery (gamelab.votes)."""
    from gamelab import votes as V

    if estimator not in V.ESTIMATORS:
        fail(f"--estimator must be one of {', '.join(V.ESTIMATORS)}, got {estimator!r}")
    if rank is not None and (estimator != "gpm" or rank < 0):
        fail("--rank takes an integer ≥ 0 and applies to --estimator gpm")
    if bootstrap < 0:
        fail(f"--bootstrap must be ≥ 0, got {bootstrap}")
    if resample not in ("votes", "annotators"):
        fail(f"--resample must be 'votes' or 'annotators', got {resample!r}")
    try:
        data = V.load_votes(path, **columns)
        if prompt or annotator:
            data = V.select(data, prompts=prompt or None, annotators=annotator or None)
        if estimator == "gpm" and rank is None:
            rank, _ = V.select_rank(data, seed=seed)
        P = V.estimate(data, estimator, rank=rank, seed=seed)
        ranks = V.rankings(data)
        extra = {"votes_used": data.size, "estimator": estimator, "rank": rank if estimator == "gpm" else None,
                 "bt_reward": ranks.bt_reward, "bt_rank": ranks.bt_rank, "win_rate": ranks.win_rate,
                 "win_rate_rank": ranks.win_rate_rank}
        if bootstrap:
            if estimator != "empirical":
                fail("--bootstrap resamples the empirical matrix: use it with --estimator empirical")
            lot = V.bootstrap_lottery(data, bootstrap, resample=resample, seed=seed)
            extra["bootstrap"] = {"resamples": bootstrap, "resample": resample, "level": V.LEVEL, "low": lot.low,
                                  "high": lot.high, "in_support": lot.in_support,
                                  "max_exploitability": lot.max_exploitability, "seconds": lot.seconds}
    except ValueError as exc:  # VoteFileError and bad filters
        fail(str(exc))
    if write_matrix is not None:
        try:
            V.write_matrix(write_matrix, P, data.names)
        except OSError as exc:
            fail(os_error(exc))
    return P, data.names, extra


@app.command()
def run(
    algorithm: str = typer.Argument(..., help="registered algorithm (see `gamelab list`); comal:inner=mmd picks COMAL's inner solver"),
    game: str = typer.Argument(..., help=GAME_HELP),
    steps: int = typer.Option(defaults.STEPS, help="steps to run (for comal: outer prox iterations)"),
    eta: Optional[float] = typer.Option(None, help="step size η"),
    tau: Optional[float] = typer.Option(None, help="KL regularization τ"),
    inner: Optional[int] = typer.Option(None, help="comal: inner solver steps per outer iteration"),
    inner_tol: Optional[float] = typer.Option(None, help="comal: stop the inner solve at this regularized gap"),
    settings: List[str] = typer.Option([], "--set", help="any other hyper-parameter, NAME=VALUE (repeatable)"),
    record_every: int = typer.Option(defaults.RECORD_EVERY, help="record metrics every k steps"),
    init: Optional[str] = typer.Option(None, help="initial policy: uniform (default), random, or weights 'w1,w2,...'"),
    ref: Optional[str] = typer.Option(None, help="reference policy: uniform (default), random, or weights"),
    seed: int = typer.Option(defaults.SEED, help="seed for random init/ref and for sampled feedback"),
    target: str = typer.Option("auto", help="KL target of kl_to_target: nash (solve the LP), maxent_nash (the "
                               "maximum-entropy Nash: which Nash a run selects), none, or auto (nash up "
                               f"to {defaults.EXACT_NASH_MAX_N} responses: the dense LP grows too slow beyond)"),
    feedback: str = typer.Option("closed", help="closed (the tabular closed-form update), exact (the loss on all "
                                 "pairs, minimized by the optimizer) or sampled (the loss on --batch sampled pairs)"),
    batch: Optional[int] = typer.Option(None, help=f"sampled feedback: pairs per step (default {defaults.BATCH})"),
    optimizer: Optional[str] = typer.Option(None, help="exact/sampled: sgd (default), adam, rmsprop or adabelief"),
    lr: Optional[float] = typer.Option(None, help="exact/sampled: learning rate (default per optimizer)"),
    updates: Optional[int] = typer.Option(None, help="exact/sampled: optimizer steps per batch (default 1)"),
    flip: Optional[float] = typer.Option(None, help="exact/sampled: label flip rate in [0, 0.5) (default 0)"),
    policy: Optional[str] = typer.Option(None, help="exact/sampled: tabular (default) or linear:d=K (low capacity)"),
    float32: bool = typer.Option(False, help="single precision (default float64)"),
    antisymmetrize: bool = typer.Option(False, help="antisymmetrize a noisy cross-table before use"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (policy, gaps, trace)"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="a progress bar (default: on a terminal, for runs of 10,000 "
                                                 "steps or more, sampled or exact feedback, or comal)"),
):
    """Run one algorithm on one game and report last- and average-iterate gaps.

    With --feedback exact or sampled the algorithm's loss form runs on a parametric policy
    (sampled-feedback defaults may differ from the tabular ones: see `gamelab list`)."""
    import numpy as np

    from gamelab.algorithms import get_algorithm

    hp = parse_settings(settings)
    for key, value in (("eta", eta), ("tau", tau), ("inner", inner), ("inner_tol", inner_tol), ("lr", lr),
                       ("updates", updates), ("flip", flip)):
        if value is not None:
            hp[key] = value
    init_policy, ref_policy = parse_policy(init), parse_policy(ref)
    try:  # a bad name, or a bad hyper-parameter of the closed form, fails before the game imports JAX
        registered = get_algorithm(algorithm)
        if feedback == "closed":
            registered.make_hparams(**hp)
    except ValueError as exc:
        fail(str(exc))
    g = load_game(game, antisymmetrize)
    from gamelab.prepare import prepare
    from gamelab.run import execute

    try:
        prep = prepare(algorithm, g, batched=False, steps=steps, record_every=record_every, hparams=hp,
                       init=init_policy, ref=ref_policy, seeds=seed, dtype="float32" if float32 else None,
                       target=None if target == "none" else target,
                       feedback=feedback, policy=policy, batch=batch, optimizer=optimizer)
        if progress is None:  # a long run at a terminal: cut into calls that move a bar (two more compiles)
            progress = sys.stderr.isatty() and not as_json and (
                steps >= 10_000 or feedback != "closed" or prep.algo.name == "comal")
        result = execute(prep, progress=progress)
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    algo, hparams = prep.algo, {k: np.asarray(v).item() for k, v in prep.hparams._asdict().items()}
    trace = [{"step": int(s), **{k: v[i] for k, v in result.trace.items()}} for i, s in enumerate(result.steps)]
    out = {
        "algorithm": algo.name, "game": game, "steps": steps, "hparams": hparams, "feedback": feedback,
        "policy": result.policy, "avg_policy": result.avg_policy, **result.final, "trace": trace,
    }
    if as_json:
        typer.echo(json.dumps(jsonable(out)))
        return
    show = ["duality_gap", "avg_duality_gap", "regularized_gap", "kl_to_target", "entropy"]
    if "worst_group_win_rate_vs_ref" in result.trace:  # a multi-group game: the groups' view first
        show = ["worst_group_win_rate_vs_ref", "mean_group_win_rate_vs_ref", "duality_gap", "entropy"]
    cols = [c for c in show if c in result.trace]
    typer.echo(f"{algo.name} on {game}, {steps} steps, " + ", ".join(f"{k}={v}" for k, v in hparams.items()))
    if feedback != "closed":
        typer.echo(algo.description)
    typer.echo(f"{'step':>8} " + " ".join(f"{c:>16}" for c in cols))
    rows = np.unique(np.linspace(0, len(trace) - 1, min(len(trace), 11)).astype(int))
    for i in rows:
        typer.echo(f"{trace[i]['step']:>8} " + " ".join(f"{float(trace[i][c]):>16.6e}" for c in cols))
    typer.echo("last-iterate policy: " + np.array2string(np.asarray(result.policy), precision=6, max_line_width=100))
    groups = sorted(k for k in result.final if k.startswith("group") and k.endswith("_win_rate_vs_ref"))
    if groups:
        typer.echo("win rate against the reference per group: "
                   + ", ".join(f"{k.split('_')[0]} {float(result.final[k]):.4f}" for k in groups))
    typer.echo(f"duality gap {float(result.final['duality_gap']):.3e} (exploitability "
               f"{float(result.final['exploitability']):.3e}); average iterate {float(result.final['avg_duality_gap']):.3e}")


DEMO = [  # (label, algorithm, hyper-parameters, steps): every registered algorithm of one population
    ("mwu (=SPPO)", "mwu", {"eta": 0.1}, 2000),
    ("omwu", "omwu", {"eta": 1.0}, 2000),
    ("extragradient", "extragradient", {"eta": 1.0}, 2000),
    ("inpo", "inpo", {"eta": 0.1, "tau": 0.1}, 2000),
    ("nash_md", "nash_md", {"eta": 0.1, "tau": 0.1}, 2000),
    ("nash_md_pg", "nash_md_pg", {"eta": 1.0, "tau": 0.1, "mix": 0.125}, 2000),
    ("mmd", "mmd", {"eta": 0.1, "tau": 0.1}, 2000),
    ("mpo", "mpo", {"eta": 0.1, "tau": 0.1, "refresh_every": 200}, 2000),
    ("comal", "comal", {"eta": 0.1, "tau": 0.1, "inner": 200}, 10),
    ("iterative_ipo", "iterative_ipo", {"tau": 0.1}, 2000),
    ("exo", "exo", {"beta": 0.1}, 2000),  # closed form = iterative_ipo's (τ = β); they differ when sampled
    ("iterative_dpo", "iterative_dpo", {"beta": 1.0}, 2000),
    ("fictitious_play", "fictitious_play", {}, 2000),
    ("regret_matching", "regret_matching", {}, 2000),
    ("regret_matching+", "regret_matching_plus", {}, 2000),
    ("replicator", "replicator", {"eta": 1.0}, 2000),
]


@app.command()
def demo(
    game: str = typer.Argument("comal3", help=GAME_HELP),
    out: Path = typer.Option(Path("outputs/demo"), help="folder for the figure"),
):
    """The default demo: every algorithm family on a non-transitive game; a table and a gap plot."""
    import numpy as np

    from gamelab.plots import plot_gap_curves
    from gamelab.run import run as run_algorithm

    g = load_game(game)
    curves, averages, rows = {}, {}, []
    with typer.progressbar(DEMO, label=f"running {len(DEMO)} algorithms on {game}") as bar:
        for label, name, hp, steps in bar:
            r = run_algorithm(name, g, steps=steps, **hp)
            x = r.steps * (hp["inner"] if name == "comal" else 1)  # COMAL: count inner solver steps
            curves[label] = (x, np.asarray(r.trace["duality_gap"]))
            averages[label] = (x, np.asarray(r.trace["avg_duality_gap"]))
            rows.append((label, hp, float(r.final["duality_gap"]), float(r.final["avg_duality_gap"]),
                         float(np.asarray(r.trace["duality_gap"]).min())))
    typer.echo(f"\nFinal duality gaps on {game} after 2000 solver steps (COMAL: 10 outer × 200 inner):")
    typer.echo(f"{'algorithm':<18} {'hyper-parameters':<40} {'last iterate':>13} {'average':>11} {'best last':>11}")
    for label, hp, last, avg, best in rows:
        hps = ", ".join(f"{k}={v}" for k, v in hp.items())
        typer.echo(f"{label:<18} {hps:<40} {last:>13.3e} {avg:>11.3e} {best:>11.3e}")
    slug = Path(game).stem if Path(game).is_file() else game.replace(":", "_").replace(",", "_").replace("=", "")
    paths = plot_gap_curves(curves, out / f"gap_curves_{slug}",
                            title=f"Duality gap on {game}: last iterate (solid), average iterate (dashed)",
                            averages=averages, xlabel="solver step (COMAL: outer iteration × inner steps)")
    typer.echo("figure: " + ", ".join(str(p) for p in paths))


PLOT_KINDS = ("gaps", "simplex", "heatmap", "policy", "all")


def load_results_or_fail(results: Path):
    from gamelab.results import load_results

    if not results.is_dir():
        fail(f"{results} is not a folder (give a results folder written by `gamelab sweep`)")
    try:
        return load_results(results)
    except (FileNotFoundError, ValueError, OSError) as exc:
        fail(str(exc))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in str(text)).strip("_")


@app.command()
def plot(
    results: Path = typer.Argument(..., help="a results folder (written by `gamelab sweep`)"),
    kind: str = typer.Option("all", help="gaps | simplex | heatmap | policy | all"),
    metric: str = typer.Option("duality_gap", help="metric to plot (gaps, heatmap)"),
    out: Optional[Path] = typer.Option(None, help="folder for the figures (default RESULTS/_figures)"),
    game: Optional[str] = typer.Option(None, help="only this game (its spec as in the sweep)"),
    x: str = typer.Option("eta", help="heatmap: hyper-parameter on the x axis"),
    y: str = typer.Option("tau", help="heatmap: hyper-parameter on the y axis"),
):
    """Figures from a results folder: gap curves, simplex trajectories, η×τ heatmaps, policy evolution."""
    if kind not in PLOT_KINDS:
        fail(f"--kind must be one of {', '.join(PLOT_KINDS)}, got {kind!r}")
    df = load_results_or_fail(results)
    from gamelab import plots
    from gamelab.results import FIGURES

    if metric not in df.columns:
        fail(f"metric {metric!r} is not in the results")
    if game is not None:
        if game not in set(df["game"]):
            fail(f"game {game!r} is not in the results (have: {', '.join(sorted(set(df['game'])))})")
        df = df[df["game"] == game]
    out = out if out is not None else results / FIGURES
    tag = f"_{_slug(game)}" if game else ""
    written, skipped = [], []
    has_policy = "policy" in df.columns
    jobs = []
    if kind in ("gaps", "all"):
        jobs.append(("gaps", lambda: plots.plot_gaps(df, out / f"gaps_{metric}{tag}", metric=metric)))
    if kind in ("simplex", "all"):
        if kind == "all" and not has_policy:
            skipped.append("simplex (no policy column: record policies in the sweep)")
        elif kind == "all" and "n" in df.columns and not (df.groupby("game")["n"].first() == 3).any():
            skipped.append("simplex (no 3-response game)")
        else:
            jobs.append(("simplex", lambda: plots.plot_simplex(df, out / f"simplex{tag}", game=game)))
    if kind in ("heatmap", "all"):
        takes_both = x in df.columns and y in df.columns and (df[x].notna() & df[y].notna()).any()
        if kind == "all" and not takes_both:
            skipped.append(f"heatmap (no run takes both {x} and {y})")
        else:
            jobs.append(("heatmap", lambda: plots.plot_heatmap(df, out / f"heatmap_{metric}_{x}_{y}{tag}",
                                                               metric=metric, x=x, y=y)))
    if kind in ("policy", "all"):
        if kind == "all" and not has_policy:
            skipped.append("policy (no policy column: record policies in the sweep)")
        else:
            first_runs = [] if not has_policy else df.groupby("algorithm")["run"].min().sort_values().tolist()
            for r in first_runs or [None]:  # the first run of each algorithm
                jobs.append(("policy", lambda r=r: plots.plot_policy_evolution(df, out / f"policy_run{r}", run=r)))
    for name, job in jobs:
        try:
            written += job()
        except ValueError as exc:
            fail(f"{name}: {exc}")
    for note in skipped:
        typer.echo(f"skipped {note}", err=True)
    for p in written:
        typer.echo(str(p))


@app.command()
def report(
    results: Path = typer.Argument(..., help="a results folder (written by `gamelab sweep`)"),
    csv: Optional[Path] = typer.Option(None, help="also write the summary table to this CSV file"),
    metric: str = typer.Option("duality_gap", help="metric the gaps, thresholds and verdicts refer to"),
):
    """One line per algorithm × game × configuration: final/best gaps, steps to 1e-3/1e-6/1e-9, verdict."""
    df = load_results_or_fail(results)
    from gamelab.report import format_table, summarize

    try:
        summary = summarize(df, metric=metric)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"{metric} in {results} (medians over seeds; steps in the table's units, COMAL: outer iterations)")
    typer.echo(format_table(summary))
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        summary.to_csv(csv, index=False)
        typer.echo(f"csv: {csv}")


@app.command()
def rates(
    results: Path = typer.Argument(..., help="a results folder (written by `gamelab sweep` or `gamelab llm run`)"),
    metric: Optional[str] = typer.Option(None, help="the metric to fit for every run (default: the duality gap; the "
                                                    "regularized gap for runs that target the τ-regularized Nash)"),
    tail: float = typer.Option(defaults.RATE_TAIL, help="fraction of each trace (its end, above rounding level) "
                                                        "that is fitted"),
    csv: Optional[Path] = typer.Option(None, help="also write the table to this CSV file"),
    plot: Optional[Path] = typer.Option(None, help="also draw each run's curve with its fitted rate (PATH.png/.svg)"),
    sources: bool = typer.Option(False, help="also print the source of each prediction"),
):
    """Rate certificates: each run's last-iterate rate (linear ρ or power-law α, with intervals)
    fitted over the tail of its trace, what theory predicts for it, and a verdict."""
    df = load_results_or_fail(results)
    from gamelab.rates import certify, format_rates
    from gamelab.results import read_manifest

    if not 0 < tail <= 1:
        fail(f"--tail must be in (0, 1], got {tail}")
    spec = (read_manifest(results) or {}).get("spec") or {}
    try:
        table = certify(df, metric=metric, tail=tail, antisymmetrize=bool(spec.get("antisymmetrize", False)))
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"last-iterate rates in {results} (fitted on the last {tail:g} of each trace above {defaults.RATE_FLOOR:g}; "
               "95 % intervals of the least-squares slope)")
    typer.echo(format_rates(table))
    counts = table["verdict"].value_counts()
    typer.echo("verdicts: " + ", ".join(f"{v} {c}" for v, c in counts.items()))
    if sources:
        for (algo, cls), src in table.groupby(["algorithm", "class"])["source"].first().items():
            if src:
                typer.echo(f"  {algo} on {cls}: {src}")
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
        typer.echo(f"csv: {csv}")
    if plot is not None:
        from gamelab import plots

        try:
            for path in plots.plot_rates(df, table, plot):
                typer.echo(str(path))
        except ValueError as exc:
            fail(str(exc))


@app.command()
def sweep(
    spec: Optional[Path] = typer.Argument(None, help="a TOML sweep spec (see gamelab.sweep); flags below override it"),
    out: Path = typer.Option(..., "--out", help="results folder (re-running the same command resumes it)"),
    algorithms: Optional[str] = typer.Option(None, help="comma-separated algorithms"),
    games: Optional[str] = typer.Option(None, help="games separated by ';' (e.g. 'comal3;random:n=10,seed=0..9')"),
    steps: Optional[int] = typer.Option(None, help="steps per run (COMAL: outer iterations)"),
    seeds: Optional[str] = typer.Option(None, help="comma-separated seeds"),
    grid: List[str] = typer.Option([], "--grid", help="NAME=v1,v2,... (repeatable), e.g. --grid eta=0.05,0.1"),
    record_every: Optional[int] = typer.Option(None, help="record metrics every k steps (default steps // "
                                               f"{defaults.SWEEP_RECORDS})"),
    chunk_size: Optional[int] = typer.Option(None, help=f"runs per results file (default {defaults.SWEEP_CHUNK_SIZE})"),
    metrics: Optional[str] = typer.Option(None, help="comma-separated metrics to record (default: all), "
                                                     "e.g. exploitability,kl_to_target"),
    record_policy: Optional[bool] = typer.Option(None, "--record-policy/--no-record-policy",
                                                 help="also record the policies (for gamelab plot --kind "
                                                      "simplex|policy; default: the spec's, else no)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    wait: bool = typer.Option(False, help="if another process is writing --out, wait for it instead of stopping"),
    yes: bool = typer.Option(False, "--yes", help=f"run a sweep of more than {defaults.SWEEP_CONFIRM_RUNS:,} runs "
                             "without asking"),
    coordinator: Optional[str] = typer.Option(None, help="multi-host: jax.distributed coordinator HOST:PORT"),
    num_processes: Optional[int] = typer.Option(None, help="multi-host: number of processes"),
    process_id: Optional[int] = typer.Option(None, help="multi-host: this process's index"),
    distributed: bool = typer.Option(False, help="multi-host: jax.distributed.initialize() from the cluster's "
                                                 "environment (SLURM, TPU pods, ...)"),
):
    """Run a sweep (algorithms × games × grid × seeds) into a resumable Parquet results folder.

    Every local device is used (runs sharded over a device mesh); with --coordinator/--num-processes/
    --process-id (or --distributed) the processes share the chunks through jax.distributed.
    """
    from gamelab.sweep import PLAN_BYTES_PER_RUN, SpecError, count_runs, execute, load_spec, make_spec

    init_distributed(coordinator, num_processes, process_id, distributed)
    raw = {}
    try:
        if spec is not None:
            raw = load_spec(spec).canonical()
            raw = {k: v for k, v in raw.items() if v is not None}
        if algorithms:
            raw["algorithms"] = [a.strip() for a in algorithms.split(",") if a.strip()]
        if games:
            raw["games"] = [g.strip() for g in games.split(";") if g.strip()]
        if steps is not None:
            raw["steps"] = steps
        if seeds:
            raw["seeds"] = [int(x) for x in seeds.split(",")]
        for item in grid:
            key, eq, values = item.partition("=")
            if not eq:
                fail(f"--grid takes NAME=v1,v2,..., got {item!r}")
            raw.setdefault("grid", {})[key] = [parse_number(v.strip(), f"--grid {key}") for v in values.split(",")]
        if record_every is not None:
            raw["record_every"] = record_every
        if chunk_size is not None:
            raw["chunk_size"] = chunk_size
        if metrics:
            raw["metrics"] = [m.strip() for m in metrics.split(",") if m.strip()]
        if record_policy is not None:
            raw["record_policy"] = record_policy
        if spec is None and not raw:
            fail("give a SPEC.toml or --algorithms/--games/--steps")
        sweep_spec = make_spec(**raw)
        runs = count_runs(sweep_spec)
        if runs > defaults.SWEEP_CONFIRM_RUNS and not yes:
            question = (f"this sweep has {runs:,} runs in {-(-runs // sweep_spec.chunk_size):,} results files (its plan "
                        f"alone holds about {runs * PLAN_BYTES_PER_RUN / 2**30:.1f} GiB)")
            if not sys.stdin.isatty():
                fail(question + "; pass --yes to run it")
            if not typer.confirm(question + "; run it?"):
                raise typer.Exit(1)
        started = time.perf_counter()
        stats = execute(sweep_spec, out, progress=not quiet, wait=wait)
    except (SpecError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:  # the folder: another writer, another kind, no space, no permission, a file
        fail(os_error(exc))
    elapsed = time.perf_counter() - started
    typer.echo(f"{stats['chunks']} chunks: {stats['ran']} run now ({stats['runs']} runs in {elapsed:.1f} s), "
               f"{stats['skipped']} already finished")
    typer.echo(f"results: {out} (load with gamelab.results.load_results; `gamelab report {out}`, `gamelab plot {out}`)")


llm_app = typer.Typer(help="The transformer backend: the same algorithms on a language-model policy over a "
                             "sequence game, with the exact Nash gap — a toy transformer, or a real model "
                             "(Llama family, Qwen2) under a judge.", **PLAIN)
app.add_typer(llm_app, name="llm")


@llm_app.command("run")
def llm_run(
    algorithm: str = typer.Argument(..., help="a registered algorithm with a loss form (see `gamelab list`)"),
    game: str = typer.Option("cyclic", help="class matrix[:options]: cyclic | random | mixed, options classes=3, "
                             "rule=sum|count|hash, margin=0.4, flip=0, seed=0, prompts=1 (e.g. "
                             "cyclic:rule=count,prompts=4: each prompt its own class matrix)"),
    vocab: int = typer.Option(4, help="vocabulary size V"),
    length: int = typer.Option(4, help="response length L (V^L responses, enumerated for the exact gap)"),
    steps: int = typer.Option(defaults.STEPS, help="training steps (comal: outer iterations of --inner steps)"),
    record_every: int = typer.Option(defaults.LLM_RECORD_EVERY, help="record the metrics every k steps"),
    metrics: Optional[str] = typer.Option(None, help="exact (enumerate all V^L responses) or sampled (estimates "
                                          "with confidence intervals); default exact up to 16384 responses"),
    eval_samples: int = typer.Option(defaults.EVAL_SAMPLES, help="sampled metrics: responses drawn per prompt and "
                                     "recording"),
    level: float = typer.Option(defaults.LEVEL, help="sampled metrics: confidence level of the intervals"),
    prompt_weights: Optional[str] = typer.Option(None, help="comma-separated weights of the prompts a batch draws "
                                                 "(default uniform)"),
    policy: str = typer.Option("transformer", help="transformer, or tabular logits over the same sequences"),
    model: Optional[str] = typer.Option(None, help="a real model instead: smollm2-135m, a Hugging Face folder or a "
                                        ".gguf file (needs --prompts; the game is its responses under --judge)"),
    prompts: Optional[Path] = typer.Option(None, help="--model: prompts, one a line (.jsonl: {\"prompt\": …} or "
                                           "{\"messages\": […]}), rendered through the model's chat template"),
    judge: str = typer.Option(defaults.LLM_JUDGE, help="--model: cyclic[:margin=M,sep=S] (answers' word count mod "
                              "3, a non-transitive cycle: exact class-level gap) | llm:MODEL (an instruct model) | "
                              "gpm:PATH (a text preference model fitted to votes: `gamelab llm fit-judge`)"),
    response_tokens: str = typer.Option(",".join(defaults.LLM_RESPONSE_TOKENS), help="--model: comma-separated "
                                        "texts, each one token of the model: what a response is made of"),
    max_new_tokens: int = typer.Option(defaults.LLM_RESPONSE_LENGTH, help="--model: response length in tokens "
                                       "(V^L responses, V the number of --response-tokens)"),
    lora: Optional[int] = typer.Option(None, help="--model: train LoRA adapters of this rank (the base stays "
                                       "frozen); default: all weights"),
    dtype: str = typer.Option("float32", help="--model: float32 or bfloat16 parameters"),
    empirical: int = typer.Option(defaults.LLM_EMPIRICAL, help="--model: at the end, K answers per prompt from the "
                                  "final policy and the base model, every pair judged: each one's exploitability "
                                  "within that pool [bootstrap interval at --level] and Nash weight (written to "
                                  "OUT/_empirical.json); 0: off"),
    feedback: str = typer.Option("sampled", help="sampled (--batch pairs per step) or exact (all pairs)"),
    batch: int = typer.Option(defaults.BATCH, help="sampled pairs per step"),
    optimizer: str = typer.Option(defaults.LLM_OPTIMIZER, help="adam, sgd, rmsprop or adabelief"),
    lr: Optional[float] = typer.Option(None, help=f"learning rate (default {defaults.TRANSFORMER_LR} for the "
                                       "transformer, the optimizer's own for tabular logits)"),
    eta: Optional[float] = typer.Option(None, help="step size η of the algorithm's target"),
    tau: Optional[float] = typer.Option(None, help="KL regularization τ"),
    inner: Optional[int] = typer.Option(None, help="comal: inner steps per outer iteration"),
    settings: List[str] = typer.Option([], "--set", help="any other hyper-parameter, NAME=VALUE (repeatable)"),
    d_model: int = typer.Option(defaults.TRANSFORMER["d_model"], help="transformer width"),
    heads: int = typer.Option(defaults.TRANSFORMER["heads"], help="attention heads"),
    layers: int = typer.Option(defaults.TRANSFORMER["layers"], help="transformer blocks"),
    seed: int = typer.Option(defaults.SEED, help="seed of the model initialization and of the sampling"),
    devices: Optional[int] = typer.Option(None, help="data-parallel over this many devices (a jax.sharding mesh; "
                                          "default 1, or every process's devices with --coordinator)"),
    fsdp: bool = typer.Option(False, help="also shard the weights over the devices (FSDP-style)"),
    out: Optional[Path] = typer.Option(None, help="results + checkpoints folder (default outputs/llm/ALGO-seedS); "
                                       "re-running the same command resumes from its last checkpoint"),
    checkpoint_every: int = typer.Option(defaults.LLM_CHECKPOINT_EVERY, help="recordings between checkpoints"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    wait: bool = typer.Option(False, help="if another process is writing --out, wait for it instead of stopping"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (config, trace)"),
    coordinator: Optional[str] = typer.Option(None, help="multi-host: jax.distributed coordinator HOST:PORT (every "
                                              "process runs the same command; one mesh over all their devices)"),
    num_processes: Optional[int] = typer.Option(None, help="multi-host: number of processes"),
    process_id: Optional[int] = typer.Option(None, help="multi-host: this process's index"),
):
    """Train a policy on a sequence game with one algorithm; last-iterate Nash gap every k steps
    (exact, or sampled with confidence intervals when V^L is too large to enumerate). With --model:
    a real model (optionally LoRA) on the game of its own responses under --judge, with its win
    rate against and KL to the frozen base model."""
    import numpy as np

    from gamelab.llm.games import parse_sequence_game
    from gamelab.llm.train import train

    multihost = init_distributed(coordinator, num_processes, process_id)

    hp = parse_settings(settings)
    for key, value in (("eta", eta), ("tau", tau), ("inner", inner), ("lr", lr)):
        if value is not None:
            hp[key] = value
    if model is None and prompts is not None:
        fail("--prompts needs --model (the toy transformer's prompts are the game's prompts=K option)")
    if empirical < 0:
        fail(f"--empirical must be >= 0 answers per prompt (0: off), got {empirical}")
    if empirical and model is None:
        fail("--empirical needs --model (the empirical game judges a real model's answers)")
    name = policy if model is None else _slug(Path(model).name if Path(model).exists() else model)
    out = out or Path("outputs/llm") / f"{algorithm.replace(':', '_')}-{name}-seed{seed}"
    mesh = None
    if devices is None:
        import jax

        devices = jax.device_count() if multihost else 1
    if devices < 1:
        fail(f"--devices must be >= 1, got {devices}")
    weights = None
    if prompt_weights is not None:
        try:
            weights = [float(w) for w in prompt_weights.split(",")]
        except ValueError:
            fail(f"--prompt-weights takes comma-separated numbers, got {prompt_weights!r}")
    if devices > 1:
        import jax
        from jax.sharding import Mesh

        if len(jax.devices()) < devices:
            fail(f"--devices {devices}: only {len(jax.devices())} device(s) here (on CPU: "
                 f"gamelab --cpu-devices {devices} llm run ...)")
        mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    if model is not None:
        g, policy, the_judge, judge_prompts = real_model_game(model, prompts, judge, response_tokens, max_new_tokens,
                                                              lora, dtype, seed, mesh, fsdp)
    try:
        if model is None:
            g = parse_sequence_game(game, vocab, length)
        result = train(algorithm, g, steps=steps, record_every=record_every, policy=policy, feedback=feedback,
                       batch=batch, optimizer=optimizer, hparams=hp, seed=seed, out=out,
                       checkpoint_every=checkpoint_every, progress=not quiet and not as_json, mesh=mesh, fsdp=fsdp,
                       model={"d_model": d_model, "heads": heads, "layers": layers} if policy == "transformer" else None,
                       metrics=metrics, eval_samples=eval_samples, level=level, prompt_weights=weights, wait=wait)
        pool = None
        if empirical:
            from gamelab.llm.empirical import record_empirical

            pool, pool_record = record_empirical(the_judge, policy, result.params, judge_prompts, empirical, out,
                                                 level=level, seed=seed, wait=wait,
                                                 about={"judge": judge})
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error(exc))
    trace = result.trace
    if as_json:
        rows = [{"step": int(s), **{k: float(v[i]) for k, v in trace.items() if np.ndim(v) == 1}}
                for i, s in enumerate(result.steps)]
        typer.echo(json.dumps(jsonable({"config": result.config, "trace": rows, "seconds": result.seconds,
                                        "resumed_from": result.resumed_from, "out": str(out),
                                        **({"empirical": pool_record} if pool is not None else {})})))
        return
    typer.echo(f"{algorithm} on {g.spec}: {g.n} responses, {result.config['policy']}, {result.config['metrics']} "
               "metrics" + (f" ({g.C.shape[0]} prompts: means over prompts)" if g.C.shape[0] > 1 else ""))
    cols = ["duality_gap", "kl_to_class_nash", "regularized_gap", "entropy", "win_rate_vs_ref", "kl_to_ref"]
    cols = [c for c in cols if c in trace]
    bounds = all(f"{c}_lo" in trace for c in cols)
    typer.echo(f"{'step':>8} " + " ".join(f"{c + (' [CI]' if bounds else ''):>{38 if bounds else 18}}" for c in cols))

    def cell(c, i):
        text = f"{float(trace[c][i]):.6e}"
        return f"{text} [{trace[c + '_lo'][i]:.2e}, {trace[c + '_hi'][i]:.2e}]" if bounds else text

    for i in np.unique(np.linspace(0, len(result.steps) - 1, min(len(result.steps), 11)).astype(int)):
        typer.echo(f"{int(result.steps[i]):>8} " + " ".join(f"{cell(c, i):>{38 if bounds else 18}}" for c in cols))
    q = np.reshape(trace["class_marginal"][-1], (-1, g.m))
    for x in range(g.C.shape[0]):
        typer.echo(("" if g.C.shape[0] == 1 else f"prompt {x}: ") + f"class marginal "
                   f"{'(estimated) ' if bounds else ''}{np.array2string(q[x], precision=4)} vs class Nash "
                   f"{np.array2string(g.class_nash(x), precision=4)}")
    if pool is not None:
        from gamelab.llm.empirical import EMPIRICAL_FILE, empirical_table

        typer.echo(f"empirical game: {empirical} answers per prompt from the base model and the final policy, every "
                   f"pair judged by {judge} ({out / EMPIRICAL_FILE})")
        typer.echo(empirical_table(pool))
    typer.echo(f"{result.seconds:.1f} s" + (f" (resumed at step {result.resumed_from * record_every})"
                                            if result.resumed_from else ""))
    typer.echo(f"results: {out} (`gamelab plot {out}`)")


def real_model_game(model: str, prompts: Optional[Path], judge: str, response_tokens: str, length: int,
                    lora: Optional[int], dtype: str, seed: int, mesh, fsdp: bool):
    """(the game, the DecoderPolicy, the judge, the prompt texts it reads) of `gamelab llm run
    --model`, or one error line: the model, the prompts file, the judge, the response tokens or the
    LoRA rank."""
    from gamelab.llm.decoder import LoraConfig
    from gamelab.llm.judges import parse_judge, policy_game
    from gamelab.llm.policy import DecoderPolicy
    from gamelab.llm.text import encode, read_prompts, render_chat

    if prompts is None:
        fail("--model needs --prompts FILE (one prompt a line, or JSONL)")
    if lora is not None and lora < 1:
        fail(f"--lora must be a positive rank, got {lora}")
    try:
        chats = read_prompts(prompts)
    except OSError as exc:
        fail(os_error(exc))
    except UnicodeDecodeError:
        fail(f"{prompts}: not UTF-8 text")
    except ValueError as exc:
        fail(str(exc))
    try:
        the_judge = parse_judge(judge)
    except ValueError as exc:
        fail(str(exc))
    lm = load_language_model(model, dtype)
    words = response_tokens.split(",")
    ids = [encode(lm, w, add_bos=False) for w in words]
    if any(len(i) != 1 for i in ids):
        bad = [w for w, i in zip(words, ids) if len(i) != 1]
        fail(f"--response-tokens: {', '.join(map(repr, bad))} {'is' if len(bad) == 1 else 'are'} not one token of "
             f"{lm.source}")
    texts = [render_chat(lm, chat) if lm.chat_template else "\n".join(m["content"] for m in chat) for chat in chats]
    try:
        pol = DecoderPolicy(lm, [encode(lm, t, add_bos=False if lm.chat_template else None) for t in texts],
                            [i[0] for i in ids], length, lora=None if lora is None else LoraConfig(rank=lora),
                            seed=seed, mesh=mesh, fsdp=fsdp)
        judge_prompts = [chat[-1]["content"] for chat in chats]
        game = policy_game(the_judge, pol, judge_prompts, f"judge {judge}")
    except ValueError as exc:
        fail(str(exc))
    return game, pol, the_judge, judge_prompts


def load_language_model(spec: str, dtype: str):
    """A real model (gamelab.llm.checkpoints) or one error line: bad file, failed download, OS error."""
    from gamelab.llm.checkpoints import CheckpointError, load_model

    if dtype not in ("float32", "bfloat16"):
        fail(f"--dtype must be float32 or bfloat16, got {dtype!r}")
    try:
        return load_model(spec, dtype=dtype)
    except (CheckpointError, RuntimeError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error(exc))


MODEL_HELP = "smollm2-135m (downloaded once into the user cache), a Hugging Face folder or a .gguf file"


@llm_app.command("generate")
def llm_generate(
    model: str = typer.Option(..., help=MODEL_HELP),
    prompt: str = typer.Option(..., help="the text to continue"),
    max_new_tokens: int = typer.Option(defaults.LLM_MAX_NEW_TOKENS, help="at most this many new tokens"),
    temperature: float = typer.Option(defaults.LLM_TEMPERATURE, help="0: greedy; else sampling at this temperature"),
    top_p: float = typer.Option(defaults.LLM_TOP_P, help="nucleus sampling: the smallest set of tokens of this probability"),
    seed: int = typer.Option(defaults.SEED, help="seed of the sampling"),
    chat: bool = typer.Option(False, help="render the prompt as a user message through the model's chat template"),
    dtype: str = typer.Option("float32", help="float32 or bfloat16 parameters"),
):
    """Print a real model's continuation of a prompt (KV cache; stops at end-of-sequence)."""
    from gamelab.llm.text import complete

    if max_new_tokens < 1:
        fail(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if not temperature >= 0 or not 0 < top_p <= 1:
        fail(f"need --temperature >= 0 and 0 < --top-p (top_p) <= 1, got {temperature}, {top_p}")
    lm = load_language_model(model, dtype)
    try:
        text = complete(lm, [prompt], max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                        seed=seed, chat=chat)[0]
    except ValueError as exc:
        fail(str(exc))
    typer.echo(text)


@llm_app.command("score")
def llm_score(
    model: str = typer.Option(..., help=MODEL_HELP),
    text_file: Path = typer.Option(..., help="a UTF-8 text file"),
    as_json: bool = typer.Option(False, "--json", help='print {"perplexity": …, "tokens": …}'),
    dtype: str = typer.Option("float32", help="float32 or bfloat16 parameters"),
):
    """Perplexity of a real model on a text file (every token after the first, teacher-forced)."""
    import math

    from gamelab.llm.text import text_logprob

    try:
        text = text_file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(os_error(exc))
    except UnicodeDecodeError:
        fail(f"{text_file}: not UTF-8 text")
    lm = load_language_model(model, dtype)
    try:
        total, count = text_logprob(lm, text)
    except ValueError as exc:
        fail(f"{text_file}: {exc}")
    ppl = math.exp(-total / count)
    if as_json:
        typer.echo(json.dumps({"perplexity": ppl, "tokens": count, "model": lm.source}))
    else:
        typer.echo(f"perplexity {ppl:.4f} over {count} tokens ({lm.source})")


@llm_app.command("fit-judge")
def llm_fit_judge(
    votes: Path = typer.Option(..., help="pairwise votes between models (CSV with a header, or .jsonl) with a prompt "
                               "column, e.g. ../shared/data/llmfao/crowd-comparisons.csv"),
    answers: Path = typer.Option(..., help="the models' answer texts, JSON lines with model, prompt, result (and name), "
                                 "e.g. ../shared/data/llmfao/results.jsonl"),
    prompts_file: Path = typer.Option(..., help="the prompts' texts, JSON lines with id, text, e.g. "
                                      "../shared/data/llmfao/prompts.jsonl"),
    rank: int = typer.Option(1, help="rank of the skew-symmetric part (0: Bradley–Terry over texts)"),
    out: Path = typer.Option(..., help="where to save the fitted judge (.npz); use it as --judge gpm:OUT"),
    ridge: Optional[float] = typer.Option(None, help="ridge/2·‖weights‖² of every rank fitted (default: each rank "
                                          "its own, TEXT_GPM_RIDGE of gamelab.llm.preference_model)"),
    hash_bits: Optional[int] = typer.Option(None, help="2^k hashed word n-gram columns (default: FeatureSettings)"),
    by: str = typer.Option("both", help="held-out folds of whole prompts, pairs, both, or none (no held-out table)"),
    splits: int = typer.Option(defaults.VOTE_SPLITS, help="held-out folds"),
    seed: int = typer.Option(defaults.SEED, help="seed of the folds and of the fit's random start"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (held-out summaries, the saved file)"),
):
    """Fit a judge to votes over answer texts — a general preference model over text features,
    P(a ≻ b) = σ(r(a) − r(b) + u(a)ᵀv(b) − v(a)ᵀu(b)) — print its held-out log-likelihood per vote at
    --rank beside rank 0 (Bradley–Terry over texts), the model-identity Bradley–Terry and a coin, and
    save it fitted to all the votes."""
    if rank < 0:
        fail(f"--rank must be >= 0, got {rank}")
    if by not in ("prompt", "pair", "both", "none"):
        fail(f"--by must be prompt, pair, both or none, got {by!r}")
    if splits < 2:
        fail(f"--splits must be >= 2, got {splits}")
    if ridge is not None and not (math.isfinite(ridge) and ridge > 0):
        fail(f"--ridge must be a positive number, got {ridge}")
    from gamelab.llm import preference_model as PM
    from gamelab.votes import load_votes

    options = {} if ridge is None else {"ridge": ridge}
    settings = PM.FeatureSettings() if hash_bits is None else PM.FeatureSettings(hash_bits=hash_bits)
    try:
        settings = settings.validated()
        data = load_votes(votes)
        texts = PM.llmfao_answers(answers, prompts_file)
        PM.vote_items(data, texts)  # every vote's answers are there, before any fitting
        splits_by = {"both": ("prompt", "pair"), "none": ()}.get(by, (by,))
        ranks = (0,) if rank == 0 else (0, rank)
        results = [PM.held_out_text(data, texts, ranks=ranks, by=b, splits=splits, seed=seed, settings=settings,
                                    **options) for b in splits_by]
        model = PM.fit_text_gpm(data, texts, rank, settings=settings, seed=seed, **options)
        model.save(out)
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error(exc))
    if as_json:
        typer.echo(json.dumps(jsonable({"out": str(out), "rank": rank, "ridge": model.ridge, "votes": model.votes,
                                        "settings": settings._asdict(), "converged": model.converged,
                                        "log_likelihood": model.log_likelihood,
                                        "held_out": {h.by: h.summary("text0") for h in results}})))
        return
    for line in PM.held_out_table(results):
        typer.echo(line)
    typer.echo(f"fitted to all {model.votes} votes: rank {model.rank}, ridge {model.ridge:g}, "
               f"{settings.dim} features, log-likelihood per vote {model.log_likelihood / model.votes:.4f}"
               + ("" if model.converged else " (L-BFGS did not report convergence)"))
    typer.echo(f"saved {out} (use it as --judge gpm:{out})")


# Allocations between two passes of the cyclic collector's youngest generation in the ``gamelab``
# command (Python's default: 700). Importing JAX (and Flax) allocates hundreds of thousands of
# objects: at 700 the collector ran 295 times during a warm 60-run sweep, 95 ms of its 0.96 s; at
# 50,000 it runs 4 times (32 ms). Cycles are still collected, in larger batches.
GC_THRESHOLD = 50_000


def main() -> None:
    """The ``gamelab`` command: the collector's threshold raised (:data:`GC_THRESHOLD`), the app,
    then every object out of the cyclic collector's reach (``gc.freeze``) before the interpreter
    shuts down. Shutdown otherwise walks the object graphs
    of JAX, flax and pandas once more: 0.2 s after a JAX command, 0.45 s after one that imported
    flax (measured: ``import jax`` + one array, then exit, 0.75 s; with the freeze 0.57 s). The
    atexit handlers, the flush of stdout and stderr and reference-counted finalizers still run;
    every file gamelab writes is closed (and fsynced) before its command returns."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
