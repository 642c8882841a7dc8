"""Framework-free logic shared by the three adapters.

Every adapter does the same four things: validate its options, find its engine (a caller's
``reranker`` or the process-wide :meth:`prism_core.PrismReranker.shared` instance for ``model``),
make ONE engine call with the candidates' texts, and map the results back onto copies of the
caller's documents. Everything except the translation from and to framework objects lives here, so
the rules are written once:

* Order: best score first (the engine's order).
* Body: a kept, relevant document's body becomes its evidence passage when ``use_evidence`` is on
  and the evidence is complete; otherwise the original body is kept (nothing is lost).
* Filtering: only by rules the caller set: ``top_n``, ``score_threshold`` and ``drop_irrelevant``.
* Metadata: the caller's keys first (deep-copied), then ours: :data:`RELEVANCE_SCORE`,
  :data:`CONTRIBUTION`, :data:`EVIDENCE_USED` and, when the body was swapped and ``keep_original``
  is on, :data:`ORIGINAL_CONTENT`. A key of ours that the caller's metadata already holds (say a
  stale ``relevance_score`` from an earlier reranker) is replaced and moved to the end.

This module imports no framework and loads nothing.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prism_core.protocol import Reranker
from prism_core.results import PrismResult
from prism_core.validation import check_threshold, check_top_n

logger = logging.getLogger(__name__)

__all__ = [
    "CONTRIBUTION",
    "DEFAULT_DROP_IRRELEVANT",
    "DEFAULT_KEEP_ORIGINAL",
    "DEFAULT_SCORE_THRESHOLD",
    "DEFAULT_TOP_N",
    "DEFAULT_USE_EVIDENCE",
    "ENGINE_OPTION_NAMES",
    "EVIDENCE_USED",
    "ORIGINAL_CONTENT",
    "OUR_METADATA_KEYS",
    "RELEVANCE_SCORE",
    "EngineResolver",
    "KeptDocument",
    "RerankSettings",
    "arerank_texts",
    "build_kept_documents",
    "check_engine_source",
    "describe_engine",
    "engine_options",
    "engine_options_of",
    "merge_metadata",
    "missing_framework_error",
    "normalize_dtype",
    "rerank_texts",
    "settings_of",
    "validate_score_threshold",
    "validate_top_n",
]

#: Keep every candidate that passes the other rules (no cut by count).
DEFAULT_TOP_N: int | None = None
#: No cut by score.
DEFAULT_SCORE_THRESHOLD: float | None = None
#: Replace a kept document's body by its evidence passage (when the evidence is complete).
DEFAULT_USE_EVIDENCE = True
#: Keep the original body in the metadata (:data:`ORIGINAL_CONTENT`) when the body was swapped.
DEFAULT_KEEP_ORIGINAL = True
#: Leave out documents the model judged irrelevant (a ``no`` verdict).
DEFAULT_DROP_IRRELEVANT = True

#: Metadata key: Prism's relevance score in ``[0, 1]`` (also in the framework's own score slot).
RELEVANCE_SCORE = "relevance_score"
#: Metadata key: the one-sentence contribution, or ``None``.
CONTRIBUTION = "contribution"
#: Metadata key: ``True`` when the document's body is Prism's evidence passage.
EVIDENCE_USED = "evidence_used"
#: Metadata key: the original body, present only when the body was swapped and ``keep_original`` is on.
ORIGINAL_CONTENT = "original_content"
#: Every metadata key an adapter may write, in the order it writes them.
OUR_METADATA_KEYS: tuple[str, ...] = (RELEVANCE_SCORE, CONTRIBUTION, EVIDENCE_USED, ORIGINAL_CONTENT)

#: Engine options an adapter forwards to :meth:`prism_core.PrismReranker.shared` (only those set).
ENGINE_OPTION_NAMES: tuple[str, ...] = ("device", "dtype", "max_length", "max_new_tokens", "batch_tokens")


def missing_framework_error(framework: str, extra: str, module: str) -> ImportError:
    """Return the :class:`ImportError` an adapter raises when its framework is not installed.

    Args:
        framework: Human name of the framework, e.g. ``"Haystack"``.
        extra: The package extra that installs it, e.g. ``"haystack"``.
        module: The adapter module, e.g. ``"prism_integrations.haystack"``.

    Returns:
        An :class:`ImportError` whose message names the ``pip install`` command.
    """
    return ImportError(
        f"{module} needs {framework}, which is not installed. "
        f'Install it with: pip install "prism-integrations[{extra}]"'
    )


def validate_top_n(top_n: int | None, name: str = "top_n") -> int | None:
    """Check a count limit: ``None`` (no limit) or an ``int >= 1`` (the engine's own check).

    Args:
        top_n: The value to check.
        name: The parameter's name in the error message (Haystack calls it ``top_k``).

    Returns:
        ``top_n`` unchanged.

    Raises:
        ValueError: If ``top_n`` is not ``None`` and not an integer ``>= 1`` (a ``ValueError`` even for
            a wrong type, so that pydantic reports it as a validation error).
    """
    try:
        return check_top_n(top_n, name)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def validate_score_threshold(score_threshold: float | None) -> float | None:
    """Check a score threshold: ``None`` (no cut) or a number in ``[0, 1]`` (the engine's own check).

    Returns:
        The threshold as a ``float``, or ``None``.

    Raises:
        ValueError: If the threshold is not a number in ``[0, 1]``.
    """
    try:
        return check_threshold(score_threshold)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def normalize_dtype(dtype: Any) -> str | None:
    """Return ``dtype`` as a plain string (``torch.bfloat16`` -> ``"bfloat16"``), so it serialises.

    Args:
        dtype: ``None``, a string such as ``"bfloat16"``, or a ``torch.dtype``.

    Returns:
        ``None`` or the dtype's name without the ``torch.`` prefix.
    """
    if dtype is None or isinstance(dtype, str):
        return dtype
    return str(dtype).removeprefix("torch.")


def engine_options(
    *,
    device: str | None = None,
    dtype: Any = None,
    max_length: int | None = None,
    max_new_tokens: int | None = None,
    batch_tokens: int | None = None,
) -> dict[str, Any]:
    """Collect the engine options the user set (``None`` = not set), so engine defaults stay in the engine.

    Returns:
        A dict with only the options that are not ``None``, in :data:`ENGINE_OPTION_NAMES` order;
        ``dtype`` normalised by :func:`normalize_dtype`.
    """
    values = {
        "device": device,
        "dtype": normalize_dtype(dtype),
        "max_length": max_length,
        "max_new_tokens": max_new_tokens,
        "batch_tokens": batch_tokens,
    }
    return {name: value for name, value in values.items() if value is not None}


def engine_options_of(adapter: object) -> dict[str, Any]:
    """:func:`engine_options` from an adapter's options: its attributes, or a mapping's items, named
    as in :data:`ENGINE_OPTION_NAMES` (other names are ignored).

    Example:
        >>> engine_options_of({"device": "cpu", "dtype": None, "max_length": None,
        ...                    "max_new_tokens": 8, "batch_tokens": None, "top_n": 3})
        {'device': 'cpu', 'max_new_tokens': 8}
    """
    if isinstance(adapter, Mapping):
        return engine_options(**{name: adapter[name] for name in ENGINE_OPTION_NAMES})
    return engine_options(**{name: getattr(adapter, name) for name in ENGINE_OPTION_NAMES})


def check_engine_source(model: str | None, reranker: object | None, options: Mapping[str, Any]) -> None:
    """Check that an adapter was given ``model`` (plus options) or ``reranker``, not both.

    Args:
        model: Hub id or local directory, or ``None``.
        reranker: A :class:`prism_core.Reranker`, or ``None``.
        options: The engine options that were set (see :func:`engine_options`).

    Raises:
        ValueError: If both ``model`` and ``reranker`` are set, or engine options come with ``reranker``
            (they configure the engine built from ``model`` and would be silently ignored).
        TypeError: If ``reranker`` does not satisfy the :class:`prism_core.Reranker` protocol.
    """
    if reranker is None:
        return
    if model is not None:
        raise ValueError(
            "Pass either `model` (a hub id or local directory) or `reranker` (a reranker instance), not both."
        )
    if options:
        names = ", ".join(sorted(options))
        raise ValueError(
            f"Engine options ({names}) apply only with `model`; configure the `reranker` instance instead."
        )
    if not isinstance(reranker, Reranker):
        raise TypeError(
            "`reranker` must satisfy the prism_core.Reranker protocol (score, rerank and arerank methods), "
            f"got {type(reranker).__name__}"
        )


def describe_engine(model: str | None, reranker: object | None) -> str:
    """Return a short name for the engine (for events and logs): the model id or the reranker's class."""
    if reranker is not None:
        return type(reranker).__name__
    if model is not None:
        return model
    from prism_core import DEFAULT_MODEL

    return str(DEFAULT_MODEL)


class EngineResolver:
    """Finds an adapter's engine lazily and remembers it.

    With a ``reranker`` it is that object. Otherwise it is
    ``PrismReranker.shared(model or DEFAULT_MODEL, **options)``, asked for on first use (and again
    only if ``model`` or the options change), so adapters configured alike share one engine and
    constructing an adapter loads nothing.
    """

    def __init__(self) -> None:
        self._key: tuple[str | None, tuple[tuple[str, Any], ...]] | None = None
        self._engine: Reranker | None = None

    @property
    def resolved(self) -> bool:
        """Whether a shared engine was already looked up (it may still be unloaded)."""
        return self._engine is not None

    def get(self, model: str | None, reranker: Reranker | None, options: Mapping[str, Any]) -> Reranker:
        """Return the engine to call, without loading it.

        Args:
            model: Hub id or local directory (``None`` = the engine's default model).
            reranker: A caller-supplied reranker; returned as is when set.
            options: Engine options that were set.
        """
        if reranker is not None:
            return reranker
        key = (model, tuple(sorted(options.items())))
        if self._engine is None or key != self._key:
            from prism_core import DEFAULT_MODEL, PrismReranker

            self._engine = PrismReranker.shared(model if model is not None else DEFAULT_MODEL, **options)
            self._key = key
            logger.debug("Resolved shared Prism engine for model=%r options=%r", model, dict(options))
        return self._engine

    def warm_up(self, model: str | None, reranker: Reranker | None, options: Mapping[str, Any]) -> Reranker:
        """Return the engine and load it when it has a ``load()`` method (idempotent)."""
        engine = self.get(model, reranker, options)
        load = getattr(engine, "load", None)
        if callable(load):
            load()
        return engine


@dataclass(frozen=True)
class RerankSettings:
    """The per-call rules (validated). Build one from an adapter's current options at each call.

    Attributes:
        top_n: Keep at most this many documents (``None`` = no limit).
        score_threshold: Keep only documents with ``score >= score_threshold`` (``None`` = no cut).
        use_evidence: Swap a kept document's body for its (complete) evidence passage.
        keep_original: When the body was swapped, keep the original in :data:`ORIGINAL_CONTENT`.
        drop_irrelevant: Leave out documents with a ``no`` verdict.
    """

    top_n: int | None = DEFAULT_TOP_N
    score_threshold: float | None = DEFAULT_SCORE_THRESHOLD
    use_evidence: bool = DEFAULT_USE_EVIDENCE
    keep_original: bool = DEFAULT_KEEP_ORIGINAL
    drop_irrelevant: bool = DEFAULT_DROP_IRRELEVANT

    def __post_init__(self) -> None:
        validate_top_n(self.top_n)
        object.__setattr__(self, "score_threshold", validate_score_threshold(self.score_threshold))

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the engine's ``rerank``/``arerank``.

        Evidence generation stays on even with ``use_evidence=False``: the contribution is still
        attached as metadata; ``use_evidence`` only decides whether the body is swapped.
        """
        return {"top_n": self.top_n, "score_threshold": self.score_threshold, "evidence": True}


def settings_of(
    adapter: Any,
    *,
    top_n_name: str = "top_n",
    top_n: int | None = None,
    score_threshold: float | None = None,
) -> RerankSettings:
    """The rules for one call, from an adapter's attributes: its count limit (named ``top_n_name``),
    ``score_threshold``, ``use_evidence``, ``keep_original`` and ``drop_irrelevant``.

    Args:
        adapter: The adapter, holding its current options.
        top_n_name: The attribute (and parameter) name of its count limit (Haystack: ``top_k``).
        top_n: Overrides the adapter's count limit for this call (``None``: the adapter's).
        score_threshold: Overrides the adapter's threshold for this call (``None``: the adapter's).

    Raises:
        ValueError: If a count limit or threshold is invalid (an override's error uses ``top_n_name``).
    """
    validate_top_n(top_n, top_n_name)
    return RerankSettings(
        top_n=getattr(adapter, top_n_name) if top_n is None else top_n,
        score_threshold=adapter.score_threshold if score_threshold is None else score_threshold,
        use_evidence=adapter.use_evidence,
        keep_original=adapter.keep_original,
        drop_irrelevant=adapter.drop_irrelevant,
    )


@dataclass(frozen=True)
class KeptDocument:
    """One document an adapter returns, described framework-free.

    Attributes:
        index: Position of the document in the caller's input.
        content: The new body (evidence passage or original body).
        metadata: The full new metadata: a deep copy of the caller's, then our keys.
        added_keys: Our keys written into ``metadata``, in order.
        score: Prism's relevance score.
        evidence_used: Whether ``content`` is the evidence passage.
        result: The engine's result for this document.
    """

    index: int
    content: str
    metadata: dict[str, Any]
    added_keys: tuple[str, ...]
    score: float
    evidence_used: bool
    result: PrismResult


def merge_metadata(caller: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-copy the caller's metadata and append ours (our keys replace same-named keys and go last).

    Example:
        >>> merge_metadata({"relevance_score": 0.1, "a": 1}, {"relevance_score": 0.9})
        {'a': 1, 'relevance_score': 0.9}
    """
    merged: dict[str, Any] = copy.deepcopy(dict(caller)) if caller else {}
    for key in ours:
        merged.pop(key, None)
    merged.update(ours)
    return merged


def _check_results(results: Sequence[PrismResult], n_inputs: int, settings: RerankSettings) -> None:
    seen: set[int] = set()
    for result in results:
        if not 0 <= result.index < n_inputs or result.index in seen:
            raise ValueError(
                f"The reranker returned an invalid or repeated index {result.index} for {n_inputs} documents"
            )
        seen.add(result.index)
    if settings.top_n is None and settings.score_threshold is None and len(seen) != n_inputs:
        logger.warning(
            "The reranker returned %d results for %d documents without top_n or score_threshold; "
            "the missing documents are left out",
            len(seen),
            n_inputs,
        )


def build_kept_documents(
    results: Sequence[PrismResult],
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None],
    settings: RerankSettings,
) -> list[KeptDocument]:
    """Turn the engine's results into the documents to return, best first.

    Re-applies ``score_threshold`` and ``top_n`` (in that order, as the engine does) so a
    :class:`prism_core.Reranker` that ignores them is still held to the caller's rules; then leaves
    out irrelevant documents when ``drop_irrelevant`` is on. Documents never change otherwise: an
    irrelevant kept document, or one whose evidence is missing or incomplete, keeps its body.

    Args:
        results: The engine's results (``index`` refers to ``texts``).
        texts: The original bodies, in input order.
        metadatas: The caller's metadata per input document (not modified).
        settings: The rules to apply.

    Returns:
        One :class:`KeptDocument` per document to return, in score order.

    Raises:
        ValueError: If the inputs disagree in length or a result index is invalid or repeated.
    """
    if len(texts) != len(metadatas):
        raise ValueError(f"Got {len(texts)} texts but {len(metadatas)} metadata entries")
    _check_results(results, len(texts), settings)
    ranked = sorted(results, key=lambda r: -r.score)  # stable: keeps the engine's order on ties
    if settings.score_threshold is not None:
        ranked = [r for r in ranked if r.score >= settings.score_threshold]
    if settings.top_n is not None:
        ranked = ranked[: settings.top_n]
    kept: list[KeptDocument] = []
    for result in ranked:
        if settings.drop_irrelevant and not result.relevant:
            continue
        original = texts[result.index]
        evidence = result.evidence
        swap = settings.use_evidence and result.relevant and evidence is not None and result.evidence_complete
        ours: dict[str, Any] = {
            RELEVANCE_SCORE: float(result.score),
            CONTRIBUTION: result.contribution,
            EVIDENCE_USED: bool(swap),
        }
        if swap and settings.keep_original:
            ours[ORIGINAL_CONTENT] = original
        kept.append(
            KeptDocument(
                index=result.index,
                content=evidence if swap and evidence is not None else original,
                metadata=merge_metadata(metadatas[result.index], ours),
                added_keys=tuple(ours),
                score=float(result.score),
                evidence_used=bool(swap),
                result=result,
            )
        )
    logger.debug("Prism kept %d of %d documents", len(kept), len(texts))
    return kept


def rerank_texts(
    engine: Reranker,
    query: str,
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None],
    settings: RerankSettings,
) -> list[KeptDocument]:
    """Make the ONE engine call for a list of candidates and build what to return.

    Empty input returns ``[]`` without calling the engine.
    """
    if not texts:
        return []
    results = engine.rerank(query, list(texts), **settings.engine_kwargs())
    return build_kept_documents(results, texts, metadatas, settings)


async def arerank_texts(
    engine: Reranker,
    query: str,
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None],
    settings: RerankSettings,
) -> list[KeptDocument]:
    """The same as :func:`rerank_texts` through the engine's ``arerank`` (does not block the loop)."""
    if not texts:
        return []
    results = await engine.arerank(query, list(texts), **settings.engine_kwargs())
    return build_kept_documents(results, texts, metadatas, settings)
