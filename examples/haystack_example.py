"""Prism-Reranker in Haystack: BM25 retrieval -> PrismRanker -> PromptBuilder, plus a YAML round trip.

A small corpus goes into an ``InMemoryDocumentStore``; an ``InMemoryBM25Retriever`` finds
candidates, :class:`prism_integrations.haystack.PrismRanker` reorders them by Prism's score, swaps
each kept document's content for its evidence passage and attaches the contribution, and a
``PromptBuilder`` builds the prompt an LLM would get. The pipeline is also serialised to YAML and
loaded back, and the loaded copy is what runs. For each document the script prints the score, the
contribution and the original versus evidence length in tokens.

Run::

    python examples/haystack_example.py [--model HUB_ID_OR_DIR] [--query "..."] [--top-k 3]

Without ``--model`` it uses the hub model; when the hub cannot be reached it falls back to a tiny
random-weight model (a loud banner says so: scores and evidence are then meaningless).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

CORPUS = [
    "The James Webb Space Telescope launched on 25 December 2021 and observes mainly in the infrared.",
    "Webb's primary mirror is 6.5 metres across, made of 18 gold-coated beryllium segments.",
    "The Hubble Space Telescope, launched in 1990, observes in visible and ultraviolet light.",
    "Infrared light passes through dust clouds, which lets the Webb telescope see forming stars.",
    "The Webb telescope orbits the Sun near the second Lagrange point, about 1.5 million km from Earth.",
    "Honey never spoils if kept sealed, thanks to its low water content and acidity.",
    "The Webb telescope's sunshield has five layers, each as thin as a human hair.",
    "Saturn's rings are made mostly of ice particles with some rock.",
]
DEFAULT_QUERY = "Why does the Webb telescope observe in the infrared?"
TEMPLATE = """Answer the question from the context.
{% for doc in documents %}[{{ doc.meta['source'] }}] {{ doc.content }}
{% endfor %}Question: {{ query }}
Answer:"""


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns a process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--model", default=None, help="hub id or local checkpoint dir (default: the hub model)"
    )
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--k", type=int, default=6, help="candidates from BM25")
    parser.add_argument("--top-k", type=int, default=3, help="documents Prism keeps")
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
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # this demo sends nothing anywhere

    try:
        from haystack import Document, Pipeline
        from haystack.components.builders import PromptBuilder
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore
        from prism_core.demo_model import resolve_demo_model
        from prism_core.errors import ModelLoadError

        from prism_integrations.haystack import PrismRanker
    except ImportError as exc:
        print(f'This example needs: pip install "prism-integrations[haystack]" ({exc})', file=sys.stderr)
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

    store = InMemoryDocumentStore()
    store.write_documents(
        [Document(id=f"doc-{i}", content=t, meta={"source": f"doc-{i}"}) for i, t in enumerate(CORPUS)]
    )
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=args.k))
    pipe.add_component(
        "ranker",
        PrismRanker(
            model=model,
            device=args.device,
            max_new_tokens=args.max_new_tokens,
            top_k=args.top_k,
            drop_irrelevant=not args.keep_irrelevant,
        ),
    )
    pipe.add_component("prompt", PromptBuilder(template=TEMPLATE, required_variables=["documents", "query"]))
    pipe.connect("retriever.documents", "ranker.documents")
    pipe.connect("ranker.documents", "prompt.documents")

    # Serialise and load back. Haystack's deserialisation allowlist must trust our module.
    yaml_text = pipe.dumps()
    if "allowed_modules" in inspect.signature(Pipeline.loads).parameters:
        pipe = Pipeline.loads(yaml_text, allowed_modules=["prism_integrations.haystack"])
    else:
        pipe = Pipeline.loads(yaml_text)
    print(f"Pipeline YAML round trip: OK ({len(yaml_text)} characters)")

    print(f"Query: {args.query}\nModel: {model}\n")
    out = pipe.run(
        {
            "retriever": {"query": args.query},
            "ranker": {"query": args.query},
            "prompt": {"query": args.query},
        },
        include_outputs_from={"retriever", "ranker"},
    )
    docs = out["ranker"]["documents"]
    count, unit = _token_counter(pipe.get_component("ranker").engine)
    n_retrieved = len(out["retriever"]["documents"])
    print(f"Prism kept {len(docs)} of {n_retrieved} retrieved documents (lengths in {unit}):\n")
    for rank, doc in enumerate(docs, 1):
        meta = doc.meta
        original = meta.get("original_content", doc.content or "")
        evidence_len = count(doc.content or "") if meta["evidence_used"] else "n/a (original kept)"
        print(f"#{rank} [{meta['source']}] score={doc.score:.3f} evidence_used={meta['evidence_used']}")
        print(f"   contribution: {meta['contribution']}")
        print(f"   length: original {count(original)} -> evidence {evidence_len}\n")
    print("Prompt for the LLM:\n" + out["prompt"]["prompt"])
    if is_fallback:
        print(_banner(args.model or "the hub model"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
