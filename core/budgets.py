"""The budgets an agent sets on a call: a time budget (fail-open) and a token budget for its context.

**Time budget** (``time_budget``, seconds, on every backend's ``rerank``/``arerank``): the call's
deadline is ``time.monotonic() + time_budget`` taken when the call starts. The engine loop expires the
request's job at the first step past the deadline (so a call returns by its deadline plus at most one
engine step) and the call returns what is done:

- every document scored whose batch ran, ranked by the one rule (:func:`prism_core.ranking.select`);
- evidence for the documents whose generation finished; a document that would have had evidence
  but whose generation did not finish keeps no evidence, ``evidence_complete=False`` and
  ``evidence_skipped="time_budget"`` (adapters then keep its original body);
- documents not scored at all come after the ranked ones, **in input order**, with ``scored=False``
  (placeholder ``score``/``logit`` of ``0.0``, ``relevant=False``); ``top_n`` and
  ``score_threshold`` never cut them (nothing ranked them). See :func:`assemble_results`.

**Token budget** (``max_context_tokens``, applied by the adapters, the CLI and the server to what
they return): documents are taken best first; each costs the tokens of its text *as returned* (the
evidence where it is swapped in, else the body), counted with the model's tokenizer or a caller's
``token_counter``. A document that fits what is left is kept; **a document that alone exceeds what
is left is skipped, and the next ones are still tried** (a shorter, lower-ranked document may fit;
nothing is ever cut mid-text, so every returned text is whole). Skipped documents are accounted
for: listed (``Ranking.dropped_by_budget`` / the CLI's and server's ``dropped_by_budget``) and
logged at INFO. See :func:`fit_token_budget`.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from prism_core.ranking import passes, select
from prism_core.results import PrismResult
from prism_core.validation import check_float, check_optional_int

__all__ = [
    "TIME_BUDGET",
    "TokenCounter",
    "assemble_results",
    "check_max_context_tokens",
    "check_time_budget",
    "check_token_counter",
    "count_with",
    "deadline_after",
    "engine_token_counter",
    "fit_token_budget",
    "returned_tokens",
    "unscored_result",
]

#: ``PrismResult.evidence_skipped`` (and the adapters' ``evidence_skipped`` metadata) when the call's
#: deadline came before the document's generation finished.
TIME_BUDGET = "time_budget"

#: Longest time budget accepted (one day), as for ``timeout``.
MAX_TIME_BUDGET = 86400.0

#: A caller's token counter: text in, tokens out (e.g. the reader LLM's tokenizer).
TokenCounter = Callable[[str], int]


def check_time_budget(value: Any, name: str = "time_budget") -> float | None:
    """``None`` or a finite number of seconds in ``(0, 86400]``.

    Example:
        >>> check_time_budget(2), check_time_budget(None)
        (2.0, None)
    """
    if value is None:
        return None
    seconds = check_float(value, name, 0.0, MAX_TIME_BUDGET)
    if seconds <= 0.0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return seconds


def check_max_context_tokens(value: Any, name: str = "max_context_tokens") -> int | None:
    """``None`` or an int >= 1.

    Example:
        >>> check_max_context_tokens(2000)
        2000
    """
    return check_optional_int(value, name, minimum=1)


def check_token_counter(value: Any, name: str = "token_counter") -> TokenCounter | None:
    """``None`` or a callable ``str -> int``."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable str -> int, got {type(value).__name__}: {value!r:.80}")
    return value


def deadline_after(time_budget: float | None) -> float | None:
    """The ``time.monotonic()`` deadline of a call starting now (``None`` without a budget)."""
    return None if time_budget is None else time.monotonic() + time_budget


def unscored_result(
    index: int, *, truncated: bool = False, document_tokens: int | None = None
) -> PrismResult:
    """The result of a document the time budget left unscored (``scored=False``, placeholders)."""
    return PrismResult(
        index=index,
        score=0.0,
        logit=0.0,
        relevant=False,
        truncated=truncated,
        document_tokens=document_tokens,
        scored=False,
    )


