"""PrismDocumentCompressor: the adapter rules in LangChain, and real LangChain retrieval pipelines."""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ValidationError

from prism_integrations._common import EngineSpec, NotSerializableError
from prism_integrations.langchain import PrismDocumentCompressor
from tests._adapter_cases import (
    BACKEND_NAMES,
    ORDER_ALL,
    ORDER_RELEVANT,
    OUR_KEYS,
    QUERY,
    TEXTS,
    TOP_N_AND_THRESHOLD_CASES,
    AsyncSpy,
    check_hostile_copy,
    expected_body,
    expected_metadata,
    expected_schema_metadata,
    framework_missing,
    hostile_metadata,
    metadata,
    shared_containers,
    tiny_backend,
    tiny_model_path,
)
from tests.fakes import FakeReranker, ScoreOnlyFakeReranker


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


def test_hostile_metadata_is_kept_not_fatal(tmp_path: Path) -> None:
    hostiles = [hostile_metadata(tmp_path, i) for i in range(len(TEXTS))]
    with closing(hostiles[0].file), closing(hostiles[1].file), closing(hostiles[2].file):
        for h in hostiles[3:]:
            h.file.close()
        docs = [
            Document(page_content=t, metadata=h.meta, id=f"id-{i}")
            for i, (t, h) in enumerate(zip(TEXTS, hostiles, strict=True))
        ]
        out = PrismDocumentCompressor(reranker=FakeReranker(), drop_irrelevant=False).compress_documents(
            docs, QUERY
        )
        assert [_index(d) for d in out] == ORDER_ALL
        for d in out:
            i = _index(d)
            copied = {k: v for k, v in d.metadata.items() if k not in OUR_KEYS}
            check_hostile_copy(copied, hostiles[i])
            assert d.metadata["relevance_score"] == expected_metadata(i)["relevance_score"]
        assert shared_containers(docs, out) == []


def test_wrong_item_types_are_named() -> None:
    compressor = PrismDocumentCompressor(reranker=FakeReranker())
    docs: list[Any] = [*_docs()[:2], "plain text"]
    with pytest.raises(TypeError, match=r"^documents\[2\] must be a LangChain Document, got str$"):
        compressor.compress_documents(docs, QUERY)
    with pytest.raises(TypeError, match=r"documents\[0\] must be a LangChain Document, got dict"):
        compressor.compress_documents([{"page_content": "x"}], QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="documents must be a list of LangChain Documents, got str"):
        compressor.compress_documents("text", QUERY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="documents must be a list of LangChain Documents, got Document"):
        compressor.compress_documents(_docs()[0], QUERY)  # type: ignore[arg-type]


def test_add_contribution_off() -> None:
    out, fake = _compress(add_contribution=False)
    assert fake.calls[0][2]["evidence"] is True  # still generated: the body swap needs it
    for d in out:
        assert d.page_content == expected_body(_index(d))
        assert d.metadata["contribution"] is None
        assert list(d.metadata) == list(expected_metadata(_index(d)))


def test_scoring_only_options_ask_for_no_generation() -> None:
    out, fake = _compress(use_evidence=False, add_contribution=False)
    assert fake.calls[0][2] == {"top_n": None, "score_threshold": None, "evidence": False}
    assert [_index(d) for d in out] == ORDER_RELEVANT
    for d in out:
        assert d.page_content == TEXTS[_index(d)]
        assert d.metadata == expected_schema_metadata(_index(d))


