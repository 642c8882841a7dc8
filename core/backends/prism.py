"""The former home of ``PrismReranker``: the Prism family now lives in :mod:`prism_core.prism`."""

from prism_core.prism.reranker import DEFAULT_MODEL, PrismReranker

__all__ = ["DEFAULT_MODEL", "PrismReranker"]
