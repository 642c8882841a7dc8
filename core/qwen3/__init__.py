"""Qwen3-Reranker's data contract: the exact prompt of its model card."""
