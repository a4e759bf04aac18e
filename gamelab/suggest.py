"""Did-you-mean suggestions for a mistyped name (an algorithm, a game)."""
from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` naming the choices closest to ``name`` (at most three), or ``""``
    when none is close: appended to an error message that lists every valid name."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
