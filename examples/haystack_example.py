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

import os
import sys
from collections.abc import Sequence

from _shared import KeptItem, parse_args, print_report, resolve_model

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns a process exit code."""
    args = parse_args(argv, __doc__, DEFAULT_QUERY, candidates="BM25", limit_option="--top-k")
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # this demo sends nothing anywhere

    try:
        from haystack import Document, Pipeline
        from haystack.components.builders import PromptBuilder
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        from haystack_integrations.components.rankers.prism import PrismRanker
    except ImportError as exc:
        print(f'This example needs: pip install "prism-integrations[haystack]" ({exc})', file=sys.stderr)
        return 2

    resolved = resolve_model(args)
    if resolved is None:
        return 1
    model = resolved.model

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
            backend=args.backend,
            device=args.device,
            max_new_tokens=args.max_new_tokens,
            top_k=args.top_k,
            drop_irrelevant=not args.keep_irrelevant,
        ),
    )
    pipe.add_component("prompt", PromptBuilder(template=TEMPLATE, required_variables=["documents", "query"]))
    pipe.connect("retriever.documents", "ranker.documents")
    pipe.connect("ranker.documents", "prompt.documents")

    # Serialise and load back: the component lives in the haystack_integrations namespace, which
    # Haystack's default deserialisation allowlist trusts.
    yaml_text = pipe.dumps()
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
    kept = [KeptItem(doc.score, doc.content or "", doc.meta) for doc in docs]
    print_report(pipe.get_component("ranker").engine, kept, len(out["retriever"]["documents"]))
    print("Prompt for the LLM:\n" + out["prompt"]["prompt"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
