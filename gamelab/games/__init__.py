"""Games: the Game pytree, validation, named games, generators and loaders."""
from gamelab.games.core import DEFAULT_ATOL, Game, InvalidGameError, make_game, stack_games, validate_matrix

__all__ = ["DEFAULT_ATOL", "Game", "InvalidGameError", "make_game", "stack_games", "validate_matrix"]
