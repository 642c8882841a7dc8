"""Long documents on the cross-encoder backend, BERT and XLM-RoBERTa (the architecture of
bge-reranker-v2-m3 and ARA-Reranker-V1): chunk windows score as they score alone; a passage at a
long document's end is found by chunk mode and missed by truncation (forward pass scripted)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sentence_transformers")

from prism_core.backends.cross_encoder import CrossEncoderReranker

QUERY = "what is rust?"
FILLER = " ".join(f"Sentence {i} is about the weather in small towns by the river." for i in range(80))
NEEDLE = " zebracorn"
SHORT = "Rust is a systems programming language focused on memory safety."


@pytest.fixture(scope="session")
def tiny_xlmr_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny XLM-RoBERTa sequence classifier, asserted to tell documents apart."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from prism_core.testing.tiny_cross_encoder import build_tiny_xlm_roberta

    path = str(build_tiny_xlm_roberta(tmp_path_factory.mktemp("tiny-xlmr")))
    logits = CrossEncoderReranker(path, device="cpu").rerank(QUERY, [SHORT, FILLER[:200], "Paris."])
    assert max(r.logit for r in logits) - min(r.logit for r in logits) > 0.5, logits
    return path


@pytest.fixture(scope="module", params=["bert", "xlm-roberta"])
def reranker(request: pytest.FixtureRequest) -> CrossEncoderReranker:
    name = "tiny_cross_encoder_path" if request.param == "bert" else "tiny_xlmr_path"
    return CrossEncoderReranker(request.getfixturevalue(name), device="cpu", show_progress=False).load()


def test_chunk_windows_score_as_alone(reranker: CrossEncoderReranker) -> None:
    long_doc = FILLER + NEEDLE
    results = {
        r.index: r
        for r in reranker.rerank(QUERY, [SHORT, long_doc], max_tokens_per_doc=48, long_documents="chunk")
    }
    assert results[0].chunk is None and not results[0].truncated
    best = results[1]
    assert best.chunk is not None and not best.truncated
    alone = reranker.rerank(QUERY, [long_doc[best.chunk[0] : best.chunk[1]]])[0]
    assert best.logit == pytest.approx(alone.logit, abs=1e-4) and not alone.truncated
    from prism_core.backends.cross_encoder import document_rows

    rows = document_rows(reranker.tokenizer, QUERY, [long_doc], reranker.max_length or 512, 48, "chunk")
    spans = [c for c in rows.chunks if c is not None]
    assert len(spans) == len(rows.texts) > 3 and spans[0][0] == 0 and spans[-1][1] == len(long_doc)
    assert all(a[0] < b[0] < a[1] for a, b in itertools.pairwise(spans))
    each = reranker.score(QUERY, rows.texts)
    assert max(each) == pytest.approx(best.score, abs=1e-5)
    assert reranker.score(
        QUERY, [SHORT, long_doc], max_tokens_per_doc=48, long_documents="chunk"
    ) == pytest.approx([results[0].score, best.score], abs=1e-5)
    # The default reads every document as before: the long one cut to max_length, and said so.
    default = {r.index: r for r in reranker.rerank(QUERY, [SHORT, long_doc])}
    assert default[1].truncated and default[1].chunk is None
    cut = reranker.rerank(QUERY, [long_doc], max_tokens_per_doc=48)[0]
    assert cut.truncated and cut.chunk is None


async def test_needle_at_the_end_found_by_chunks_missed_by_truncation(
    tiny_cross_encoder_path: str, tmp_path: Path
) -> None:
    # A private copy of the checkpoint: the scripted forward must not reach other tests' engine.
    import shutil

    private = str(shutil.copytree(tiny_cross_encoder_path, tmp_path / "private-ce"))
    reranker = CrossEncoderReranker(private, device="cpu", show_progress=False).load()
    needle = reranker.tokenizer(NEEDLE.strip(), add_special_tokens=False)["input_ids"]
    executor = reranker.engine_loop.executor

    def scripted(key: Any, rows: Sequence[Any]) -> list[float]:
        def has(ids: list[int]) -> bool:
            return any(ids[i : i + len(needle)] == needle for i in range(len(ids) - len(needle) + 1))

        return [4.0 if has(row["input_ids"].tolist()) else -4.0 for row in rows]

    executor.run = scripted  # type: ignore[method-assign]
    docs = [SHORT, FILLER + NEEDLE, FILLER]
    cut = reranker.rerank(QUERY, docs)
    assert not any(r.relevant for r in cut) and cut[1].truncated and cut[2].truncated
    found = await reranker.arerank(QUERY, docs, long_documents="chunk", top_n=1)
    assert [r.index for r in found] == [1] and found[0].relevant and found[0].chunk is not None
    start, end = found[0].chunk
    assert "zebracorn" in docs[1][start:end] and end == len(docs[1])
