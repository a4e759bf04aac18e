"""gamelab: last-iterate convergence of alignment algorithms on general-preference games.

Importing gamelab turns on JAX's float64 mode: tabular work defaults to float64 (float32 bottoms
out near 1e-7, and exact-Nash convergence is only visible below that). Pass ``dtype=float32`` to
the runner for single precision.
"""
import jax

jax.config.update("jax_enable_x64", True)

from gamelab.games import Game, InvalidGameError, make_game  # noqa: E402

__all__ = ["Game", "InvalidGameError", "make_game"]
__version__ = "0.1.0"
