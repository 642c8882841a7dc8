"""``grounded_only`` in the three adapters: ungrounded evidence is not swapped in, and the metadata says why.

The scripted reranker (tests/fakes.py) gives a ``[fabricated:S]`` document a complete evidence passage
that adds "999 km" (not in the document) and leaves its grounding unfilled, so the adapters' shared
mapping runs :func:`prism_core.check_grounding` itself; ``[yes:S]`` documents come back reported
grounded.
"""

from __future__ import annotations

from typing import Any

import pytest

from prism_core import check_grounding
from prism_core.results import PrismResult
from tests.fakes import FakeReranker

QUERY = "How long is the bridge?"
TEXTS = [
    "The Golden Gate Bridge is 2,737 metres long. [fabricated:0.9]",
    "The bridge opened in 1937. [yes:0.8]",
    "Bananas are yellow. [no:0.1]",
]
FABRICATED = f"{TEXTS[0]} It is 999 km long."


def _langchain(texts: list[str], **options: Any) -> list[tuple[int, str, dict[str, Any]]]:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from prism_integrations.langchain import PrismDocumentCompressor

    docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]
    out = PrismDocumentCompressor(reranker=FakeReranker(), **options).compress_documents(docs, QUERY)
    assert [d.metadata for d in docs] == [{"i": i} for i in range(len(texts))]  # the caller's, untouched
    return [(d.metadata["i"], d.page_content, d.metadata) for d in out]


def _llama_index(texts: list[str], **options: Any) -> list[tuple[int, str, dict[str, Any]]]:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from prism_integrations.llama_index import PrismNodePostprocessor

    nodes = [NodeWithScore(node=TextNode(text=t, metadata={"i": i})) for i, t in enumerate(texts)]
    out = PrismNodePostprocessor(reranker=FakeReranker(), **options).postprocess_nodes(nodes, query_str=QUERY)
    for n in out:  # our keys never reach the LLM's or the embedder's view
        assert {"grounding", "unsupported", "evidence_spans"} & set(n.node.metadata) <= set(
            n.node.excluded_llm_metadata_keys
        )
    return [(n.node.metadata["i"], n.node.get_content(), n.node.metadata) for n in out]


def _haystack(texts: list[str], **options: Any) -> list[tuple[int, str, dict[str, Any]]]:
    pytest.importorskip("haystack")
    from haystack import Document

    from prism_integrations.haystack import PrismRanker

    docs = [Document(content=t, meta={"i": i}) for i, t in enumerate(texts)]
    out = PrismRanker(reranker=FakeReranker(), **options).run(query=QUERY, documents=docs)["documents"]
    return [(d.meta["i"], d.content, d.meta) for d in out]


ADAPTERS = {"langchain": _langchain, "llama_index": _llama_index, "haystack": _haystack}


@pytest.fixture(params=sorted(ADAPTERS))
def run(request: pytest.FixtureRequest) -> Any:
    return ADAPTERS[request.param]


def test_ungrounded_evidence_is_not_swapped_by_default(run: Any) -> None:
    out = run(TEXTS)
    assert [i for i, _, _ in out] == [0, 1]
    _, body, meta = out[0]
    assert body == TEXTS[0]  # the original stays
    assert meta["evidence_used"] is False and "original_content" not in meta
    assert meta["evidence_rejected"] == "ungrounded"
    assert meta["unsupported"] == ["999 km"]
    report = check_grounding(TEXTS[0], FABRICATED)
    assert meta["grounding"] == pytest.approx(report.score) and 0 < meta["grounding"] < 1
    assert meta["evidence_spans"] == [None if s is None else list(s) for s in report.spans]
    assert list(meta)[-4:] == ["grounding", "unsupported", "evidence_spans", "evidence_rejected"]


def test_grounded_evidence_is_still_swapped(run: Any) -> None:
    _, body, meta = run(TEXTS)[1]
    assert body == f"EVIDENCE({TEXTS[1]})"
    assert meta["evidence_used"] is True and meta["original_content"] == TEXTS[1]
    assert (meta["grounding"], meta["unsupported"]) == (1.0, [])
    assert meta["evidence_spans"] == [[0, len(TEXTS[1])]]
    assert "evidence_rejected" not in meta


def test_grounded_only_off_swaps_and_still_reports(run: Any) -> None:
    _, body, meta = run(TEXTS, grounded_only=False)[0]
    assert body == FABRICATED
    assert meta["evidence_used"] is True and meta["original_content"] == TEXTS[0]
    assert meta["unsupported"] == ["999 km"] and "evidence_rejected" not in meta


def test_no_grounding_keys_without_generated_evidence(run: Any) -> None:
    out = run(TEXTS, use_evidence=False, add_contribution=False, drop_irrelevant=False)
    for _, _, meta in out:
        assert not {"grounding", "unsupported", "evidence_spans", "evidence_rejected"} & set(meta)


def test_use_evidence_off_reports_grounding_without_a_rejection(run: Any) -> None:
    """Evidence generated for the contribution only: grounding is reported, nothing was rejected."""
    _, body, meta = run(TEXTS, use_evidence=False)[0]
    assert body == TEXTS[0] and meta["evidence_used"] is False
    assert meta["unsupported"] == ["999 km"] and "evidence_rejected" not in meta


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_grounded_only_must_be_a_bool(run: Any, bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="grounded_only must be a bool"):
        run(TEXTS, grounded_only=bad)


def test_a_backend_report_is_trusted_not_recomputed() -> None:
    """A result whose grounding the backend filled is used as it is (the check runs once)."""
    from prism_core.grounding import ground_result

    filled = PrismResult(0, 0.9, 2.2, True, evidence="It is 999 km.", grounding=1.0, unsupported=())
    assert ground_result(filled, "It is 5 km.") is filled
    empty = PrismResult(0, 0.9, 2.2, True, evidence="It is 999 km.")
    assert ground_result(empty, "It is 5 km.").unsupported == ("999 km",)
    assert ground_result(PrismResult(0, 0.2, -1.0, False), "x").grounding is None
