"""Shared strategies, settings and helpers for the test suite."""
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

# One persistent compilation cache for the whole suite, set before gamelab is imported: every
# xdist worker and every subprocess a test starts (they inherit the environment) reads a program
# another one compiled. It lives outside the checkout, beside gamelab's default user cache, so a
# fresh clone on the same machine starts warm, while the suite's thousands of test-only programs
# neither evict the user's own entries nor are wiped with them. GAMELAB_CACHE_DIR, when set, wins
# (an empty folder measures a cold run; "off" disables the cache), and so does a cache folder set
# through JAX's own JAX_COMPILATION_CACHE_DIR.
_JAX_CACHE_GIVEN = "JAX_COMPILATION_CACHE_DIR" in os.environ
os.environ.setdefault("GAMELAB_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                              / "gamelab" / "jax-tests"))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gamelab  # noqa: E402  (turns on float64 and the compilation cache)

# gamelab configures JAX's cache from GAMELAB_CACHE_DIR (unbounded: bounding it makes JAX scan
# every entry on each write), in this process and, through the environment, in every subprocess;
# the suite's oldest entries are removed at the start of a run once it is large.
CACHE_DIR = None if _JAX_CACHE_GIVEN else gamelab.compilation_cache_dir()
CACHE_MAX_BYTES = 2**30

def _prune_compilation_cache(folder: Path, limit: int = CACHE_MAX_BYTES) -> None:
    """Beyond ``limit`` bytes, remove the oldest entries until half of it is left (programs of
    code that has since changed; one still in use is compiled again once)."""
    entries = []
    for path in folder.rglob("*"):  # the compilation cache and gamelab's store of executables (a subfolder)
        try:
            if path.is_file():
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        except OSError:  # removed meanwhile by another run
            pass
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return
    for _, size, path in sorted(entries):
        if total <= limit // 2:
            break
        path.unlink(missing_ok=True)
        total -= size


def pytest_sessionstart(session):
    if CACHE_DIR is not None and not hasattr(session.config, "workerinput"):  # once, before the workers start
        _prune_compilation_cache(CACHE_DIR)


settings.register_profile(
    "default", deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("GAMELAB_HYPOTHESIS_PROFILE", "default"))

COMAL3 = np.array([[0.5, 0.1, 0.8], [0.9, 0.5, 0.1], [0.2, 0.9, 0.5]])
COMAL3_NASH = np.array([4.0, 3.0, 4.0]) / 11.0


def random_matrix(rng: np.random.Generator, n: int) -> np.ndarray:
    """Upper triangle i.i.d. uniform, P + Pᵀ = 1, diagonal 1/2 (EGPO's random games)."""
    U = np.triu(rng.uniform(size=(n, n)), 1)
    P = U + np.tril(1.0 - U.T, -1)
    np.fill_diagonal(P, 0.5)
    return P


@st.composite
def games(draw, sizes=(3, 5, 8)):
    """Valid preference matrices of a few fixed sizes (few sizes: JAX compiles once per shape)."""
    n = draw(st.sampled_from(sizes))
    seed = draw(st.integers(0, 2**32 - 1))
    return random_matrix(np.random.default_rng(seed), n)


@st.composite
def interior_nash_games(draw, sizes=(3, 5, 7)):
    """(P, π*, η_max): games with a unique, fully mixed Nash π* and a well-conditioned skew part.

    P = 1/2 + A with A = Σ_k λ_k (u_k v_kᵀ − v_k u_kᵀ), the (u_k, v_k) an orthonormal basis of π*'s
    orthogonal complement paired into planes (n odd), λ_k ∈ [0.5, 1]: A is skew, Aπ* = 0, and A is
    invertible on π*^⊥, so π* is the unique Nash. η_max = 1/‖D^½ A D^½‖₂ with D = diag(π*) is the
    scale of the linearized MWU-type dynamics at π*: optimistic methods converge below it from a
    start near π* (:func:`near`) — a local scale only: from uniform, η = η_max/2 can leave the
    basin (a 3×3 game with π* = (0.032, 0.728, 0.240), η = 10.8: OMWU's gap still 0.35 after 3000
    steps). Games whose D^½ A D^½ has a condition number (on π*^⊥) above :data:`KAPPA_MAX` are
    drawn again, so that a fixed number of steps suffices: the slowest mode contracts like
    1 − c/κ² per step (measured: at most 253 κ² steps to a gap of 1e-10, OMWU and extragradient,
    900 games).
    """
    n = draw(st.sampled_from(sizes))
    return interior_nash_game(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), n)


KAPPA_MAX = 6.0


