"""The ``prism-rerank`` command line: JSONL reranking (:mod:`.rerank`) and the demo (:mod:`.demo`)."""

from prism_core.cli.rerank import main

__all__ = ["main"]
