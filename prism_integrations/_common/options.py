"""The ranking options every adapter takes, their defaults, and the metadata keys adapters write.

Options are checked by :mod:`prism_core.validation` only, the module the engine uses too, so a value
is accepted or refused the same way by the three adapters and by the engine: Python and NumPy
integers and floats are accepted, booleans are never numbers, strings are never coerced (``"3"`` is
not ``3``, ``top_n=True`` is refused), and the error names the option and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator

from prism_core.protocol import Capabilities
from prism_core.quality.blend import DEFAULT_QUALITY_WEIGHT, engine_cuts
from prism_core.validation import check_bool, check_long_documents, check_threshold, check_top_n
from prism_integrations._common.budgets import check_budget_options
from prism_integrations._common.quality import check_quality_options

__all__ = [
    "BOOL_OPTION_NAMES",
    "CONTRIBUTION",
    "DEFAULT_ADD_CONTRIBUTION",
    "DEFAULT_DROP_IRRELEVANT",
    "DEFAULT_GROUNDED_ONLY",
    "DEFAULT_KEEP_ORIGINAL",
    "DEFAULT_SCORE_THRESHOLD",
    "DEFAULT_TOP_N",
    "DEFAULT_USE_EVIDENCE",
    "EVIDENCE_REJECTED",
    "EVIDENCE_SPANS",
    "EVIDENCE_USED",
    "GROUNDED_ONLY_DOC",
    "GROUNDING",
    "LONG_DOCUMENT_OPTION_NAMES",
    "ORIGINAL_CONTENT",
    "OUR_METADATA_KEYS",
    "REJECTED_UNGROUNDED",
    "RELEVANCE_SCORE",
    "UNSUPPORTED",
    "LongDocumentsField",
    "MaxTokensPerDocField",
    "RerankSettings",
    "check_rule_options",
    "long_document_options",
    "omit_unset_long_document_options",
]

#: Keep every candidate that passes the other rules (no cut by count).
DEFAULT_TOP_N: int | None = None
#: No cut by score.
DEFAULT_SCORE_THRESHOLD: float | None = None
#: Replace a kept, relevant document's body by its evidence passage (when the evidence is complete).
DEFAULT_USE_EVIDENCE = True
#: Attach the model's one-sentence contribution as metadata.
DEFAULT_ADD_CONTRIBUTION = True
#: Keep the original body in the metadata (:data:`ORIGINAL_CONTENT`) when the body was swapped.
DEFAULT_KEEP_ORIGINAL = True
#: Leave out documents judged irrelevant (``score <= 0.5`` on every backend).
DEFAULT_DROP_IRRELEVANT = True
#: Swap in only evidence whose every verbatim item the document supports (see ``prism_core.grounding``).
DEFAULT_GROUNDED_ONLY = True
#: What ``grounded_only`` does, in the words every adapter's field description and docstring use.
GROUNDED_ONLY_DOC = (
    "Swap in only evidence that passes the grounding check (every number, date, URL, e-mail address, code "
    "span, term and name in it is in the document); otherwise keep the original body and set "
    "metadata['evidence_rejected'] = 'ungrounded'."
)

#: Metadata key: the relevance score in ``[0, 1]`` (also in the framework's own score slot).
RELEVANCE_SCORE = "relevance_score"
#: Metadata key: the one-sentence contribution, or ``None`` (not asked for, not generated, or absent).
CONTRIBUTION = "contribution"
#: Metadata key: ``True`` when the document's body is the model's evidence passage.
EVIDENCE_USED = "evidence_used"
#: Metadata key: the original body, present only when the body was swapped and ``keep_original`` is on.
ORIGINAL_CONTENT = "original_content"
#: Metadata key (whenever evidence was generated): the evidence's support score in ``[0, 1]``.
GROUNDING = "grounding"
#: Metadata key (whenever evidence was generated): the evidence's unsupported verbatim items (a list).
UNSUPPORTED = "unsupported"
#: Metadata key (whenever evidence was generated): per evidence sentence ``[start, end]`` in the
#: original body, or ``None`` where alignment gave up.
EVIDENCE_SPANS = "evidence_spans"
#: Metadata key, only when a complete evidence passage was not swapped in because of a rule: why.
EVIDENCE_REJECTED = "evidence_rejected"
#: The value of :data:`EVIDENCE_REJECTED` when ``grounded_only`` kept the original body.
REJECTED_UNGROUNDED = "ungrounded"
#: Every metadata key an adapter may write, in the order it writes them (the same for every backend).
OUR_METADATA_KEYS: tuple[str, ...] = (
    RELEVANCE_SCORE,
    CONTRIBUTION,
    EVIDENCE_USED,
    ORIGINAL_CONTENT,
    GROUNDING,
    UNSUPPORTED,
    EVIDENCE_SPANS,
    EVIDENCE_REJECTED,
)

#: The long-document options (:mod:`prism_core.backends.long_documents`), serialised only when set.
LONG_DOCUMENT_OPTION_NAMES: tuple[str, ...] = ("max_tokens_per_doc", "long_documents")


def _budget(value: Any) -> int | None:
    return check_long_documents(value, None)[0]


def _mode(value: Any) -> str | None:
    return check_long_documents(None, value)[1]


#: Pydantic field types of the long-document options (checked by :mod:`prism_core.validation`).
MaxTokensPerDocField = Annotated[int | None, BeforeValidator(_budget)]
LongDocumentsField = Annotated[str | None, BeforeValidator(_mode)]


def long_document_options(max_tokens_per_doc: Any, long_documents: Any) -> dict[str, Any]:
    """The long-document options that are set, checked (for ``to_dict``: unset ones are left out so
    a saved pipeline does not pin today's defaults).

    Example:
        >>> long_document_options(None, "chunk")
        {'long_documents': 'chunk'}
    """
    budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
    return {k: v for k, v in (("max_tokens_per_doc", budget), ("long_documents", mode)) if v is not None}


def omit_unset_long_document_options(data: dict[str, Any]) -> dict[str, Any]:
    """Drop the long-document keys that are ``None`` from a serialised adapter."""
    for name in LONG_DOCUMENT_OPTION_NAMES:
        if data.get(name, 0) is None:
            data.pop(name)
    return data


#: The on/off options, in documented order.
BOOL_OPTION_NAMES: tuple[str, ...] = (
    "use_evidence",
    "add_contribution",
    "keep_original",
    "drop_irrelevant",
    "grounded_only",
)


def check_rule_options(values: Mapping[str, Any], *, top_n_name: str = "top_n") -> dict[str, Any]:
    """Check the ranking options present in ``values`` and return them normalised (plain Python types).

    Args:
        values: Option name → value; only the ranking options present are checked and returned
            (the count limit under ``top_n_name``, ``score_threshold`` and :data:`BOOL_OPTION_NAMES`).
        top_n_name: The count limit's name (Haystack calls it ``top_k``); errors use it.

    Returns:
        The options present, as ``int``/``float``/``bool``/``None``.

    Raises:
        TypeError: A wrongly typed value (``"3"``, ``True`` for ``top_n``, ``1`` for a flag).
        ValueError: A value out of range (``top_n < 1``, a threshold outside ``[0, 1]`` or NaN).

    Example:
        >>> import numpy as np
        >>> check_rule_options({"top_n": np.int64(3), "use_evidence": False})
        {'top_n': 3, 'use_evidence': False}
    """
    out: dict[str, Any] = {}
    if top_n_name in values:
        out[top_n_name] = check_top_n(values[top_n_name], top_n_name)
    if "score_threshold" in values:
        out["score_threshold"] = check_threshold(values["score_threshold"])
    for name in BOOL_OPTION_NAMES:
        if name in values:
            out[name] = check_bool(values[name], name)
    return out


@dataclass(frozen=True)
class RerankSettings:
    """The per-call rules, validated. Adapters build one from their current options at each call.

    Attributes:
        top_n: Keep at most this many ranked documents (``None`` = no limit).
        score_threshold: Keep only documents with ``score >= score_threshold`` (``None`` = no cut);
            with a quality prior, the score is the blended one.
        use_evidence: Swap a kept, relevant document's body for its (complete) evidence passage.
        add_contribution: Put the model's contribution into :data:`CONTRIBUTION` (else ``None``).
        keep_original: When the body was swapped, keep the original in :data:`ORIGINAL_CONTENT`.
        drop_irrelevant: Leave out documents judged irrelevant.
        grounded_only: Swap in only evidence without unsupported verbatim items (:data:`GROUNDED_ONLY_DOC`).
        top_n_name: The count limit's name in error messages (Haystack: ``top_k``).
        quality: A :class:`prism_core.quality.QualityScorer`, or ``None`` (no quality prior).
        min_quality: Drop documents whose raw quality is below this (``[0, 5]``; needs ``quality``).
        quality_weight: ``w`` in ``[0, 1]`` of the blend (``w > 0`` needs ``quality``).
        max_tokens_per_doc: Document tokens the engine reads per row (``None``: its default).
        long_documents: ``"truncate"`` or ``"chunk"`` (``None``: the engine's default); see
            :mod:`prism_core.backends.long_documents`.
        max_context_tokens: Token budget of the returned documents (:mod:`.budgets`), or ``None``.
        time_budget: Seconds per engine call (fail-open), or ``None``.
        token_counter: Counts tokens for ``max_context_tokens`` (``None``: the model's tokenizer).

    Example:
        >>> from prism_core.protocol import Capabilities
        >>> RerankSettings(use_evidence=False, add_contribution=False).generate(Capabilities(True, True))
        False
    """

    top_n: int | None = DEFAULT_TOP_N
    score_threshold: float | None = DEFAULT_SCORE_THRESHOLD
    use_evidence: bool = DEFAULT_USE_EVIDENCE
    add_contribution: bool = DEFAULT_ADD_CONTRIBUTION
    keep_original: bool = DEFAULT_KEEP_ORIGINAL
    drop_irrelevant: bool = DEFAULT_DROP_IRRELEVANT
    grounded_only: bool = DEFAULT_GROUNDED_ONLY
    top_n_name: str = "top_n"
    quality: Any = None
    min_quality: float | None = None
    quality_weight: float = DEFAULT_QUALITY_WEIGHT
    max_tokens_per_doc: int | None = None
    long_documents: str | None = None
    max_context_tokens: int | None = None
    time_budget: float | None = None
    token_counter: Any = None

    def __post_init__(self) -> None:
        budget, mode = check_long_documents(self.max_tokens_per_doc, self.long_documents)
        object.__setattr__(self, "max_tokens_per_doc", budget)
        object.__setattr__(self, "long_documents", mode)
        checked = check_rule_options(
            {
                self.top_n_name: self.top_n,
                "score_threshold": self.score_threshold,
                **{name: getattr(self, name) for name in BOOL_OPTION_NAMES},
            },
            top_n_name=self.top_n_name,
        )
        object.__setattr__(self, "top_n", checked.pop(self.top_n_name))
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        quality, min_quality, weight = check_quality_options(
            self.quality, self.min_quality, self.quality_weight, rebuild=False
        )
        object.__setattr__(self, "quality", quality)
        object.__setattr__(self, "min_quality", min_quality)
        object.__setattr__(self, "quality_weight", weight)
        budgets = check_budget_options(
            {
                "max_context_tokens": self.max_context_tokens,
                "time_budget": self.time_budget,
                "token_counter": self.token_counter,
            }
        )
        for name, value in budgets.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(
        cls,
        adapter: Any,
        *,
        top_n_name: str = "top_n",
        top_n: Any = None,
        score_threshold: Any = None,
        max_context_tokens: Any = None,
        time_budget: Any = None,
    ) -> RerankSettings:
        """The rules for one call, read from an adapter's current attributes.

        Args:
            adapter: The adapter: its count limit (attribute ``top_n_name``), ``score_threshold``,
                :data:`BOOL_OPTION_NAMES` and, when it has them, ``quality``, ``min_quality`` and
                ``quality_weight``.
            top_n_name: The count limit's attribute (and parameter) name.
            top_n: Overrides the adapter's count limit for this call (``None``: the adapter's).
            score_threshold: Overrides the adapter's threshold for this call (``None``: the adapter's).
            max_context_tokens: Overrides the adapter's token budget for this call (``None``: the adapter's).
            time_budget: Overrides the adapter's time budget for this call (``None``: the adapter's).
        """
        return cls(
            top_n=getattr(adapter, top_n_name) if top_n is None else top_n,
            score_threshold=adapter.score_threshold if score_threshold is None else score_threshold,
            top_n_name=top_n_name,
            quality=getattr(adapter, "quality", None),
            min_quality=getattr(adapter, "min_quality", None),
            quality_weight=getattr(adapter, "quality_weight", DEFAULT_QUALITY_WEIGHT),
            max_tokens_per_doc=getattr(adapter, "max_tokens_per_doc", None),
            long_documents=getattr(adapter, "long_documents", None),
            max_context_tokens=(
                getattr(adapter, "max_context_tokens", None)
                if max_context_tokens is None
                else max_context_tokens
            ),
            time_budget=getattr(adapter, "time_budget", None) if time_budget is None else time_budget,
            token_counter=getattr(adapter, "token_counter", None),
            **{name: getattr(adapter, name) for name in BOOL_OPTION_NAMES},
        )

    def generate(self, capabilities: Capabilities) -> bool:
        """Whether the engine should generate: it can, and the body swap or the contribution is wanted."""
        return bool(capabilities.evidence) and (self.use_evidence or self.add_contribution)

    def engine_cuts(self) -> tuple[int | None, float | None]:
        """The ``(top_n, score_threshold)`` the engine may apply itself.

        The caller's own values without a quality prior. With one, only what the quality rules would
        cut anyway (:func:`prism_core.quality.blend.engine_cuts`): ``top_n`` only when quality can
        neither reorder nor remove documents, and the weakest relevance that can still reach the
        threshold once blended.
        """
        if self.quality is None:
            return self.top_n, self.score_threshold
        return engine_cuts(
            min_quality=self.min_quality,
            quality_weight=self.quality_weight,
            top_n=self.top_n,
            score_threshold=self.score_threshold,
        )

    def engine_kwargs(self, capabilities: Capabilities) -> dict[str, Any]:
        """Keyword arguments for the engine's ``rerank``/``arerank``.

        ``top_n`` and ``score_threshold`` are :meth:`engine_cuts`. ``evidence`` is on only when
        :meth:`generate` says so: with ``use_evidence`` and ``add_contribution`` both off, or on a
        score-only backend, the call is a pure scoring pass. ``time_budget`` only when set.
        """
        top_n, score_threshold = self.engine_cuts()
        kwargs: dict[str, Any] = {
            "top_n": top_n,
            "score_threshold": score_threshold,
            "evidence": self.generate(capabilities),
        }
        # Only when set: a custom reranker without the long-document options keeps working.
        if self.max_tokens_per_doc is not None:
            kwargs["max_tokens_per_doc"] = self.max_tokens_per_doc
        if self.long_documents is not None:
            kwargs["long_documents"] = self.long_documents
        if self.time_budget is not None:  # only when set: a reranker written before it keeps working
            kwargs["time_budget"] = self.time_budget
        return kwargs
