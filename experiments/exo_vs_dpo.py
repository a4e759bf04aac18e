"""EXO vs DPO on a discretized bimodal target (the mode-seeking vs mass-covering illustration of
Ji et al. 2024, "Towards efficient exact optimization of language model alignment").

101 responses on a grid x ∈ [−5, 5]; target p_r ∝ 0.6·N(−2, 0.5²) + 0.4·N(2, 0.5²) on the grid,
uniform reference, reward r = log p_r, β = β_r = 1, so the optimal policy π_ref·exp(r/β_r)^{1/β} is
p_r itself. EXO minimizes the reverse KL(π‖p_r) (mode-seeking), DPO-K the forward KL(p_r‖π)
(mass-covering). Each loss trains two policy families: a discretized Gaussian (params μ, log σ; p_r
is not representable) and free tabular logits (it is). Two kinds of feedback:

* exact — K = all 101 responses, so the losses are the full KLs;
* sampled — every step draws 512/K independent sets of K candidates from π_ref (with replacement)
  and the loss is the mean over the sets. Its minimizer is that of the *expected K-candidate* loss:
  the same as the exact one for the tabular family (both losses vanish iff π ∝ π_ref·exp(r) on
  every candidate set), a different one for the misspecified Gaussian family (a K sweep shows it).

The Gaussian family starts either at π_ref's moments (μ₀ = 0, σ₀ = 2.93: "ref") or narrow
(μ₀ = 0, σ₀ = 0.5): the reverse KL over this family is not convex (local minima at the two modes
and a wide one between them), and where EXO lands depends on the start. With sampled sets of
K ≤ 8 candidates EXO goes to a wide policy from either start: a set that misses the mode judges a
narrow policy only through its renormalized tail, and pays for it.

    python experiments/exo_vs_dpo.py [--out DIR]
"""
from __future__ import annotations

import json
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np

import gamelab  # noqa: F401  (float64)
import jax
import jax.numpy as jnp
import optax

from gamelab.losses import dpo_k_loss, exo_loss
from gamelab.policies.tabular import GaussianGridPolicy, TabularPolicy

GRID = np.linspace(-5.0, 5.0, 101)
MIXTURE = ((0.6, -2.0, 0.5), (0.4, 2.0, 0.5))  # (weight, mean, standard deviation)
BETA = BETA_R = 1.0
LOG_REF = np.full(GRID.size, -np.log(GRID.size))  # uniform reference
STEPS = 6000  # Adam steps, cosine-decayed step size (exact and sampled)
LR = {"gaussian": 0.05, "tabular": 0.3}
CANDIDATES = 512  # sampled mode: candidates per step, in 512/K sets of K
K = 8  # the main table's sampled K; the Gaussian family is also run at K_SWEEP
K_SWEEP = (2, 8, 32, 128)
NARROW_SIGMA = 0.5
LOSSES = {"EXO": exo_loss, "DPO-K": dpo_k_loss}
FAMILIES = {"gaussian": GaussianGridPolicy(GRID), "tabular": TabularPolicy(GRID.size)}


def target_logp(grid=GRID, mixture=MIXTURE):
    """log p_r on the grid: the Gaussian mixture's density at the grid points, normalized."""
    x = np.asarray(grid, dtype=np.float64)
    density = sum(w * np.exp(-0.5 * ((x - m) / s) ** 2) / s for w, m, s in mixture)
    return np.log(density / density.sum())


