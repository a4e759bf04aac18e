"""Named games, generators, spec parsing and file loaders."""
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import gamelab  # noqa: F401  (float64)
from gamelab.games import (
    GAMES,
    GameFileError,
    GameSpecError,
    InvalidGameError,
    biased_rps,
    bradley_terry,
    comal3,
    cyclic,
    describe_games,
    disc_game,
    from_payoff,
    game_names,
    load_crosstable,
    load_game_file,
    load_matrix,
    parse_game,
    random_game,
    rps,
    transitive,
    validate_matrix,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openspiel"


def _data(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"shared data file {path} is absent (expected beside the repository)")
    return path


def _assert_valid(game, n=None):
    P = np.asarray(game.P)
    assert P.dtype == np.float64
    validate_matrix(P)
    np.testing.assert_array_equal(P + P.T, np.ones_like(P))
    if n is not None:
        assert P.shape == (n, n)


# --------------------------------------------------------------------------- named games


@pytest.mark.parametrize("name", list(GAMES))
def test_every_registered_game_builds_and_validates(name):
    _assert_valid(parse_game(name))


def test_registry_listing_matches_names():
    assert game_names() == list(GAMES)
    rows = describe_games()
    assert [r[0] for r in rows] == game_names()
    assert dict((r[0], r[1]) for r in rows)["cyclic"] == "n:int=5, margin:float=0.5"
    assert all(r[2] for r in rows)


def test_rps_is_cyclic_with_unit_wins():
    P = np.asarray(rps().P)
    for i in range(3):
        assert P[i, (i + 1) % 3] == 1.0 and P[(i + 1) % 3, i] == 0.0
    np.testing.assert_array_equal(P, np.asarray(cyclic(3).P))
    np.testing.assert_allclose(P @ np.full(3, 1 / 3), 0.5)


def test_comal3_entries_and_nash():
    P = np.asarray(comal3().P)
    np.testing.assert_allclose(P, [[0.5, 0.1, 0.8], [0.9, 0.5, 0.1], [0.2, 0.9, 0.5]], atol=1e-15)
    np.testing.assert_allclose(P @ np.array([4, 3, 4]) / 11, 0.5, atol=1e-15)


def test_biased_rps_mapping_and_interior_nash():
    P = np.asarray(biased_rps().P)
    A = np.array([[0, -0.25, 0.5], [0.25, 0, -0.05], [-0.5, 0.05, 0]])
    np.testing.assert_allclose(P, 0.5 + A / 2, atol=1e-15)
    np.testing.assert_allclose(P @ np.array([1, 10, 5]) / 16, 0.5, atol=1e-15)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("margin", [0.1, 0.5])
def test_cyclic_structure(n, margin):
    P = np.asarray(cyclic(n, margin).P)
    _assert_valid(cyclic(n, margin), n)
    for i in range(n):
        for d in range(1, n):
            j = (i + d) % n
            expect = 0.5 + margin if d <= (n - 1) // 2 else (0.5 if 2 * d == n else 0.5 - margin)
            assert P[i, j] == pytest.approx(expect)
    np.testing.assert_allclose(P @ np.full(n, 1 / n), 0.5)  # uniform is a Nash


def test_transitive_is_bradley_terry():
    P = np.asarray(transitive(4, gap=2.0).P)
    np.testing.assert_allclose(P, np.asarray(bradley_terry([6.0, 4.0, 2.0, 0.0]).P))
    assert P[0, 1] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert (P[0, 1:] > 0.5).all()
    _assert_valid(bradley_terry([800.0, -800.0]))  # no overflow


def test_random_game_is_pure_in_its_key():
    a = random_game(jax.random.key(3), 10)
    b = random_game(jax.random.key(3), 10)
    c = random_game(jax.random.key(4), 10)
    np.testing.assert_array_equal(a.P, b.P)
    assert not np.allclose(a.P, c.P)
    _assert_valid(a, 10)
    upper = np.asarray(a.P)[np.triu_indices(10, 1)]
    assert ((upper > 0) & (upper < 1)).all() and upper.std() > 0.1


def test_disc_game_valid_and_pure():
    g = disc_game(jax.random.key(0), 12)
    _assert_valid(g, 12)
    np.testing.assert_array_equal(g.P, disc_game(jax.random.key(0), 12).P)
    assert not np.allclose(g.P, disc_game(jax.random.key(1), 12).P)
    A = 2 * np.asarray(g.P) - 1
    assert np.linalg.matrix_rank(A, tol=1e-10) == 2  # the disc game has rank 2


# --------------------------------------------------------------------------- parse_game


def test_parse_game_round_trips():
    np.testing.assert_array_equal(
        parse_game("random:n=10,seed=3").P, random_game(jax.random.key(3), 10).P
    )
    np.testing.assert_array_equal(parse_game("disc:seed=2,n=6").P, disc_game(jax.random.key(2), 6).P)
    np.testing.assert_array_equal(parse_game(" cyclic:n=5 ").P, cyclic(5).P)
    np.testing.assert_array_equal(parse_game("cyclic:n=4,margin=0.25").P, cyclic(4, 0.25).P)
    np.testing.assert_array_equal(parse_game("transitive:n=5,gap=1.0").P, transitive().P)
    np.testing.assert_array_equal(parse_game("comal3").P, comal3().P)
    np.testing.assert_array_equal(parse_game("rps:").P, rps().P)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("nosuch", r"unknown game 'nosuch'; valid names: rps, biased_rps, comal3, cyclic"),
        ("nosuch:n=3", r"unknown game 'nosuch'"),
        ("cyclic:k=3", r"no parameter 'k'; valid parameters: n, margin"),
        ("rps:n=3", r"no parameter 'n'; valid parameters: none"),
        ("random:n=ten", r"n='ten' is not a valid int"),
        ("random:n=3.5", r"n='3.5' is not a valid int"),
        ("cyclic:margin=big", r"margin='big' is not a valid float"),
        ("cyclic:n", r"'n' needs a value"),
        ("cyclic:n=3,n=4", r"'n' given twice"),
        ("", r"non-empty"),
    ],
)
def test_parse_game_spec_errors(spec, match):
    with pytest.raises(GameSpecError, match=match):
        parse_game(spec)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("cyclic:n=1", r"n must be at least 2, got 1"),
        ("cyclic:margin=0.7", r"margin must lie in \(0, 1/2\], got 0.7"),
        ("cyclic:margin=0", r"margin must lie in \(0, 1/2\]"),
        ("transitive:gap=-1", r"gap must be positive"),
        ("random:seed=-1", r"seed must lie in \[0, 2\*\*63\), got -1"),
    ],
)
def test_parse_game_value_errors(spec, match):
    with pytest.raises(InvalidGameError, match=match):
        parse_game(spec)


