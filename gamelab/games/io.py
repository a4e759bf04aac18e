"""Loading games from files: plain matrices, payoff tables and tuple cross-tables.

Everything here runs on the host with NumPy and ends in :func:`~gamelab.games.core.make_game`,
which does the preference-matrix validation. Three kinds of file are understood:

- a **preference matrix** ``P`` (``P[i, j] = Pr(i beats j)``): ``.npy``, ``.csv`` (comma
  separated) or whitespace-separated text (any other suffix);
- a **payoff table** ``V`` in the same formats: antisymmetric (``V + V.T = 0``, zero diagonal),
  mapped to ``P = 1/2 + V / (2 * scale)``;
- a **cross-table** of Python tuples ``('row', 'col', value)``, one per line, as in OpenSpiel's
  repeated-RPS bot table; see :func:`load_crosstable`.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gamelab.games.core import DEFAULT_ATOL, Game, InvalidGameError, make_game


class GameFileError(InvalidGameError):
    """A game file that is missing, unreadable or malformed."""


class Correction(NamedTuple):
    """How much antisymmetrizing a cross-table changed it.

    ``max_abs_asymmetry`` is ``max |V + V.T|`` in the table's own units (diagonal included, where
    it equals ``2 |V[i, i]|``); ``max_abs_change`` is the largest change of an entry of ``P``;
    ``max_abs_diagonal`` is ``max |V[i, i]|``.
    """

    max_abs_asymmetry: float
    max_abs_change: float
    max_abs_diagonal: float


class CrossTable(NamedTuple):
    """A game read from a cross-table, with its response names and the correction applied."""

    game: Game
    names: tuple[str, ...]
    correction: Correction


# ---------------------------------------------------------------------------------------------
# plain matrices


def _existing_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        if p.is_symlink():
            raise GameFileError(f"{str(p)!r} is a symbolic link that leads nowhere (or in a loop)")
        raise GameFileError(f"no such game file: {str(p)!r}")
    if not p.is_file():
        raise GameFileError(f"not a regular file: {str(p)!r}")
    return p


def _parse_rows(text: str, path: Path, sep: str | None) -> np.ndarray:
    """Parse delimited numeric text; ``sep=None`` splits on whitespace. ``#`` starts a comment."""
    rows: list[list[float]] = []
    first_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = [t.strip() for t in line.split(sep)] if sep else line.split()
        values = []
        for col, tok in enumerate(tokens, start=1):
            try:
                values.append(float(tok))
            except ValueError:
                raise GameFileError(
                    f"{path}: line {lineno}, column {col}: {tok!r} is not a number"
                    " (header rows and names are not supported in matrix files)"
                ) from None
        if rows and len(values) != len(rows[0]):
            raise GameFileError(
                f"{path}: line {lineno} has {len(values)} values, but line {first_line} has "
                f"{len(rows[0])} (ragged rows)"
            )
        if not rows:
            first_line = lineno
        rows.append(values)
    if not rows:
        raise GameFileError(f"{path}: file is empty (no numeric rows)")
    return np.asarray(rows, dtype=np.float64)


