"""QualityDocumentCompressor (LangChain): annotation, filter, order, no mutation, real retrievers."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ValidationError

from prism_core.quality import QualityScorer
from prism_integrations.quality_langchain import QualityDocumentCompressor
from tests._adapter_cases import framework_missing
from tests.quality._quality_cases import (
    COMPONENT_TEXTS,
    QUERY,
    TinyQuality,
    component_metadata,
    expected_metadata,
    fake_reranker,
    make_counting_scorer,
    median,
)


def _docs() -> list[Document]:
    return [
        Document(page_content=t, metadata=component_metadata(i), id=f"id-{i}")
        for i, t in enumerate(COMPONENT_TEXTS)
    ]


def _index(doc: Document) -> int:
    assert doc.id is not None
    return int(doc.id.removeprefix("id-"))


@pytest.fixture
def quality(tiny_scorer: QualityScorer) -> list[float]:
    return tiny_scorer.score(COMPONENT_TEXTS)


def test_is_a_document_compressor(tiny_scorer: QualityScorer) -> None:
    assert isinstance(QualityDocumentCompressor(quality=tiny_scorer), BaseDocumentCompressor)


def test_annotates_copies_in_input_order(tiny_quality: TinyQuality, quality: list[float]) -> None:
    scorer = make_counting_scorer(tiny_quality)
    docs = _docs()
    before = copy.deepcopy(docs)
    out = list(QualityDocumentCompressor(quality=scorer).compress_documents(docs, QUERY))
    assert [_index(d) for d in out] == list(range(6))
    for d, original in zip(out, docs, strict=True):
        i = _index(d)
        assert d.metadata == expected_metadata(i, pytest.approx(quality[i], abs=1e-6))  # type: ignore[arg-type]
        assert list(d.metadata)[-1] == "quality_score"
        assert d.page_content == original.page_content and d is not original
        assert d.metadata["nested"] is not original.metadata["nested"]
    assert docs == before
    assert scorer.score_calls == 1 and scorer.ascore_calls == 0


def test_min_quality_and_sort(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    cut = median(quality)
    out = QualityDocumentCompressor(quality=tiny_scorer, min_quality=cut).compress_documents(_docs(), QUERY)
    assert [_index(d) for d in out] == [i for i, q in enumerate(quality) if q >= cut]
    assert 0 < len(out) < 6
    best = QualityDocumentCompressor(quality=tiny_scorer, sort_by_quality=True).compress_documents(
        _docs(), QUERY
    )
    assert [_index(d) for d in best] == sorted(range(6), key=lambda i: -quality[i])


async def test_async_uses_ascore(tiny_quality: TinyQuality, quality: list[float]) -> None:
    scorer = make_counting_scorer(tiny_quality)
    out = await QualityDocumentCompressor(quality=scorer).acompress_documents(_docs(), QUERY)
    assert [d.metadata["quality_score"] for d in out] == pytest.approx(quality, abs=1e-6)
    assert scorer.ascore_calls == 1


def test_empty_input_loads_nothing() -> None:
    scorer = QualityScorer("org/heads:h.ckpt", embedder="no-such-org/no-such-embedder", device="cpu")
    assert QualityDocumentCompressor(quality=scorer).compress_documents([], QUERY) == []
    assert not scorer.loaded


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_quality": 6}, r"min_quality must be in \[0, 5\]"),
        ({"min_quality": "2"}, "min_quality must be a number"),
        ({"sort_by_quality": "yes"}, "sort_by_quality"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_validation(tiny_scorer: QualityScorer, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QualityDocumentCompressor(quality=tiny_scorer, **kwargs)


def test_quality_must_be_a_scorer() -> None:
    with pytest.raises(ValidationError, match=r"quality must be a prism_core\.quality\.QualityScorer"):
        QualityDocumentCompressor(quality=42)
    with pytest.raises(ValidationError, match="quality"):
        QualityDocumentCompressor()  # type: ignore[call-arg]


def test_accepts_the_scorer_description(tiny_scorer: QualityScorer) -> None:
    compressor = QualityDocumentCompressor(quality=tiny_scorer.to_dict(), min_quality=1)
    assert isinstance(compressor.quality, QualityScorer) and compressor.quality.heads == tiny_scorer.heads
    assert compressor.model_dump() == {
        "min_quality": 1.0,
        "sort_by_quality": False,
    }  # the scorer is not dumped


def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        framework_missing(monkeypatch, "langchain_core", "prism_integrations.quality_langchain"),
        pytest.raises(ImportError, match=r'pip install "prism-integrations\[langchain\]"'),
    ):
        importlib.import_module("prism_integrations.quality_langchain")


# --- real pipelines --------------------------------------------------------------------------------


class _ListRetriever(BaseRetriever):
    """Returns (copies of) all stored documents, as a retriever would."""

    docs: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [d.model_copy(deep=True) for d in self.docs]


def test_contextual_compression_retriever(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    cut = median(quality)
    retriever = ContextualCompressionRetriever(
        base_compressor=QualityDocumentCompressor(quality=tiny_scorer, min_quality=cut, sort_by_quality=True),
        base_retriever=_ListRetriever(docs=_docs()),
    )
    out = retriever.invoke(QUERY)
    assert [_index(d) for d in out] == sorted(
        (i for i in range(6) if quality[i] >= cut), key=lambda i: -quality[i]
    )


async def test_contextual_compression_retriever_async(tiny_quality: TinyQuality) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    scorer = make_counting_scorer(tiny_quality)
    retriever = ContextualCompressionRetriever(
        base_compressor=QualityDocumentCompressor(quality=scorer), base_retriever=_ListRetriever(docs=_docs())
    )
    out = await retriever.ainvoke(QUERY)
    assert len(out) == 6 and scorer.ascore_calls == 1


def test_compressor_pipeline_quality_then_prism(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline

    from prism_integrations.langchain import PrismDocumentCompressor

    pipeline = DocumentCompressorPipeline(
        transformers=[
            QualityDocumentCompressor(quality=tiny_scorer),
            PrismDocumentCompressor(reranker=fake_reranker()),
        ]
    )
    out = pipeline.compress_documents(_docs(), QUERY)
    assert [_index(d) for d in out] == [1, 4, 2, 3]  # Prism's order, irrelevant ones dropped
    for d in out:
        assert d.metadata["quality_score"] == pytest.approx(quality[_index(d)], abs=1e-6)
        assert "relevance_score" in d.metadata


def test_wrong_item_type_names_position(tiny_scorer: QualityScorer) -> None:
    with pytest.raises(TypeError, match=r"documents\[1\] must be a LangChain Document, got str"):
        QualityDocumentCompressor(quality=tiny_scorer).compress_documents([_docs()[0], "x"], QUERY)  # type: ignore[list-item]
