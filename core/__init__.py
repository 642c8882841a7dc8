"""prism_core: the framework-agnostic reranking core (Prism-Reranker first; Qwen3-Reranker, cross-encoders).

Example:
    >>> from prism_core import PrismReranker, load_reranker
    >>> reranker = PrismReranker.shared("infgrad/Prism-Qwen3.5-Reranker-0.8B")  # loads lazily
"""

from prism_core.backends.prism import DEFAULT_MODEL, PrismReranker
from prism_core.backends.qwen3_reranker import Qwen3Reranker
from prism_core.config import EngineConfig
from prism_core.errors import (
    EngineClosedError,
    ModelLoadError,
    NonFiniteScoreError,
    PrismError,
    UnknownBackendError,
)
from prism_core.grounding import GroundingReport, check_grounding
from prism_core.protocol import Capabilities, Reranker
from prism_core.registry import BACKENDS, detect_backend, load_reranker
from prism_core.results import PrismResult

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "Capabilities",
    "CrossEncoderReranker",
    "EngineClosedError",
    "EngineConfig",
    "GroundingReport",
    "ModelLoadError",
    "NonFiniteScoreError",
    "PrismError",
    "PrismReranker",
    "PrismResult",
    "QualityScorer",
    "Qwen3Reranker",
    "RemoteReranker",
    "Reranker",
    "UnknownBackendError",
    "check_grounding",
    "detect_backend",
    "load_reranker",
]
__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    # The cross-encoder backend imports sentence-transformers, the quality prior its encoder stack:
    # only when asked for.
    if name == "CrossEncoderReranker":
        from prism_core.backends.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker
    if name == "RemoteReranker":
        from prism_core.backends.remote import RemoteReranker

        return RemoteReranker
    if name == "QualityScorer":
        from prism_core.quality import QualityScorer

        return QualityScorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