def draw_candidates(seed: int, steps: int, k: int, total: int = CANDIDATES, log_ref=LOG_REF):
    """(steps, total // k, k) response indices drawn i.i.d. from π_ref (with replacement).

    Drawn up front with NumPy: the training scan then compiles once per shape and no PRNG code is
    traced into it."""
    p = np.exp(log_ref)
    return np.random.default_rng(seed).choice(p.size, size=(steps, total // k, k), p=p / p.sum())


@partial(jax.jit, static_argnames=("policy", "loss", "steps"))
def fit(policy, loss, params0, log_ref, reward, lr, candidates=None, *, steps=STEPS):
    """Minimize ``loss`` over ``policy``'s parameters from ``params0`` with Adam (step size ``lr``,
    cosine-decayed to lr/1000 over ``steps``); returns (final parameters, loss per step).

    ``candidates`` None: exact feedback (the loss over all responses, K = n). Otherwise a (steps,
    sets, K) array of response indices: step t's loss is the mean over its sets of the K-candidate
    loss."""
    # b2 = 0.99 (not 0.999): with the longer second-moment memory the tabular tail logits, whose
    # gradients shrink by orders of magnitude on the way, crawl; eps tiny for the same reason
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=1e-3), b2=0.99, eps=1e-30)

    def objective(params, y):
        logp = policy.log_probs(params)
        if y is None:
            return loss(logp, log_ref, reward, BETA, BETA_R)
        return loss(logp[y], log_ref[y], reward[y], BETA, BETA_R)

    def step(carry, y):
        params, state = carry
        value, grad = jax.value_and_grad(objective)(params, y)
        updates, state = opt.update(grad, state, params)
        return (optax.apply_updates(params, updates), state), value

    (params, _), values = jax.lax.scan(step, (params0, opt.init(params0)), candidates, length=steps)
    return params, values


def initial_params(family: str, start: str = "ref"):
    """The policy at π_ref (moment-matched for the Gaussian), or a narrow Gaussian at x = 0."""
    policy = FAMILIES[family]
    if start == "ref":
        return policy.init(jnp.asarray(LOG_REF))
    if start == "narrow" and family == "gaussian":
        return jnp.array([0.0, np.log(NARROW_SIGMA)])
    raise ValueError(f"unknown start {start!r} for the {family} family")


def train(family: str, loss: str, k: int | None = None, *, start: str = "ref", seed: int = 0,
          steps: int = STEPS):
    """One run: exact feedback (k None) or sampled sets of k candidates; returns (params, log π)."""
    policy = FAMILIES[family]
    reward = jnp.asarray(target_logp())  # p_r = softmax(r/β_r) with β_r = 1
    candidates = None if k is None else jnp.asarray(draw_candidates(seed, steps, k))
    params, _ = fit(policy, LOSSES[loss], initial_params(family, start), jnp.asarray(LOG_REF), reward,
                    LR[family], candidates, steps=steps)
    return params, policy.log_probs(params)


def describe(family: str, params, logp) -> dict:
    """Mean and sd of the learned distribution, the family's own (μ, σ), both KLs to p_r, and
    max |π − p_r|."""
    logp, logp_r = np.asarray(logp), target_logp()
    p, p_r = np.exp(logp), np.exp(logp_r)
    mean = float(p @ GRID)
    row = {"mean": mean, "sd": float(np.sqrt(p @ (GRID - mean) ** 2)),
           "kl_pi_pr": float(p @ (logp - logp_r)), "kl_pr_pi": float(p_r @ (logp_r - logp)),
           "max_abs_err": float(np.max(np.abs(p - p_r)))}
    if family == "gaussian":
        row["param_mu"], row["param_sigma"] = float(params[0]), float(np.exp(params[1]))
    return row


def run(family, loss, k=None, start="ref", seed=0) -> dict:
    params, logp = train(family, loss, k, start=start, seed=seed)
    return {"family": family, "loss": loss, "start": start, "feedback": "exact" if k is None else f"K={k}",
            "k": k, "seed": seed, **describe(family, params, logp), "policy": np.exp(np.asarray(logp)).tolist()}


def run_all() -> tuple[list[dict], list[dict]]:
    """The main table (exact and K = 8 sampled) and the Gaussian family's K sweep."""
    main, sweep = [], []
    for k in (None, K):
        for family, starts in (("gaussian", ("ref", "narrow")), ("tabular", ("ref",))):
            for start in starts:
                for loss in LOSSES:
                    main.append(run(family, loss, k, start))
    done = {(r["family"], r["loss"], r["start"], r["k"]): r for r in main}
    for loss, start in (("EXO", "ref"), ("EXO", "narrow"), ("DPO-K", "ref")):  # DPO-K: start-independent
        for k in K_SWEEP:
            sweep.append(done.get(("gaussian", loss, start, k)) or run("gaussian", loss, k, start))
    return main, sweep


