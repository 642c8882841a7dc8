"""Serving the core over HTTP: a Cohere-v2-compatible rerank service, Ray Serve replicas, Ray Data batch.

Needs the ``server`` extra (``pip install "prism-integrations[server]"``) for the HTTP service and the
``ray`` extra for :mod:`.ray_serve` and :mod:`.ray_batch`. Nothing here is imported by
``import prism_core``.

Example:
    >>> from prism_core.config import EngineConfig
    >>> from prism_core.serving.app import create_app  # doctest: +SKIP
    >>> config = EngineConfig(model="infgrad/Prism-Qwen3.5-Reranker-0.8B", backend="prism")
    >>> app = create_app(config)  # doctest: +SKIP
"""

from __future__ import annotations
