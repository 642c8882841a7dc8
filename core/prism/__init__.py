"""Prism-Reranker's data contract: the exact prompt strings and the parsing of its generated text."""
