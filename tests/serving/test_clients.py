"""The real client libraries, unmodified, against ``prism-rerank serve`` on loopback.

Each client is pointed at the live test server (tiny Prism model, API key set) with the one setting
it needs (README: "Clients"), asked for the top 3 of five documents, and must get the same indices
and scores as a direct ``POST /v2/rerank``. Every client runs in a worker thread with a deadline;
the server is the module's ``live_server`` (stopped when the module ends). A client library that is
not installed is skipped by name (``pip install "prism-integrations[clients]"``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.serving.serving_helpers import API_KEY, ServerThread, assert_same_pairs

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no cost-map download
os.environ.setdefault("LITELLM_TELEMETRY", "False")

QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety.",
    "The Eiffel Tower was completed in 1889.",
    "Photosynthesis converts light energy into chemical energy.",
    "Bananas are berries, botanically speaking.",
    "Cargo is Rust's build tool and package manager.",
]
TOP_N = 3
DEADLINE_S = 60.0
Pairs = list[tuple[int, float]]


def by_text(texts_scores: list[tuple[str, float]]) -> Pairs:
    return [(DOCS.index(text), float(score)) for text, score in texts_scores]


# ------------------------------------------------------------------------------- one function per client
def cohere_v2(url: str) -> Pairs:
    import cohere

    client = cohere.ClientV2(api_key=API_KEY, base_url=url, timeout=DEADLINE_S)
    answer = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=TOP_N)
    return [(r.index, r.relevance_score) for r in answer.results]


def cohere_v2_async(url: str) -> Pairs:
    import cohere

    async def run() -> Any:
        client = cohere.AsyncClientV2(api_key=API_KEY, base_url=url, timeout=DEADLINE_S)
        return await client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=TOP_N)

    return [(r.index, r.relevance_score) for r in asyncio.run(run()).results]


def cohere_v1(url: str) -> Pairs:
    import cohere

    client = cohere.Client(api_key=API_KEY, base_url=url, timeout=DEADLINE_S)
    answer = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=TOP_N)
    return [(r.index, r.relevance_score) for r in answer.results]


def litellm_provider(provider: str, base: str = "") -> Callable[[str], Pairs]:
    def call(url: str) -> Pairs:
        import litellm

        answer = litellm.rerank(
            model=f"{provider}/rerank-model",
            query=QUERY,
            documents=DOCS,
            top_n=TOP_N,
            api_base=url + base,
            api_key=API_KEY,
            timeout=DEADLINE_S,
        )
        return [(r["index"], r["relevance_score"]) for r in answer.results]

    call.__name__ = f"litellm_{provider}"
    return call


def langchain_cohere(url: str) -> Pairs:
    from langchain_cohere import CohereRerank

    reranker = CohereRerank(cohere_api_key=API_KEY, base_url=url, model="rerank-v3.5", top_n=TOP_N)
    return [(r["index"], r["relevance_score"]) for r in reranker.rerank(DOCS, QUERY, top_n=TOP_N)]


def langchain_community_jina(url: str) -> Pairs:
    # JinaRerank has no URL option: its endpoint is the module constant JINA_API_URL.
    from langchain_community.document_compressors import jina_rerank

    previous = jina_rerank.JINA_API_URL
    jina_rerank.JINA_API_URL = f"{url}/v1/rerank"
    try:
        reranker = jina_rerank.JinaRerank(jina_api_key=API_KEY, top_n=TOP_N)
        return [(r["index"], r["relevance_score"]) for r in reranker.rerank(DOCS, QUERY, top_n=TOP_N)]
    finally:
        jina_rerank.JINA_API_URL = previous


def _nodes() -> list[Any]:
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=d)) for d in DOCS]


def llama_index_cohere(url: str) -> Pairs:
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    reranker = CohereRerank(api_key=API_KEY, base_url=url, model="rerank-v3.5", top_n=TOP_N)
    nodes = reranker.postprocess_nodes(_nodes(), query_str=QUERY)
    return by_text([(n.node.get_content(), n.score) for n in nodes])


def llama_index_jina(url: str) -> Pairs:
    from llama_index.postprocessor.jinaai_rerank import JinaRerank

    reranker = JinaRerank(api_key=API_KEY, base_url=f"{url}/v1", top_n=TOP_N)
    nodes = reranker.postprocess_nodes(_nodes(), query_str=QUERY)
    return by_text([(n.node.get_content(), n.score) for n in nodes])


def llama_index_tei(url: str) -> Pairs:
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    reranker = TextEmbeddingInference(base_url=url, top_n=TOP_N, auth_token=f"Bearer {API_KEY}")
    nodes = reranker.postprocess_nodes(_nodes(), query_str=QUERY)
    return by_text([(n.node.get_content(), n.score) for n in nodes])


def haystack_cohere(url: str) -> Pairs:
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.cohere import CohereRanker

    ranker = CohereRanker(api_key=Secret.from_token(API_KEY), api_base_url=url, top_k=TOP_N)
    documents = ranker.run(query=QUERY, documents=[Document(content=d) for d in DOCS])["documents"]
    return by_text([(d.content, d.score) for d in documents])


def haystack_jina(url: str) -> Pairs:
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.jina import JinaRanker

    ranker = JinaRanker(api_key=Secret.from_token(API_KEY), base_url=f"{url}/v1/rerank", top_k=TOP_N)
    documents = ranker.run(query=QUERY, documents=[Document(content=d) for d in DOCS])["documents"]
    return by_text([(d.content, d.score) for d in documents])


def rerankers_api(provider: str, path: str) -> Callable[[str], Pairs]:
    def call(url: str) -> Pairs:
        from rerankers import Reranker

        ranker = Reranker("rerank-model", model_type=provider, api_key=API_KEY, url=f"{url}{path}", verbose=0)
        ranked = ranker.rank(query=QUERY, docs=DOCS)
        return [(r.document.doc_id, r.score) for r in ranked.results][:TOP_N]

    call.__name__ = f"rerankers_{provider}"
    return call


#: (name, the module it needs, the call).
CLIENTS: list[tuple[str, str, Callable[[str], Pairs]]] = [
    ("cohere ClientV2", "cohere", cohere_v2),
    ("cohere AsyncClientV2", "cohere", cohere_v2_async),
    ("cohere Client (v1)", "cohere", cohere_v1),
    ("litellm cohere/", "litellm", litellm_provider("cohere")),
    ("litellm jina_ai/", "litellm", litellm_provider("jina_ai")),
    ("litellm hosted_vllm/", "litellm", litellm_provider("hosted_vllm")),
    ("litellm together_ai/", "litellm", litellm_provider("together_ai")),
    ("litellm infinity/", "litellm", litellm_provider("infinity")),
    ("litellm huggingface/ (TEI)", "litellm", litellm_provider("huggingface")),
    ("litellm litellm_proxy/", "litellm", litellm_provider("litellm_proxy")),
    ("langchain-cohere CohereRerank", "langchain_cohere", langchain_cohere),
    ("langchain-community JinaRerank", "langchain_community", langchain_community_jina),
    ("llama-index CohereRerank", "llama_index.postprocessor.cohere_rerank", llama_index_cohere),
    ("llama-index JinaRerank", "llama_index.postprocessor.jinaai_rerank", llama_index_jina),
    ("llama-index TextEmbeddingInference", "llama_index.postprocessor.tei_rerank", llama_index_tei),
    ("cohere-haystack CohereRanker", "haystack_integrations.components.rankers.cohere", haystack_cohere),
    ("jina-haystack JinaRanker", "haystack_integrations.components.rankers.jina", haystack_jina),
    ("rerankers cohere", "rerankers", rerankers_api("cohere", "/v1/rerank")),
    ("rerankers jina", "rerankers", rerankers_api("jina", "/v1/rerank")),
    (
        "rerankers text-embeddings-inference",
        "rerankers",
        rerankers_api("text-embeddings-inference", "/rerank"),
    ),
]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def reference(live_server: ServerThread) -> Pairs:
    response = httpx.post(
        f"{live_server.url}/v2/rerank",
        json={"query": QUERY, "documents": DOCS, "top_n": TOP_N},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=DEADLINE_S,
    )
    assert response.status_code == 200, response.text
    pairs = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
    assert len({round(s, 6) for _, s in pairs}) == TOP_N, "the tiny model must discriminate"
    return pairs


@pytest.mark.parametrize(("name", "module", "call"), CLIENTS, ids=[c[0] for c in CLIENTS])
def test_client_gets_the_same_ranking(
    live_server: ServerThread, reference: Pairs, name: str, module: str, call: Callable[[str], Pairs]
) -> None:
    if not _installed(module):
        pytest.skip(f"{name}: {module} is not installed (pip install 'prism-integrations[clients]')")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(call, live_server.url)
        got = future.result(timeout=DEADLINE_S)
    assert_same_pairs(got, reference)


def test_cohere_maps_too_many_documents_to_a_named_error(live_server: ServerThread) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key=API_KEY, base_url=live_server.url, timeout=DEADLINE_S)
    with pytest.raises(cohere.errors.BadRequestError, match="41 documents exceed"):
        client.rerank(model="rerank-v3.5", query=QUERY, documents=["d"] * 41)
    v1 = cohere.Client(api_key=API_KEY, base_url=live_server.url, timeout=DEADLINE_S)
    with pytest.raises(cohere.errors.UnprocessableEntityError, match="top_n"):
        v1.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=0)
