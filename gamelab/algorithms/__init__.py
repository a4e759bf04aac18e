"""Every algorithm of DESIGN §3 in exact-information tabular form, registered by name."""
from gamelab.algorithms import classical, euclidean, groups, mirror, nlhf, preference, prox, regret  # noqa: F401  (registers)
from gamelab.algorithms.base import REGISTRY, Algorithm, algorithm_names, get_algorithm, validate_hparams

__all__ = ["REGISTRY", "Algorithm", "algorithm_names", "get_algorithm", "validate_hparams"]
