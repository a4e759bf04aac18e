"""The algorithm record and the one registry.

An algorithm is a pair of pure functions over a NamedTuple state, with its hyper-parameters as a
NamedTuple pytree passed as a (traced) argument, so that a sweep over η is a vmap, not a recompile:

    state = algo.init(game, hp, init_logits, ref_logits)
    state = algo.step(game, hp, state)        # one game, one policy, branch-free

Every state has a field ``logp`` (the current last-iterate log-policy, normalized; ``-inf`` marks
probability exactly zero) and, where the algorithm uses one, ``ref``. The runner (``gamelab.run``)
is the only place that jits, vmaps or scans.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import numpy as np

from gamelab.suggest import did_you_mean

# Constraints a hyper-parameter value can carry; checked on the host before anything is traced.
CONSTRAINTS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "positive": (lambda x: x > 0, "must be > 0"),
    "nonnegative": (lambda x: x >= 0, "must be >= 0"),
    "count": (lambda x: (x >= 1) & (x == np.round(x)), "must be a whole number >= 1"),
    "flag": (lambda x: (x == 0) | (x == 1), "must be 0 or 1 (false or true)"),
    # for updates π^{1−ητ}·ref^{ητ}: beyond ητ = 1 the current policy gets a negative exponent
    "at_most_one": (lambda x: x <= 1, "must be <= 1 (the update raises π_t to the power 1 − η·τ)"),
    "fraction": (lambda x: (x >= 0) & (x <= 1), "must be in [0, 1]"),
    "flip_rate": (lambda x: (x >= 0) & (x < 0.5), "must be in [0, 0.5) (a flip rate of 1/2 erases the preference)"),
    "seed": (lambda x: (x >= 0) & (x == np.round(x)) & (x < 2**31), "must be a whole number in [0, 2^31)"),
}

# What an algorithm's last iterate converges to (DESIGN §3); the test suite keys its theorems on it.
TARGETS = ("nash", "regularized_nash", "biased_regularized_nash", "none", "average_only",
           "maxmin")  # maxmin: the egalitarian policy of a multi-group game (gamelab.nash.maxmin_policy)


class SampledForm(NamedTuple):
    """How an algorithm runs on a parametric policy from sampled (or exact) feedback (DESIGN §4):
    which policies draw the two sides of each pair, the loss, and when the reference refreshes.

    ``loss(hp, h, h2, fb)``: a pure function of the policy's log-probabilities of the batch's pairs
    and the :class:`gamelab.feedback.Feedback` (see :mod:`gamelab.losses`). ``sampler``: who draws
    y and y′ — ``"current"`` (π_t, the anchor) or ``"mixture"`` (the geometric mixture
    π_t^{1−w}·π_ref^{w}, w = ``mix(hp)``). ``refresh``: the hyper-parameter K after which the
    reference is reset to the current policy every K steps (None: never). ``extragradient``: take a
    half step first, then the full step from π_t with pairs drawn from the half-step policy.
    ``prox``: for prox-point meta-algorithms (COMAL) the inner algorithm's form; each step then
    runs ``hp.inner`` steps of it with the reference reset to π_k. ``defaults``: (field, value)
    pairs replacing the tabular defaults when feedback is sampled (noise needs smaller steps).
    ``group``: K for a loss over groups of candidates (EXO): sampled feedback then draws
    batch // K groups of K candidates from ``sampler[0]`` and labels every pair within a group
    (:func:`gamelab.feedback.sampled_groups`); exact feedback is one group of all responses
    (:func:`gamelab.feedback.exact_groups`). None: independent pairs.
    ``optimistic``: optimistic mirror descent in two sequences (ONPO): the state also carries a
    secondary policy π̂; one batch of pairs is drawn from π_t, π̂ is regressed on it anchored at
    π̂_t (giving π̂_{t+1}), then π on the same batch anchored at π̂_{t+1}, starting from π̂_{t+1}.
    """

    loss: Callable[..., Any] | None
    sampler: tuple[str, str] = ("current", "current")
    mix: Callable[..., Any] | None = None
    refresh: str | None = None
    extragradient: bool = False
    prox: Any = None
    defaults: tuple[tuple[str, Any], ...] = ()
    group: int | None = None
    optimistic: bool = False


class Algorithm(NamedTuple):
    name: str
    hparams: type  # NamedTuple class with defaults
    constraints: tuple[tuple[str, str], ...]  # (field, constraint name)
    init: Callable[..., Any]
    step: Callable[..., Any]
    target: str
    description: str
    sampled: SampledForm | None = None  # the loss form (None: no sampled/parametric version)
    # state -> dict of scalars recorded beside the metrics (a parametric run: its last training loss)
    recorded: Callable[[Any], dict] | None = None

    def make_hparams(self, **values) -> Any:
        """Validated hyper-parameters; unknown names raise, missing ones take their defaults."""
        unknown = sorted(set(values) - set(self.hparams._fields))
        if unknown:
            raise ValueError(
                f"{self.name} does not take {', '.join(unknown)}; it takes "
                f"{', '.join(self.hparams._fields) or 'no hyper-parameters'}"
            )
        hp = self.hparams(**values)
        validate_hparams(self, hp)
        return hp

    @property
    def uses_tau(self) -> bool:
        return "tau" in self.hparams._fields


def validate_hparams(algo: Algorithm, hp) -> None:
    """Raise ``ValueError`` naming the hyper-parameter, its value and the rule it breaks.

    A constraint on ``"eta*tau"`` applies to the product of those fields."""
    rules = dict(algo.constraints)
    products = [f for f in rules if "*" in f]
    for field in list(hp._fields) + products:
        value = getattr(hp, field) if "*" not in field else functools.reduce(
            np.multiply, [np.asarray(getattr(hp, f), dtype=np.float64) for f in field.split("*")])
        try:
            if np.asarray(value).dtype.kind not in "biuf":  # a string "0.1" converts, but is no number
                raise TypeError
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{algo.name}: {field} must be a number, got {value!r}") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{algo.name}: {field} must be finite, got {value!r}")
        rule = rules.get(field)
        if rule is not None:
            check, message = CONSTRAINTS[rule]
            bad = ~check(arr)
            if np.any(bad):
                shown = arr if arr.ndim == 0 else arr[bad][0]
                raise ValueError(f"{algo.name}: {field} {message}, got {float(shown):g}")


REGISTRY: dict[str, Algorithm] = {}


def register(algo: Algorithm) -> Algorithm:
    if algo.name in REGISTRY:
        raise KeyError(f"algorithm {algo.name!r} is registered twice")
    if algo.target not in TARGETS:
        raise ValueError(f"unknown target {algo.target!r}")
    REGISTRY[algo.name] = algo
    return algo


def algorithm_names() -> list[str]:
    return sorted(REGISTRY)


# The literature's names for registered algorithms (in their sampled forms these are the papers' losses).
ALIASES = {"sppo": "mwu", "hedge": "mwu", "online_ipo": "iterative_ipo", "ipo": "iterative_ipo",
           "dpo": "iterative_dpo", "egpo": "extragradient", "mirror_prox": "extragradient"}


class Variant(NamedTuple):
    """Options that pick a variant of a registered algorithm (``comal:inner=mmd``): the option names,
    ``build(**options)`` returning the variant, and how to write them (for error messages)."""

    options: tuple[str, ...]
    build: Callable[..., Algorithm]
    usage: str


# Registered by the family's module (gamelab.algorithms.prox registers COMAL's inner solver), so
# that this module imports none of them.
VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, variant: Variant) -> None:
    if name not in REGISTRY:
        raise KeyError(f"variants of {name!r}: register the algorithm first")
    VARIANTS[name] = variant


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name`` (or an alias: sppo, online_ipo, ipo, dpo, egpo, …);
    ``comal:inner=mmd`` picks COMAL's inner solver (a registered :class:`Variant`)."""
    base, _, options = name.partition(":")
    base = ALIASES.get(base, base)
    if base not in REGISTRY:
        raise ValueError(f"unknown algorithm {base!r}; known: {', '.join(algorithm_names())}"
                         + did_you_mean(base, [*REGISTRY, *ALIASES]))
    if not options:
        return REGISTRY[base]
    kwargs = dict(kv.split("=", 1) for kv in options.split(",") if "=" in kv)
    variant = VARIANTS.get(base)
    if variant is None or set(kwargs) - set(variant.options) or "=" not in options:
        takes = " and ".join(sorted(VARIANTS))
        usage = ", ".join(v.usage for _, v in sorted(VARIANTS.items()))
        raise ValueError(f"{name!r}: only {takes} take{'s' if len(VARIANTS) == 1 else ''} an option ({usage})")
    return variant.build(**kwargs)
