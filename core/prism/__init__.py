"""The Prism-Reranker family: its backend (:mod:`.reranker`), its exact prompt (:mod:`.prompt`) and the
parsing of its generated text (:mod:`.parsing`). The backend is imported on use (it needs torch)."""
