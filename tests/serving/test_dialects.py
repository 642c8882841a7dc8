"""Every rerank dialect on one server (tiny Prism model): Cohere v2/v1, Jina, vLLM, Together,
Infinity and TEI bodies answer the same indices and scores as ``/v2/rerank``; errors in each shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.serving.serving_helpers import API_KEY, ServerThread, assert_same_pairs

AUTH = {"Authorization": f"Bearer {API_KEY}"}
QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety.",
    "The Eiffel Tower was completed in 1889.",
    "Photosynthesis converts light energy into chemical energy.",
    "Bananas are berries, botanically speaking.",
]


def post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers=AUTH, timeout=60)


@pytest.fixture(scope="module")
def reference(live_server: ServerThread) -> list[tuple[int, float]]:
    response = post(live_server.url, "/v2/rerank", {"query": QUERY, "documents": DOCS})
    assert response.status_code == 200, response.text
    pairs = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
    assert len({round(s, 6) for _, s in pairs}) > 1, "the tiny model must discriminate"
    return pairs


def pairs_of(results: list[dict[str, Any]], key: str = "relevance_score") -> list[tuple[int, float]]:
    return [(r["index"], r[key]) for r in results]


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
@pytest.mark.parametrize(
    "extra",
    [
        {"model": "rerank-v3.5", "top_n": 4, "return_documents": True},  # Cohere v1
        {"model": "jina-reranker-v2-base-multilingual", "top_n": 4},  # Jina
        {"model": "BAAI/bge-reranker-v2-m3"},  # vLLM, Infinity
        {"model": "Salesforce/Llama-Rank-V1", "top_n": 4, "return_documents": False},  # Together
    ],
)
def test_documents_family_answers_like_v2(
    live_server: ServerThread, reference: list[tuple[int, float]], path: str, extra: dict[str, Any]
) -> None:
    response = post(live_server.url, path, {"query": QUERY, "documents": DOCS, **extra})
    assert response.status_code == 200, response.text
    data = response.json()
    assert_same_pairs(pairs_of(data["results"]), reference)
    assert data["object"] == "rerank" and data["model"] and data["id"]
    assert data["meta"]["billed_units"]["search_units"] == 1
    usage = data["usage"]
    assert 0 < usage["prompt_tokens"] <= usage["total_tokens"]
    returned = extra.get("return_documents", True) and path == "/v1/rerank"
    for r in data["results"]:
        assert ("document" in r) is returned
        if returned:
            assert r["document"] == {"text": DOCS[r["index"]]}


def test_objects_with_rank_fields_echo_the_original(
    live_server: ServerThread, reference: list[tuple[int, float]]
) -> None:
    objects = [{"text": d, "id": f"doc-{i}", "meta": {"n": i}} for i, d in enumerate(DOCS)]
    response = post(
        live_server.url, "/v1/rerank", {"query": QUERY, "documents": objects, "return_documents": True}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert_same_pairs(pairs_of(results), reference)  # the default rank field is "text"
    assert all(r["document"] == objects[r["index"]] for r in results)
    titled = [{"title": "T", "body": d} for d in DOCS]
    by_fields = post(
        live_server.url, "/v2/rerank", {"query": QUERY, "documents": titled, "rank_fields": ["title", "body"]}
    )
    as_text = post(
        live_server.url,
        "/v2/rerank",
        {"query": QUERY, "documents": [f"title: T\nbody: {d}" for d in DOCS]},
    )
    assert by_fields.status_code == 200, by_fields.text
    assert_same_pairs(pairs_of(by_fields.json()["results"]), pairs_of(as_text.json()["results"]))
    missing = post(live_server.url, "/v1/rerank", {"query": QUERY, "documents": ["a", {"title": "x"}]})
    assert missing.status_code == 422 and "documents.1" in missing.json()["message"], missing.text


def test_tei_body_gets_teis_bare_list(live_server: ServerThread, reference: list[tuple[int, float]]) -> None:
    body = {"query": QUERY, "texts": DOCS, "return_text": True, "truncate": True}
    for path in ("/rerank", "/v1/rerank"):
        response = post(live_server.url, path, {**body, "truncation_direction": "Right"})
        assert response.status_code == 200, response.text
        data = response.json()
        assert isinstance(data, list)
        assert_same_pairs(pairs_of(data, "score"), reference)
        assert all(item["text"] == DOCS[item["index"]] for item in data)
    raw = post(live_server.url, "/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
    v2 = post(live_server.url, "/v2/rerank", {"query": QUERY, "documents": DOCS}).json()["results"]
    assert_same_pairs(pairs_of(raw, "score"), [(r["index"], r["logit"]) for r in v2])
    assert "text" not in raw[0]


def test_errors_in_each_dialects_shape(live_server: ServerThread) -> None:
    tei = post(live_server.url, "/rerank", {"query": QUERY, "texts": ["d"] * 41})
    assert tei.status_code == 413 and tei.json()["error_type"] == "Validation"
    assert "41 documents exceed" in tei.json()["error"]
    left = {"query": QUERY, "texts": ["a"], "truncation_direction": "Left"}
    tei_bad = post(live_server.url, "/rerank", left)
    assert tei_bad.status_code == 422 and "'Left'" in tei_bad.json()["error"], tei_bad.text
    for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
        many = post(live_server.url, path, {"query": QUERY, "documents": ["d"] * 41})
        assert many.status_code == 400, many.text
        assert "41 documents exceed" in many.json()["message"] and many.json()["detail"]
        bad = post(live_server.url, path, {"query": QUERY, "documents": ["a"], "top_n": "3"})
        assert bad.status_code == 422 and bad.json()["message"].startswith("body.top_n:"), bad.text
    broken = httpx.post(
        f"{live_server.url}/v1/rerank",
        content=b'{"query": "q", "documents": ["a",',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert broken.status_code == 422 and "invalid JSON" in broken.json()["message"]
    anonymous = httpx.post(f"{live_server.url}/rerank", json={"query": QUERY, "texts": ["a"]})
    assert anonymous.status_code == 401 and anonymous.json()["error"] and anonymous.json()["message"]


def test_info_lists_dialects_and_limits(live_server: ServerThread) -> None:
    info = httpx.get(f"{live_server.url}/v1/info", headers=AUTH).json()
    names = {d["name"] for d in info["dialects"]}
    assert {"cohere-v2", "cohere-v1", "jina", "vllm", "together", "infinity", "tei"} <= names
    assert info["limits"]["max_documents"] == 40 and info["limits"]["max_input_tokens"] > 0


def test_long_document_options_reach_the_engine(live_server: ServerThread, tiny_engine: Any) -> None:
    from prism_core.backends.remote import RemoteReranker

    long_doc = " ".join(f"Sentence {i} is about rivers and small towns." for i in range(16))
    docs = [DOCS[0], long_doc]
    body = {"query": QUERY, "documents": docs, "max_tokens_per_doc": 48, "long_documents": "chunk"}
    answer = post(live_server.url, "/v2/rerank", body).json()["results"]
    local = tiny_engine.rerank(QUERY, docs, evidence=False, max_tokens_per_doc=48, long_documents="chunk")
    assert_same_pairs(pairs_of(answer), [(r.index, r.score) for r in local])
    assert {r["index"]: r["chunk"] for r in answer} == {
        r.index: (list(r.chunk) if r.chunk else None) for r in local
    }
    assert any(r["chunk"] for r in answer)
    cut = post(
        live_server.url, "/v1/rerank", {"query": QUERY, "documents": docs, "max_tokens_per_doc": 16}
    ).json()
    assert all(r["truncated"] for r in cut["results"] if r["index"] == 1)
    client = RemoteReranker(live_server.url, api_key=API_KEY, timeout=60, max_retries=0)
    try:
        remote = client.rerank(QUERY, docs, evidence=False, max_tokens_per_doc=48, long_documents="chunk")
        assert [(r.index, r.chunk) for r in remote] == [(r.index, r.chunk) for r in local]
    finally:
        client.close()
    bad = post(live_server.url, "/v2/rerank", {**body, "long_documents": "split"})
    assert bad.status_code == 422 and "long_documents" in bad.json()["message"]
