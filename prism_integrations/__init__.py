"""Reranker adapters for LangChain, LlamaIndex and Haystack, on the one shared core (prism_core).

Each adapter takes any backend of the core (Prism-Reranker, Qwen3-Reranker, cross-encoders: pick
one with ``model=`` and ``backend=``) with the same options and one metadata schema. Each lives in
its own module and imports only its framework:

* :class:`prism_integrations.langchain.PrismDocumentCompressor` (extra ``langchain``)
* :class:`prism_integrations.llama_index.PrismNodePostprocessor` (extra ``llama-index``)
* :class:`prism_integrations.haystack.PrismRanker` (extra ``haystack``; the class lives in
  ``haystack_integrations.components.rankers.prism``, where Haystack loads saved pipelines from)

The names are also available from this package, imported on first access, so
``from prism_integrations import PrismRanker`` needs only Haystack installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prism_core.lazy import lazy_getattr

if TYPE_CHECKING:
    from prism_integrations.haystack import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor
    from prism_integrations.quality_haystack import QualityAnnotator
    from prism_integrations.quality_langchain import QualityDocumentCompressor
    from prism_integrations.quality_llama_index import QualityNodePostprocessor

__all__ = [
    "PrismDocumentCompressor",
    "PrismNodePostprocessor",
    "PrismRanker",
    "QualityAnnotator",
    "QualityDocumentCompressor",
    "QualityNodePostprocessor",
]

_LAZY = {
    "PrismDocumentCompressor": "prism_integrations.langchain",
    "PrismNodePostprocessor": "prism_integrations.llama_index",
    "PrismRanker": "prism_integrations.haystack",
    "QualityAnnotator": "prism_integrations.quality_haystack",
    "QualityDocumentCompressor": "prism_integrations.quality_langchain",
    "QualityNodePostprocessor": "prism_integrations.quality_llama_index",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
