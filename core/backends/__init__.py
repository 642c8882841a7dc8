"""The rerankers behind the one protocol: Prism, Qwen3-Reranker, cross-encoders."""
