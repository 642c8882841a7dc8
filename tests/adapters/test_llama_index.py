"""PrismNodePostprocessor: the adapter rules in LlamaIndex, events, and a real query engine."""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import (
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from prism_integrations._common import EngineSpec, NotSerializableError
from prism_integrations.llama_index import PrismNodePostprocessor, node_text
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


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=t, metadata=metadata(i), id_=f"id-{i}", excluded_llm_metadata_keys=["source"]),
            score=0.5,
        )
        for i, t in enumerate(TEXTS)
    ]


def _index(n: NodeWithScore) -> int:
    return int(n.node.node_id.removeprefix("id-"))


def _text(n: NodeWithScore) -> str:
    return n.node.get_content(metadata_mode=MetadataMode.NONE)


def _run(**kwargs: Any) -> tuple[list[NodeWithScore], FakeReranker]:
    fake = FakeReranker()
    out = PrismNodePostprocessor(reranker=fake, **kwargs).postprocess_nodes(_nodes(), query_str=QUERY)
    return out, fake


class _Recorder(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "PrismTestRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, ReRankStartEvent | ReRankEndEvent):
            self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    root = get_dispatcher()
    handler = _Recorder(events=[])
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers.remove(handler)


# --- rules -----------------------------------------------------------------------------------------


def test_is_a_node_postprocessor() -> None:
    assert issubclass(PrismNodePostprocessor, BaseNodePostprocessor)
    assert PrismNodePostprocessor.class_name() == "PrismNodePostprocessor"


def test_reorder_swap_metadata_and_score() -> None:
    out, fake = _run()
    assert [_index(n) for n in out] == ORDER_RELEVANT
    for n in out:
        i = _index(n)
        assert _text(n) == expected_body(i)
        assert n.node.metadata == expected_metadata(i)
        assert list(n.node.metadata) == list(expected_metadata(i))
        assert n.score == n.node.metadata["relevance_score"]
    assert fake.calls[0][:2] == (QUERY, TEXTS)  # Prism sees the text without metadata


def test_excluded_metadata_keys() -> None:
    out, _ = _run()
    for n in out:
        added = [k for k in OUR_KEYS if k in n.node.metadata]
        assert n.node.excluded_llm_metadata_keys == ["source", *added]
        assert n.node.excluded_embed_metadata_keys == added
        llm_view = n.node.get_content(metadata_mode=MetadataMode.LLM)
        embed_view = n.node.get_content(metadata_mode=MetadataMode.EMBED)
        for view in (llm_view, embed_view):
            assert "original_content" not in view and "relevance_score" not in view
        if n.node.metadata["evidence_used"]:  # the fake's evidence embeds the original: cut it out first
            assert TEXTS[_index(n)] not in llm_view.replace(_text(n), "")


def test_keep_original_off() -> None:
    out, _ = _run(keep_original=False)
    for n in out:
        assert n.node.metadata == expected_metadata(_index(n), keep_original=False)


def test_use_evidence_off() -> None:
    out, _ = _run(use_evidence=False)
    assert [_index(n) for n in out] == ORDER_RELEVANT
    for n in out:
        assert _text(n) == TEXTS[_index(n)]
        assert n.node.metadata == expected_metadata(_index(n), use_evidence=False)


def test_drop_irrelevant_off() -> None:
    out, _ = _run(drop_irrelevant=False)
    assert [_index(n) for n in out] == ORDER_ALL
    for n in out:
        assert _text(n) == expected_body(_index(n))


def test_incomplete_or_missing_evidence_keeps_original() -> None:
    by_index = {_index(n): n for n in _run()[0]}
    for i in (2, 3):
        assert _text(by_index[i]) == TEXTS[i]
        assert by_index[i].node.metadata["evidence_used"] is False


@pytest.mark.parametrize(("kwargs", "expected"), TOP_N_AND_THRESHOLD_CASES)
def test_top_n_and_threshold(kwargs: dict[str, Any], expected: list[int]) -> None:
    out, fake = _run(**kwargs)
    assert [_index(n) for n in out] == expected
    assert fake.calls[0][2]["top_n"] == kwargs.get("top_n")
    assert fake.calls[0][2]["score_threshold"] == kwargs.get("score_threshold")


def test_no_mutation_and_ids_kept() -> None:
    nodes = _nodes()
    before = copy.deepcopy(nodes)
    out = PrismNodePostprocessor(reranker=FakeReranker()).postprocess_nodes(nodes, query_str=QUERY)
    out[0].node.metadata["nested"]["tags"].append("x")
    out[0].node.excluded_llm_metadata_keys.append("y")
    assert nodes == before
    assert [n.score for n in nodes] == [0.5] * len(TEXTS)
    assert all(n.node.node_id == f"id-{_index(n)}" for n in out)
    assert all(o.node is not n.node for o in out for n in nodes)


def _hostile_nodes(tmp_path: Path, stack: ExitStack) -> tuple[list[NodeWithScore], list[Any]]:
    hostiles = [hostile_metadata(tmp_path, i) for i in range(len(TEXTS))]
    for h in hostiles:
        stack.enter_context(closing(h.file))
    nodes = []
    for i, (t, h) in enumerate(zip(TEXTS, hostiles, strict=True)):
        node = TextNode(
            text=t,
            metadata=h.meta,
            id_=f"id-{i}",
            excluded_llm_metadata_keys=["lock", "file"],
            excluded_embed_metadata_keys=["generator"],
            embedding=[0.1, 0.2, 0.3],
            relationships={
                NodeRelationship.SOURCE: RelatedNodeInfo(node_id="src", metadata={"lock": h.lock, "l": [1]}),
                NodeRelationship.NEXT: RelatedNodeInfo(node_id=f"id-{i + 1}"),
            },
        )
        nodes.append(NodeWithScore(node=node, score=0.5))
    return nodes, hostiles


def test_hostile_metadata_is_kept_not_fatal(tmp_path: Path) -> None:
    with ExitStack() as stack:
        nodes, hostiles = _hostile_nodes(tmp_path, stack)
        out = PrismNodePostprocessor(reranker=FakeReranker(), drop_irrelevant=False).postprocess_nodes(
            nodes, query_str=QUERY
        )
        assert [_index(n) for n in out] == ORDER_ALL
        for n in out:
            i = _index(n)
            check_hostile_copy({k: v for k, v in n.node.metadata.items() if k not in OUR_KEYS}, hostiles[i])
            assert n.node.excluded_llm_metadata_keys[:2] == ["lock", "file"]
            source = n.node.relationships[NodeRelationship.SOURCE]
            assert source.metadata["lock"] is hostiles[i].lock and source.metadata["l"] == [1]
            assert n.node.embedding == [0.1, 0.2, 0.3]
        assert shared_containers(nodes, out) == []


def test_nodes_without_text_pass_through_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    nodes = _nodes()
    image = NodeWithScore(node=ImageNode(image="aGVsbG8=", id_="image", metadata={"k": [1]}), score=0.3)
    media = NodeWithScore(
        node=Node(image_resource=MediaResource(url="http://x/y.png"), id_="media"), score=0.2
    )
    nodes.insert(1, image)
    nodes.append(media)
    assert (node_text(image.node), node_text(media.node)) == (None, None)
    assert node_text(ImageNode(image="aGVsbG8=", text="a caption")) == "a caption"  # judged on its text
    assert node_text(TextNode(text="")) == ""  # an empty text node is empty text, like elsewhere
    before = copy.deepcopy(nodes)
    fake = FakeReranker()
    with caplog.at_level(logging.WARNING, logger="prism_integrations"):
        out = PrismNodePostprocessor(reranker=fake, top_n=2).postprocess_nodes(nodes, query_str=QUERY)
    assert fake.calls[0][1] == TEXTS  # only texts were judged
    assert [n.node.node_id for n in out] == ["id-1", "id-4", "image", "media"]
    assert out[2] == image and out[3] == media  # unchanged: same score, metadata, image
    assert out[2] is not image and out[2].node is not image.node
    assert shared_containers(nodes, out) == []
    assert nodes == before
    assert "2 of 8 nodes have no text (nodes[1], nodes[7])" in caplog.text


def test_wrong_item_types_are_named() -> None:
    pp = PrismNodePostprocessor(reranker=FakeReranker())
    with pytest.raises(TypeError, match=r"^nodes\[1\] must be a LlamaIndex NodeWithScore, got TextNode$"):
        pp.postprocess_nodes([_nodes()[0], TextNode(text="x")], query_str=QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a LlamaIndex NodeWithScore, got str"):
        pp.postprocess_nodes(["text"], query_str=QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="nodes must be a list of LlamaIndex NodeWithScores, got str"):
        pp.postprocess_nodes("text", query_str=QUERY)  # type: ignore[arg-type]


def test_add_contribution_off() -> None:
    out, fake = _run(add_contribution=False)
    assert fake.calls[0][2]["evidence"] is True
    for n in out:
        assert _text(n) == expected_body(_index(n))
        assert n.node.metadata["contribution"] is None


def test_scoring_only_options_and_score_only_backend(caplog: pytest.LogCaptureFixture) -> None:
    out, fake = _run(use_evidence=False, add_contribution=False)
    assert fake.calls[0][2]["evidence"] is False
    score_only = ScoreOnlyFakeReranker()
    pp = PrismNodePostprocessor(reranker=score_only)
    with caplog.at_level(logging.INFO, logger="prism_integrations"):
        out2 = pp.postprocess_nodes(_nodes(), query_str=QUERY)
        pp.postprocess_nodes(_nodes(), query_str=QUERY)
    assert [c[2]["evidence"] for c in score_only.calls] == [False, False]
    for nodes in (out, out2):
        assert [_index(n) for n in nodes] == ORDER_RELEVANT
        for n in nodes:
            assert _text(n) == TEXTS[_index(n)]
            assert n.node.metadata == expected_schema_metadata(_index(n))
    assert caplog.text.count("only scores") == 1


def test_empty_input_touches_nothing() -> None:
    fake = FakeReranker()
    assert PrismNodePostprocessor(reranker=fake).postprocess_nodes([], query_str=QUERY) == []
    assert fake.calls == [] and not fake.loaded
    pp = PrismNodePostprocessor(model="not/a-real-model")
    assert pp.postprocess_nodes([], query_str=QUERY) == []
    assert not pp._resolver.resolved


def test_missing_query_raises() -> None:
    with pytest.raises(ValueError, match="needs a query"):
        PrismNodePostprocessor(reranker=FakeReranker()).postprocess_nodes(_nodes())


async def test_async_uses_arerank() -> None:
    spy = AsyncSpy()
    pp = PrismNodePostprocessor(reranker=spy, top_n=3)
    out = await pp.apostprocess_nodes(_nodes(), query_bundle=QueryBundle(QUERY))
    assert [_index(n) for n in out] == [1, 4, 2]
    assert [_text(n) for n in out] == [expected_body(i) for i in (1, 4, 2)]
    assert spy.async_calls == 1
    pp.postprocess_nodes(_nodes(), query_str=QUERY)
    assert spy.async_calls == 1


# --- events ----------------------------------------------------------------------------------------


def test_rerank_events(recorder: _Recorder) -> None:
    nodes = _nodes()
    out = PrismNodePostprocessor(reranker=FakeReranker(), top_n=2).postprocess_nodes(nodes, query_str=QUERY)
    start, end = recorder.events
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.top_n == 2 and start.model_name == "FakeReranker"
    assert isinstance(start.query, QueryBundle) and start.query.query_str == QUERY
    assert [n.node.node_id for n in start.nodes] == [n.node.node_id for n in nodes]
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in out]


async def test_rerank_events_async(recorder: _Recorder) -> None:
    await PrismNodePostprocessor(reranker=FakeReranker()).apostprocess_nodes(_nodes(), query_str=QUERY)
    assert [type(e) for e in recorder.events] == [ReRankStartEvent, ReRankEndEvent]
    assert recorder.events[0].top_n == len(TEXTS)  # type: ignore[attr-defined]
    assert len(recorder.events[1].nodes) == len(ORDER_RELEVANT)  # type: ignore[attr-defined]


def test_model_name_in_events(recorder: _Recorder) -> None:
    PrismNodePostprocessor(model="org/prism").postprocess_nodes([], query_str=QUERY)
    assert recorder.events[0].model_name == "org/prism"  # type: ignore[attr-defined]
    assert recorder.events[1].nodes == []  # type: ignore[attr-defined]


# --- construction and serialisation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top_n": 0}, ValueError, "top_n must be >= 1, got 0"),
        ({"score_threshold": -0.5}, ValueError, r"score_threshold must be in \[0, 1\]"),
        ({"model": "m", "reranker": FakeReranker()}, ValueError, "not both"),
        ({"reranker": FakeReranker(), "max_length": 10}, ValueError, "apply only with `model`"),
        ({"top_k": 3}, TypeError, "unexpected keyword argument.*top_k"),
        ({"model": "m", "backend": "nope"}, ValueError, "unknown backend 'nope'"),
        ({"top_n": "3"}, TypeError, "top_n must be an int, got str"),
        ({"top_n": True}, TypeError, "top_n must be an int, got bool"),
        ({"keep_original": "no"}, TypeError, "keep_original must be a bool"),
        ({"reranker": object()}, TypeError, "Reranker protocol"),
    ],
)
def test_validation(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        PrismNodePostprocessor(**kwargs)


def test_constructing_with_model_loads_nothing() -> None:
    pp = PrismNodePostprocessor(model="not/a-real-model", device="cpu", batch_tokens=4096)
    assert not pp._resolver.resolved
    assert (pp.model, pp.backend) == ("not/a-real-model", None)
    assert pp.engine_config == EngineSpec.create("not/a-real-model", device="cpu", batch_tokens=4096)
    positional = PrismNodePostprocessor("org/prism", backend="prism")
    assert positional.engine_config == EngineSpec.create("org/prism", "prism")


def test_to_dict_round_trip_exact() -> None:
    torch = pytest.importorskip("torch")
    pp = PrismNodePostprocessor(
        model="org/prism", dtype=torch.float16, top_n=4, score_threshold=0.3, use_evidence=False
    )
    data = pp.to_dict()
    assert data == {
        "engine_config": {"model": "org/prism", "backend": None, "dtype": "float16"},
        "top_n": 4,
        "score_threshold": 0.3,
        "use_evidence": False,
        "add_contribution": True,
        "keep_original": True,
        "drop_irrelevant": True,
        "grounded_only": True,
        "class_name": "PrismNodePostprocessor",
    }
    again = PrismNodePostprocessor.from_dict(data)
    assert again.to_dict() == data and again.engine_config == pp.engine_config
    assert PrismNodePostprocessor.from_json(pp.to_json()).to_dict() == data
    assert not again._resolver.resolved


def test_custom_reranker_is_not_serialisable() -> None:
    pp = PrismNodePostprocessor(reranker=FakeReranker())
    assert pp.reranker is not None
    for dump in (pp.to_dict, pp.to_json):
        with pytest.raises(NotSerializableError, match="built with a `reranker` object cannot be serialised"):
            dump()


def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        framework_missing(monkeypatch, "llama_index", "prism_integrations.llama_index"),
        pytest.raises(ImportError, match=r'pip install "prism-integrations\[llama-index\]"'),
    ):
        importlib.import_module("prism_integrations.llama_index")


