"""The rerank service on the tiny Prism model: results equal the in-process engine's, through
``RemoteReranker`` (sync and async), the ``cohere`` SDK and ``load_reranker(url)``; concurrent load
is coalesced; health, info and metrics say what they should."""

from __future__ import annotations

import asyncio
import importlib.metadata
import random
import time
from typing import Any

import httpx
import pytest

from prism_core.backends.remote import RemoteReranker
from prism_core.results import PrismResult
from tests.serving.serving_helpers import API_KEY, GatedEngine, ServerThread, wait_until

QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety without garbage collection.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Bananas are berries, botanically speaking, while strawberries are not.",
]


def assert_same(remote: list[PrismResult], local: list[PrismResult]) -> None:
    """Same documents in the same order, scores within 1e-4, same generated fields."""
    assert [r.index for r in remote] == [r.index for r in local]
    for a, b in zip(remote, local, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert a.relevant == b.relevant
        assert (a.contribution, a.evidence, a.evidence_complete, a.truncated, a.raw_output) == (
            b.contribution,
            b.evidence,
            b.evidence_complete,
            b.truncated,
            b.raw_output,
        )
        assert a.document_tokens == b.document_tokens


@pytest.fixture
def client(live_server: ServerThread) -> Any:
    reranker = RemoteReranker(live_server.url, api_key=API_KEY, timeout=60, max_retries=1)
    yield reranker
    reranker.close()


def test_remote_reranker_equals_in_process(client: RemoteReranker, tiny_engine: Any) -> None:
    assert client.capabilities.evidence and client.capabilities.verdict
    for options in ({}, {"top_n": 3}, {"score_threshold": 0.5}, {"top_n": 2, "evidence": False}):
        assert_same(client.rerank(QUERY, DOCS, **options), tiny_engine.rerank(QUERY, DOCS, **options))
    relevant = [r for r in client.rerank(QUERY, DOCS) if r.relevant]
    assert relevant and all(r.raw_output is not None for r in relevant), "evidence was not generated remotely"
    assert client.score(QUERY, DOCS) == pytest.approx(tiny_engine.score(QUERY, DOCS), abs=1e-4)
    assert client.rerank(QUERY, []) == [] and client.score(QUERY, []) == []


async def test_async_remote_reranker_equals_in_process(client: RemoteReranker, tiny_engine: Any) -> None:
    remote = await client.arerank(QUERY, DOCS, top_n=4)
    assert_same(remote, await tiny_engine.arerank(QUERY, DOCS, top_n=4))
    assert await client.ascore(QUERY, DOCS) == pytest.approx(await tiny_engine.ascore(QUERY, DOCS), abs=1e-4)
    await client.aclose()


def test_remote_reranker_checks_input_like_local_backends(client: RemoteReranker) -> None:
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        client.rerank(QUERY, ["a", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="top_n"):
        client.rerank(QUERY, ["a"], top_n=0)
    with pytest.raises(TypeError, match="top_n"):
        client.rerank(QUERY, ["a"], top_n=True)
    with pytest.raises(ValueError, match="query"):
        client.rerank("  ", ["a"])


def test_remote_reranker_splits_past_the_servers_limit(client: RemoteReranker, tiny_engine: Any) -> None:
    # 41 documents against a 40-document server: two requests, one global top_n (checked against
    # the in-process engine over all 41).
    docs = [f"{DOCS[i % len(DOCS)]} ({i})" for i in range(41)]
    for options in ({"top_n": 5}, {"score_threshold": 0.5}, {}):
        remote = client.rerank(QUERY, docs, evidence=False, **options)
        assert_same(remote, tiny_engine.rerank(QUERY, docs, evidence=False, **options))
    assert client.score(QUERY, docs) == pytest.approx(tiny_engine.score(QUERY, docs), abs=1e-4)
    capped = RemoteReranker(client.base_url, api_key=API_KEY, max_documents=7, timeout=60)
    try:
        assert_same(capped.rerank(QUERY, docs[:20], top_n=3, evidence=False),
                    tiny_engine.rerank(QUERY, docs[:20], top_n=3, evidence=False))  # fmt: skip
    finally:
        capped.close()


def test_cohere_sdk_unchanged(live_server: ServerThread, tiny_engine: Any) -> None:
    cohere = pytest.importorskip("cohere")
    co = cohere.ClientV2(base_url=live_server.url, api_key=API_KEY, timeout=60)
    response = co.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=4)
    local = tiny_engine.rerank(QUERY, DOCS, top_n=4, evidence=False)
    assert [r.index for r in response.results] == [r.index for r in local]
    assert [r.relevance_score for r in response.results] == pytest.approx([r.score for r in local], abs=1e-4)
    assert response.id
    # Without top_n: every document, best first.
    full = co.rerank(model="any", query=QUERY, documents=DOCS)
    assert sorted(r.index for r in full.results) == list(range(len(DOCS)))
    scores = [r.relevance_score for r in full.results]
    assert scores == sorted(scores, reverse=True)


def test_load_reranker_accepts_a_url(live_server: ServerThread, tiny_engine: Any, monkeypatch: Any) -> None:
    from prism_core.registry import load_reranker

    monkeypatch.setenv("PRISM_RERANK_API_KEY", API_KEY)
    reranker = load_reranker(live_server.url, timeout=30, max_retries=1)
    assert isinstance(reranker, RemoteReranker)
    assert reranker.engine_config.to_dict() == {
        "model": live_server.url,
        "backend": "remote",
        "timeout": 30.0,
        "max_retries": 1,
    }
    assert load_reranker(live_server.url + "/", timeout=30, max_retries=1) is reranker  # one shared client
    assert_same(reranker.rerank(QUERY, DOCS, top_n=2), tiny_engine.rerank(QUERY, DOCS, top_n=2))


def test_remote_reranker_from_engine_config(live_server: ServerThread) -> None:
    from prism_core.config import EngineConfig

    config = EngineConfig(model=live_server.url, backend="remote", timeout=12.5, max_retries=0)
    reranker = RemoteReranker(config.model, **config.options(), api_key=API_KEY)
    assert (reranker.timeout, reranker.max_retries) == (12.5, 0)
    assert reranker.engine_config == config
    assert len(reranker.rerank(QUERY, DOCS[:2])) == 2


@pytest.mark.slow
def test_load_8_clients_x_25_requests_coalesced(live_server: ServerThread, tiny_engine: Any) -> None:
    """8 concurrent clients × 25 requests of mixed sizes: every answer right; passes shared."""
    rng = random.Random(7)
    shapes = []
    for k in range(10):
        size = rng.randint(1, len(DOCS) * 2)
        docs = [DOCS[(k + i) % len(DOCS)] + ("" if i < len(DOCS) else f" (copy {i})") for i in range(size)]
        shapes.append((f"query {k}: {QUERY}", docs, rng.choice([None, 1, 3]), k % 5 == 0))
    stats = tiny_engine.engine_loop.stats
    expected, alone = [], []  # each shape's results and forward passes when run alone
    for q, d, top_n, evidence in shapes:
        before = stats.passes
        expected.append(tiny_engine.rerank(q, d, top_n=top_n, evidence=evidence))
        alone.append(stats.passes - before)
    passes0, coalesced0 = stats.passes, stats.coalesced_passes
    client = RemoteReranker(live_server.url, api_key=API_KEY, timeout=120, max_retries=0)
    checked = 0

    async def one_client(c: int) -> int:
        done = 0
        for r in range(25):
            k = (c * 25 + r) % len(shapes)
            q, d, top_n, evidence = shapes[k]
            assert_same(await client.arerank(q, d, top_n=top_n, evidence=evidence), expected[k])
            done += 1
        return done

    async def all_clients() -> list[int]:
        try:
            return await asyncio.wait_for(asyncio.gather(*(one_client(c) for c in range(8))), 240)
        finally:
            await client.aclose()

    started = time.monotonic()
    checked = sum(asyncio.run(all_clients()))
    elapsed = time.monotonic() - started
    assert checked == 200
    passes, coalesced = stats.passes - passes0, stats.coalesced_passes - coalesced0
    assert coalesced > 0, f"no forward pass was shared by concurrent requests ({passes} passes)"
    sequential = sum(alone[(c * 25 + r) % len(shapes)] for c in range(8) for r in range(25))
    assert passes < sequential, f"{passes} forward passes, as many as {sequential} sequential ones would take"
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert 'prism_requests_total{endpoint="/v2/rerank",status="200"}' in metrics
    assert elapsed < 240


def test_health_503_until_loaded_and_info() -> None:
    from prism_core.serving.app import ServerSettings, create_app

    engine = GatedEngine()
    with ServerThread(create_app(engine, settings=ServerSettings())) as server:  # type: ignore[arg-type]
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        early = httpx.post(f"{server.url}/v2/rerank", json={"query": "q", "documents": ["a"]})
        assert early.status_code == 503 and "loading" in early.json()["detail"]
        assert "prism_model_loaded 0.0" in httpx.get(f"{server.url}/metrics").text
        engine.gate.set()
        wait_until(lambda: httpx.get(f"{server.url}/health").status_code == 200, 10, "the server to be ready")
        assert "prism_model_loaded 1.0" in httpx.get(f"{server.url}/metrics").text
        info = httpx.get(f"{server.url}/v1/info").json()
        assert info["capabilities"] == {"verdict": True, "evidence": False} and info["ready"] is True
        assert info["defaults"] == {"evidence": False}  # stated, as the README says
        assert info["version"] == importlib.metadata.version("prism-integrations")  # one version string
        ok = httpx.post(f"{server.url}/v2/rerank", json={"query": "q", "documents": ["a", "b"], "top_n": 1})
        assert ok.status_code == 200 and [r["index"] for r in ok.json()["results"]] == [0]


def test_health_reports_a_failed_load() -> None:
    from prism_core.serving.app import ServerSettings, create_app

    class Broken(GatedEngine):
        def load(self) -> GatedEngine:
            raise OSError("no such checkpoint: /nowhere")

    with ServerThread(create_app(Broken(), settings=ServerSettings())) as server:  # type: ignore[arg-type]
        wait_until(lambda: httpx.get(f"{server.url}/health").json()["status"] == "failed", 10, "the failure")
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503 and "/nowhere" in health.json()["error"]
        rerank = httpx.post(f"{server.url}/v2/rerank", json={"query": "q", "documents": ["a"]})
        assert rerank.status_code == 503 and "/nowhere" in rerank.json()["detail"]
