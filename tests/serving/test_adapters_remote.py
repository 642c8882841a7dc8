"""Each adapter, inside its framework's real pipeline, against a real server on 127.0.0.1.

The remote path (``model="http://host:port"``, detected as the ``remote`` backend) must give what the
same adapter gives on the in-process engine the server serves: same order, same bodies, scores within
1e-4; and Haystack must serialise it (its configuration is a URL, not an object).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.serving.serving_helpers import API_KEY, ServerThread

QUERY = "how does rust prevent dangling references?"
TEXTS = [
    "Rust's borrow checker makes sure references never outlive the data they point to.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Lifetimes in Rust are annotations that let the compiler check reference validity.",
    "Bananas are berries, botanically speaking.",
    "Garbage-collected languages avoid dangling pointers by keeping objects alive.",
]


@pytest.fixture
def url(live_server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PRISM_RERANK_API_KEY", API_KEY)
    return live_server.url


def same(remote: list[tuple[str, float]], local: list[tuple[str, float]]) -> None:
    assert [body for body, _ in remote] == [body for body, _ in local]
    assert [s for _, s in remote] == pytest.approx([s for _, s in local], abs=1e-4)


def test_langchain_retriever_through_the_server(url: str, tiny_engine: Any) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from prism_integrations.langchain import PrismDocumentCompressor

    class Fixed(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(TEXTS)]

    def run(compressor: PrismDocumentCompressor) -> list[tuple[str, float]]:
        retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=Fixed())
        out = retriever.invoke(QUERY)
        return [(d.page_content, d.metadata["relevance_score"]) for d in out]

    remote = PrismDocumentCompressor(model=url, timeout=60, max_retries=1, drop_irrelevant=False)
    assert type(remote.engine).__name__ == "RemoteReranker"
    same(run(remote), run(PrismDocumentCompressor(reranker=tiny_engine, drop_irrelevant=False)))
    assert PrismDocumentCompressor.model_validate(remote.model_dump()).engine is remote.engine


def test_llama_index_query_engine_through_the_server(url: str, tiny_engine: Any) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import TextNode

    from prism_integrations.llama_index import PrismNodePostprocessor

    nodes = [TextNode(text=t, id_=f"n{i}") for i, t in enumerate(TEXTS)]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))

    def run(post: PrismNodePostprocessor) -> list[tuple[str, float]]:
        engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=len(TEXTS), node_postprocessors=[post])
        response = engine.query(QUERY)
        return [(n.node.get_content(), float(n.score or 0.0)) for n in response.source_nodes]

    remote = PrismNodePostprocessor(model=url, timeout=60, max_retries=1, drop_irrelevant=False)
    got = run(remote)
    assert len(got) == len(TEXTS)
    same(got, run(PrismNodePostprocessor(reranker=tiny_engine, drop_irrelevant=False)))
    assert PrismNodePostprocessor.from_dict(remote.to_dict()).engine is remote.engine


def test_haystack_pipeline_through_the_server_and_yaml(url: str, tiny_engine: Any) -> None:
    from haystack import Document, Pipeline
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from haystack_integrations.components.rankers.prism import PrismRanker

    store = InMemoryDocumentStore()
    store.write_documents([Document(content=t, meta={"i": i}) for i, t in enumerate(TEXTS)])

    def pipeline(ranker: PrismRanker) -> Pipeline:
        pipe = Pipeline()
        pipe.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=len(TEXTS)))
        pipe.add_component("ranker", ranker)
        pipe.connect("retriever.documents", "ranker.documents")
        return pipe

    def run(pipe: Pipeline) -> list[tuple[str, float]]:
        out = pipe.run({"retriever": {"query": QUERY}, "ranker": {"query": QUERY}})
        return [(d.content, float(d.score)) for d in out["ranker"]["documents"]]

    remote = pipeline(PrismRanker(model=url, timeout=60, max_retries=1, drop_irrelevant=False))
    reloaded = Pipeline.loads(remote.dumps())  # the configuration is the URL: it serialises
    assert url in remote.dumps()
    got = run(reloaded)
    assert len(got) >= 2  # every document BM25 retrieved (those sharing a term with the query)
    same(got, run(pipeline(PrismRanker(reranker=tiny_engine, drop_irrelevant=False))))
