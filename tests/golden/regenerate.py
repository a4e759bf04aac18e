"""Regenerate tests/golden/traces.json: golden duality-gap traces of every registered algorithm.

Run by hand from the repository root, after a change that is *meant* to alter the engine's output
(or after registering a new algorithm):

    python tests/golden/regenerate.py            # refuses to write if the engine disagrees with
                                                 # tests/reference.py on a final policy
    python tests/golden/regenerate.py --force    # write anyway (say why in the commit message)

For every algorithm in ``gamelab.algorithms.algorithm_names()`` and each game of ``GAMES`` it records
the last-iterate duality-gap trace (steps 0..60; COMAL: 6 outer × 50 inner, so 0..6) and the final
policy of ``gamelab.run.run``, together with everything needed to repeat the run: the full
hyper-parameters (defaults except ``FIXED``, which is also recorded), the initial policy and the
reference. tests/test_golden.py replays every entry and asserts agreement to 1e-12.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "traces.json"
sys.path.insert(0, str(HERE.parent))  # tests/, for the independent reference

import jax  # noqa: E402

import gamelab  # noqa: E402  (float64)
from gamelab.algorithms import algorithm_names, get_algorithm  # noqa: E402
from gamelab.games import parse_game  # noqa: E402
from gamelab.run import run  # noqa: E402

GAMES = ("comal3", "random:n=6,seed=7")
STEPS = 60
# Non-default hyper-parameters, and why.
FIXED = {
    "comal": {"inner": 50},  # 6 outer × 50 inner iterations (the default 200 inner is slow)
    "mpo": {"refresh_every": 20},  # the default 200 would never refresh the magnet within 60 steps
}
STEPS_BY_ALGO = {"comal": 6}  # COMAL's steps are outer iterations
REFERENCE_ATOL = {"iterative_dpo": 1e-5}  # see tests/test_against_reference.py
REFERENCE_ATOL_DEFAULT = 1e-9
REFERENCE_NAMES = {"refresh_every": "K"}  # engine field -> reference keyword
ENGINE_ONLY = ("inner_tol",)


def init_weights(n: int) -> list[float]:
    """A fixed non-uniform initial policy ∝ (1, 2, ..., n)."""
    w = np.arange(1, n + 1, dtype=np.float64)
    return (w / w.sum()).tolist()


def ref_weights(n: int) -> list[float]:
    """A fixed non-uniform reference ∝ (n, ..., 2, 1)."""
    w = np.arange(n, 0, -1, dtype=np.float64)
    return (w / w.sum()).tolist()


def hparams_of(name: str) -> dict:
    hp = get_algorithm(name).make_hparams(**FIXED.get(name, {}))
    return {k: (int(v) if isinstance(v, (int, np.integer)) else float(v)) for k, v in hp._asdict().items()}


def record(name: str, spec: str) -> dict:
    P = np.asarray(parse_game(spec).P)
    n = P.shape[0]
    hp = hparams_of(name)
    steps = STEPS_BY_ALGO.get(name, STEPS)
    init, ref = init_weights(n), ref_weights(n)
    res = run(name, P, steps=steps, record_every=1, init=np.asarray(init), ref=np.asarray(ref), target=None, **hp)
    return {
        "algorithm": name,
        "game": spec,
        "steps": steps,
        "hparams": hp,
        "fixed": FIXED.get(name, {}),
        "init": init,
        "ref": ref,
        "duality_gap": np.asarray(res.trace["duality_gap"]).tolist(),
        "final_policy": np.asarray(res.policy).tolist(),
    }


def check_against_reference(entry: dict) -> str | None:
    """None if the engine's final policy matches tests/reference.py, else a description."""
    import reference as R

    name = entry["algorithm"]
    if name not in R.ALGORITHMS:
        return f"{name}: tests/reference.py has no implementation to check against"
    kw = {REFERENCE_NAMES.get(k, k): v for k, v in entry["hparams"].items() if k not in ENGINE_ONLY}
    P = np.asarray(parse_game(entry["game"]).P)
    traj = R.simulate(name, P, entry["steps"], pi0=np.asarray(entry["init"]), ref=np.asarray(entry["ref"]), **kw)
    dev = float(np.max(np.abs(traj[-1] - np.asarray(entry["final_policy"]))))
    if dev > REFERENCE_ATOL.get(name, REFERENCE_ATOL_DEFAULT):
        return f"{name} on {entry['game']}: final policy differs from the reference by {dev:.3g}"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="write even if the reference disagrees")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    entries = [record(name, spec) for name in algorithm_names() for spec in GAMES]
    problems = [p for p in map(check_against_reference, entries) if p]
    for p in problems:
        print("reference check:", p, file=sys.stderr)
    if problems and not args.force:
        print("not written (use --force to write anyway)", file=sys.stderr)
        return 1

    header = {
        "description": "golden last-iterate duality-gap traces and final policies of every registered "
                       "algorithm; written by tests/golden/regenerate.py, checked by tests/test_golden.py",
        "games": list(GAMES),
        # the matrices, so that a change in a game generator is told apart from one in an algorithm
        "matrices": {spec: np.asarray(parse_game(spec).P).tolist() for spec in GAMES},
        "generated_with": {"gamelab": gamelab.__version__, "jax": jax.__version__, "numpy": np.__version__},
    }
    # one entry per line: small, and diffs show which run changed
    lines = [json.dumps(e, separators=(",", ":")) for e in entries]
    head = ",\n".join(f" {json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}" for k, v in header.items())
    text = '{"header":{\n' + head + '\n},\n"entries":[\n' + ",\n".join(lines) + "\n]}\n"
    json.loads(text)  # well-formed
    args.out.write_text(text)
    print(f"wrote {len(entries)} entries to {args.out} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
