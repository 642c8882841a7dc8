"""``RemoteReranker``'s sync and async calls share one body of work: same requests, same retries, same errors.

The servers are stdlib HTTP servers on 127.0.0.1 (``Scripted``) answering what each test scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from prism_core.backends.remote import RemoteRequestError, RemoteReranker, RemoteUnavailableError
from tests.serving.serving_helpers import Scripted

Answer = tuple[int, Any, dict[str, str]]


def flaky(first: list[Answer]) -> Callable[[str, Any], Answer]:
    """A Cohere-style server (no ``/v1/info``) whose first rerank answers are ``first``."""
    answers: Iterator[Answer] = iter(first)

    def answer(path: str, body: Any) -> Answer:
        if path != "/v2/rerank":
            return 404, {}, {}
        scores = [0.3, 0.7, 0.5][: len(body["documents"])]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return next(
            answers, (200, {"results": [{"index": i, "relevance_score": scores[i]} for i in order]}, {})
        )

    return answer


def call(mode: str, reranker: RemoteReranker, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return reranker.rerank(*args, **kwargs)

    async def run() -> Any:
        try:
            return await reranker.arerank(*args, **kwargs)
        finally:
            await reranker.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retries_then_succeeds_with_the_same_requests(mode: str) -> None:
    script = [(503, {"detail": "busy"}, {}), (429, {"detail": "slow down"}, {"Retry-After": "0.1"})]
    with Scripted(flaky(script)) as server:
        results = call(mode, RemoteReranker(server.url, max_retries=2), "q", ["a", "b", "c"], top_n=2)
        assert [(r.index, r.score) for r in results] == [(1, 0.7), (2, 0.5)]
        assert [path for path, _ in server.requests] == ["/v1/info", "/info", *["/v2/rerank"] * 3]
        assert server.requests[-1][1] == {"query": "q", "documents": ["a", "b", "c"]}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_bounded_retries_then_a_clear_error(mode: str) -> None:
    with Scripted(flaky([(500, {"detail": "engine exploded"}, {})] * 5)) as server:
        with pytest.raises(
            RemoteUnavailableError, match=r"failed /v2/rerank after 2 attempts: HTTP 500: engine"
        ):
            call(mode, RemoteReranker(server.url, max_retries=1), "q", ["a"])
        assert [path for path, _ in server.requests].count("/v2/rerank") == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_refusal_is_not_retried(mode: str) -> None:
    with Scripted(flaky([(400, {"message": "documents too long"}, {})])) as server:
        with pytest.raises(
            RemoteRequestError, match="refused the request to /v2/rerank: HTTP 400: documents too long"
        ):
            call(mode, RemoteReranker(server.url, max_retries=3), "q", ["a"])
        assert [path for path, _ in server.requests].count("/v2/rerank") == 1
