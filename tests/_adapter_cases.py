"""One scripted corpus and its expected outcomes, shared by the three adapter test modules.

Markers are read by :class:`fakes.FakeReranker` (see tests/fakes.py).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fakes import FakeReranker

from prism_core.results import PrismResult

TEXTS: list[str] = [
    "alpha: Mars has two moons. [no:0.2]",  # 0 irrelevant
    "bravo: Paris is the capital of France. [yes:0.9]",  # 1 relevant, complete evidence
    "charlie: Lyon is in France. [partial:0.7]",  # 2 relevant, evidence cut (incomplete)
    "delta: France borders Spain. [notags:0.6]",  # 3 relevant, no tags (evidence None)
    "echo: The Eiffel Tower is in Paris. [yes:0.8]",  # 4 relevant, complete evidence
    "foxtrot: Bananas are yellow. [no:0.4]",  # 5 irrelevant
]
QUERY = "What is the capital of France?"

#: Input indices in score order (all six).
ORDER_ALL = [1, 4, 2, 3, 5, 0]
#: Input indices returned with the defaults (irrelevant dropped).
ORDER_RELEVANT = [1, 4, 2, 3]
#: Input indices whose evidence is complete (body swapped by default).
SWAPPED = {1, 4}

OUR_KEYS = ["relevance_score", "contribution", "evidence_used", "original_content"]

#: ``(options, expected input indices)`` for the ``top_n`` and ``score_threshold`` rules.
TOP_N_AND_THRESHOLD_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"top_n": 2}, [1, 4]),
    ({"score_threshold": 0.65}, [1, 4, 2]),
    ({"top_n": 3, "score_threshold": 0.75}, [1, 4]),
]


def metadata(i: int) -> dict[str, Any]:
    """Caller metadata for document ``i``: nested values, and a stale ``relevance_score`` on even ones."""
    meta: dict[str, Any] = {"source": f"doc{i}"}
    if i % 2 == 0:
        meta["relevance_score"] = 0.123  # stale, from an upstream reranker
    meta["nested"] = {"tags": [f"t{i}"]}
    return meta


def score_of(i: int) -> float:
    return [0.2, 0.9, 0.7, 0.6, 0.8, 0.4][i]


def expected_body(i: int, *, use_evidence: bool = True) -> str:
    return f"EVIDENCE({TEXTS[i]})" if use_evidence and i in SWAPPED else TEXTS[i]


def expected_metadata(i: int, *, use_evidence: bool = True, keep_original: bool = True) -> dict[str, Any]:
    """The full metadata an adapter should return for document ``i``, in the right key order."""
    meta = metadata(i)
    meta.pop("relevance_score", None)
    relevant = i not in (0, 5)
    swapped = use_evidence and i in SWAPPED
    meta["relevance_score"] = score_of(i)
    meta["contribution"] = f"CONTRIBUTION({i})" if relevant and i != 3 else None
    meta["evidence_used"] = swapped
    if swapped and keep_original:
        meta["original_content"] = TEXTS[i]
    return meta


class AsyncSpy(FakeReranker):
    """A :class:`fakes.FakeReranker` that counts its ``arerank`` calls (and yields to the loop once)."""

    def __init__(self) -> None:
        super().__init__()
        self.async_calls = 0

    async def arerank(self, *args: Any, **kwargs: Any) -> list[PrismResult]:
        self.async_calls += 1
        await asyncio.sleep(0)
        return await super().arerank(*args, **kwargs)


@contextmanager
def framework_missing(monkeypatch: pytest.MonkeyPatch, top: str, adapter_module: str) -> Iterator[None]:
    """Make ``import <top>`` fail and forget the adapter module, so re-importing it fails."""
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, top, None)
    monkeypatch.delitem(sys.modules, adapter_module, raising=False)
    yield


def tiny_model_path(request: pytest.FixtureRequest) -> str:
    """The lead's ``tiny_qwen35_path`` session fixture (tests/conftest.py), or skip until it exists."""
    try:
        return str(request.getfixturevalue("tiny_qwen35_path"))
    except pytest.FixtureLookupError:
        pytest.skip("fixture tiny_qwen35_path (tiny real model) is not provided yet")
