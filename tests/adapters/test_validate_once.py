"""Each adapter call validates every text once and sorts the engine's results once.

The engine and the quality scorer below check their input the way the real ones do
(:func:`prism_core.validation.check_rerank_args`, :func:`prism_core.validation.check_documents`);
a spy on :func:`prism_core.validation.check_text` counts how often each text is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import prism_core.quality.compose as compose
import prism_core.validation as validation
from prism_core.quality import QualityScorer
from prism_core.results import PrismResult
from prism_integrations._common import EngineResolver, Item, RerankSettings, rerank_items
from tests._adapter_cases import ORDER_ALL, QUERY, TEXTS
from tests.adapters.test_quality_in_adapters import (
    FRAMEWORKS,
    HEADS_SPEC,
    arun_pipeline,
    make_adapter,
    run_pipeline,
)
from tests.fakes import FakeReranker


class CheckingReranker(FakeReranker):
    """The fake engine, checking its arguments as every backend does."""

    def rerank(self, query: str, documents: Sequence[str], **options: Any) -> list[PrismResult]:
        validation.check_rerank_args(
            query,
            documents,
            options.get("top_n"),
            options.get("score_threshold"),
            options.get("evidence", True),
        )
        return super().rerank(query, documents, **options)


class CheckingScorer(QualityScorer):
    """A quality scorer that checks its texts as :class:`QualityScorer` does (and loads nothing)."""

    def load(self) -> CheckingScorer:
        return self

    def score(self, documents: Sequence[str]) -> list[float]:
        return [2.5 for _ in validation.check_documents(documents)]

    async def ascore(self, documents: Sequence[str]) -> list[float]:
        return self.score(documents)


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts given to ``check_text`` during the test (the query's checks left out)."""
    seen: list[str] = []
    real = validation.check_text

    def spy(text: Any, name: str) -> str:
        if name != "query":
            seen.append(text)
        return real(text, name)

    monkeypatch.setattr(validation, "check_text", spy)
    monkeypatch.setattr(compose, "check_text", spy)
    return seen


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_text_is_checked_once_per_call(framework: str, checked: list[str]) -> None:
    adapter = make_adapter(
        framework, reranker=CheckingReranker(), quality=CheckingScorer(HEADS_SPEC), quality_weight=0.5
    )
    out = run_pipeline(framework, adapter)
    assert out, "the pipeline returned nothing: the test would prove nothing"
    assert sorted(checked) == sorted(TEXTS), f"texts checked more (or less) than once: {len(checked)}"


def test_each_text_is_checked_once_without_quality(checked: list[str]) -> None:
    ranking = rerank_items(
        EngineResolver(None, CheckingReranker()),
        QUERY,
        [Item(t) for t in TEXTS],
        RerankSettings(top_n=None, score_threshold=None, drop_irrelevant=False),
        adapter="X",
    )
    assert len(ranking.kept) == len(TEXTS)
    assert sorted(checked) == sorted(TEXTS), f"texts checked more (or less) than once: {len(checked)}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_each_text_is_checked_once_per_async_call(framework: str, checked: list[str]) -> None:
    adapter = make_adapter(framework, reranker=CheckingReranker(), quality=CheckingScorer(HEADS_SPEC))
    out = await arun_pipeline(framework, adapter)
    assert out
    assert sorted(checked) == sorted(TEXTS), f"texts checked more (or less) than once: {len(checked)}"


def test_a_bad_text_is_still_named_by_its_position() -> None:
    items = [Item(TEXTS[0], None), Item("bad \ud800", None)]
    with pytest.raises(ValueError, match=r"documents\[1\]"):
        rerank_items(
            EngineResolver(None, CheckingReranker()),
            QUERY,
            items,
            RerankSettings(top_n=None, score_threshold=None, drop_irrelevant=False),
            adapter="X",
        )


@pytest.mark.parametrize("top_n", [None, 3])
def test_results_in_engine_order_are_not_sorted_again(
    top_n: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sorted_scored: list[int] = []

    def spy(iterable: Any, **kwargs: Any) -> list[Any]:
        items = list(iterable)
        sorted_scored.extend(1 for r in items if isinstance(r, PrismResult) and r.scored)
        return sorted(items, **kwargs)

    monkeypatch.setattr(compose, "sorted", spy, raising=False)
    ranking = rerank_items(
        EngineResolver(None, FakeReranker()),
        QUERY,
        [Item(t) for t in TEXTS],
        RerankSettings(top_n=top_n, score_threshold=None, drop_irrelevant=False),
        adapter="X",
    )
    assert [k.index for k in ranking.kept] == ORDER_ALL[:top_n]
    assert sorted_scored == [], "the engine's best-first results were sorted again"


def test_results_out_of_order_are_still_ranked() -> None:
    rs = [PrismResult(0, 0.2, -1.4, False), PrismResult(1, 0.9, 2.2, True), PrismResult(2, 0.9, 2.2, True)]
    assert [r.index for r in compose.hold_to_rules(rs, top_n=2, threshold=None)] == [1, 2]
    assert [r.index for r in compose.hold_to_rules(rs, top_n=None, threshold=0.5)] == [1, 2]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_query_is_checked_once_per_call(framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queries: list[str] = []
    real = validation.check_text

    def spy(text: Any, name: str) -> str:
        if name == "query":
            queries.append(text)
        return real(text, name)

    monkeypatch.setattr(validation, "check_text", spy)
    adapter = make_adapter(framework, reranker=CheckingReranker(), quality=CheckingScorer(HEADS_SPEC))
    assert run_pipeline(framework, adapter), "the pipeline returned nothing: the test would prove nothing"
    assert queries == [QUERY], f"the query was checked {len(queries)} times"