def test_parse_game_paths(tmp_path, monkeypatch):
    P = np.asarray(comal3().P)
    np.save(tmp_path / "g.npy", P)
    np.testing.assert_array_equal(parse_game(str(tmp_path / "g.npy")).P, P)
    monkeypatch.chdir(tmp_path)
    np.testing.assert_array_equal(parse_game("g.npy").P, P)  # suffix, no separator
    np.savetxt(tmp_path / "rps", P)
    np.testing.assert_array_equal(parse_game("rps").P, rps().P)  # registered name wins
    np.testing.assert_array_equal(parse_game("./rps").P, P)
    with pytest.raises(GameFileError, match=r"no such game file: 'missing\.csv'"):
        parse_game("missing.csv")
    with pytest.raises(GameFileError, match=r"no such game file"):
        parse_game("nowhere/g.txt")


# --------------------------------------------------------------------------- loaders


def test_load_matrix_formats(tmp_path):
    P = np.asarray(random_game(jax.random.key(0), 5).P)
    np.save(tmp_path / "p.npy", P)
    np.savetxt(tmp_path / "p.csv", P, delimiter=",", fmt="%.17g")
    np.savetxt(tmp_path / "p.txt", P, fmt="%.17g", header="a comment")
    np.savetxt(tmp_path / "p.dat", P, fmt="%.17g", delimiter="\t")
    for name in ["p.npy", "p.csv", "p.txt", "p.dat"]:
        np.testing.assert_array_equal(load_matrix(tmp_path / name), P)
        np.testing.assert_array_equal(load_game_file(tmp_path / name).P, P)


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("r.csv", "0.5,0.5\n0.5,0.5,0.1\n", r"line 2 has 3 values, but line 1 has 2 \(ragged"),
        ("r.txt", "\n0.5 0.5\n\n0.5\n", r"line 4 has 1 values, but line 2 has 2"),
        ("x.csv", "a,b\n0.5,0.5\n", r"line 1, column 1: 'a' is not a number"),
        ("x.txt", "0.5 0.5\n0.5 half\n", r"line 2, column 2: 'half' is not a number"),
        ("e.txt", "", r"file is empty"),
        ("e.csv", "\n  \n# only a comment\n", r"file is empty"),
    ],
)
def test_load_matrix_errors(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(GameFileError, match=match):
        load_matrix(tmp_path / name)


def test_load_matrix_missing_and_empty_npy(tmp_path):
    with pytest.raises(GameFileError, match=r"no such game file: .*nope\.npy"):
        load_matrix(tmp_path / "nope.npy")
    np.save(tmp_path / "z.npy", np.zeros((0, 0)))
    with pytest.raises(GameFileError, match=r"empty array of shape \(0, 0\)"):
        load_matrix(tmp_path / "z.npy")


def test_load_game_file_payoff_and_invalid(tmp_path):
    V = np.array([[0.0, 2.0, -1.0], [-2.0, 0.0, 4.0], [1.0, -4.0, 0.0]])
    np.savetxt(tmp_path / "v.txt", V)
    np.testing.assert_allclose(load_game_file(tmp_path / "v.txt").P, 0.5 + V / 8)
    bad = np.array([[0.5, 0.7], [0.2, 0.5]])
    np.savetxt(tmp_path / "bad.txt", bad)
    with pytest.raises(InvalidGameError, match=r"P \+ P\.T must equal 1"):
        load_game_file(tmp_path / "bad.txt")
    with pytest.raises(InvalidGameError, match=r"antisymmetrize applies only to"):
        load_game_file(tmp_path / "bad.txt", antisymmetrize=True)


def test_from_payoff_errors():
    V = np.array([[0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(from_payoff(V).P, [[0.5, 1.0], [0.0, 0.5]])
    np.testing.assert_allclose(from_payoff(V, scale=4).P, [[0.5, 0.625], [0.375, 0.5]])
    np.testing.assert_allclose(from_payoff(np.zeros((3, 3))).P, np.full((3, 3), 0.5))
    with pytest.raises(InvalidGameError, match=r"V\[0, 1\] \+ V\[1, 0\] = 0\.5"):
        from_payoff([[0.0, 1.0, 0.0], [-0.5, 0.0, 0.1], [0.0, -0.1, 0.0]])
    with pytest.raises(InvalidGameError, match=r"zero diagonal: V\[1, 1\] = 0\.3"):
        from_payoff([[0.0, 1.0], [-1.0, 0.3]])
    with pytest.raises(InvalidGameError, match=r"scale 0\.5 is too small: \|V\[0, 1\]\| = 1"):
        from_payoff(V, scale=0.5)
    with pytest.raises(InvalidGameError, match=r"scale must be positive"):
        from_payoff(V, scale=0)
    with pytest.raises(InvalidGameError, match=r"square 2-D matrix, got shape \(2, 3\)"):
        from_payoff(np.zeros((2, 3)))


def _write_table(path, names, V, skip=(), extra=()):
    lines = [
        repr((a, b, float(V[i, j])))
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if (a, b) not in skip
    ]
    path.write_text("\n".join(lines + list(extra)) + "\n")
    return path


def test_load_crosstable_small(tmp_path):
    names = ["x", "y", "z"]
    V = np.array([[0.0, 100.0, -300.0], [-100.0, 0.0, 50.0], [300.0, -50.0, 0.0]])
    table = load_crosstable(_write_table(tmp_path / "t.txt", names, V))
    assert table.names == ("x", "y", "z")
    np.testing.assert_allclose(table.game.P, 0.5 + V / 2000)
    assert table.correction.max_abs_asymmetry == 0.0
    np.testing.assert_allclose(load_game_file(tmp_path / "t.txt").P, table.game.P)

    noisy = V + np.array([[2.0, 10.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    path = _write_table(tmp_path / "n.txt", names, noisy)
    with pytest.raises(InvalidGameError, match=r"max \|V \+ V\.T\| = 10 at \('x', 'y'\).*antisymmetrize"):
        load_crosstable(path)
    fixed = load_crosstable(path, antisymmetrize=True)
    expect = 0.5 + (noisy - noisy.T) / 4000
    np.testing.assert_allclose(fixed.game.P, expect)
    assert fixed.correction.max_abs_asymmetry == pytest.approx(10.0)
    assert fixed.correction.max_abs_diagonal == pytest.approx(2.0)
    assert fixed.correction.max_abs_change == pytest.approx(10.0 / 4000)


@pytest.mark.parametrize(
    "skip, extra, match",
    [
        ({("y", "x")}, (), r"missing 1 ordered pair\(s\): \('y', 'x'\)"),
        ((), ("('x', 'y', 1.0)",), r"line 10: duplicate pair \('x', 'y'\), first given on line 2"),
        ((), ("('x', 'y'",), r"line 10: cannot parse"),
        ((), ("('x', 'y')",), r"line 10: expected \('row_name', 'col_name', number\)"),
        ((), ("('x', 'w', 1500.0)",), r"line 10: value 1500\.0 for \('x', 'w'\) is outside \[-1000, 1000\]"),
    ],
)
def test_load_crosstable_errors(tmp_path, skip, extra, match):
    V = np.zeros((3, 3))
    path = _write_table(tmp_path / "t.txt", ["x", "y", "z"], V, skip=skip, extra=extra)
    with pytest.raises(GameFileError, match=match):
        load_crosstable(path)


def test_load_crosstable_missing_file(tmp_path):
    with pytest.raises(GameFileError, match=r"no such game file"):
        load_crosstable(tmp_path / "absent.txt")


# --------------------------------------------------------------------------- real data


def test_soccer_win_rates_load_directly():
    path = _data("soccer_win_rates.txt")
    game = load_game_file(path)
    _assert_valid(game, 10)
    np.testing.assert_allclose(game.P, np.loadtxt(path), atol=1e-12)
    np.testing.assert_array_equal(parse_game(str(path)).P, game.P)


def test_rrps_bot_table_strict_and_antisymmetrized():
    path = _data("rrps_bot_table.txt")
    with pytest.raises(InvalidGameError, match=r"not antisymmetric.*antisymmetrize"):
        load_game_file(path)
    with pytest.raises(InvalidGameError, match=r"--antisymmetrize"):
        parse_game(str(path))
    table = load_crosstable(path, antisymmetrize=True)
    _assert_valid(table.game, 43)
    assert len(table.names) == 43 and len(set(table.names)) == 43
    assert 20 < table.correction.max_abs_asymmetry < 60
    assert table.correction.max_abs_change == pytest.approx(table.correction.max_abs_asymmetry / 4000)
    np.testing.assert_array_equal(parse_game(str(path), antisymmetrize=True).P, table.game.P)


# --------------------------------------------------------------------------- properties


@st.composite
def antisymmetric(draw):
    n = draw(st.integers(2, 8))
    M = draw(arrays(np.float64, (n, n), elements=st.floats(-1e6, 1e6, allow_subnormal=False)))
    return M - M.T


@settings(max_examples=60, deadline=None)
@given(antisymmetric(), st.floats(1.0, 4.0))
def test_from_payoff_gives_valid_game(V, stretch):
    game = from_payoff(V)
    _assert_valid(game, V.shape[0])
    vmax = np.abs(V).max()
    if vmax > 0:
        np.testing.assert_allclose(game.P, 0.5 + V / (2 * vmax), atol=1e-12)
        _assert_valid(from_payoff(V, scale=stretch * vmax))


def test_run_and_run_batch_take_a_games_name_as_the_command_line_does():
    from gamelab.games import parse_game
    from gamelab.run import run, run_batch

    by_name, by_game = run("mwu", "biased_rps", steps=20), run("mwu", parse_game("biased_rps"), steps=20)
    np.testing.assert_array_equal(np.asarray(by_name.trace["duality_gap"]), np.asarray(by_game.trace["duality_gap"]))
    names = ["random:n=5,seed=0", "random:n=5,seed=1"]
    a = run_batch("mwu", names, steps=20)
    b = run_batch("mwu", [parse_game(g) for g in names], steps=20)
    np.testing.assert_array_equal(np.asarray(a.policy), np.asarray(b.policy))
    assert a.final["duality_gap"][0] != a.final["duality_gap"][1]  # two games, not one broadcast
    with pytest.raises(ValueError, match="did you mean 'rps'"):
        run("mwu", "rsp", steps=5)
