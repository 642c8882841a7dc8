"""QualityAnnotator (Haystack): annotation, filter, order, no mutation, serialisation, real pipelines."""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network from tests
pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.components.builders import PromptBuilder
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from prism_core.quality import QualityScorer
from prism_integrations.quality_haystack import QualityAnnotator
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


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import haystack.telemetry._telemetry as telemetry

    monkeypatch.setattr(telemetry, "telemetry", None)
    yield


def _docs() -> list[Document]:
    return [
        Document(id=f"id-{i}", content=t, meta=component_metadata(i), score=0.5 + i / 100)
        for i, t in enumerate(COMPONENT_TEXTS)
    ]


def _index(doc: Document) -> int:
    return int(doc.id.removeprefix("id-"))


@pytest.fixture
def quality(tiny_scorer: QualityScorer) -> list[float]:
    """The scorer's raw quality for each text (the scorer itself is checked in test_quality_scorer)."""
    return tiny_scorer.score(COMPONENT_TEXTS)


def test_annotates_copies_in_input_order(tiny_quality: TinyQuality, quality: list[float]) -> None:
    scorer = make_counting_scorer(tiny_quality)
    docs = _docs()
    before = copy.deepcopy(docs)
    out = QualityAnnotator(scorer).run(documents=docs)["documents"]
    assert [_index(d) for d in out] == list(range(6))
    for d, original in zip(out, docs, strict=True):
        i = _index(d)
        assert d.meta == expected_metadata(i, pytest.approx(quality[i], abs=1e-6))  # type: ignore[arg-type]
        assert list(d.meta)[-1] == "quality_score"
        assert (d.id, d.content, d.score) == (original.id, original.content, original.score)
        assert d is not original and d.meta["nested"] is not original.meta["nested"]
    assert docs == before  # the caller's documents are untouched
    assert scorer.score_calls == 1 and scorer.ascore_calls == 0


def test_min_quality_and_sort(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    cut = median(quality)
    out = QualityAnnotator(tiny_scorer, min_quality=cut).run(documents=_docs())["documents"]
    assert [_index(d) for d in out] == [i for i, q in enumerate(quality) if q >= cut]
    assert 0 < len(out) < 6
    best_first = QualityAnnotator(tiny_scorer, sort_by_quality=True).run(documents=_docs())["documents"]
    assert [_index(d) for d in best_first] == sorted(range(6), key=lambda i: -quality[i])
    override = QualityAnnotator(tiny_scorer).run(documents=_docs(), min_quality=cut)["documents"]
    assert [_index(d) for d in override] == [_index(d) for d in out]


async def test_run_async_uses_ascore(tiny_quality: TinyQuality, quality: list[float]) -> None:
    scorer = make_counting_scorer(tiny_quality)
    out = (await QualityAnnotator(scorer).run_async(documents=_docs()))["documents"]
    assert [d.meta["quality_score"] for d in out] == pytest.approx(quality, abs=1e-6)
    assert scorer.ascore_calls == 1


def test_empty_input_loads_nothing() -> None:
    scorer = QualityScorer("org/heads:h.ckpt", embedder="no-such-org/no-such-embedder", device="cpu")
    assert QualityAnnotator(scorer).run(documents=[]) == {"documents": []}
    assert not scorer.loaded


def test_warm_up_loads_once(tiny_quality: TinyQuality) -> None:
    annotator = QualityAnnotator(make_counting_scorer(tiny_quality))
    assert not annotator.quality.loaded
    annotator.warm_up()
    annotator.warm_up()
    assert annotator.quality.loaded


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"min_quality": 6}, ValueError, r"min_quality must be in \[0, 5\]"),
        ({"min_quality": "2"}, ValueError, "min_quality must be a number"),
        ({"sort_by_quality": "yes"}, ValueError, "sort_by_quality must be a bool"),
    ],
)
def test_validation(
    tiny_scorer: QualityScorer, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        QualityAnnotator(tiny_scorer, **kwargs)


def test_quality_must_be_a_scorer() -> None:
    with pytest.raises(TypeError, match=r"quality must be a prism_core\.quality\.QualityScorer"):
        QualityAnnotator(42)  # type: ignore[arg-type]


def test_to_dict_round_trip(tiny_quality: TinyQuality) -> None:
    annotator = QualityAnnotator(make_counting_scorer(tiny_quality), min_quality=2.5, sort_by_quality=True)
    data = annotator.to_dict()
    assert data["type"] == "haystack_integrations.components.rankers.prism.quality.QualityAnnotator"
    assert data["init_parameters"]["quality"]["heads"] == tiny_quality.heads[:2]
    assert (
        data["init_parameters"]["min_quality"] == 2.5 and data["init_parameters"]["sort_by_quality"] is True
    )
    again = QualityAnnotator.from_dict(data)
    assert again.to_dict() == data and type(again.quality) is QualityScorer


@pytest.mark.parametrize(
    "module",
    ["prism_integrations.quality_haystack", "haystack_integrations.components.rankers.prism.quality"],
)
def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.delitem(sys.modules, "haystack_integrations.components.rankers.prism.quality", raising=False)
    with (
        framework_missing(monkeypatch, "haystack", module),
        pytest.raises(ImportError, match=r'pip install "prism-integrations\[haystack\]"'),
    ):
        importlib.import_module(module)


def test_same_class_from_both_modules() -> None:
    from haystack_integrations.components.rankers.prism.quality import QualityAnnotator as Same

    assert QualityAnnotator is Same


# --- real pipelines --------------------------------------------------------------------------------

TEMPLATE = (
    "{% for d in documents %}[{{ d.meta['source'] }} q={{ d.meta['quality_score'] }}] {{ d.content }}\n"
    "{% endfor %}"
)


def _pipeline(annotator: QualityAnnotator, with_ranker: bool) -> Pipeline:
    store = InMemoryDocumentStore()
    store.write_documents(_docs())
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=6))
    pipe.add_component("quality", annotator)
    pipe.add_component("prompt", PromptBuilder(template=TEMPLATE, required_variables=["documents"]))
    pipe.connect("retriever.documents", "quality.documents")
    if with_ranker:
        from prism_integrations.haystack import PrismRanker

        pipe.add_component("ranker", PrismRanker(reranker=fake_reranker()))
        pipe.connect("quality.documents", "ranker.documents")
        pipe.connect("ranker.documents", "prompt.documents")
    else:
        pipe.connect("quality.documents", "prompt.documents")
    return pipe