def format_table(rows) -> str:
    head = (f"{'family':<9} {'loss':<6} {'start':<7} {'feedback':<8} {'mean':>8} {'sd':>7} {'μ param':>8} "
            f"{'σ param':>8} {'KL(π‖p_r)':>10} {'KL(p_r‖π)':>10} {'max|π−p_r|':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        params = f"{r['param_mu']:>8.4f} {r['param_sigma']:>8.4f}" if "param_mu" in r else f"{'—':>8} {'—':>8}"
        lines.append(f"{r['family']:<9} {r['loss']:<6} {r['start']:<7} {r['feedback']:<8} {r['mean']:>8.4f} "
                     f"{r['sd']:>7.4f} {params} {r['kl_pi_pr']:>10.2e} {r['kl_pr_pi']:>10.2e} "
                     f"{r['max_abs_err']:>11.1e}")
    return "\n".join(lines)


# what each panel draws: (loss, start, k) → color, line style, label
CURVES = {
    "gaussian": {("EXO", "narrow", None): ("tab:red", "-", "EXO exact, narrow start"),
                 ("EXO", "ref", None): ("tab:orange", "-", "EXO exact, start π_ref"),
                 ("DPO-K", "ref", None): ("tab:blue", "-", "DPO-K exact (either start)"),
                 ("EXO", "narrow", K): ("tab:red", "--", f"EXO K={K} (either start)"),
                 ("DPO-K", "ref", K): ("tab:blue", "--", f"DPO-K K={K} (either start)")},
    "tabular": {("EXO", "ref", None): ("tab:red", "-", "EXO exact"),
                ("DPO-K", "ref", None): ("tab:blue", ":", "DPO-K exact"),
                ("EXO", "ref", K): ("tab:red", "o", f"EXO K={K}"),
                ("DPO-K", "ref", K): ("tab:blue", "x", f"DPO-K K={K}")},
}


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p_r = np.exp(target_logp())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, family in zip(axes, FAMILIES):
        ax.fill_between(GRID, p_r, color="0.82", label="target $p_r$")
        for r in rows:
            spec = CURVES[family].get((r["loss"], r["start"], r["k"])) if r["family"] == family else None
            if spec is None:
                continue
            color, style, label = spec
            if style in ("o", "x"):  # sampled tabular runs: markers on every 3rd response
                ax.plot(GRID[::3], np.asarray(r["policy"])[::3], style, color=color, ms=4, mfc="none", label=label)
            else:
                ax.plot(GRID, r["policy"], style, color=color, lw=2 if r["k"] is None else 1.3, label=label)
        ax.set_title(f"{family} family" + (" (μ, log σ)" if family == "gaussian" else " (free logits)"), fontsize=10)
        ax.set_xlabel("response x")
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_ylabel("probability")
    fig.suptitle(f"EXO (reverse KL) vs DPO-K (forward KL); sampled: {CANDIDATES // K} sets × K = {K} "
                 "candidates from π_ref per step", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    from common import ROOT, parse_args, report_paths

    args = parse_args("exo_vs_dpo", __doc__)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows, sweep = run_all()
    print(f"{len(rows) + len(sweep)} runs ({STEPS} Adam steps each) in {time.perf_counter() - started:.1f} s\n")
    text = (format_table(rows) + f"\n\nGaussian family, sampled feedback: {CANDIDATES} candidates per step "
            "in sets of K (the exact rows are K = all 101)\n" + format_table(sweep))
    print(text)
    (args.out / "summary.txt").write_text(text + "\n")
    figure = args.out / "exo_vs_dpo.png"
    plot(rows, figure)
    shutil.copyfile(figure, ROOT / "experiments" / "figures" / "exo_vs_dpo.png")
    summary = args.out / "summary.json"
    summary.write_text(json.dumps({
        "grid": GRID.tolist(), "target": np.exp(target_logp()).tolist(), "beta": BETA, "beta_r": BETA_R,
        "steps": STEPS, "lr": LR, "candidates_per_step": CANDIDATES, "narrow_sigma": NARROW_SIGMA,
        "runs": rows, "k_sweep": [{key: v for key, v in r.items() if key != "policy"} for r in sweep]}, indent=1))
    report_paths(args.out, [figure, summary, args.out / "summary.txt"])


if __name__ == "__main__":
    main()
