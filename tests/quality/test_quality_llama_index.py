"""QualityNodePostprocessor (LlamaIndex): annotation, filter, order, no mutation, serialisation,
and a real VectorStoreIndex query engine."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from prism_core.quality import QualityScorer
from prism_integrations.quality_llama_index import QualityNodePostprocessor
from tests._adapter_cases import framework_missing
from tests.quality._quality_cases import (
    COMPONENT_TEXTS,
    QUERY,
    TinyQuality,
    component_metadata,
    expected_metadata,
    make_counting_scorer,
    median,
)


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(
                text=t, metadata=component_metadata(i), id_=f"id-{i}", excluded_llm_metadata_keys=["source"]
            ),
            score=0.5 + i / 100,
        )
        for i, t in enumerate(COMPONENT_TEXTS)
    ]


def _index(n: NodeWithScore) -> int:
    return int(n.node.node_id.removeprefix("id-"))


@pytest.fixture
def quality(tiny_scorer: QualityScorer) -> list[float]:
    return tiny_scorer.score(COMPONENT_TEXTS)


def test_is_a_node_postprocessor(tiny_scorer: QualityScorer) -> None:
    assert isinstance(QualityNodePostprocessor(tiny_scorer), BaseNodePostprocessor)


def test_annotates_copies_in_input_order(tiny_quality: TinyQuality, quality: list[float]) -> None:
    scorer = make_counting_scorer(tiny_quality)
    nodes = _nodes()
    before = copy.deepcopy(nodes)
    out = QualityNodePostprocessor(scorer).postprocess_nodes(nodes)  # no query needed
    assert [_index(n) for n in out] == list(range(6))
    for n, original in zip(out, nodes, strict=True):
        i = _index(n)
        assert n.node.metadata == expected_metadata(i, pytest.approx(quality[i], abs=1e-6))  # type: ignore[arg-type]
        assert n.score == original.score and n.node.get_content() == original.node.get_content()
        assert n is not original and n.node is not original.node
        assert n.node.excluded_llm_metadata_keys == ["source", "quality_score"]
        assert n.node.excluded_embed_metadata_keys == ["quality_score"]
    assert [n.model_dump() for n in nodes] == [n.model_dump() for n in before]
    assert scorer.score_calls == 1 and scorer.ascore_calls == 0


def test_min_quality_and_sort(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    cut = median(quality)
    out = QualityNodePostprocessor(tiny_scorer, min_quality=cut).postprocess_nodes(_nodes(), query_str=QUERY)
    assert [_index(n) for n in out] == [i for i, q in enumerate(quality) if q >= cut]
    assert 0 < len(out) < 6
    best = QualityNodePostprocessor(tiny_scorer, sort_by_quality=True).postprocess_nodes(_nodes())
    assert [_index(n) for n in best] == sorted(range(6), key=lambda i: -quality[i])


async def test_async_uses_ascore(tiny_quality: TinyQuality, quality: list[float]) -> None:
    scorer = make_counting_scorer(tiny_quality)
    out = await QualityNodePostprocessor(scorer).apostprocess_nodes(_nodes(), QueryBundle(QUERY))
    assert [n.node.metadata["quality_score"] for n in out] == pytest.approx(quality, abs=1e-6)
    assert scorer.ascore_calls == 1


def test_empty_input_loads_nothing() -> None:
    scorer = QualityScorer("org/heads:h.ckpt", embedder="no-such-org/no-such-embedder", device="cpu")
    assert QualityNodePostprocessor(scorer).postprocess_nodes([]) == []
    assert not scorer.loaded


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
        QualityNodePostprocessor(tiny_scorer, **kwargs)


def test_quality_is_required() -> None:
    with pytest.raises(TypeError, match="needs quality"):
        QualityNodePostprocessor()
    with pytest.raises(TypeError, match=r"quality must be a prism_core\.quality\.QualityScorer"):
        QualityNodePostprocessor(42)  # type: ignore[arg-type]


def test_to_dict_round_trip(tiny_quality: TinyQuality) -> None:
    pp = QualityNodePostprocessor(make_counting_scorer(tiny_quality), min_quality=2.0, sort_by_quality=True)
    data = pp.to_dict()
    assert data["class_name"] == "QualityNodePostprocessor"
    assert data["quality_config"]["heads"] == tiny_quality.heads[:2]
    assert data["min_quality"] == 2.0 and data["sort_by_quality"] is True
    again = QualityNodePostprocessor.from_dict(data)
    assert again.to_dict() == data and type(again.quality) is QualityScorer
    assert QualityNodePostprocessor.from_json(pp.to_json()).to_dict() == data


def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        framework_missing(monkeypatch, "llama_index", "prism_integrations.quality_llama_index"),
        pytest.raises(ImportError, match=r'pip install "prism-integrations\[llama-index\]"'),
    ):
        importlib.import_module("prism_integrations.quality_llama_index")


# --- real pipeline: VectorStoreIndex + query engine ------------------------------------------------


def _index_and_llm() -> tuple[Any, Any]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    nodes = [
        TextNode(text=t, metadata={"source": f"doc{i}"}, id_=f"id-{i}") for i, t in enumerate(COMPONENT_TEXTS)
    ]
    return VectorStoreIndex(nodes=nodes, embed_model=MockEmbedding(embed_dim=8)), MockLLM()


def test_query_engine_with_quality_postprocessor(tiny_scorer: QualityScorer, quality: list[float]) -> None:
    index, llm = _index_and_llm()
    cut = median(quality)
    pp = QualityNodePostprocessor(tiny_scorer, min_quality=cut, sort_by_quality=True)
    engine = index.as_query_engine(llm=llm, similarity_top_k=6, node_postprocessors=[pp])
    response = engine.query(QUERY)
    kept = sorted((i for i in range(6) if quality[i] >= cut), key=lambda i: -quality[i])
    assert [_index(n) for n in response.source_nodes] == kept
    assert [n.node.metadata["quality_score"] for n in response.source_nodes] == pytest.approx(
        [quality[i] for i in kept], abs=1e-6
    )
    prompt = str(response)  # MockLLM echoes the prompt: the kept texts reached it, our key did not
    assert all(COMPONENT_TEXTS[i] in prompt for i in kept)
    assert "quality_score" not in prompt


async def test_query_engine_async(tiny_quality: TinyQuality) -> None:
    index, llm = _index_and_llm()
    scorer = make_counting_scorer(tiny_quality)
    engine = index.as_query_engine(
        llm=llm, similarity_top_k=6, node_postprocessors=[QualityNodePostprocessor(scorer)]
    )
    response = await engine.aquery(QUERY)
    assert len(response.source_nodes) == 6 and scorer.ascore_calls == 1


def test_image_only_node_is_kept_unscored(tiny_scorer: QualityScorer) -> None:
    from llama_index.core.schema import ImageNode

    nodes = _nodes()
    nodes.insert(1, NodeWithScore(node=ImageNode(image="aGk=", id_="id-img", metadata={"k": 1}), score=0.3))
    out = QualityNodePostprocessor(tiny_scorer, min_quality=5.0).postprocess_nodes(nodes)
    kept_ids = [n.node.node_id for n in out]
    assert "id-img" in kept_ids
    img = out[kept_ids.index("id-img")]
    assert img.node.metadata == {"k": 1} and img.score == 0.3 and img.node is not nodes[1].node


def test_wrong_item_type_names_position(tiny_scorer: QualityScorer) -> None:
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a LlamaIndex NodeWithScore"):
        QualityNodePostprocessor(tiny_scorer).postprocess_nodes(["text"])  # type: ignore[list-item]
