"""``RemoteReranker`` against every dialect: our server's routes with each ``api=``, and stock-shaped
servers (TEI, Infinity, Jina wire formats as their documentation and clients define them, scripted
on loopback: infinity-emb itself pins numpy<2, sentence-transformers<4 and uvicorn<0.33, so it
cannot be installed beside this package, and TEI is a Rust binary)."""

from __future__ import annotations

import math
import zlib
from typing import Any

import pytest

from prism_core.backends.remote import RemoteRequestError, RemoteReranker, RemoteResponseError
from prism_core.ranking import select
from prism_core.results import PrismResult
from tests.serving.serving_helpers import API_KEY, Scripted, ServerThread, assert_same_pairs

QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety.",
    "The Eiffel Tower was completed in 1889.",
    "Photosynthesis converts light energy into chemical energy.",
    "Bananas are berries, botanically speaking.",
    "Cargo is Rust's build tool and package manager.",
]


def pairs(results: list[PrismResult]) -> list[tuple[int, float]]:
    return [(r.index, r.score) for r in results]


@pytest.mark.parametrize(
    ("api", "suffix"),
    [
        ("cohere", ""),
        ("cohere-v1", ""),
        ("jina", ""),
        ("together", ""),
        ("infinity", ""),
        ("vllm", ""),
        ("tei", ""),
        ("auto", "/rerank"),
        ("auto", "/v1/rerank"),
    ],
)
def test_each_api_against_our_server(
    live_server: ServerThread, tiny_engine: Any, api: str, suffix: str
) -> None:
    client = RemoteReranker(live_server.url + suffix, api=api, api_key=API_KEY, timeout=60, max_retries=0)
    try:
        want = tiny_engine.rerank(QUERY, DOCS, top_n=3, evidence=False)
        assert_same_pairs(pairs(client.rerank(QUERY, DOCS, top_n=3)), pairs(want))
        assert client.score(QUERY, DOCS) == pytest.approx(tiny_engine.score(QUERY, DOCS), abs=1e-5)
        assert client.capabilities.evidence is (api == "auto")  # a foreign api= is score-only
    finally:
        client.close()


# ------------------------------------------------------------------------------- stock-shaped servers
def fake_score(text: str) -> float:
    """A deterministic score per text, distinct across DOCS."""
    return round((zlib.crc32(text.encode()) % 10_000) / 10_000, 4)


