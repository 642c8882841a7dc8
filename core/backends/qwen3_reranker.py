"""The former home of ``Qwen3Reranker``: the Qwen3-Reranker family now lives in :mod:`prism_core.qwen3`."""

from prism_core.qwen3.reranker import DEFAULT_MODEL, Qwen3Reranker

__all__ = ["DEFAULT_MODEL", "Qwen3Reranker"]
