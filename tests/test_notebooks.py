"""The notebooks execute top to bottom, headless, with small settings, and draw what they promise.

Each notebook is read from disk (never written back), a cell with small settings is inserted right
after its cell tagged ``parameters`` (papermill's convention, so the notebook's own defaults still
run first and are then overridden), and the copy runs in a fresh ``python3`` kernel inside a
temporary folder, with ``GAMELAB_NOTEBOOK_OUT`` pointing there. A cell error fails the test with
the cell and its traceback (nbclient's CellExecutionError).
"""
import re
from pathlib import Path
from queue import Empty
from time import monotonic

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need nbformat (pip install -e '.[dev]')")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbclient (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel for the python3 kernel (pip install -e '.[dev]')")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 120  # seconds per cell

DYNAMICS_SMALL = """
STEPS = 300
INNER = 30
RECORD_EVERY = 5
"""
SWEEP_SMALL = """
GAMES = ["comal3", "biased_rps"]
STEPS = 200
RECORD_EVERY = 10
SEEDS = [0, 1]
ETAS = [0.1, 0.3]
TAUS = [0.1, 0.3]
COMAL_OUTER = 4
COMAL_INNER = 20
"""


def _sliced(channel, slice_s: float = 0.25) -> None:
    """Make ``channel.get_msg`` wait in short slices instead of one long poll.

    Works around jupyter/nbclient#312: after a cell that opens widgets (our ``interact`` cell), the
    client's single poll on the shell socket sometimes misses the execute_reply that has already
    arrived and only wakes when the cell timeout expires (about 1 run in 5 here, costing the full
    timeout). A fresh poll sees the pending message at once.
    """
    get_msg = channel.get_msg

    async def get(timeout=None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            wait = slice_s if deadline is None else max(0.0, min(slice_s, deadline - monotonic()))
            try:
                return await get_msg(timeout=wait)
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    channel.get_msg = get


class _Client(nbclient.NotebookClient):
    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        _sliced(kc.shell_channel)
        _sliced(kc.iopub_channel)
        return kc


def execute(name: str, settings: str, cwd: Path, prelude: str = ""):
    """Run notebooks/<name> with ``settings`` injected after its parameters cell; return the result."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
    assert nb.cells[tagged[0]].cell_type == "code"
    injected = nbformat.v4.new_code_cell(settings.strip(), metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(tagged[0] + 1, injected)
    if prelude:
        nb.cells.insert(0, nbformat.v4.new_code_cell(prelude.strip()))
    _Client(nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb, where=None):
    """(cell source, output) pairs of the code cells, optionally only cells whose source contains ``where``."""
    return [(c.source, o) for c in nb.cells if c.cell_type == "code" and (where is None or where in c.source)
            for o in c.get("outputs", [])]


def text_of(nb, where=None) -> str:
    parts = []
    for _, o in outputs(nb, where):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o.data.get("text/plain", ""))
    return "\n".join(parts)


def images(nb, where=None) -> int:
    return sum("image/png" in o.get("data", {}) for _, o in outputs(nb, where))


def _no_errors(nb) -> None:
    errors = [o for _, o in outputs(nb) if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]


def _widget_images(nb) -> int:
    """Images drawn inside ipywidgets Output widgets (kept in the notebook's widget state)."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return sum("image/png" in o.get("data", {}) for model in state.values()
               if model.get("model_name") == "OutputModel" for o in model.get("state", {}).get("outputs", []))


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GAMELAB_NOTEBOOK_OUT", str(tmp_path / "sweep"))
    return tmp_path


def test_dynamics_notebook_draws_the_four_algorithms_and_the_widget(notebook_env):
    nb = execute("last_iterate_dynamics.ipynb", DYNAMICS_SMALL, notebook_env)
    _no_errors(nb)
    assert images(nb, "draw(ETA, TAU)") >= 1, "the static figure at the default η, τ was not drawn"
    table = text_of(nb, "final_table(ETA, TAU)")
    for name in ("MWU", "OMWU", "INPO", "COMAL", "KL(π*‖π_t)", "duality gap"):
        assert name in table, f"{name!r} missing from the final table:\n{table}"
    assert re.search(r"^MWU\s+300\s", table, re.M), table  # the injected STEPS reached the runs
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # the notebook's fallback: a plain call drawing the defaults
        assert images(nb, "interact(") == 1
    else:  # the sliders, with the default figure drawn inside interact's output widget
        views = [o for _, o in outputs(nb, "interact(") if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert len(views) == 1, "the interact cell shows no widget"
        assert _widget_images(nb) >= 1, "interact did not draw the default figure"


def test_dynamics_notebook_falls_back_without_ipywidgets(notebook_env):
    block = "import sys\nsys.modules['ipywidgets'] = None  # import ipywidgets now raises ImportError"
    nb = execute("last_iterate_dynamics.ipynb", DYNAMICS_SMALL, notebook_env, prelude=block)
    _no_errors(nb)
    assert images(nb, "interact(") == 1, "without ipywidgets the cell should draw the defaults once"
    assert not nb.metadata.get("widgets")


def test_sweep_notebook_runs_then_loads_the_sweep(notebook_env):
    out = notebook_env / "sweep"
    nb = execute("sweep_analysis.ipynb", SWEEP_SMALL, notebook_env)
    _no_errors(nb)
    assert (out / "_manifest.json").is_file() and list((out / "chunks").glob("*.parquet"))
    assert "0 already on disk" in text_of(nb, "execute(spec")
    report = text_of(nb, "format_table(summary)")
    header = report.splitlines()[0].split()
    assert header[:3] == ["algorithm", "game", "config"] and header[-1] == "verdict", report
    for algo in ("mwu", "omwu", "inpo", "comal"):
        assert any(line.startswith(algo + " ") for line in report.splitlines()), f"no {algo} row:\n{report}"
    assert "biased_rps" in report and "comal3" in report
    assert images(nb, "plot_gaps(") == 1
    assert images(nb, "plot_simplex(") == 1
    assert images(nb, "plot_heatmap(") == 1
    assert {p.name for p in (out / "_figures").glob("*.png")} == {"gap_curves.png", "simplex.png", "heatmap_eta_tau.png"}
    pivot = text_of(nb, "by_eta = ")
    assert "0.3" in pivot and "comal" in pivot and "omwu" in pivot, pivot

    # executing it again loads the finished folder instead of recomputing it
    again = execute("sweep_analysis.ipynb", SWEEP_SMALL, notebook_env)
    _no_errors(again)
    assert ": 0 run now" in text_of(again, "execute(spec")
    assert text_of(again, "format_table(summary)").strip() == report.strip()  # stream chunking may differ
