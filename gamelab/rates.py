"""Rate certificates: how fast a run's last iterate converges, fitted from its trace, beside what
theory promises for that algorithm on that class of game.

For one run, :func:`fit_rate` takes the recorded steps t and a metric ε_t (the duality gap; for a
run that targets the KL-regularized Nash, the regularized gap DG_τ) and fits, by least squares on
log ε over the *tail* of the trace (the last ``tail`` fraction of the points above the rounding
floor, at least ``min_points`` of them),

* a **linear rate** ε_t ≈ C·ρ^t  (log ε = log C + t·log ρ), with a 95 % interval for ρ per step, and
* a **power law**  ε_t ≈ C·t^(−α) (log ε = log C − α·log t), with a 95 % interval for α,

and keeps the one with the smaller residual sum of squares (both have two parameters). The fit is
to the tail's upper envelope (:func:`envelope`: the largest value over the next quarter of the
tail), so an oscillating trace is judged by its peaks. The
intervals are Student-t intervals of the least-squares slope; successive points of a trace are
not independent, so read them as a measure of how well one rate describes the tail, not as a
sampling statement. A trace whose fitted slope is not significantly negative (its interval reaches
0 or beyond), or whose fit falls by less than :data:`MIN_DROP` over the fitted span, is **not
converging** (MWU's last iterate, cycling and plateaus). A trace that reaches
the floor (``floor``: rounding level) is fitted on the points before it got there; one that starts
there is ``solved``.

:data:`THEORY` holds the rate class that the literature proves for each algorithm, per class of
game (:func:`game_class`: a unique Nash with full support, a Condorcet winner, a unique Nash, any
game; ``regularized``
for runs judged on the τ-regularized game), with its source. :func:`certify` compares: the verdict
is ``as predicted``, ``faster``, ``slower`` or ``no convergence`` (a rate was promised, none is
seen), or ``no prediction`` where the table has no entry. Algorithms missing from the table get
their registered target's promise (converges, no rate) or none.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from gamelab import defaults

FLOOR = defaults.RATE_FLOOR  # a metric at or below this is at rounding level: the fit stops there
TAIL = defaults.RATE_TAIL  # the fraction of the usable trace that is fitted (its end)
MIN_POINTS = 4  # fewer usable points than this: nothing is fitted
LEVEL = 0.95  # of the slope intervals

PREDICTED_KINDS = ("linear", "power", "asymptotic", "plateau", "none")  # what THEORY may promise
POWER_TOLERANCE = 0.05  # a power law within 5 % of the promised exponent is as promised (finite-T fits)


class RateFit(NamedTuple):
    """A fitted rate: ``kind`` is ``linear`` (``value`` = ρ per step), ``power`` (``value`` = α),
    ``none`` (not converging: ``value`` = the linear slope's ρ, ≥ 1 within its interval), ``fast``
    (it reached the floor before enough points above it were recorded to fit a rate), ``solved``
    (at the floor from the start) or ``too_short``. ``lo``/``hi``: the interval of ``value``; ``C``:
    the fitted constant; ``start``/``stop``: the steps of the fitted tail; ``floor_step``: the first
    recorded step at or below the floor (NaN if none); ``rss_linear``/``rss_power``: residual sums
    of squares of log ε under each model."""

    kind: str
    value: float
    lo: float
    hi: float
    C: float
    start: float
    stop: float
    points: int
    floor_step: float
    rss_linear: float
    rss_power: float


class Prediction(NamedTuple):
    """What theory promises: ``kind`` ``linear`` (``bound``: ρ per step no larger than this, NaN
    when the constant depends on the game), ``power`` (``bound``: α at least this), ``asymptotic``
    (converges, no rate), ``plateau`` (converges to a biased point: the metric stops decreasing)
    or ``none`` (no last-iterate convergence)."""

    kind: str
    bound: float
    source: str


def _ols(x: np.ndarray, y: np.ndarray):
    """Slope, its standard error, intercept and the residual sum of squares of y ≈ a + b·x."""
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    b = float(np.sum((x - xm) * (y - ym)) / sxx)
    a = ym - b * xm
    rss = float(np.sum((y - a - b * x) ** 2))
    se = math.sqrt(rss / (len(x) - 2) / sxx) if len(x) > 2 else math.inf
    return b, se, float(a), rss


MIN_DROP = 1.1  # a converging fit falls by at least this factor over its fitted span (else: not converging)
ENVELOPE = 4  # the upper envelope's window: a quarter of the fitted tail (from ENVELOPE_MIN points on)
ENVELOPE_MIN = 16


def envelope(t: np.ndarray, y: np.ndarray, min_points: int = MIN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The upper envelope of a tail: at each point, the largest value over the next w points
    (w = a quarter of the tail, from :data:`ENVELOPE_MIN` points on; the last w − 1 points, whose
    window would be cut short, are dropped). A trace that oscillates while it converges (OMWU
    spiralling in) is then fitted by the decay of its peaks, not by the trend of its wiggles; a
    monotone trace is unchanged, and a cycle whose period is shorter than the window is flat."""
    w = len(y) // ENVELOPE if len(y) >= ENVELOPE_MIN else 1
    if w <= 1 or len(y) - w + 1 < min_points:
        return t, y
    windows = np.lib.stride_tricks.sliding_window_view(y, w)
    return t[: len(windows)], windows.max(axis=1)


def fit_rate(steps, values, *, floor: float = FLOOR, tail: float = TAIL, min_points: int = MIN_POINTS,
             level: float = LEVEL) -> RateFit:
    """The rate of one trace (see the module docstring). ``steps``: the recorded steps (any order;
    steps ≤ 0 are left out of the fit, a power law needs log t); ``values``: the metric there."""
    from scipy import stats

    t = np.asarray(steps, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if t.shape != v.shape:
        raise ValueError(f"steps and values must have the same length, got {t.shape} and {v.shape}")
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail!r}")
    if not min_points >= 3:
        raise ValueError(f"min_points must be at least 3, got {min_points!r}")
    keep = np.isfinite(v) & np.isfinite(t)
    order = np.argsort(t[keep], kind="stable")
    t, v = t[keep][order], v[keep][order]
    nan = math.nan
    if not len(v):
        return RateFit("too_short", nan, nan, nan, nan, nan, nan, 0, nan, nan, nan)
    at_floor = np.flatnonzero(v <= floor)
    floor_step = float(t[at_floor[0]]) if len(at_floor) else nan
    if len(at_floor) and at_floor[0] == 0:
        return RateFit("solved", nan, nan, nan, nan, t[0], t[0], 1, floor_step, nan, nan)
    end = at_floor[0] if len(at_floor) else len(v)  # the trace before it reached rounding level
    usable = np.flatnonzero((t[:end] > 0) & (v[:end] > floor))
    if len(usable) < min_points:
        return RateFit("fast" if len(at_floor) else "too_short", nan, nan, nan, nan, nan, nan, int(len(usable)),
                       floor_step, nan, nan)
    take = usable[-max(min_points, int(math.ceil(tail * len(usable)))):]
    x, y = envelope(t[take], np.log(v[take]), min_points)
    b_lin, se_lin, a_lin, rss_lin = _ols(x, y)
    b_pow, se_pow, a_pow, rss_pow = _ols(np.log(x), y)
    q = float(stats.t.ppf(0.5 + level / 2, len(x) - 2))
    span = (float(x[0]), float(x[-1]))
    linear = rss_lin <= rss_pow
    drop = -b_lin * (x[-1] - x[0]) if linear else -b_pow * math.log(x[-1] / x[0])  # log of the fitted fall
    if (b_lin + q * se_lin >= 0 and b_pow + q * se_pow >= 0) or drop < math.log(MIN_DROP):
        # neither model sees a significant decrease, or the better one a negligible one (a smooth
        # envelope makes tiny slopes significant: RM+'s jumpy last iterate)
        rho = math.exp(b_lin)
        return RateFit("none", rho, math.exp(b_lin - q * se_lin), math.exp(b_lin + q * se_lin), math.exp(a_lin),
                       *span, len(x), floor_step, rss_lin, rss_pow)
    if linear:
        return RateFit("linear", math.exp(b_lin), math.exp(b_lin - q * se_lin), math.exp(min(b_lin + q * se_lin, 0.0)),
                       math.exp(a_lin), *span, len(x), floor_step, rss_lin, rss_pow)
    return RateFit("power", -b_pow, max(-b_pow - q * se_pow, 0.0), -b_pow + q * se_pow, math.exp(a_pow), *span, len(x),
                   floor_step, rss_lin, rss_pow)


# ---------------------------------------------------------------- game classes
GAME_CLASSES = ("unique_interior", "pure", "unique", "general", "regularized")


def game_class(P, tol: float = 1e-9) -> str:
    """``unique_interior`` (one Nash, with full support), ``pure`` (one Nash, a single response: a
    Condorcet winner), ``unique`` (one Nash, neither) or ``general``, for a
    symmetric preference game P. With A = P − ½ (skew-symmetric, value 0) and the LP's Nash π of
    support S, the Nash is unique when every response off S loses strictly ((Aπ)_j < −tol) and
    A_SS has rank |S| − 1 (its null space is π's line): the conditions of Bohnenblust, Karlin and
    Shapley (1950) for a completely mixed game on S. Failing either, the class is ``general``."""
    from gamelab.nash import exact_nash

    P = np.asarray(P, dtype=np.float64)
    pi = np.asarray(exact_nash(P).policy, dtype=np.float64)
    A = P - 0.5
    S = pi > tol
    payoff = A @ pi
    if np.any(payoff[~S] >= -tol):
        return "general"
    rank = np.linalg.matrix_rank(A[np.ix_(S, S)], tol=1e-9) if S.sum() > 1 else 0
    if rank != S.sum() - 1:
        return "general"
    return "unique_interior" if S.all() else "pure" if S.sum() == 1 else "unique"


@lru_cache(maxsize=256)
def _class_of_spec(spec: str, antisymmetrize: bool) -> str:
    """The class of a results table's game, rebuilt from its spec as the sweep built it;
    ``unknown`` where it cannot be (a game file moved since): then only what theory says for any
    game applies."""
    from gamelab.games import parse_game

    try:
        P = parse_game(spec, antisymmetrize=antisymmetrize).P
    except (ValueError, OSError):
        return "unknown"
    return game_class(P)


# ---------------------------------------------------------------- what theory says
_WEI = "Wei, Lee, Zhang, Luo 2021 (ICLR), linear last-iterate convergence in constrained saddle-point optimization"
_NONE = ("Bailey & Piliouras 2018 (EC): the last iterate of MWU/FTRL moves away from an interior Nash; "
         "Mertikopoulos, Papadimitriou, Piliouras 2018: cycles")
_PURE = ("a Condorcet winner w: every other response's log-weight falls behind w's by at least η·min_j (P[w, j] − ½) "
         "per step, so the gap falls geometrically")
_AVG = "no-regret: the average iterate converges; the last iterate carries no guarantee (DESIGN §3)"

# (algorithm, game class) -> Prediction; class "any" applies to every unregularized class.
THEORY: dict[tuple[str, str], Prediction] = {
    ("mwu", "any"): Prediction("none", math.nan, _NONE),
    ("replicator", "any"): Prediction("none", math.nan, _NONE),
    ("mwu", "pure"): Prediction("linear", math.nan, _PURE),
    ("replicator", "pure"): Prediction("linear", math.nan, _PURE),
    ("omwu", "unique_interior"): Prediction("linear", math.nan, "Daskalakis & Panageas 2019 (ITCS); " + _WEI),
    ("omwu", "unique"): Prediction("linear", math.nan, _WEI + " (OMWU needs a unique Nash)"),
    ("omwu", "general"): Prediction("asymptotic", math.nan, "Anagnostides et al. 2022: asymptotic; no rate without "
                                                              "uniqueness (Chen et al. 2025: linear after burn-in "
                                                              "with a full-support Nash)"),
    ("extragradient", "unique_interior"): Prediction("linear", math.nan, _WEI + " (mirror-prox analogue of OMWU's)"),
    ("extragradient", "unique"): Prediction("linear", math.nan, _WEI + " (mirror-prox analogue of OMWU's)"),
    ("extragradient", "general"): Prediction("power", 0.5, "Cai, Oikonomou, Zheng 2022 (NeurIPS): O(1/√T) last-iterate "
                                                           "gap of extragradient in monotone problems, tight"),
    ("mpo", "any"): Prediction("linear", math.nan, "Wang et al. 2024 (arXiv 2410.16714), MPO's linear last-iterate rate"),
    ("comal", "any"): Prediction("linear", math.nan, "proximal point under metric subregularity, which bilinear games on "
                                                     "polytopes have (Wei et al. 2021); COMAL: Liu et al. 2024"),
    ("inpo", "regularized"): Prediction("linear", math.nan, "Zhang et al. 2024 (INPO, arXiv 2407.00617): linear in KL to π*_τ"),
    ("mmd", "regularized"): Prediction("linear", math.nan, "Sokota et al. 2023 (ICLR), MMD: linear to the regularized "
                                                           "equilibrium"),
    ("extragradient", "regularized"): Prediction("linear", math.nan, "Cen, Wei, Chi 2021 (NeurIPS): entropy-regularized "
                                                                     "extragradient, linear to the QRE"),
    ("nash_md", "regularized"): Prediction("plateau", math.nan, "Munos et al. 2023 (Nash-MD): π*_τ up to an O(η) bias"),
    ("nash_md_pg", "regularized"): Prediction("plateau", math.nan, "Munos et al. 2023: a biased fixed point"),
    ("onpo", "unique"): Prediction("linear", math.nan, "ONPO (arXiv 2502.16852) at τ = 0 is optimistic MWU: " + _WEI),
    ("onpo", "general"): Prediction("asymptotic", math.nan, "optimistic MWU without a unique Nash: no rate (Wei et al. 2021)"),
    ("onpo", "regularized"): Prediction("linear", math.nan, "Cen, Wei, Chi 2021 (NeurIPS): optimistic/extragradient "
                                                            "updates on an entropy-regularized game, linear"),
    ("nash_mp", "regularized"): Prediction("linear", math.nan, "Tiapkin et al. 2025 (Nash-MP, arXiv 2505.19731): "
                                                               "KL(π*_τ‖π_k) ≤ KL(π*_τ‖π_0)/(1 + ητ)^k for η ≤ 2"),
    ("ogda", "any"): Prediction("linear", math.nan, _WEI + ": projected OGDA on a bilinear game over polytopes, "
                                                           "no uniqueness needed"),
    ("projected_extragradient", "any"): Prediction("linear", math.nan, _WEI + " (its extragradient counterpart)"),
    ("eag", "any"): Prediction("power", 1.0, "Yoon & Ryu 2021 (ICML), extra-anchored gradient: O(1/k) operator "
                                             "norm; Cai & Zheng 2023: O(1/T) last-iterate gap with constraints"),
    ("predictive_rm_plus", "any"): Prediction("none", math.nan, "Cai, Farina et al. 2023 (arXiv 2311.00676): "
                                                                "predictive RM+ can fail to converge in the last iterate"),
    ("extragradient_rm_plus", "any"): Prediction("asymptotic", math.nan, "Cai, Farina et al. 2023: asymptotic "
                                                                         "last-iterate convergence, no rate"),
    ("smooth_predictive_rm_plus", "any"): Prediction("asymptotic", math.nan, "Cai, Farina et al. 2023: asymptotic "
                                                                             "last-iterate convergence, no rate"),
    ("rm_plus_restarts", "any"): Prediction("linear", math.nan, "Cai, Farina et al. 2023: smooth RM+ with restarts, "
                                                                "linear last-iterate rate"),
    ("fictitious_play", "any"): Prediction("none", math.nan, _AVG),
    ("regret_matching", "any"): Prediction("none", math.nan, _AVG),
    ("regret_matching_plus", "any"): Prediction("none", math.nan, _AVG + "; Cai, Farina et al. 2023 (arXiv 2311.00676): "
                                                                        "RM+ can fail to converge in the last iterate"),
}
# where the registry's target is all there is to go on
_BY_TARGET = {"nash": Prediction("asymptotic", math.nan, "its registered target (DESIGN §3): the Nash, no rate stated"),
              "none": Prediction("none", math.nan, "its registered target (DESIGN §3): no last-iterate convergence"),
              "average_only": Prediction("none", math.nan, _AVG)}


# a run that targets π*_τ judged on its duality gap (its DG_τ was not recorded): the gap stops at π*_τ's
UNRECORDED_DG_TAU = Prediction("plateau", math.nan, "it converges (at best) to π*_τ, whose duality gap is positive; "
                                                    "its regularized gap DG_τ was not recorded")


def predicted(algorithm: str, cls: str) -> Prediction | None:
    """What :data:`THEORY` says for ``algorithm`` (a variant such as ``comal:inner=mmd`` counts as
    its family) on a game of class ``cls``; None: nothing."""
    base = algorithm.split(":")[0]
    keys = [(base, cls)] + ([(base, "unique")] if cls in ("pure", "unique_interior") else []) + (
        [(base, "any")] if cls != "regularized" else [])
    for key in keys:
        if key in THEORY:
            return THEORY[key]
    if cls == "regularized":
        return None
    from gamelab.algorithms import get_algorithm

    try:
        return _BY_TARGET.get(get_algorithm(base).target)
    except ValueError:
        return None


def verdict(fit: RateFit, prediction: Prediction | None) -> str:
    """``as predicted``, ``faster``, ``slower``, ``no convergence``, ``no prediction``, ``started
    solved`` (the trace starts at the floor: a fixed point, nothing to certify) or ``too short to
    tell``."""
    if fit.kind == "solved":
        return "started solved"
    if prediction is None or fit.kind == "too_short":
        return "no prediction" if prediction is None else "too short to tell"
    converges = fit.kind in ("linear", "power", "fast")
    kind = prediction.kind
    if kind in ("none", "plateau"):
        return "faster" if converges else "as predicted"
    if not converges:
        return "no convergence"
    if kind == "asymptotic" or fit.kind == "fast":
        return "as predicted"
    if kind == "linear":
        if fit.kind == "power":
            return "slower"
        if not math.isnan(prediction.bound) and fit.lo > prediction.bound:
            return "slower"
        return "as predicted"
    # a power law promised: a linear rate beats it; a power law is compared by its interval
    if fit.kind == "linear":
        return "faster"
    if fit.hi < prediction.bound * (1 - POWER_TOLERANCE):
        return "slower"
    return "faster" if fit.lo > prediction.bound * (1 + POWER_TOLERANCE) else "as predicted"


# ---------------------------------------------------------------- a results table
REGULARIZED_TARGETS = ("regularized_nash", "biased_regularized_nash")


def run_metric(algorithm: str, tau: float | None) -> str:
    """The metric a run's rate is judged on: the regularized gap DG_τ for a run that targets the
    τ-regularized Nash — its algorithm's target is one, or its τ is optional (constraint
    ``nonnegative``: extragradient-type methods, τ = 0 the plain game) and positive here — else the
    duality gap. (COMAL and MPO take a τ > 0 for their inner/magnet steps but target the Nash.)"""
    from gamelab.algorithms import get_algorithm

    try:
        algo = get_algorithm(algorithm)
    except ValueError:
        return "duality_gap"
    optional_tau = dict(algo.constraints).get("tau") == "nonnegative"
    if algo.target in REGULARIZED_TARGETS or (optional_tau and tau is not None and np.isfinite(tau) and tau > 0):
        return "regularized_gap"
    return "duality_gap"


def certify(df, *, metric: str | None = None, iterate: str = "last", tail: float = TAIL,
            floor: float = FLOOR, antisymmetrize: bool = False) -> "pandas.DataFrame":  # noqa: F821
    """One row per run of a results table (:func:`gamelab.results.load`): its identifiers and
    hyper-parameters, the metric fitted (``metric``: one for every run; None: :func:`run_metric`
    per run), the game class, the fitted rate (kind, value, interval, fitted span), what theory
    predicts (kind, bound, source) and the verdict. ``antisymmetrize``: how the sweep read its
    cross-table games (its spec's key), so that each game is classed as it was run."""
    import pandas as pd

    from gamelab.report import hparam_columns

    if df is None or len(df) == 0:
        raise ValueError("the results table is empty")
    missing = {"run", "algorithm", "game", "step", "iterate"} - set(df.columns)
    if missing:
        raise ValueError(f"not a gamelab results table: missing columns {sorted(missing)}")
    if metric is not None and metric not in df.columns:
        raise ValueError(f"metric {metric!r} is not in the results")
    df = df[df["iterate"] == iterate]
    if not len(df):
        raise ValueError(f"the results hold no {iterate!r} iterate")
    hps = hparam_columns(df)
    rows = []
    for run, g in df.groupby("run", sort=True):
        first = g.iloc[0]
        tau = float(first["tau"]) if "tau" in g and pd.notna(first["tau"]) else None
        name = metric or run_metric(first["algorithm"], tau)
        unrecorded = name not in g or g[name].isna().all()
        regularized = name == "regularized_gap"
        if unrecorded:  # e.g. a sweep batch that mixed τ = 0 and τ > 0 records no DG_τ
            name = "duality_gap"
        fit = fit_rate(g["step"].to_numpy(), g[name].to_numpy(), floor=floor, tail=tail)
        if fit.kind in ("linear", "power") and name == "duality_gap" and "kl_to_target" in g:
            fit = _unless_kl_grows(fit, g["step"].to_numpy(), g["kl_to_target"].to_numpy(), floor, tail)
        cls = "regularized" if regularized else _class_of_spec(str(first["game"]), bool(antisymmetrize))
        pred = predicted(first["algorithm"], cls)
        if regularized and unrecorded:
            pred = UNRECORDED_DG_TAU
        rows.append({"run": run, "algorithm": first["algorithm"], "game": first["game"],
                     **{h: first[h] for h in hps}, **({"seed": first["seed"]} if "seed" in g else {}),
                     "metric": name, "class": cls, **fit._asdict(),
                     "predicted": None if pred is None else pred.kind,
                     "bound": math.nan if pred is None else pred.bound,
                     "source": "" if pred is None else pred.source, "verdict": verdict(fit, pred)})
    table = pd.DataFrame(rows)
    return table.drop(columns=[h for h in hps if table[h].isna().all()])


def _unless_kl_grows(fit: RateFit, steps, kl, floor: float, tail: float) -> RateFit:
    """A gap that still falls while KL(π*‖π_t) to the LP's Nash significantly grows over the same
    tail is a transient (MWU near an interior Nash: the gap shrinks for a while as the iterate
    spirals out, and KL grows at every step, Bailey & Piliouras 2018): not converging."""
    if not np.isfinite(kl).any():
        return fit
    grows = fit_rate(steps, kl, floor=floor, tail=tail)
    if grows.kind == "none" and grows.lo > 1:
        return fit._replace(kind="none")
    return fit


def describe(fit_row) -> str:
    """``ρ = 0.981 [0.979, 0.983]``, ``α = 0.52 [0.49, 0.55]``, ``none (ρ = 1.000)``, ``solved``."""
    kind = fit_row["kind"]
    if kind == "linear":
        return f"ρ = {fit_row['value']:.4g} [{fit_row['lo']:.4g}, {fit_row['hi']:.4g}]"
    if kind == "power":
        return f"α = {fit_row['value']:.3g} [{fit_row['lo']:.3g}, {fit_row['hi']:.3g}]"
    if kind == "none":
        return f"none (ρ = {fit_row['value']:.4g})"
    if kind == "fast":
        return f"fast (at 1e-12 by step {fit_row['floor_step']:g})"
    return kind.replace("_", " ")


def format_rates(table) -> str:
    """The certificate table as aligned text: one line per run."""
    hps = [c for c in table.columns if c not in RATE_COLUMNS]
    head = ["run", "algorithm", "game", *hps, "metric", "class", "fitted", "span", "predicted", "verdict"]
    lines = []
    for _, r in table.iterrows():
        span = "" if math.isnan(r["start"]) else f"{r['start']:g}–{r['stop']:g}"
        pred = "" if r["predicted"] is None else r["predicted"] + (
            "" if math.isnan(r["bound"]) else (f" ρ ≤ {r['bound']:.4g}" if r["predicted"] == "linear"
                                               else f" α ≥ {r['bound']:g}"))
        lines.append([str(r["run"]), str(r["algorithm"]), str(r["game"]),
                      *[("" if isinstance(r[h], float) and math.isnan(r[h]) else f"{r[h]:g}"
                         if isinstance(r[h], (float, int, np.floating, np.integer)) else str(r[h])) for h in hps],
                      r["metric"], r["class"], describe(r), span, pred, r["verdict"]])
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


RATE_COLUMNS = ("run", "algorithm", "game", "seed", "metric", "class", *RateFit._fields, "predicted", "bound",
                "source", "verdict")