def assemble_results(
    n: int,
    base: Mapping[int, PrismResult],
    full: Mapping[int, PrismResult],
    *,
    top_n: int | None,
    threshold: float | None,
    generate: bool,
    expired: bool,
) -> list[PrismResult]:
    """The call's results from per-document parts, by the one ranking rule and the time-budget rule.

    Args:
        n: Number of documents.
        base: Scored documents' results without generation, by input position (a document missing
            here was not scored: the time budget ran out).
        full: Results with generated text, by input position (generating calls).
        top_n: The caller's ``top_n``.
        threshold: The caller's ``score_threshold``.
        generate: Whether the call generates evidence.
        expired: The call's deadline passed before its work was done.

    Returns:
        The ranked results (``select``), each with its generation when it has one; a relevant
        survivor without one gets ``evidence_skipped="time_budget"`` when ``expired``; then the
        unscored documents in input order.

    Example:
        >>> r = PrismResult(index=1, score=0.9, logit=2.2, relevant=True)
        >>> [x.index for x in assemble_results(2, {1: r}, {}, top_n=None, threshold=None,
        ...                                    generate=False, expired=True)]
        [1, 0]
    """
    ranked = select(list(base.values()), top_n, threshold)
    out: list[PrismResult] = []
    for r in ranked:
        if generate and passes(r.logit, threshold):
            done = full.get(r.index)
            if done is not None:
                r = done
            elif expired:
                r = replace(r, evidence_skipped=TIME_BUDGET)
        out.append(r)
    out.extend(unscored_result(i) for i in range(n) if i not in base)
    return out


def fit_token_budget(costs: Sequence[int], budget: int | None) -> tuple[list[int], list[int]]:
    """Which documents (given best first, by their returned text's tokens) fit ``budget``.

    The rule: walk in order; keep a document whose cost fits what is left and subtract it; skip one
    that alone exceeds what is left and go on (a later, shorter one may fit). Nothing is cut.

    Returns:
        ``(kept, dropped)``: positions into ``costs``, each in the given order.

    Example:
        >>> fit_token_budget([50, 80, 30, 10], 100)
        ([0, 2, 3], [1])
        >>> fit_token_budget([5, 5], None)
        ([0, 1], [])
    """
    if budget is None:
        return list(range(len(costs))), []
    left = budget
    kept: list[int] = []
    dropped: list[int] = []
    for i, cost in enumerate(costs):
        if cost <= left:
            kept.append(i)
            left -= cost
        else:
            dropped.append(i)
    return kept, dropped


def count_with(counter: TokenCounter, text: str, what: str) -> int:
    """``counter(text)`` checked to be an integer >= 0 (a bad counter is named, not trusted)."""
    value = counter(text)
    try:
        tokens = operator.index(value)
    except TypeError:
        tokens = -1
    if isinstance(value, bool) or tokens < 0:
        raise ValueError(f"token_counter must return an int >= 0, got {value!r:.80} for {what}")
    return tokens


def engine_token_counter(engine: Any) -> Callable[[str], int] | None:
    """The model's own token counter, when the engine has a tokenizer (loads the model)."""
    prompts = getattr(engine, "prompt_tokenizer", None)
    count = getattr(prompts, "count_tokens", None)
    if callable(count):
        return count
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is not None and callable(tokenizer):
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return None


def returned_tokens(
    texts: Sequence[str],
    results: Sequence[PrismResult],
    swapped: Sequence[bool],
    counter: TokenCounter | None,
    engine: Any,
) -> list[int]:
    """Tokens each returned text adds to the context.

    With ``counter``, it counts every text. Otherwise the counts the engine already made with the
    model's tokenizer are used (``evidence_tokens`` for a swapped body, ``document_tokens`` for an
    uncut body), and the model's tokenizer counts the rest.

    Raises:
        ValueError: Neither a counter nor a tokenizer is available (a remote engine reporting no
            counts): pass ``token_counter``.
    """
    out: list[int] = []
    fallback: Callable[[str], int] | None = None
    for n, (text, result, swap) in enumerate(zip(texts, results, swapped, strict=True)):
        if counter is not None:
            out.append(count_with(counter, text, f"returned document {n}"))
            continue
        known = result.evidence_tokens if swap else (None if result.truncated else result.document_tokens)
        if known is not None:
            out.append(int(known))
            continue
        if fallback is None:
            fallback = engine_token_counter(engine)
            if fallback is None:
                raise ValueError(
                    f"max_context_tokens: {type(engine).__name__} reports no token counts and has no "
                    "tokenizer; pass token_counter= (a callable str -> int, e.g. your LLM's tokenizer)"
                )
        out.append(int(fallback(text)))
    return out
