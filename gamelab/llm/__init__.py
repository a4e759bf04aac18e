"""The transformer backend: the same algorithms on a language-model policy (DESIGN §5)."""
import sys


def _import_nnx_without_ipython() -> None:
    """Import ``flax.nnx`` without IPython (0.3 s, a quarter of a warm run's imports): at import,
    flax only asks whether it runs under IPython (to colour its reprs), and does so by importing
    it. A process that has not imported IPython is not running under it, so for that import the
    answer is given without it; in a notebook (IPython imported) nothing changes."""
    if "IPython" in sys.modules or "flax.nnx" in sys.modules:
        return
    sys.modules["IPython"] = None  # `from IPython import …` raises ImportError, which flax takes as "no"
    try:
        import flax.nnx  # noqa: F401
    finally:
        if "IPython" in sys.modules and sys.modules["IPython"] is None:
            del sys.modules["IPython"]


_import_nnx_without_ipython()

from gamelab.llm.model import TransformerPolicy, sequence_index, sequence_tokens  # noqa: E402

__all__ = ["TransformerPolicy", "sequence_index", "sequence_tokens"]
