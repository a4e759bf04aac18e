"""Start fast: --help, `list` and an error about a bad argument answer without importing JAX (or
SciPy, Matplotlib, Flax, Optax, Orbax, pandas); the design rules on imports."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("jax", "jaxlib", "scipy", "matplotlib", "flax", "optax", "orbax", "pandas")

CASES = [  # (arguments, exit code, the stream and text that must appear)
    (["--help"], 0, "stdout", "Usage"),
    (["run", "--help"], 0, "stdout", "Usage"),
    (["list"], 0, "stdout", "comal3"),
    (["run", "nope", "rps"], 2, "stderr", "error: unknown algorithm 'nope'; known: comal"),
    (["run", "mwuu", "rps", "--feedback", "sampled"], 2, "stderr", "did you mean 'mwu'"),
    (["run", "mwu", "nogame"], 2, "stderr", "error: unknown game 'nogame'; valid names: rps"),
    (["run", "mwu", "rsp"], 2, "stderr", "did you mean 'rps'"),
    (["run", "mwu", "rps", "--set", "eta=abc"], 2, "stderr", "error: --set eta: 'abc' is not a number"),
    (["run", "mwu", "rps", "--eta", "-1"], 2, "stderr", "error: mwu: eta must be > 0"),
    (["run", "mwu", "rps", "--init", "a,b"], 2, "stderr", "error: a policy is 'uniform', 'random' or"),
]

# One fresh interpreter runs every case (each would import JAX for good), then reports the heavy
# modules imported.
WRAPPER = """
import json, sys
from typer.testing import CliRunner
from gamelab.cli import app
runs = [CliRunner().invoke(app, args) for args in json.loads(sys.argv[1])]
print(json.dumps({"runs": [{"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr} for r in runs],
                  "imported": sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))}))
"""


def test_help_list_and_bad_arguments_answer_without_importing_jax():
    out = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps([c[0] for c in CASES]), json.dumps(HEAVY)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for (args, code, stream, text), run in zip(CASES, report["runs"]):
        assert run["code"] == code and text in run[stream], (args, run)
    assert report["imported"] == [], f"imported {report['imported']}"


def test_suggestions_in_the_library_errors():
    from gamelab.algorithms import get_algorithm
    from gamelab.games import GameSpecError, parse_game

    with pytest.raises(ValueError, match="unknown algorithm 'sppoo'; known: .*; did you mean 'sppo'"):
        get_algorithm("sppoo")
    with pytest.raises(GameSpecError, match=r"unknown game 'cyclc'; valid names: .*; did you mean 'cyclic'\?"):
        parse_game("cyclc:n=5")
    with pytest.raises(ValueError, match=r"'mwu:inner=mmd': only comal takes an option \(comal:inner=SOLVER\)"):
        get_algorithm("mwu:inner=mmd")


PACKAGE = Path(__file__).resolve().parents[1] / "gamelab"


def imports_of(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_no_module_imports_another_modules_private_names():
    for path in PACKAGE.rglob("*.py"):
        for module, names in imports_of(path):
            private = [n for n in names if n.startswith("_")] if module.startswith("gamelab") else []
            assert not private, f"{path.relative_to(PACKAGE.parent)} imports {private} from {module}"


def test_the_algorithm_registry_imports_no_family():  # the families import base: no circle
    assert not [m for m, _ in imports_of(PACKAGE / "algorithms" / "base.py") if m.startswith("gamelab.algorithms")]


def test_the_command_leaves_its_objects_out_of_the_shutdown_collection(monkeypatch):
    """The ``gamelab`` console script is ``gamelab.cli:main``, which runs the app and then freezes
    the collector's objects (``gc.freeze``), so that the interpreter's shutdown does not walk JAX's
    object graph again (0.2–0.45 s a command); the exit code is the app's."""
    import gc
    import tomllib

    from gamelab import cli

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["gamelab"] == "gamelab.cli:main"
    monkeypatch.setattr(cli, "app", lambda: sys.exit(3))
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
        assert exited.value.code == 3 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process keeps collecting


def test_the_llm_backend_imports_flax_without_ipython_unless_ipython_is_running():
    """flax.nnx imports IPython (0.3 s) only to ask whether it runs under IPython; gamelab.llm
    answers "no" without it where IPython has not been imported, and leaves IPython importable."""
    pytest.importorskip("IPython")
    script = """
import sys
import gamelab.llm.train
from flax.nnx import reprlib
before = "IPython" in sys.modules
import IPython
print(before, IPython.get_ipython() is None, sys.stdout.isatty() or reprlib.COLOR == reprlib.NO_COLOR)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"], out.stdout
    # with IPython imported first, flax asks it as before (gamelab leaves the import alone)
    first = "import IPython, sys; import gamelab.llm; print('IPython' in sys.modules and sys.modules['IPython'] is not None)"
    out = subprocess.run([sys.executable, "-c", first], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["True"], out.stderr
