"""The three adapters pass ``max_tokens_per_doc`` and ``long_documents`` to the engine (only when
set), check them like the engine does, and serialise them only when set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from prism_core.results import PrismResult
from tests.fakes import FakeReranker

DOCS = ["Rust is a language [yes:0.9]", "Paris [no:0.1]"]


class Recording(FakeReranker):
    """The fake reranker, recording the long-document options it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.long: list[dict[str, Any]] = []

    def rerank(self, query: str, documents: Sequence[str], **kwargs: Any) -> list[PrismResult]:
        self.long.append({k: kwargs.pop(k) for k in ("max_tokens_per_doc", "long_documents") if k in kwargs})
        return super().rerank(query, documents, **kwargs)

    async def arerank(self, query: str, documents: Sequence[str], **kwargs: Any) -> list[PrismResult]:
        return self.rerank(query, documents, **kwargs)


def langchain_run(options: dict[str, Any], engine: Recording) -> Any:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from prism_integrations.langchain import PrismDocumentCompressor

    adapter = PrismDocumentCompressor(reranker=engine, **options)
    adapter.compress_documents([Document(page_content=d) for d in DOCS], "what is rust?")
    return adapter


def llama_index_run(options: dict[str, Any], engine: Recording) -> Any:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from prism_integrations.llama_index import PrismNodePostprocessor

    adapter = PrismNodePostprocessor(reranker=engine, **options)
    adapter.postprocess_nodes([NodeWithScore(node=TextNode(text=d)) for d in DOCS], query_str="what is rust?")
    return adapter


def haystack_run(options: dict[str, Any], engine: Recording) -> Any:
    pytest.importorskip("haystack")
    from haystack import Document

    from haystack_integrations.components.rankers.prism import PrismRanker

    adapter = PrismRanker(reranker=engine, **options)
    adapter.run(query="what is rust?", documents=[Document(content=d) for d in DOCS])
    return adapter


RUNS = [langchain_run, llama_index_run, haystack_run]


@pytest.mark.parametrize("run", RUNS, ids=["langchain", "llama_index", "haystack"])
def test_adapters_pass_long_document_options(run: Any) -> None:
    engine = Recording()
    run({"max_tokens_per_doc": 256, "long_documents": "chunk"}, engine)
    assert engine.long == [{"max_tokens_per_doc": 256, "long_documents": "chunk"}]
    plain = Recording()
    run({}, plain)
    assert plain.long == [{}]  # unset: not passed (a reranker without them keeps working)
    with pytest.raises((ValueError, TypeError), match="long_documents must be 'truncate' or 'chunk'"):
        run({"long_documents": "split"}, Recording())
    with pytest.raises((ValueError, TypeError), match="max_tokens_per_doc"):
        run({"max_tokens_per_doc": "3"}, Recording())


def test_serialised_only_when_set() -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("haystack")
    from haystack_integrations.components.rankers.prism import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor

    assert "long_documents" not in PrismDocumentCompressor(model="org/prism").model_dump()
    dumped = PrismDocumentCompressor(
        model="org/prism", long_documents="chunk", max_tokens_per_doc=64
    ).model_dump()
    assert (dumped["long_documents"], dumped["max_tokens_per_doc"]) == ("chunk", 64)
    assert PrismDocumentCompressor.model_validate(dumped).model_dump() == dumped
    params = PrismRanker(model="org/prism", long_documents="truncate").to_dict()["init_parameters"]
    assert params["long_documents"] == "truncate" and "max_tokens_per_doc" not in params
    assert (
        PrismRanker.from_dict(PrismRanker(model="org/prism", long_documents="chunk").to_dict()).long_documents
        == "chunk"
    )
