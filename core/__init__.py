"""prism_core: the framework-agnostic Prism-Reranker engine.

Example:
    >>> from prism_core import PrismReranker
    >>> reranker = PrismReranker.shared("infgrad/Prism-Qwen3.5-Reranker-0.8B")  # loads lazily
"""

from prism_core.engine import DEFAULT_MODEL, PrismReranker
from prism_core.errors import ModelLoadError, PrismError
from prism_core.protocol import Reranker
from prism_core.results import PrismResult

__all__ = ["DEFAULT_MODEL", "ModelLoadError", "PrismError", "PrismReranker", "PrismResult", "Reranker"]
__version__ = "0.1.0"