# --- real pipeline: VectorStoreIndex + MiniLM + query engine ---------------------------------------


def _minilm_embedding() -> Any:
    from llama_index.core.embeddings import BaseEmbedding

    from tests._minilm import embed, require_minilm

    require_minilm()

    class MiniLMEmbedding(BaseEmbedding):
        """LlamaIndex embedding over the real all-MiniLM-L6-v2 (offline)."""

        def _get_query_embedding(self, query: str) -> list[float]:
            return embed([query])[0]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return embed([query])[0]

        def _get_text_embedding(self, text: str) -> list[float]:
            return embed([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return embed(texts)

    return MiniLMEmbedding(model_name="all-MiniLM-L6-v2")


def _index_and_llm() -> tuple[Any, Any]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM

    embed_model = _minilm_embedding()
    nodes = [TextNode(text=t, metadata={"source": f"doc{i}"}, id_=f"id-{i}") for i, t in enumerate(TEXTS)]
    return VectorStoreIndex(nodes=nodes, embed_model=embed_model), MockLLM()


def test_query_engine_with_postprocessor() -> None:
    index, llm = _index_and_llm()
    pp = PrismNodePostprocessor(reranker=FakeReranker(), top_n=3)
    engine = index.as_query_engine(llm=llm, similarity_top_k=6, node_postprocessors=[pp])
    response = engine.query(QUERY)
    assert [_index(n) for n in response.source_nodes] == [1, 4, 2]
    assert [n.score for n in response.source_nodes] == [0.9, 0.8, 0.7]
    # MockLLM echoes the prompt: the evidence reached the LLM, the original body and our keys did not.
    prompt = str(response)
    assert expected_body(1) in prompt and expected_body(4) in prompt and TEXTS[2] in prompt
    assert TEXTS[1] not in prompt.replace(expected_body(1), "")
    assert "original_content" not in prompt and "relevance_score" not in prompt


async def test_query_engine_async() -> None:
    index, llm = _index_and_llm()
    spy = AsyncSpy()
    engine = index.as_query_engine(
        llm=llm, similarity_top_k=6, node_postprocessors=[PrismNodePostprocessor(reranker=spy)]
    )
    response = await engine.aquery(QUERY)
    assert [_index(n) for n in response.source_nodes] == ORDER_RELEVANT
    assert spy.async_calls == 1


def test_retriever_query_engine() -> None:
    from llama_index.core.query_engine import RetrieverQueryEngine

    index, llm = _index_and_llm()
    engine = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=6),
        llm=llm,
        node_postprocessors=[PrismNodePostprocessor(reranker=FakeReranker(), drop_irrelevant=False)],
    )
    nodes = engine.retrieve(QueryBundle(QUERY))
    assert [_index(n) for n in nodes] == ORDER_ALL


