"""The budgets every adapter takes, declared once: ``max_context_tokens``, ``time_budget``, ``token_counter``.

The rules themselves live in :mod:`prism_core.budgets` (framework-free, shared with the CLI and
the server); this module holds the adapters' side: option names, defaults, checks, serialisation,
the metadata keys, and the token budget applied to the documents an adapter is about to return.

- ``max_context_tokens`` (``None``: no budget): the returned documents, best first, whose text *as
  returned* (the evidence where swapped in, else the body) fits; a document that alone exceeds what
  is left is skipped and the next ones are still tried. Every returned document then carries
  ``context_tokens``. Left-out documents are listed in ``Ranking.dropped_by_budget`` and logged at
  INFO (logger ``prism_integrations._common.budgets``, with ``extra={"dropped_by_budget": [...]}``
  holding the caller's positions, so a logging handler can count them).
- ``token_counter`` (``None``: the model's tokenizer): a callable ``str -> int``, e.g. the reader
  LLM's tokenizer. Not serialisable: an adapter holding one refuses to serialise, as with
  ``reranker=``.
- ``time_budget`` (``None``: no deadline): seconds per call, passed to the engine (fail-open:
  :mod:`prism_core.budgets`). With it, every returned document carries ``scored``; documents whose
  evidence the deadline cut keep their body and carry ``evidence_skipped="time_budget"``; documents
  the deadline left unscored come after the ranked ones, in input order, with
  ``relevance_score=None`` (and the framework's score slot ``None``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from prism_core.budgets import (
    TokenCounter,
    check_max_context_tokens,
    check_time_budget,
    check_token_counter,
    engine_token_counter,
    fit_token_budget,
    returned_tokens,
)

__all__ = [
    "BUDGET_OPTION_NAMES",
    "CONTEXT_TOKENS",
    "DEFAULT_MAX_CONTEXT_TOKENS",
    "DEFAULT_TIME_BUDGET",
    "DEFAULT_TOKEN_COUNTER",
    "EVIDENCE_SKIPPED",
    "SCORED",
    "budget_options_dict",
    "check_budget_options",
    "engine_token_counter",
    "omit_unset_budgets",
    "returned_tokens",
]

if TYPE_CHECKING:
    from prism_integrations._common.options import RerankSettings
    from prism_integrations._common.ranking import Ranking

logger = logging.getLogger(__name__)

#: No token budget.
DEFAULT_MAX_CONTEXT_TOKENS: int | None = None
#: No deadline.
DEFAULT_TIME_BUDGET: float | None = None
#: Count with the model's tokenizer.
DEFAULT_TOKEN_COUNTER: TokenCounter | None = None

#: Metadata key: tokens the document adds to the context as returned (with ``max_context_tokens``).
CONTEXT_TOKENS = "context_tokens"
#: Metadata key: why the document's evidence was not generated (``"time_budget"``), when it was cut.
EVIDENCE_SKIPPED = "evidence_skipped"
#: Metadata key: whether the document was scored (with ``time_budget``).
SCORED = "scored"

#: The serialisable budget options, in documented order.
BUDGET_OPTION_NAMES: tuple[str, ...] = ("max_context_tokens", "time_budget")


def check_budget_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check the budget options present in ``values`` (``token_counter`` included); return them.

    Example:
        >>> check_budget_options({"max_context_tokens": 2000, "time_budget": 1})
        {'max_context_tokens': 2000, 'time_budget': 1.0}
    """
    out: dict[str, Any] = {}
    if "max_context_tokens" in values:
        out["max_context_tokens"] = check_max_context_tokens(values["max_context_tokens"])
    if "time_budget" in values:
        out["time_budget"] = check_time_budget(values["time_budget"])
    if "token_counter" in values:
        out["token_counter"] = check_token_counter(values["token_counter"])
    return out


def budget_options_dict(max_context_tokens: int | None, time_budget: float | None) -> dict[str, Any]:
    """The budget options for serialisation: only the ones that are set (a saved pipeline without
    budgets stays as it was).

    Example:
        >>> budget_options_dict(None, 2.0)
        {'time_budget': 2.0}
    """
    values = {"max_context_tokens": max_context_tokens, "time_budget": time_budget}
    return {k: v for k, v in values.items() if v is not None}


def omit_unset_budgets(data: dict[str, Any]) -> dict[str, Any]:
    """Drop unset budget options (and ``token_counter``, never serialised) from a dumped adapter."""
    data.pop("token_counter", None)
    for name in BUDGET_OPTION_NAMES:
        if name in data and data[name] is None:
            del data[name]
    return data


def fit(
    costs: Sequence[int], budget: int | None, positions: Sequence[int], name: str
) -> tuple[list[int], list[int]]:
    """:func:`prism_core.budgets.fit_token_budget`, logging what it leaves out (caller's positions)."""
    kept, dropped = fit_token_budget(costs, budget)
    if dropped:
        where = [positions[i] for i in dropped]
        shown = ", ".join(f"{name}[{i}]" for i in where[:10]) + (", ..." if len(where) > 10 else "")
        logger.info(
            "max_context_tokens=%s: left out %d document(s) that did not fit (%s)",
            budget,
            len(where),
            shown,
            extra={"dropped_by_budget": where},
        )
    return kept, dropped


def budget_ranking(ranking: Ranking, settings: RerankSettings, engine: Any, name: str) -> Ranking:
    """Apply ``max_context_tokens`` to the documents a :class:`.ranking.Ranking` is about to return."""
    if settings.max_context_tokens is None:
        return ranking
    kept = ranking.kept
    costs = returned_tokens(
        [k.content for k in kept],
        [k.result for k in kept],
        [k.evidence_used for k in kept],
        settings.token_counter,
        engine,
    )
    fits, dropped = fit(costs, settings.max_context_tokens, [k.index for k in kept], name)
    out = []
    for i in fits:
        k = kept[i]
        metadata = dict(k.metadata)
        metadata.pop(CONTEXT_TOKENS, None)  # ours goes last
        metadata[CONTEXT_TOKENS] = costs[i]
        out.append(replace(k, metadata=metadata, added_keys=(*k.added_keys, CONTEXT_TOKENS)))
    return replace(ranking, kept=out, dropped_by_budget=[kept[i].index for i in dropped])


async def abudget_ranking(ranking: Ranking, settings: RerankSettings, engine: Any, name: str) -> Ranking:
    """:func:`budget_ranking` off the event loop (counting may tokenize, or load the tokenizer)."""
    if settings.max_context_tokens is None:
        return ranking
    return await asyncio.to_thread(budget_ranking, ranking, settings, engine, name)
