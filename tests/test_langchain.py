"""PrismDocumentCompressor: the adapter rules in LangChain, and real LangChain retrieval pipelines."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from _adapter_cases import (
    ORDER_ALL,
    ORDER_RELEVANT,
    QUERY,
    TEXTS,
    TOP_N_AND_THRESHOLD_CASES,
    AsyncSpy,
    expected_body,
    expected_metadata,
    framework_missing,
    metadata,
    tiny_model_path,
)
from fakes import FakeReranker
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ValidationError

from prism_integrations.langchain import PrismDocumentCompressor


def _docs() -> list[Document]:
    return [Document(page_content=t, metadata=metadata(i), id=f"id-{i}") for i, t in enumerate(TEXTS)]


def _compress(**kwargs: Any) -> tuple[list[Document], FakeReranker]:
    fake = FakeReranker()
    out = PrismDocumentCompressor(reranker=fake, **kwargs).compress_documents(_docs(), QUERY)
    return list(out), fake


def _index(doc: Document) -> int:
    assert doc.id is not None
    return int(doc.id.removeprefix("id-"))


# --- rules -----------------------------------------------------------------------------------------


def test_is_a_document_compressor() -> None:
    assert issubclass(PrismDocumentCompressor, BaseDocumentCompressor)


def test_reorder_swap_and_metadata() -> None:
    out, fake = _compress()
    assert [_index(d) for d in out] == ORDER_RELEVANT
    for d in out:
        i = _index(d)
        assert d.page_content == expected_body(i)
        assert d.metadata == expected_metadata(i)
        assert list(d.metadata) == list(expected_metadata(i))  # caller's keys first, ours last
    assert out[0].metadata["relevance_score"] == 0.9  # stale upstream 0.123 overwritten elsewhere too
    assert fake.calls == [(QUERY, TEXTS, {"top_n": None, "score_threshold": None, "evidence": True})]


def test_keep_original_off() -> None:
    out, _ = _compress(keep_original=False)
    for d in out:
        assert d.metadata == expected_metadata(_index(d), keep_original=False)
        assert "original_content" not in d.metadata


def test_use_evidence_off() -> None:
    out, _ = _compress(use_evidence=False)
    assert [_index(d) for d in out] == ORDER_RELEVANT
    for d in out:
        assert d.page_content == TEXTS[_index(d)]
        assert d.metadata == expected_metadata(_index(d), use_evidence=False)


def test_drop_irrelevant_off() -> None:
    out, _ = _compress(drop_irrelevant=False)
    assert [_index(d) for d in out] == ORDER_ALL
    for d in out:
        assert d.page_content == expected_body(_index(d))
        assert d.metadata == expected_metadata(_index(d))


def test_incomplete_or_missing_evidence_keeps_original() -> None:
    out, _ = _compress()
    by_index = {_index(d): d for d in out}
    for i in (2, 3):
        assert by_index[i].page_content == TEXTS[i]
        assert by_index[i].metadata["evidence_used"] is False


@pytest.mark.parametrize(("kwargs", "expected"), TOP_N_AND_THRESHOLD_CASES)
def test_top_n_and_threshold(kwargs: dict[str, Any], expected: list[int]) -> None:
    out, fake = _compress(**kwargs)
    assert [_index(d) for d in out] == expected
    assert fake.calls[0][2]["top_n"] == kwargs.get("top_n")
    assert fake.calls[0][2]["score_threshold"] == kwargs.get("score_threshold")


def test_no_mutation_and_ids_kept() -> None:
    docs = _docs()
    before = copy.deepcopy(docs)
    out = PrismDocumentCompressor(reranker=FakeReranker()).compress_documents(docs, QUERY)
    out[0].metadata["nested"]["tags"].append("x")
    assert docs == before
    assert all(d.id == f"id-{_index(d)}" for d in out)
    assert all(o is not d for o in out for d in docs)


def test_empty_input_touches_nothing() -> None:
    fake = FakeReranker()
    assert list(PrismDocumentCompressor(reranker=fake).compress_documents([], QUERY)) == []
    assert fake.calls == [] and not fake.loaded
    compressor = PrismDocumentCompressor(model="not/a-real-model")  # would fail to resolve or load
    assert list(compressor.compress_documents([], QUERY)) == []
    assert not compressor._resolver.resolved


async def test_async_uses_arerank() -> None:
    spy = AsyncSpy()
    out = await PrismDocumentCompressor(reranker=spy, top_n=3).acompress_documents(_docs(), QUERY)
    assert [_index(d) for d in out] == [1, 4, 2]
    assert [d.page_content for d in out] == [expected_body(i) for i in (1, 4, 2)]
    assert spy.async_calls == 1
    assert list(await PrismDocumentCompressor(reranker=spy).acompress_documents([], QUERY)) == []
    assert spy.async_calls == 1


def test_sync_does_not_use_arerank() -> None:
    spy = AsyncSpy()
    PrismDocumentCompressor(reranker=spy).compress_documents(_docs(), QUERY)
    assert spy.async_calls == 0 and len(spy.calls) == 1


# --- construction and serialisation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_n": 0}, "top_n must be >= 1, got 0"),
        ({"score_threshold": 1.5}, r"score_threshold must be in \[0, 1\]"),
        ({"model": "m", "reranker": FakeReranker()}, "not both"),
        ({"reranker": FakeReranker(), "device": "cpu"}, "apply only with `model`"),
        ({"unknown_option": 1}, "Extra inputs are not permitted"),
    ],
)
def test_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrismDocumentCompressor(**kwargs)


def test_validation_error_is_value_error() -> None:
    assert issubclass(ValidationError, ValueError)


def test_constructing_with_model_loads_nothing() -> None:
    compressor = PrismDocumentCompressor(model="not/a-real-model", device="cpu", max_new_tokens=32)
    assert not compressor._resolver.resolved


def test_serialisation_excludes_engine() -> None:
    torch = pytest.importorskip("torch")
    compressor = PrismDocumentCompressor(
        model="org/prism", dtype=torch.bfloat16, top_n=3, keep_original=False
    )
    dumped = compressor.model_dump()
    assert dumped == {
        "model": "org/prism",
        "device": None,
        "dtype": "bfloat16",
        "max_length": None,
        "max_new_tokens": None,
        "batch_tokens": None,
        "top_n": 3,
        "score_threshold": None,
        "use_evidence": True,
        "keep_original": False,
        "drop_irrelevant": True,
    }
    again = PrismDocumentCompressor.model_validate_json(compressor.model_dump_json())
    assert again.model_dump() == dumped
    with_reranker = PrismDocumentCompressor(reranker=FakeReranker())
    assert "reranker" not in with_reranker.model_dump()
    assert "reranker" not in with_reranker.model_dump_json()


def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        framework_missing(monkeypatch, "langchain_core", "prism_integrations.langchain"),
        pytest.raises(ImportError, match=r'pip install "prism-integrations\[langchain\]"'),
    ):
        importlib.import_module("prism_integrations.langchain")


# --- real pipelines --------------------------------------------------------------------------------


class _ListRetriever(BaseRetriever):
    """Returns (copies of) all stored documents, as a retriever would."""

    docs: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [d.model_copy(deep=True) for d in self.docs]


def test_contextual_compression_retriever() -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    retriever = ContextualCompressionRetriever(
        base_compressor=PrismDocumentCompressor(reranker=FakeReranker(), top_n=2),
        base_retriever=_ListRetriever(docs=_docs()),
    )
    out = retriever.invoke(QUERY)
    assert [_index(d) for d in out] == [1, 4]
    assert out[0].page_content == expected_body(1)


async def test_contextual_compression_retriever_async() -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    spy = AsyncSpy()
    retriever = ContextualCompressionRetriever(
        base_compressor=PrismDocumentCompressor(reranker=spy), base_retriever=_ListRetriever(docs=_docs())
    )
    out = await retriever.ainvoke(QUERY)
    assert [_index(d) for d in out] == ORDER_RELEVANT
    assert spy.async_calls == 1


def test_document_compressor_pipeline() -> None:
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline

    class _KeepFirstThree(BaseDocumentCompressor):
        def compress_documents(
            self, documents: Sequence[Document], query: str, callbacks: Any = None
        ) -> Sequence[Document]:
            return list(documents)[:3]

    pipeline = DocumentCompressorPipeline(
        transformers=[
            PrismDocumentCompressor(reranker=FakeReranker(), drop_irrelevant=False),
            _KeepFirstThree(),
        ]
    )
    out = pipeline.compress_documents(_docs(), QUERY)
    assert [_index(d) for d in out] == ORDER_ALL[:3]


class _MiniLMEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over the real all-MiniLM-L6-v2 (offline)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        from _minilm import embed

        return embed(texts)

    def embed_query(self, text: str) -> list[float]:
        from _minilm import embed

        return embed([text])[0]


def test_dense_retrieval_pipeline_with_minilm() -> None:
    from _minilm import require_minilm
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    require_minilm()
    store = InMemoryVectorStore(embedding=_MiniLMEmbeddings())
    store.add_documents(_docs())
    retriever = ContextualCompressionRetriever(
        base_compressor=PrismDocumentCompressor(reranker=FakeReranker()),
        base_retriever=store.as_retriever(search_kwargs={"k": 6}),
    )
    out = retriever.invoke(QUERY)
    assert [_index(d) for d in out] == ORDER_RELEVANT  # Prism's order, not the embedder's
    assert [d.metadata["relevance_score"] for d in out] == sorted(
        (d.metadata["relevance_score"] for d in out), reverse=True
    )
    assert out[0].metadata["original_content"] == TEXTS[1]


# --- the tiny real model (fixture from the lead's tests/conftest.py) -------------------------------


@pytest.mark.slow
def test_tiny_real_model(request: pytest.FixtureRequest) -> None:
    path = tiny_model_path(request)
    compressor = PrismDocumentCompressor(model=path, drop_irrelevant=False, max_new_tokens=16)
    docs = _docs()
    out = compressor.compress_documents(docs, QUERY)
    assert sorted(_index(d) for d in out) == list(range(len(TEXTS)))  # nothing lost
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    for d in out:
        assert 0.0 <= d.metadata["relevance_score"] <= 1.0
        assert d.metadata["evidence_used"] is (d.page_content != TEXTS[_index(d)])
        if not d.metadata["evidence_used"]:
            assert d.page_content == TEXTS[_index(d)]
    assert docs == _docs()