def test_score_only_backend_same_schema_said_once(caplog: pytest.LogCaptureFixture) -> None:
    fake = ScoreOnlyFakeReranker()
    compressor = PrismDocumentCompressor(reranker=fake)
    with caplog.at_level(logging.INFO, logger="prism_integrations"):
        out = compressor.compress_documents(_docs(), QUERY)
        compressor.compress_documents(_docs(), QUERY)
    assert [c[2]["evidence"] for c in fake.calls] == [False, False]
    assert [_index(d) for d in out] == ORDER_RELEVANT
    for d in out:
        assert d.page_content == TEXTS[_index(d)]
        assert d.metadata == expected_schema_metadata(_index(d))
    said = [r.getMessage() for r in caplog.records if "only scores" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("PrismDocumentCompressor: ScoreOnlyFakeReranker only scores")


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
    ("kwargs", "error", "message"),
    [
        ({"top_n": 0}, ValueError, "top_n must be >= 1, got 0"),
        ({"score_threshold": 1.5}, ValueError, r"score_threshold must be in \[0, 1\]"),
        ({"model": "m", "reranker": FakeReranker()}, ValueError, "not both"),
        ({"reranker": FakeReranker(), "device": "cpu"}, ValueError, "apply only with `model`"),
        ({"reranker": FakeReranker(), "backend": "prism"}, ValueError, "apply only with `model`"),
        ({"unknown_option": 1}, ValueError, "Extra inputs are not permitted"),
        ({"model": "m", "backend": "nope"}, ValueError, "unknown backend 'nope'; known backends"),
        ({"model": "m", "max_length": "512"}, TypeError, "max_length must be an int"),
        ({"top_n": "3"}, TypeError, "top_n must be an int, got str"),
        ({"top_n": True}, TypeError, "top_n must be an int, got bool"),
        ({"use_evidence": 1}, TypeError, "use_evidence must be a bool"),
        ({"reranker": object()}, TypeError, "Reranker protocol"),
    ],
)
def test_validation(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        PrismDocumentCompressor(**kwargs)


def test_validation_error_is_value_error() -> None:
    assert issubclass(ValidationError, ValueError)


def test_options_are_not_coerced() -> None:
    np = pytest.importorskip("numpy")
    compressor = PrismDocumentCompressor(
        reranker=FakeReranker(), top_n=np.int64(2), score_threshold=np.float32(0.5)
    )
    assert (compressor.top_n, compressor.score_threshold) == (2, 0.5)
    assert type(compressor.top_n) is int and type(compressor.score_threshold) is float
    compressor.top_n = "3"  # type: ignore[assignment]  # assignment is not validated by pydantic ...
    with pytest.raises(TypeError, match="top_n must be an int, got str"):  # ... but every call is
        compressor.compress_documents(_docs(), QUERY)


def test_constructing_with_model_loads_nothing() -> None:
    compressor = PrismDocumentCompressor(model="not/a-real-model", device="cpu", max_new_tokens=32)
    assert not compressor._resolver.resolved
    assert (compressor.model, compressor.backend) == ("not/a-real-model", None)
    assert compressor.engine_config == EngineSpec.create("not/a-real-model", device="cpu", max_new_tokens=32)


def test_serialisation_round_trip_exact() -> None:
    torch = pytest.importorskip("torch")
    compressor = PrismDocumentCompressor(
        model="org/prism",
        backend="qwen3-reranker",
        dtype=torch.bfloat16,
        instruction="Find passages about France",
        top_n=3,
        add_contribution=False,
        keep_original=False,
    )
    dumped = compressor.model_dump()
    assert dumped == {
        "engine_config": {
            "model": "org/prism",
            "backend": "qwen3-reranker",
            "dtype": "bfloat16",
            "instruction": "Find passages about France",
        },
        "top_n": 3,
        "score_threshold": None,
        "use_evidence": True,
        "add_contribution": False,
        "keep_original": False,
        "drop_irrelevant": True,
        "grounded_only": True,
    }
    again = PrismDocumentCompressor.model_validate(dumped)
    assert again.model_dump() == dumped
    assert again.engine_config == compressor.engine_config and again.backend == "qwen3-reranker"
    assert PrismDocumentCompressor.model_validate_json(compressor.model_dump_json()).model_dump() == dumped
    assert not again._resolver.resolved


def test_serialisation_of_defaults_and_engine_config() -> None:
    from prism_core import EngineConfig

    assert PrismDocumentCompressor().model_dump()["engine_config"] == {"model": None, "backend": None}
    config = EngineConfig.create("org/ce", "cross-encoder", max_length=256)
    compressor = PrismDocumentCompressor(engine_config=config)
    assert compressor.model_dump()["engine_config"] == config.to_dict()
    with pytest.raises(ValueError, match="engine_config` or `model`"):
        PrismDocumentCompressor(engine_config=config, max_length=128)


def test_custom_reranker_is_not_serialisable() -> None:
    compressor = PrismDocumentCompressor(reranker=FakeReranker())
    for dump in (compressor.model_dump, compressor.model_dump_json):
        with pytest.raises(NotSerializableError, match="built with a `reranker` object cannot be serialised"):
            dump()


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
        from tests._minilm import embed

        return embed(texts)

    def embed_query(self, text: str) -> list[float]:
        from tests._minilm import embed

        return embed([text])[0]


def test_dense_retrieval_pipeline_with_minilm() -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    from tests._minilm import require_minilm

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


# --- every backend on a tiny real model, in a real pipeline ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_backend_in_dense_retrieval_pipeline(request: pytest.FixtureRequest, backend: str) -> None:
    """MiniLM dense retrieval → ContextualCompressionRetriever → the compressor on each tiny backend."""
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    from tests._minilm import require_minilm

    require_minilm()
    case = tiny_backend(request, backend)
    compressor = PrismDocumentCompressor(model=case.path, device="cpu", drop_irrelevant=False, **case.options)
    store = InMemoryVectorStore(embedding=_MiniLMEmbeddings())
    docs = _docs()
    store.add_documents(docs)
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=store.as_retriever(search_kwargs={"k": len(TEXTS)})
    )
    out = retriever.invoke(QUERY)
    assert sorted(_index(d) for d in out) == list(range(len(TEXTS)))  # nothing lost
    engine = compressor.engine
    assert engine.capabilities.evidence is case.generates
    direct = engine.score(QUERY, TEXTS)
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    assert scores == pytest.approx([direct[_index(d)] for d in out], abs=1e-4)
    for d in out:
        i = _index(d)
        ours = [k for k in d.metadata if k in OUR_KEYS]
        assert list(d.metadata)[-len(ours) :] == ours  # ours come last
        assert ours == [k for k in OUR_KEYS if k in d.metadata]  # one schema for every backend
        assert d.metadata["evidence_used"] is (d.page_content != TEXTS[i])
        if not case.generates:
            assert d.metadata["contribution"] is None and d.page_content == TEXTS[i]
        if d.metadata["evidence_used"]:
            assert d.metadata["original_content"] == TEXTS[i]
    again = PrismDocumentCompressor.model_validate(compressor.model_dump())
    assert again.engine is engine  # the saved configuration rebuilds the same process-wide engine
    assert docs == _docs()


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
