"""The ranking options every adapter takes, their defaults, and the metadata keys adapters write.

Options are checked by :mod:`prism_core.validation` only, the module the engine uses too, so a value
is accepted or refused the same way by the three adapters and by the engine: Python and NumPy
integers and floats are accepted, booleans are never numbers, strings are never coerced (``"3"`` is
not ``3``, ``top_n=True`` is refused), and the error names the option and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prism_core.protocol import Capabilities
from prism_core.quality.blend import DEFAULT_QUALITY_WEIGHT, engine_cuts
from prism_core.validation import check_bool, check_threshold, check_top_n
from prism_integrations._common.budgets import check_budget_options
from prism_integrations._common.quality import check_quality_options

__all__ = [
    "BOOL_OPTION_NAMES",
    "CONTRIBUTION",
    "DEFAULT_ADD_CONTRIBUTION",
    "DEFAULT_DROP_IRRELEVANT",
    "DEFAULT_KEEP_ORIGINAL",
    "DEFAULT_SCORE_THRESHOLD",
    "DEFAULT_TOP_N",
    "DEFAULT_USE_EVIDENCE",
    "EVIDENCE_USED",
    "ORIGINAL_CONTENT",
    "OUR_METADATA_KEYS",
    "RELEVANCE_SCORE",
    "RerankSettings",
    "check_rule_options",
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

#: Metadata key: the relevance score in ``[0, 1]`` (also in the framework's own score slot).
RELEVANCE_SCORE = "relevance_score"
#: Metadata key: the one-sentence contribution, or ``None`` (not asked for, not generated, or absent).
CONTRIBUTION = "contribution"
#: Metadata key: ``True`` when the document's body is the model's evidence passage.
EVIDENCE_USED = "evidence_used"
#: Metadata key: the original body, present only when the body was swapped and ``keep_original`` is on.
ORIGINAL_CONTENT = "original_content"
#: Every metadata key an adapter may write, in the order it writes them (the same for every backend).
OUR_METADATA_KEYS: tuple[str, ...] = (RELEVANCE_SCORE, CONTRIBUTION, EVIDENCE_USED, ORIGINAL_CONTENT)

#: The on/off options, in documented order.
BOOL_OPTION_NAMES: tuple[str, ...] = ("use_evidence", "add_contribution", "keep_original", "drop_irrelevant")


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
        top_n_name: The count limit's name in error messages (Haystack: ``top_k``).
        quality: A :class:`prism_core.quality.QualityScorer`, or ``None`` (no quality prior).
        min_quality: Drop documents whose raw quality is below this (``[0, 5]``; needs ``quality``).
        quality_weight: ``w`` in ``[0, 1]`` of the blend (``w > 0`` needs ``quality``).
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
    top_n_name: str = "top_n"
    quality: Any = None
    min_quality: float | None = None
    quality_weight: float = DEFAULT_QUALITY_WEIGHT
    max_context_tokens: int | None = None
    time_budget: float | None = None
    token_counter: Any = None

    def __post_init__(self) -> None:
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
        if self.time_budget is not None:  # only when set: a reranker written before it keeps working
            kwargs["time_budget"] = self.time_budget
        return kwargs
