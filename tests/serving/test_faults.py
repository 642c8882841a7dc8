"""Faults: malformed and mistyped input, limits, API keys, timeouts, and lying or failing servers.

The server side runs on the tiny model (``live_server``) or on a scripted engine; the lying
servers are stdlib HTTP servers on 127.0.0.1 answering what each test scripts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from prism_core.backends.remote import (
    RemoteRequestError,
    RemoteReranker,
    RemoteResponseError,
    RemoteUnavailableError,
)
from tests._slow import slowed_passes
from tests.serving.serving_helpers import API_KEY, GatedEngine, Scripted, ServerThread, wait_until

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(
    url: str, body: Any = None, *, content: bytes | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    headers = {**AUTH, **(headers or {})}
    if content is not None:
        return httpx.post(
            f"{url}/v2/rerank", content=content, headers={"content-type": "application/json", **headers}
        )
    return httpx.post(f"{url}/v2/rerank", json=body, headers=headers)


# ------------------------------------------------------------------------------- malformed input
@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b'{"query": "q", "documents": ["a",', "body", "invalid JSON"),
        (b'{"query": "q", "documents": ["a", 3]}', "body.documents.1", "valid string"),
        (b'{"query": "q", "documents": "a"}', "body.documents", "valid list"),
        (b'{"query": 7, "documents": ["a"]}', "body.query", "valid string"),
        (b'{"documents": ["a"]}', "body.query", "Field required"),
        (b'{"query": "q"}', "body.documents", "Field required"),
        (b'{"query": "q", "documents": ["a"], "top_n": "3"}', "body.top_n", "valid integer"),
        (b'{"query": "q", "documents": ["a"], "top_n": true}', "body.top_n", "valid integer"),
        (b'{"query": "q", "documents": ["a"], "top_n": 0}', "body.top_n", "greater than or equal to 1"),
        (b'{"query": "q", "documents": ["a"], "score_threshold": 1.5}', "body.score_threshold", "less than"),
        (b'{"query": "q", "documents": ["a"], "evidence": "yes"}', "body.evidence", "valid boolean"),
        (b'{"query": "  ", "documents": ["a"]}', "body.query", "blank"),
        (b'{"query": "q", "documents": ["ok", "\\ud800 lone"]}', "body.documents.1", "UTF-8"),
        (b'{"query": "q", "documents": ["ok", "caf\xe9"]}', "body", "not valid UTF-8"),
        (b"[1, 2]", "body", "valid dictionary"),
    ],
)
def test_malformed_input_is_422_naming_the_field(
    live_server: ServerThread, body: bytes, field: str, words: str
) -> None:
    response = post(live_server.url, content=body)
    assert response.status_code == 422, response.text
    data = response.json()
    assert data["message"].startswith(f"{field}:"), data
    assert words in data["message"], data
    assert any(".".join(map(str, e["loc"])) == field for e in data["detail"]), data


def test_too_many_documents_is_400(live_server: ServerThread) -> None:
    response = post(live_server.url, {"query": "q", "documents": ["d"] * 41})
    assert response.status_code == 400  # Cohere's SDK maps 400 to BadRequestError (413 to nothing named)
    assert "41 documents exceed this server's limit of 40" in response.json()["detail"]
    assert response.json()["message"] == response.json()["detail"]


def test_oversized_body_is_413_declared_or_streamed(live_server: ServerThread) -> None:
    big = json.dumps({"query": "q", "documents": ["x" * 70_000]}).encode()
    declared = post(live_server.url, content=big)
    assert declared.status_code == 413 and "limit of 65536 bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    streamed = httpx.post(
        f"{live_server.url}/v2/rerank", content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert streamed.status_code == 413 and "at least" in streamed.json()["detail"]


def test_api_key_required(live_server: ServerThread) -> None:
    body = {"query": "q", "documents": ["a"]}
    assert httpx.post(f"{live_server.url}/v2/rerank", json=body).status_code == 401
    wrong = httpx.post(f"{live_server.url}/v2/rerank", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{live_server.url}/v1/info").status_code == 401
    assert httpx.get(f"{live_server.url}/health").status_code == 200  # probes need no key
    with pytest.raises(RemoteRequestError, match=r"refused the API key.*PRISM_RERANK_API_KEY") as info:
        RemoteReranker(live_server.url, api_key="nope", max_retries=3).rerank("q", ["a"])
    assert info.value.status == 401 and live_server.url in str(info.value)


def test_metrics_count_statuses(live_server: ServerThread) -> None:
    post(live_server.url, content=b"{")
    text = httpx.get(f"{live_server.url}/metrics").text
    assert 'prism_requests_total{endpoint="/v2/rerank",status="422"}' in text
    assert "prism_request_latency_seconds_bucket" in text and "prism_queue_depth" in text
    assert "prism_tokens_generated_total" in text and "prism_engine_decode_steps_total" in text


# ------------------------------------------------------------------------------- timeouts
def test_request_timeout_is_504_and_cancels_the_engine_work(tiny_engine: Any) -> None:
    from prism_core.serving.app import ServerSettings, create_app

    stats = tiny_engine.engine_loop.stats
    settings = ServerSettings(request_timeout=0.3)
    heavy = {
        "query": "what is rust?",
        "documents": [f"Rust fact number {i}: " + "ownership " * 40 for i in range(48)],
        "evidence": True,
    }
    # Every forward pass takes at least 0.5 s, so the request cannot finish inside its 0.3 s timeout
    # however fast the machine is (the tiny model alone may answer 48 documents in under 0.3 s).
    with ServerThread(create_app(tiny_engine, settings=settings)) as server:
        server.wait_ready()
        with slowed_passes(tiny_engine, 0.5) as slowed:
            cancelled = stats.jobs_cancelled
            started = time.monotonic()
            response = httpx.post(f"{server.url}/v2/rerank", json=heavy, timeout=30)
            assert response.status_code == 504, response.text
            assert "timeout of 0.3 s" in response.json()["detail"] and time.monotonic() - started < 5
            assert slowed, "the model's forward passes did not run under the slowing hook"
            wait_until(lambda: stats.jobs_cancelled > cancelled, 10, "the engine to drop the cancelled job")
            wait_until(lambda: tiny_engine.engine_loop.queue_depth == 0, 10, "an empty engine queue")
        small = httpx.post(f"{server.url}/v2/rerank", json={"query": "q", "documents": ["a"]}, timeout=30)
        assert small.status_code == 200


def test_client_disconnect_cancels_the_work() -> None:
    from prism_core.serving.app import ServerSettings, create_app

    engine = GatedEngine(delay=30.0)
    engine.gate.set()
    with ServerThread(create_app(engine, settings=ServerSettings())) as server:  # type: ignore[arg-type]
        server.wait_ready()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v2/rerank", json={"query": "q", "documents": ["a"]}, timeout=0.3)
        wait_until(lambda: engine.cancelled == 1, 5, "the abandoned request to be cancelled")
        assert engine.finished == 0


# ------------------------------------------------------------------------------- lying and failing servers
def cohere_like(results: Callable[[list[str]], list[dict[str, Any]]]) -> Callable[..., tuple[int, Any, dict]]:
    """A foreign Cohere-compatible server (no /v1/info) answering ``results(documents)``."""

    def answer(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path != "/v2/rerank":
            return 404, {"detail": "Not Found"}, {}
        return 200, {"id": "x", "results": results(body["documents"])}, {}

    return answer


def best_first(scores: list[float]) -> list[dict[str, Any]]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [{"index": i, "relevance_score": scores[i]} for i in order]


def test_foreign_server_is_score_only_and_selected_here() -> None:
    scores = [0.2, 0.9, 0.6, 0.1]
    with Scripted(cohere_like(lambda docs: best_first(scores[: len(docs)]))) as server:
        reranker = RemoteReranker(server.url, max_retries=0)
        assert reranker.capabilities.evidence is False and reranker.server_info is None
        results = reranker.rerank("q", ["a", "b", "c", "d"], top_n=2, score_threshold=0.3)
        assert [(r.index, r.score) for r in results] == [(1, 0.9), (2, 0.6)]
        assert all(r.evidence is None and r.relevant == (r.score > 0.5) for r in results)
        assert reranker.score("q", ["a", "b", "c", "d"]) == scores
        sent = next(body for path, body in server.requests if path == "/v2/rerank")
        assert sent == {
            "query": "q",
            "documents": ["a", "b", "c", "d"],
        }  # all scores asked for, nothing extra


@pytest.mark.parametrize(
    ("results", "words"),
    [
        (
            lambda docs: best_first([0.5] * len(docs))[:-1],
            r"expected 3 results, got 2; missing indices \[2\]",
        ),
        (
            lambda docs: [*best_first([0.5] * len(docs))[:-1], {"index": 0, "relevance_score": 0.5}],
            "repeats index 0",
        ),
        (
            lambda docs: [{"index": 3, "relevance_score": 0.5}, *best_first([0.5] * 2)],
            "index 3 is out of range",
        ),
        (lambda docs: [{"index": "0", "relevance_score": 0.5}], "index must be an integer"),
        (lambda docs: [{"index": i, "relevance_score": 4.2} for i in range(3)], r"not in \[0, 1\]"),
        (lambda docs: [{"index": i, "relevance_score": None} for i in range(3)], "finite number"),
    ],
)
def test_invalid_result_lists_are_clear_errors(results: Any, words: str) -> None:
    with Scripted(cohere_like(results)) as server:
        reranker = RemoteReranker(server.url, max_retries=0)
        with pytest.raises(RemoteResponseError, match=words) as info:
            reranker.rerank("q", ["a", "b", "c"])
        assert server.url in str(info.value)
        with pytest.raises(RemoteResponseError, match=words):
            reranker.score("q", ["a", "b", "c"])


def test_our_server_shortening_a_list_is_caught() -> None:
    """A server claiming to be ours, answering fewer results than top_n asked for."""

    def answer(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path == "/v1/info":
            return (
                200,
                {"capabilities": {"verdict": True, "evidence": True}, "limits": {"max_documents": 10}},
                {},
            )
        return 200, {"results": best_first([0.9, 0.8, 0.7])[: body["top_n"] - 1]}, {}

    with Scripted(answer) as server, pytest.raises(RemoteResponseError, match="expected 2 results, got 1"):
        RemoteReranker(server.url, max_retries=0).rerank("q", ["a", "b", "c"], top_n=2)


def test_not_json_is_a_clear_error() -> None:
    with (
        Scripted(lambda path, body: (200, b"<html>proxy error</html>", {})) as server,
        pytest.raises(RemoteResponseError, match=r"not JSON.*proxy error"),
    ):
        RemoteReranker(server.url, max_retries=0).rerank("q", ["a"])


def test_retries_503_and_429_then_succeeds() -> None:
    answers = iter([(503, {"detail": "busy"}, {}), (429, {"detail": "slow down"}, {"Retry-After": "0.1"})])

    def answer(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path != "/v2/rerank":
            return 404, {}, {}
        return next(answers, (200, {"results": best_first([0.3, 0.7])}, {}))

    with Scripted(answer) as server:
        results = RemoteReranker(server.url, max_retries=2).rerank("q", ["a", "b"])
        assert [r.index for r in results] == [1, 0] and server.rerank_calls == 3


def test_5xx_retried_a_bounded_number_of_times() -> None:
    def answer(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        return (404, {}, {}) if path != "/v2/rerank" else (500, {"detail": "engine exploded"}, {})

    with Scripted(answer) as server:
        started = time.monotonic()
        with pytest.raises(
            RemoteUnavailableError, match=r"failed /v2/rerank after 3 attempts: HTTP 500: engine exploded"
        ) as info:
            RemoteReranker(server.url, max_retries=2).rerank("q", ["a"])
        assert server.rerank_calls == 3 and time.monotonic() - started < 5
        assert server.url in str(info.value)


def test_4xx_is_not_retried() -> None:
    def answer(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        return (404, {}, {}) if path != "/v2/rerank" else (400, {"message": "documents too long"}, {})

    with Scripted(answer) as server:
        with pytest.raises(RemoteRequestError, match="documents too long"):
            RemoteReranker(server.url, max_retries=3).rerank("q", ["a"])
        assert server.rerank_calls == 1


def test_nobody_listening_is_a_clear_error_after_bounded_retries() -> None:
    from tests.serving.serving_helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(
        RemoteUnavailableError, match=r"at http://127\.0\.0\.1:\d+ failed /v1/info after 3 attempts: Connect"
    ):
        RemoteReranker(url, max_retries=2).rerank("q", ["a"])
    assert time.monotonic() - started < 5
    # Reading capabilities never raises (protocol checks call it): score-only until the server answers.
    assert RemoteReranker(url, max_retries=0).capabilities.evidence is False


def test_bad_base_urls() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        RemoteReranker("ftp://host")
    with pytest.raises(TypeError, match="base_url"):
        RemoteReranker(8000)
    assert RemoteReranker("http://h:1/v2/rerank/").base_url == "http://h:1"