def load_matrix(path) -> np.ndarray:
    """Read a numeric matrix from ``.npy``, ``.csv`` or whitespace-separated text.

    Blank lines and ``#`` comments are skipped in text files. Raises :class:`GameFileError` for a
    missing or empty file, a non-numeric token (naming line, column and token) or ragged rows.
    The result is not validated as a game; see :func:`load_game_file`.
    """
    p = _existing_file(path)
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise GameFileError(f"{p}: cannot read as .npy: {exc}") from exc
        if arr.size == 0:
            raise GameFileError(f"{p}: file holds an empty array of shape {arr.shape}")
        return arr
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark is not data
    except UnicodeDecodeError as exc:
        raise GameFileError(f"{p}: not a text file ({exc}); use .npy for binary arrays") from exc
    sep = "," if p.suffix.lower() == ".csv" else None
    return _parse_rows(text, p, sep)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def load_named_matrix(path) -> tuple[tuple[str, ...] | None, np.ndarray]:
    """(names, matrix) of a matrix file whose first row may be a header of names.

    A ``.csv`` file whose first non-blank line holds no number is read as a header (CSV quoting
    allowed) naming the columns, one name per column, e.g. what ``gamelab nash --votes …
    --write-matrix`` writes; names are None for a file without one. Otherwise as :func:`load_matrix`.
    """
    import csv

    p = _existing_file(path)
    if p.suffix.lower() != ".csv":
        return None, load_matrix(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GameFileError(f"{p}: not a text file ({exc})") from exc
    lines = text.splitlines()
    first = next((k for k, line in enumerate(lines) if line.strip()), None)
    if first is None or lines[first].lstrip().startswith("#"):
        return None, _parse_rows(text, p, ",")
    header = next(csv.reader([lines[first]]))
    if any(_is_number(t.strip()) for t in header):
        return None, _parse_rows(text, p, ",")
    names = tuple(t.strip() for t in header)
    if len(set(names)) != len(names) or not all(names):
        raise GameFileError(f"{p}: line {first + 1}: a header of names must name every column once")
    lines[first] = ""  # keep the line numbers of the rows in errors
    M = _parse_rows("\n".join(lines), p, ",")
    if M.shape[1] != len(names):
        raise GameFileError(f"{p}: the header names {len(names)} columns, the rows have {M.shape[1]}")
    return names, M


# ---------------------------------------------------------------------------------------------
# payoff tables


def _square(V, what: str) -> np.ndarray:
    """Shape and finiteness checks for a payoff table (the parts of validation that are not P's)."""
    arr = np.asarray(V)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise InvalidGameError(f"{what} must be real and numeric, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InvalidGameError(f"{what} must be a square 2-D matrix, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise InvalidGameError(f"a game needs at least 2 responses, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InvalidGameError(f"{what} has non-finite entry V[{i}, {j}] = {arr[i, j]}")
    return arr


def _asymmetry(V: np.ndarray) -> tuple[float, int, int]:
    """``max |V + V.T|`` and where it is attained."""
    asym = np.abs(V + V.T)
    i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
    return float(asym[i, j]), int(i), int(j)


def _payoff_tol(V: np.ndarray, atol: float) -> float:
    return atol * max(1.0, float(np.abs(V).max()))


def is_payoff_table(V, *, atol: float = DEFAULT_ATOL) -> bool:
    """Whether ``V`` is an antisymmetric matrix (``V + V.T = 0`` up to ``atol`` relative to max|V|)."""
    try:
        arr = _square(V, "payoff table")
    except InvalidGameError:
        return False
    return _asymmetry(arr)[0] <= _payoff_tol(arr, atol)


def from_payoff(V, scale: float | None = None, *, atol: float = DEFAULT_ATOL, dtype=None) -> Game:
    """Map an antisymmetric payoff table ``V`` to the game ``P = 1/2 + V / (2 * scale)``.

    ``V[i, j]`` is what i wins against j; antisymmetry (``V + V.T = 0``, zero diagonal) is checked
    strictly, to ``atol`` relative to ``max |V|``, and a violation names the worst entry. ``scale``
    defaults to ``max |V|`` (1 for an all-zero table) so that ``P`` lies in [0, 1]; a given scale
    must be at least ``max |V|``.
    """
    arr = _square(V, "payoff table")
    worst, i, j = _asymmetry(arr)
    tol = _payoff_tol(arr, atol)
    if worst > tol:
        if i == j:
            raise InvalidGameError(
                f"payoff table must have a zero diagonal: V[{i}, {i}] = {float(arr[i, i])!r}"
            )
        raise InvalidGameError(
            f"payoff table must be antisymmetric (V + V.T = 0): V[{i}, {j}] + V[{j}, {i}] = "
            f"{float(arr[i, j] + arr[j, i])!r} (largest violation, tolerance {tol:.3g})"
        )
    vmax = float(np.abs(arr).max())
    if scale is None:
        scale = vmax if vmax > 0 else 1.0
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise InvalidGameError(f"scale must be positive and finite, got {scale!r}")
    if vmax > scale * (1 + 1e-12):
        i, j = np.unravel_index(int(np.argmax(np.abs(arr))), arr.shape)
        raise InvalidGameError(
            f"scale {scale:g} is too small: |V[{i}, {j}]| = {vmax:g} > scale, so P would leave [0, 1]"
        )
    P = np.clip(0.5 + arr / (2.0 * scale), 0.0, 1.0)
    return make_game(P, atol=atol, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# tuple cross-tables


MAX_LINE = 10_000  # characters of one cross-table line


def _parse_crosstable(text: str, path: Path, scale: float):
    """Parse ``('row', 'col', value)`` lines into names (first-appearance order) and ``V``."""
    entries: dict[tuple[str, str], tuple[float, int]] = {}
    names: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        shown = line if len(line) <= 80 else f"{line[:60]}… ({len(line)} characters)"
        try:
            if len(line) > MAX_LINE:  # a cross-table line is a short tuple; literal_eval would recurse
                raise ValueError("line too long")
            item = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise GameFileError(
                f"{path}: line {lineno}: cannot parse {shown!r} as a Python tuple ({exc.__class__.__name__})"
            ) from None
        ok = (
            isinstance(item, tuple)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], str)
            and isinstance(item[2], (int, float))
            and not isinstance(item[2], bool)
        )
        if not ok:
            raise GameFileError(
                f"{path}: line {lineno}: expected ('row_name', 'col_name', number), got {line!r}"
            )
        row, col, value = item
        value = float(value)
        if not (-scale <= value <= scale):  # also rejects nan
            raise GameFileError(
                f"{path}: line {lineno}: value {value!r} for ({row!r}, {col!r}) is outside "
                f"[-{scale:g}, {scale:g}]"
            )
        if (row, col) in entries:
            raise GameFileError(
                f"{path}: line {lineno}: duplicate pair ({row!r}, {col!r}), "
                f"first given on line {entries[(row, col)][1]}"
            )
        entries[(row, col)] = (value, lineno)
        for name in (row, col):
            names.setdefault(name, len(names))
    if not entries:
        raise GameFileError(f"{path}: file is empty (no cross-table entries)")
    order = tuple(names)
    missing = [(a, b) for a in order for b in order if (a, b) not in entries]
    if missing:
        shown = ", ".join(f"({a!r}, {b!r})" for a, b in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise GameFileError(
            f"{path}: cross-table over {len(order)} names is missing {len(missing)} ordered "
            f"pair(s): {shown}{more}"
        )
    V = np.empty((len(order), len(order)))
    for (a, b), (value, _) in entries.items():
        V[names[a], names[b]] = value
    return order, V


def load_crosstable(
    path, *, antisymmetrize: bool = False, scale: float = 1000.0, dtype=None
) -> CrossTable:
    """Read a cross-table of ``('row', 'col', value)`` lines as a game.

    Names are numbered in order of first appearance; every ordered pair (diagonal included) must
    appear exactly once, with ``value`` in ``[-scale, scale]``. ``value`` is what ``row`` wins
    against ``col``, so the table ``V`` maps to ``P = 1/2 + V / (2 * scale)``.

    Strict by default: a table that is not antisymmetric raises :class:`InvalidGameError` saying
    how large the asymmetry is. With ``antisymmetrize=True`` the table is replaced by
    ``V' = (V - V.T) / 2`` (zero diagonal), i.e. ``P = 1/2 + (V - V.T) / (4 * scale)``, and the
    size of that correction is returned in :class:`Correction`.
    """
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise InvalidGameError(f"scale must be positive and finite, got {scale!r}")
    p = _existing_file(path)
    names, V = _parse_crosstable(p.read_text(encoding="utf-8-sig"), p, scale)
    if len(names) < 2:
        raise InvalidGameError(f"{p}: a game needs at least 2 responses, got names {list(names)}")
    worst, i, j = _asymmetry(V)
    diag = np.abs(np.diag(V))
    k = int(np.argmax(diag))
    if not antisymmetrize and worst > DEFAULT_ATOL * scale:
        raise InvalidGameError(
            f"{p}: cross-table is not antisymmetric: max |V + V.T| = {worst:.6g} at "
            f"({names[i]!r}, {names[j]!r}) (V = {V[i, j]:g} and {V[j, i]:g}); max |diagonal| = "
            f"{diag[k]:.6g} at {names[k]!r}. Pass antisymmetrize=True (CLI: --antisymmetrize) "
            f"to use (V - V.T)/2, i.e. P = 1/2 + (V - V.T)/(4*{scale:g})"
        )
    V_anti = 0.5 * (V - V.T)
    P = 0.5 + V_anti / (2.0 * scale)
    change = float(np.abs(P - (0.5 + V / (2.0 * scale))).max())
    correction = Correction(
        max_abs_asymmetry=worst, max_abs_change=change, max_abs_diagonal=float(diag[k])
    )
    return CrossTable(game=make_game(P, dtype=dtype), names=names, correction=correction)


# ---------------------------------------------------------------------------------------------
# dispatch


def is_crosstable_file(path) -> bool:
    """Whether the first non-empty line of a text file starts with ``(`` (a tuple cross-table)."""
    p = _existing_file(path)
    if p.suffix.lower() == ".npy":
        return False
    try:
        with p.open(encoding="utf-8-sig") as fh:
            for line in fh:
                if line.strip():
                    return line.lstrip().startswith("(")
    except UnicodeDecodeError:
        return False
    return False


def load_game_file(path, *, antisymmetrize: bool = False, dtype=None) -> Game:
    """Load a game from a file of any supported kind.

    A tuple cross-table goes through :func:`load_crosstable` (where ``antisymmetrize`` applies).
    Otherwise the matrix is used as a preference matrix when valid, else as a payoff table via
    :func:`from_payoff` when antisymmetric; failing both, the preference-matrix validation error
    is raised. ``antisymmetrize`` does not apply to matrix files (their scale is ambiguous); it is
    a no-op for valid ones and is named in the error for invalid ones.
    """
    if is_crosstable_file(path):
        return load_crosstable(path, antisymmetrize=antisymmetrize, dtype=dtype).game
    M = load_named_matrix(path)[1]
    try:
        return make_game(M, dtype=dtype)
    except InvalidGameError as exc:
        if is_payoff_table(M):
            return from_payoff(M, dtype=dtype)
        hint = (
            "; antisymmetrize applies only to ('row', 'col', value) cross-tables"
            if antisymmetrize
            else ""
        )
        raise InvalidGameError(
            f"{path}: neither a preference matrix nor an antisymmetric payoff table: {exc}{hint}"
        ) from exc
