"""The agent budgets in the three adapters: ``max_context_tokens`` (with the model's counts or a
caller's counter), ``time_budget`` passed to the engine and its flags mapped onto documents, and
serialisation (unset budgets leave saved configurations as they were; a counter refuses to save)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from prism_core.budgets import TIME_BUDGET, unscored_result
from prism_core.results import PrismResult
from tests.fakes import FakeReranker

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")
pytest.importorskip("haystack")

from haystack import Document as HDocument
from langchain_core.documents import Document as LCDocument
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from haystack_integrations.components.rankers.prism import PrismRanker
from prism_integrations._common import NotSerializableError
from prism_integrations.langchain import PrismDocumentCompressor
from prism_integrations.llama_index import PrismNodePostprocessor

QUERY = "What is the capital of France?"
TEXTS = [
    "alpha: Mars has two moons. [no:0.2]",
    "bravo: Paris is the capital of France and its largest city by far. [yes:0.9]",
    "charlie: Lyon is in France. [yes:0.7]",
    "delta: France borders Spain, Italy, Belgium and Germany on land. [yes:0.6]",
    "echo: The Eiffel Tower is in Paris. [yes:0.8]",
]


def words(text: str) -> int:
    return len(text.split())


class BudgetFake(FakeReranker):
    """The scripted reranker, taking ``time_budget``: with one, documents containing ``late`` are
    returned unscored (last, input order) and ``charlie`` has its evidence cut by the deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.budgets: list[float | None] = []

    def rerank(  # type: ignore[override]
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
        **kwargs: Any,
    ) -> list[PrismResult]:
        budget = kwargs.pop("time_budget", None)
        assert not kwargs
        self.budgets.append(budget)
        results = super().rerank(
            query, documents, top_n=top_n, score_threshold=score_threshold, evidence=evidence
        )
        results = [
            replace(r, evidence_tokens=None if r.evidence is None else words(r.evidence)) for r in results
        ]
        if budget is None:
            return results
        late = [i for i, d in enumerate(documents) if "late" in d]
        out = []
        for r in results:
            if r.index in late:
                continue
            if "charlie" in documents[r.index]:
                r = PrismResult(r.index, r.score, r.logit, r.relevant, evidence_skipped=TIME_BUDGET)
            out.append(r)
        return out + [unscored_result(i) for i in late]

    async def arerank(self, query: str, documents: Sequence[str], **kwargs: Any) -> list[PrismResult]:  # type: ignore[override]
        return self.rerank(query, documents, **kwargs)


def run_langchain(fake: BudgetFake, texts: list[str], **options: Any) -> list[tuple[str, dict[str, Any]]]:
    compressor = PrismDocumentCompressor(reranker=fake, **options)
    docs = [LCDocument(page_content=t, metadata={"n": i}) for i, t in enumerate(texts)]
    out = compressor.compress_documents(docs, QUERY)
    again = asyncio.run(compressor.acompress_documents(docs, QUERY))
    assert [d.page_content for d in again] == [d.page_content for d in out]
    return [(d.page_content, d.metadata) for d in out]


def run_llama(fake: BudgetFake, texts: list[str], **options: Any) -> list[tuple[str, dict[str, Any]]]:
    post = PrismNodePostprocessor(reranker=fake, **options)
    nodes = [NodeWithScore(node=TextNode(text=t, metadata={"n": i}), score=None) for i, t in enumerate(texts)]
    out = post.postprocess_nodes(nodes, QueryBundle(QUERY))
    return [(n.node.get_content(), n.node.metadata) for n in out]


def run_haystack(fake: BudgetFake, texts: list[str], **options: Any) -> list[tuple[str, dict[str, Any]]]:
    ranker = PrismRanker(reranker=fake, **options)
    out = ranker.run(QUERY, [HDocument(content=t, meta={"n": i}) for i, t in enumerate(texts)])["documents"]
    return [(d.content or "", d.meta) for d in out]


RUNNERS = [run_langchain, run_llama, run_haystack]


@pytest.mark.parametrize("run", RUNNERS)
def test_token_budget_keeps_best_documents_whose_returned_text_fits(run: Any, caplog: Any) -> None:
    fake = BudgetFake()
    full = run(fake, TEXTS)
    costs = [words(text) for text, _ in full]
    assert [m["n"] for _, m in full] == [1, 4, 2, 3]
    # bravo, echo fit; charlie (its evidence) does not fit what is left; delta does not either...
    budget = costs[0] + costs[1] + 1
    with caplog.at_level(logging.INFO, logger="prism_integrations._common.budgets"):
        kept = run(fake, TEXTS, max_context_tokens=budget, token_counter=words)
    assert [m["n"] for _, m in kept] == [1, 4]
    assert [m["context_tokens"] for _, m in kept] == costs[:2]
    assert sum(m["context_tokens"] for _, m in kept) <= budget
    assert all(list(m)[-1] == "context_tokens" for _, m in kept)
    assert all(text.startswith("EVIDENCE(") for text, _ in kept), "the evidence is what is counted"
    dropped = [r.dropped_by_budget for r in caplog.records if hasattr(r, "dropped_by_budget")]
    assert dropped and dropped[-1] == [2, 3], dropped