def test_bm25_then_quality_then_prompt(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    cut = median(quality)
    pipe = _pipeline(QualityAnnotator(tiny_scorer, min_quality=cut, sort_by_quality=True), with_ranker=False)
    out = pipe.run({"retriever": {"query": QUERY}}, include_outputs_from={"retriever", "quality"})
    retrieved = [_index(d) for d in out["retriever"]["documents"]]
    docs = out["quality"]["documents"]
    assert [_index(d) for d in docs] == sorted(
        (i for i in retrieved if quality[i] >= cut), key=lambda i: -quality[i]
    )
    assert any(quality[i] < cut for i in retrieved)  # the filter really dropped something
    lines = out["prompt"]["prompt"].splitlines()
    assert len(lines) == len(docs) and lines[0].startswith(f"[doc{_index(docs[0])} q=")


def test_quality_then_prism_ranker_keeps_the_annotation(
    tiny_scorer: QualityScorer, quality: list[float]
) -> None:
    pipe = _pipeline(QualityAnnotator(tiny_scorer), with_ranker=True)
    out = pipe.run(
        {"retriever": {"query": QUERY}, "ranker": {"query": QUERY}}, include_outputs_from={"ranker"}
    )
    ranked = out["ranker"]["documents"]
    assert [_index(d) for d in ranked] == [1, 4, 2, 3]  # the reranker's order (irrelevant ones dropped)
    for d in ranked:
        assert d.meta["quality_score"] == pytest.approx(quality[_index(d)], abs=1e-6)
        assert d.meta["relevance_score"] == d.score


async def test_pipeline_run_async(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    pipe = _pipeline(QualityAnnotator(tiny_scorer), with_ranker=False)
    out = await pipe.run_async({"retriever": {"query": QUERY}}, include_outputs_from={"quality"})
    docs = out["quality"]["documents"]
    assert {_index(d): d.meta["quality_score"] for d in docs} == {
        i: pytest.approx(q, abs=1e-6) for i, q in enumerate(quality) if i in {_index(d) for d in docs}
    }


def test_pipeline_yaml_round_trip(tiny_scorer: QualityScorer) -> None:
    pipe = _pipeline(QualityAnnotator(tiny_scorer, min_quality=1.0), with_ranker=False)
    text = pipe.dumps()
    assert "haystack_integrations.components.rankers.prism.quality.QualityAnnotator" in text
    again = Pipeline.loads(text)  # the haystack_integrations namespace is trusted by default
    annotator = again.get_component("quality")
    assert isinstance(annotator, QualityAnnotator)
    assert annotator.quality.to_dict() == tiny_scorer.to_dict() and annotator.min_quality == 1.0


def test_document_without_content_is_kept_unscored(
    tiny_scorer: QualityScorer, quality: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    docs = _docs()
    docs.insert(2, Document(id="id-99", content=None, meta={"kind": "blob"}))
    high = max(quality) + 0.01  # drops every scored document
    with caplog.at_level("WARNING"):
        out = QualityAnnotator(tiny_scorer, min_quality=min(high, 5.0)).run(documents=docs)["documents"]
    assert [d.id for d in out] == ["id-99"]
    assert out[0].meta == {"kind": "blob"} and out[0] is not docs[2]
    assert "documents[2]" in caplog.text
    in_place = QualityAnnotator(tiny_scorer).run(documents=docs)["documents"]
    assert [d.id for d in in_place] == [d.id for d in docs] and "quality_score" not in in_place[2].meta
    best = QualityAnnotator(tiny_scorer, sort_by_quality=True).run(documents=docs)["documents"]
    assert best[-1].id == "id-99"


def test_wrong_item_type_names_position(tiny_scorer: QualityScorer) -> None:
    with pytest.raises(TypeError, match=r"documents\[1\] must be a Haystack Document, got str"):
        QualityAnnotator(tiny_scorer).run(documents=[_docs()[0], "text"])  # type: ignore[list-item]
