"""The LP Nash kept on disk (gamelab.prepare.nash_policy): a later process reads the solution
instead of importing SciPy and solving again, bit for bit; what is damaged is solved again."""
import numpy as np
import pytest

from conftest import COMAL3, COMAL3_NASH
from gamelab import prepare
from gamelab.games.named import parse_game


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAMELAB_CACHE_DIR", str(tmp_path))
    prepare._nash_of.cache_clear()  # as a new process: nothing solved in memory
    yield tmp_path / "nash"
    prepare._nash_of.cache_clear()


def solve_counting(monkeypatch):
    calls = []
    real = prepare.exact_nash

    def counted(P):
        calls.append(P.shape)
        return real(P)

    monkeypatch.setattr(prepare, "exact_nash", counted)
    return calls


def test_a_second_process_reads_the_solution_bit_for_bit(cache, monkeypatch):
    P = np.asarray(parse_game("random:n=10,seed=3").P)
    first = prepare.nash_policy(P)
    assert len(list(cache.glob("*.npy"))) == 1 and not list(cache.glob("*.tmp"))
    prepare._nash_of.cache_clear()
    calls = solve_counting(monkeypatch)
    again = prepare.nash_policy(P)
    assert calls == [] and np.array_equal(again, first)
    other = prepare.nash_policy(COMAL3)  # another matrix: its own file
    np.testing.assert_allclose(other, COMAL3_NASH, atol=1e-12)
    assert len(calls) == 1 and len(list(cache.glob("*.npy"))) == 2
    np.testing.assert_array_equal(first, prepare.exact_nash(P).policy)  # what the LP gives, unchanged


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a Nash", "wrong size", "pickled object"])
def test_a_damaged_or_wrong_file_is_solved_again_and_replaced(cache, monkeypatch, damage):
    prepare.nash_policy(COMAL3)
    (path,) = cache.glob("*.npy")
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 200)
    elif damage == "not a Nash":
        np.save(path, np.array([1.0, 0.0, 0.0]))  # a distribution, but response 1 beats it by 0.4
    elif damage == "wrong size":
        np.save(path, np.full(4, 0.25))
    else:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    prepare._nash_of.cache_clear()
    calls = solve_counting(monkeypatch)
    np.testing.assert_allclose(prepare.nash_policy(COMAL3), COMAL3_NASH, atol=1e-12)
    assert calls == [(3, 3)] and path.read_bytes() == good


def test_no_cache_folder_or_an_unwritable_one_still_solves(tmp_path, monkeypatch):
    monkeypatch.setenv("GAMELAB_CACHE_DIR", "off")
    prepare._nash_of.cache_clear()
    np.testing.assert_allclose(prepare.nash_policy(COMAL3), COMAL3_NASH, atol=1e-12)
    monkeypatch.setenv("GAMELAB_CACHE_DIR", str(tmp_path))
    prepare._nash_of.cache_clear()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full)
    np.testing.assert_allclose(prepare.nash_policy(COMAL3), COMAL3_NASH, atol=1e-12)
    assert list((tmp_path / "nash").iterdir()) == []  # no file and no half-written temporary left
    prepare._nash_of.cache_clear()
