"""The Qwen3-Reranker family: its backend (:mod:`.reranker`) and its card's prompt (:mod:`.prompt`).
The backend is imported on use (it needs torch)."""