@pytest.mark.parametrize("run", RUNNERS)
def test_a_document_too_big_for_what_is_left_is_skipped_and_the_next_tried(run: Any) -> None:
    fake = BudgetFake()
    costs = {m["n"]: words(text) for text, m in run(fake, TEXTS)}
    budget = costs[1] + costs[2]  # bravo fits, echo (2nd) does not, charlie (3rd) does
    assert costs[4] > costs[2]
    kept = run(fake, TEXTS, max_context_tokens=budget, token_counter=words)
    assert [m["n"] for _, m in kept] == [1, 2]


@pytest.mark.parametrize("run", RUNNERS)
def test_token_budget_uses_the_models_counts_by_default(run: Any) -> None:
    fake = BudgetFake()
    full = run(fake, TEXTS, max_context_tokens=10_000)
    for text, metadata in full:
        assert metadata["context_tokens"] == words(text)  # the fake's evidence_tokens are word counts


@pytest.mark.parametrize("run", RUNNERS)
def test_time_budget_goes_to_the_engine_and_its_flags_onto_documents(run: Any) -> None:
    fake = BudgetFake()
    texts = [*TEXTS, "golf: a late document. [yes:0.95]", "hotel: another late one. [no:0.1]"]
    out = run(fake, texts, time_budget=1.5)
    assert fake.budgets and all(b == 1.5 for b in fake.budgets)
    ns = [m["n"] for _, m in out]
    assert ns == [1, 4, 2, 3, 5, 6], "unscored documents must come last, in input order, none dropped"
    meta = {m["n"]: m for _, m in out}
    assert all(meta[n]["scored"] is True for n in (1, 4, 2, 3))
    assert all(meta[n]["scored"] is False and meta[n]["relevance_score"] is None for n in (5, 6))
    assert [text for text, m in out if m["n"] in (5, 6)] == texts[5:], "unscored bodies must stay"
    assert meta[2]["evidence_skipped"] == TIME_BUDGET and meta[2]["evidence_used"] is False
    assert [text for text, m in out if m["n"] == 2] == [texts[2]]
    assert "evidence_skipped" not in meta[1] and meta[1]["evidence_used"] is True


@pytest.mark.parametrize("run", RUNNERS)
def test_without_budgets_nothing_changes(run: Any) -> None:
    fake = BudgetFake()
    out = run(fake, TEXTS)
    assert fake.budgets == [None] * len(fake.budgets)
    assert all(not {"context_tokens", "scored", "evidence_skipped"} & set(m) for _, m in out)


def test_serialisation_keeps_set_budgets_and_omits_unset_ones() -> None:
    lc = PrismDocumentCompressor(model="m", max_context_tokens=2000, time_budget=1.5)
    assert lc.model_dump()["max_context_tokens"] == 2000 and lc.model_dump()["time_budget"] == 1.5
    assert PrismDocumentCompressor.model_validate(lc.model_dump()).time_budget == 1.5
    assert "time_budget" not in PrismDocumentCompressor(model="m").model_dump()
    li = PrismNodePostprocessor(model="m", max_context_tokens=2000)
    assert li.to_dict()["max_context_tokens"] == 2000 and "time_budget" not in li.to_dict()
    hs = PrismRanker(model="m", time_budget=2)
    params = hs.to_dict()["init_parameters"]
    assert params["time_budget"] == 2.0 and "max_context_tokens" not in params
    assert PrismRanker.from_dict(hs.to_dict()).time_budget == 2.0
    assert "time_budget" not in PrismRanker(model="m").to_dict()["init_parameters"]


def test_a_token_counter_refuses_to_serialise_and_bad_budgets_are_refused() -> None:
    with pytest.raises(NotSerializableError, match="token_counter"):
        PrismDocumentCompressor(model="m", token_counter=words).model_dump()
    with pytest.raises(NotSerializableError, match="token_counter"):
        PrismNodePostprocessor(model="m", token_counter=words).to_dict()
    from haystack.core.errors import SerializationError

    with pytest.raises(SerializationError, match="token_counter"):
        PrismRanker(model="m", token_counter=words).to_dict()
    with pytest.raises(ValueError, match="max_context_tokens"):
        PrismDocumentCompressor(model="m", max_context_tokens=0)
    with pytest.raises(ValueError, match="time_budget"):
        PrismNodePostprocessor(model="m", time_budget=-1)
    with pytest.raises(TypeError, match="time_budget"):
        PrismRanker(model="m", time_budget="2")
    with pytest.raises(TypeError, match="token_counter"):
        PrismRanker(model="m", token_counter=3)


def test_haystack_run_overrides_budgets_per_call() -> None:
    fake = BudgetFake()
    ranker = PrismRanker(reranker=fake, time_budget=9.0, token_counter=words)
    docs = [HDocument(content=t) for t in TEXTS]
    out = ranker.run(QUERY, docs, time_budget=0.5, max_context_tokens=1)["documents"]
    assert fake.budgets[-1] == 0.5
    assert out == []  # nothing fits one token (every text is longer)