def best_first(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def expected(
    docs: list[str], top_n: int | None = None, threshold: float | None = None
) -> list[tuple[int, float]]:
    scores = [fake_score(d) for d in docs]
    results = [
        PrismResult(index=i, score=s, logit=math.log(s / (1 - s)), relevant=s > 0.5)
        for i, s in enumerate(scores)
    ]
    return pairs(select(results, top_n, threshold))


def tei(batch_size: int) -> Any:
    """TEI: ``GET /info`` with ``max_client_batch_size``; ``POST /rerank`` ``{query, texts}`` → bare list;
    413 with ``{"error", "error_type"}`` over the batch size; no other route."""

    def answer(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path == "/info" and body is None:
            info = {"model_id": "BAAI/bge-reranker-base", "max_client_batch_size": batch_size,
                    "max_input_length": 512, "model_type": {"reranker": {"id2label": {}}}}  # fmt: skip
            return 200, info, {}
        if path != "/rerank" or body is None:
            return 404, b"", {}
        if "texts" not in body:
            return (
                422,
                {"error": "Json deserialize error: missing field `texts`", "error_type": "Validation"},
                {},
            )
        texts = body["texts"]
        if len(texts) > batch_size:
            return 413, {"error": f"batch size {len(texts)} > maximum allowed batch size {batch_size}",
                         "error_type": "Validation"}, {}  # fmt: skip
        scores = [fake_score(t) for t in texts]
        return 200, [{"index": i, "score": scores[i]} for i in best_first(scores)], {}

    return answer


def infinity(path_served: str, shape: str) -> Any:
    """Infinity (``/rerank``, ``object``/``results``/``usage``) or Jina (``/v1/rerank``, ``model``/
    ``usage``/``results`` with ``document``): no ``/v1/info``, no ``/info``."""

    def answer(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path != path_served or body is None:
            return 404, {"detail": "Not Found"}, {}
        docs = body["documents"]
        scores = [fake_score(d) for d in docs]
        order = best_first(scores)
        if body.get("top_n") is not None:  # these servers honour top_n; ours must not rely on it
            order = order[: body["top_n"]]
        results = [{"index": i, "relevance_score": scores[i], "document": {"text": docs[i]}} for i in order]
        usage = {"prompt_tokens": 10, "total_tokens": 10}
        if shape == "infinity":
            return 200, {"object": "rerank", "results": results, "model": "m", "usage": usage,
                         "id": "infinity-1", "created": 1}, {}  # fmt: skip
        return 200, {"model": "jina-reranker-v2", "usage": {"total_tokens": 10}, "results": results}, {}

    return answer


def test_tei_server_found_split_by_its_batch_size_and_merged() -> None:
    docs = [f"{DOCS[i % len(DOCS)]} #{i}" for i in range(7)]
    with Scripted(tei(batch_size=3)) as server:
        client = RemoteReranker(server.url, max_retries=0)
        try:
            assert_same_pairs(pairs(client.rerank(QUERY, docs, top_n=4)), expected(docs, 4))
            assert_same_pairs(
                pairs(client.rerank(QUERY, docs, score_threshold=0.5)), expected(docs, None, 0.5)
            )
            assert client.score(QUERY, docs) == [fake_score(d) for d in docs]
            assert client.capabilities.evidence is False
        finally:
            client.close()
        posted = [body for path, body in server.requests if path == "/rerank"]
        assert [len(b["texts"]) for b in posted[:3]] == [3, 3, 1]
        assert all(set(b) >= {"query", "texts"} and "documents" not in b for b in posted)


def test_tei_refusal_names_the_server_and_reason() -> None:
    with Scripted(tei(batch_size=3)) as server:
        wrong = RemoteReranker(server.url, api="infinity", max_retries=0)  # documents body to TEI
        with pytest.raises(RemoteRequestError, match=r"refused the request to /rerank: HTTP 422: .*texts"):
            wrong.rerank(QUERY, DOCS[:2])
        client = RemoteReranker(server.url, api="tei", max_documents=10, max_retries=0)
        try:  # max_documents=10 above the advertised 3: the server's own limit still applies
            assert_same_pairs(pairs(client.rerank(QUERY, DOCS)), expected(DOCS))
        finally:
            client.close()
            wrong.close()
        assert [len(b["texts"]) for p, b in server.requests if p == "/rerank" and "texts" in b] == [3, 2]


@pytest.mark.parametrize(("path", "shape"), [("/rerank", "infinity"), ("/v1/rerank", "jina")])
async def test_infinity_and_jina_servers_found_by_probing(path: str, shape: str) -> None:
    with Scripted(infinity(path, shape)) as server:
        client = RemoteReranker(server.url, max_retries=0)
        try:
            assert_same_pairs(pairs(await client.arerank(QUERY, DOCS, top_n=2)), expected(DOCS, 2))
            assert_same_pairs(pairs(client.rerank(QUERY, DOCS)), expected(DOCS))
        finally:
            client.close()
            await client.aclose()
        tried = [p for p, body in server.requests if body is not None]
        stop = tried.index(path)
        assert tried[: stop + 1] == ["/v2/rerank", "/v1/rerank", "/rerank"][: stop + 1]
        assert tried[stop + 1 :] == [path]  # the route found is kept


def test_strict_checks_hold_for_every_dialect() -> None:
    def lying(path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path != "/rerank" or body is None:
            return 404, b"", {}
        return 200, [{"index": 0, "score": 0.5}], {}  # TEI's shape, one text missing

    with Scripted(lying) as server:
        client = RemoteReranker(server.url, api="tei", max_retries=0)
        with pytest.raises(RemoteResponseError, match=r"expected 2 results, got 1; missing indices \[1\]"):
            client.rerank(QUERY, DOCS[:2])
    with (
        Scripted(lambda path, body: (404, b"", {})) as server,
        pytest.raises(RemoteRequestError, match="answers none of the rerank routes"),
    ):
        RemoteReranker(server.url, max_retries=0).rerank(QUERY, DOCS)
    with pytest.raises(ValueError, match="api must be one of"):
        RemoteReranker("http://127.0.0.1:1", api="elastic")
