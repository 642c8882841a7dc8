"""The cross-encoder family: its backend (:mod:`.reranker`), loading (:mod:`.loading`), tokenisation
into rows (:mod:`.rows`) and its part of the engine loop (:mod:`.executor`). Imported on use (torch,
sentence-transformers)."""
