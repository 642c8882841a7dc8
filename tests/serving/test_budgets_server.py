"""The agent budgets through the service: ``time_budget`` (200 with what is done, the request
timeout on the same path), ``max_context_tokens`` (``context_tokens``, ``meta.dropped_by_budget``),
the remote client passing ``time_budget`` and reading the flags, and the result cache in ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from prism_core.backends.remote import RemoteReranker
from prism_core.caching.pair_cache import configure_result_cache, result_cache
from tests._slow import slowed_passes
from tests.serving.serving_helpers import API_KEY, ServerThread

QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety without garbage collection.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Bananas are berries, botanically speaking, while strawberries are not.",
]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def short_timeout_server(tiny_engine: Any) -> Iterator[ServerThread]:
    from prism_core.serving.app import ServerSettings, create_app

    settings = ServerSettings(api_key=API_KEY, max_documents=40, request_timeout=0.6)
    with ServerThread(create_app(tiny_engine, settings=settings)) as server:
        server.wait_ready()
        yield server


def post(server: ServerThread, body: dict[str, Any], timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/rerank", json=body, headers=HEADERS, timeout=timeout)


def test_request_timeout_with_a_time_budget_answers_200_with_what_is_done(
    short_timeout_server: ServerThread, tiny_engine: Any
) -> None:
    body = {"query": QUERY, "documents": DOCS, "evidence": True}
    with slowed_passes(tiny_engine, 0.25) as slowed:
        late = post(short_timeout_server, body)
        assert late.status_code == 504, late.text  # no time budget: the timeout fails the request
        answer = post(short_timeout_server, {**body, "time_budget": 30})  # capped by the 0.6 s timeout
    assert slowed
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert sorted(r["index"] for r in results) == list(range(len(DOCS)))
    flagged = [r for r in results if not r["scored"] or r["evidence_skipped"] == "time_budget"]
    assert flagged, "a 0.6 s budget finished every pass of 0.25 s each"
    assert all(r["evidence"] is None for r in flagged)
    assert answer.json()["meta"]["elapsed_ms"] < (0.6 + 2 * 0.25 + 1.0) * 1000


def test_time_budget_through_the_remote_client(live_server: ServerThread, tiny_engine: Any) -> None:
    client = RemoteReranker(live_server.url, api_key=API_KEY, timeout=60, max_retries=0)
    try:
        out = client.rerank(QUERY, DOCS, top_n=2, time_budget=1e-6)
        assert [r.index for r in out] == list(range(len(DOCS)))
        assert not any(r.scored for r in out)
        full = client.rerank(QUERY, DOCS, top_n=2, time_budget=60)
        assert [r.index for r in full] == [r.index for r in tiny_engine.rerank(QUERY, DOCS, top_n=2)]
        assert all(r.scored and r.evidence_skipped is None for r in full)
    finally:
        client.close()


def test_max_context_tokens_keeps_what_fits(live_server: ServerThread, tiny_engine: Any) -> None:
    full = post(live_server, {"query": QUERY, "documents": DOCS}).json()
    count = tiny_engine.prompt_tokenizer.count_tokens
    costs = [count(DOCS[r["index"]]) for r in full["results"]]
    budget = sum(costs) // 2
    expected, left = [], budget  # the rule: best first, skip what does not fit what is left, go on
    for r, cost in zip(full["results"], costs, strict=True):
        if cost <= left:
            expected.append(r["index"])
            left -= cost
    assert 0 < len(expected) < len(DOCS)
    answer = post(live_server, {"query": QUERY, "documents": DOCS, "max_context_tokens": budget}).json()
    kept = answer["results"]
    assert [r["index"] for r in kept] == expected
    assert sum(r["context_tokens"] for r in kept) <= budget
    assert [r["context_tokens"] for r in kept] == [count(DOCS[r["index"]]) for r in kept]
    dropped = answer["meta"]["dropped_by_budget"]
    assert sorted([r["index"] for r in kept] + dropped) == list(range(len(DOCS)))
    assert kept[0]["index"] == full["results"][0]["index"]
    bad = post(live_server, {"query": QUERY, "documents": DOCS, "max_context_tokens": 0})
    assert bad.status_code == 422 and "max_context_tokens" in bad.text
    bad = post(live_server, {"query": QUERY, "documents": DOCS, "time_budget": -1})
    assert bad.status_code == 422 and "time_budget" in bad.text


def test_metrics_show_the_result_cache(live_server: ServerThread) -> None:
    previous = result_cache()
    try:
        configure_result_cache()
        for _ in range(2):
            assert post(live_server, {"query": QUERY, "documents": DOCS[:3]}).status_code == 200
        text = httpx.get(f"{live_server.url}/metrics", timeout=10).text
        values = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("prism_result_cache")
        }
        assert values["prism_result_cache_hits_total"] == 3
        assert values["prism_result_cache_misses_total"] == 3
        assert values["prism_result_cache_entries"] == 3
        assert values["prism_result_cache_evictions_total"] == 0
        assert values["prism_result_cache_bytes"] > 0
    finally:
        configure_result_cache(previous.max_entries, previous.max_bytes)