def interior_nash_game(rng: np.random.Generator, n: int):
    """One (P, π*, η_max) of :func:`interior_nash_games`, from a numpy Generator."""
    while True:
        pi = rng.dirichlet(np.full(n, 3.0))
        basis = np.linalg.qr(np.column_stack([pi, rng.normal(size=(n, n - 1))]))[0][:, 1:]
        A = np.zeros((n, n))
        for k in range((n - 1) // 2):
            u, v = basis[:, 2 * k], basis[:, 2 * k + 1]
            A += rng.uniform(0.5, 1.0) * (np.outer(u, v) - np.outer(v, u))
        A *= 0.45 / np.abs(A).max()
        P = 0.5 + A
        np.fill_diagonal(P, 0.5)
        d = np.sqrt(pi)
        sv = np.linalg.svd(d[:, None] * A * d[None, :], compute_uv=False)  # n − 1 nonzero: rank n − 1
        if sv[0] <= KAPPA_MAX * sv[n - 2]:
            return P, pi, 1.0 / sv[0]


def near(nash: np.ndarray, spread: float = 0.1, seed: int = 0) -> np.ndarray:
    """A start within a factor e^±spread of ``nash`` in every coordinate (renormalized): where the
    linearization at the Nash, and so η_max, describes the dynamics."""
    p = nash * np.exp(np.random.default_rng(seed).uniform(-spread, spread, size=nash.shape))
    return p / p.sum()


def load_experiment(name: str):
    """An experiment script (experiments/NAME.py) as a module, so its tests call its own code."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_LLAMA = Path(__file__).parent / "golden" / "llm" / "llama"  # random weights from benchmarks/llm_parity.py


def tiny_llama(folder: Path, prompts: str) -> tuple[Path, Path]:
    """(a copy of the tiny random Llama checkpoint in ``folder``, a prompts file there holding ``prompts``)."""
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY_LLAMA / name, folder / name)
    (folder / "prompts.txt").write_text(prompts)
    return folder, folder / "prompts.txt"


def llm_run(*args) -> tuple[int, str, str]:
    """``gamelab llm run ARGS --quiet`` in process: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from gamelab.cli import app

    r = CliRunner().invoke(app, ["llm", "run", *args, "--quiet"])
    return r.exit_code, r.stdout, r.stderr


def gamelab_cli(*args) -> subprocess.CompletedProcess:
    """`gamelab ARGS` run in this process through typer's CliRunner (no interpreter start-up, and
    the programs this worker compiled already are reused), as a CompletedProcess: exit code,
    stdout, stderr. An exception the command does not handle is written to stderr as the
    traceback a real process would print, so "no Traceback" assertions keep their meaning."""
    from typer.testing import CliRunner

    from gamelab.cli import app

    args = [str(a) for a in args]
    r = CliRunner().invoke(app, args)
    stderr = r.stderr
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(r.exception))
    return subprocess.CompletedProcess([sys.executable, "-m", "gamelab.cli", *args], r.exit_code, r.stdout, stderr)


# The costliest test files, heaviest first (their share of a full run, with a cold and with a warm
# compilation cache). pytest-xdist (`--dist loadfile`) hands each worker the next whole file when
# it is nearly done; started first, the long files run side by side and the short ones fill in at
# the end, so the workers finish together. (pyproject's `--no-loadscope-reorder` keeps xdist from
# ordering the files by their number of tests instead.) Files not listed follow in their usual order.
COSTLIEST_FIRST = (  # measured worker-seconds per file, largest first (2 workers: the last file sets the tail)
    "test_llm_real_run.py", "test_llm.py", "test_llama.py", "test_sampled.py", "test_sharding.py",
    "test_algorithms.py", "test_llm_large.py", "test_sweep.py", "test_transformer_experiment.py",
    "test_reliability.py", "test_llm_judge.py", "test_notebooks.py", "test_against_reference.py",
    "test_padding.py", "test_votes.py", "test_benchmark_scripts.py", "test_plots_report.py", "test_cli.py",
    "test_results_store.py", "test_golden.py", "test_rates.py", "test_misuse.py", "test_last_iterate_methods.py",
    "test_recording.py", "test_em.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(COSTLIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


@pytest.fixture(autouse=True, scope="session")
def _one_cpu_device():
    """Start JAX's backends with its default single CPU device before any test runs. Otherwise
    the first in-process `gamelab` command (CliRunner) of a worker would expose every core as a
    device for the rest of that worker's tests, depending on which file it happened to get:
    other shardings, other compiled programs, fewer hits in the compilation cache."""
    import jax

    jax.devices()


def _files_under(folder: Path) -> set:
    return {(str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


@pytest.fixture(autouse=True, scope="session")
def _nothing_written_into_the_checkout():
    """The commands' default results folder is ./outputs: a test that forgets --out (or out=) writes
    there, and a second suite run on the same checkout then meets that run's folder. Each worker
    fails its last test's teardown, naming the files, when any appeared or changed."""
    outputs = Path.cwd() / "outputs"
    before = _files_under(outputs)
    yield
    new = sorted(path for path, _ in _files_under(outputs) - before)
    assert not new, f"tests wrote into the checkout's outputs/ (give them tmp_path): {new[:5]}"


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after a module once they hold many memory mappings. The suite
    compiles thousands of XLA programs in one process; kept alive, their code mappings pile up
    toward vm.max_map_count (65530 by default) until a compile aborts inside XLA (seen late in a
    full run in test_sampled.py, never alone). The costliest module, test_algorithms.py, adds about
    27,000 mappings; clearing beyond a quarter of the default limit (and of a lower one) keeps any
    module well below it, and a worker's memory near 3 GB, while light modules keep the programs
    of those before them (a cleared program is traced again and read back from the persistent
    cache). Where the count cannot be read, clear after every module. (gamelab itself drops them
    only past half the limit: gamelab.hosts.release_programs.)"""
    from gamelab.hosts import mappings

    yield
    counts = mappings()
    if counts is None or counts[0] > min(65530, counts[1]) // 4:
        import jax

        jax.clear_caches()
