"""prism_core: the framework-agnostic reranking core (Prism-Reranker first; Qwen3-Reranker, cross-encoders).

Example:
    >>> from prism_core import PrismReranker, load_reranker
    >>> reranker = PrismReranker.shared("infgrad/Prism-Qwen3.5-Reranker-0.8B")  # loads lazily
"""

from typing import TYPE_CHECKING

from prism_core.config import EngineConfig
from prism_core.errors import (
    EngineClosedError,
    ModelLoadError,
    NonFiniteScoreError,
    PrismError,
    UnknownBackendError,
)
from prism_core.grounding import GroundingReport, check_grounding
from prism_core.lazy import lazy_getattr
from prism_core.protocol import Capabilities, Reranker
from prism_core.registry import BACKENDS, detect_backend, load_reranker
from prism_core.results import PrismResult

if TYPE_CHECKING:  # imported on first use (see ``__getattr__``): torch only when a local model runs
    from prism_core.backends.cross_encoder import CrossEncoderReranker
    from prism_core.backends.prism import DEFAULT_MODEL, PrismReranker
    from prism_core.backends.qwen3_reranker import Qwen3Reranker
    from prism_core.backends.remote import RemoteReranker
    from prism_core.quality import QualityScorer

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


#: Public names whose modules import torch, transformers or sentence-transformers: imported on first
#: use, so that ``import prism_core`` (and a process that only calls a remote service) pays for none.
_LAZY = {
    "CrossEncoderReranker": "prism_core.backends.cross_encoder",
    "DEFAULT_MODEL": "prism_core.backends.prism",
    "PrismReranker": "prism_core.backends.prism",
    "QualityScorer": "prism_core.quality",
    "Qwen3Reranker": "prism_core.backends.qwen3_reranker",
    "RemoteReranker": "prism_core.backends.remote",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