# --- every backend on a tiny real model, in a real query engine ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_backend_in_query_engine(request: pytest.FixtureRequest, backend: str) -> None:
    """VectorStoreIndex (MiniLM) → as_query_engine(MockLLM) with the postprocessor on each tiny backend."""
    case = tiny_backend(request, backend)
    index, llm = _index_and_llm()
    pp = PrismNodePostprocessor(model=case.path, device="cpu", drop_irrelevant=False, **case.options)
    engine = index.as_query_engine(llm=llm, similarity_top_k=len(TEXTS), node_postprocessors=[pp])
    response = engine.query(QUERY)
    nodes = response.source_nodes
    assert sorted(_index(n) for n in nodes) == list(range(len(TEXTS)))
    direct = pp.engine.score(QUERY, TEXTS)
    assert pp.engine.capabilities.evidence is case.generates
    assert [n.score for n in nodes] == pytest.approx([direct[_index(n)] for n in nodes], abs=1e-4)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)  # type: ignore[type-var]
    prompt = str(response)  # MockLLM echoes the prompt
    for n in nodes:
        i = _index(n)
        assert n.score == n.node.metadata["relevance_score"]
        assert n.node.metadata["evidence_used"] is (_text(n) != TEXTS[i])
        if not case.generates:
            assert n.node.metadata["contribution"] is None and _text(n) == TEXTS[i]
        assert _text(n) in prompt
    assert "relevance_score" not in prompt and "evidence_used" not in prompt
    assert PrismNodePostprocessor.from_dict(pp.to_dict()).engine is pp.engine


@pytest.mark.slow
def test_tiny_real_model(request: pytest.FixtureRequest) -> None:
    path = tiny_model_path(request)
    pp = PrismNodePostprocessor(model=path, drop_irrelevant=False, max_new_tokens=16)
    nodes = _nodes()
    out = pp.postprocess_nodes(nodes, query_str=QUERY)
    assert sorted(_index(n) for n in out) == list(range(len(TEXTS)))
    scores = [n.score for n in out]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    for n in out:
        assert n.score == n.node.metadata["relevance_score"]
        if not n.node.metadata["evidence_used"]:
            assert _text(n) == TEXTS[_index(n)]
    assert nodes == _nodes()
