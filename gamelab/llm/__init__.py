"""The transformer backend: the same algorithms on a language-model policy (DESIGN §5)."""
from gamelab.llm.model import TransformerPolicy, sequence_index, sequence_tokens

__all__ = ["TransformerPolicy", "sequence_index", "sequence_tokens"]
