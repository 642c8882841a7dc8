"""The options the pydantic adapters (LangChain, LlamaIndex) share, declared once.

:class:`AdapterFields` is a pydantic mixin: the adapter class lists it before its framework's base
(``class PrismDocumentCompressor(AdapterFields, BaseDocumentCompressor)``) and inherits every option
field, the input folding (``model=``, ``backend=`` and engine options into ``engine_config``), the
lazy engine look-up and the copy rule. Haystack's component takes the same options as ``__init__``
arguments (its framework serialises those), from the same defaults in :mod:`.options`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from prism_integrations._common import (
    EngineSpecField,
    Item,
    Ranking,
    RerankSettings,
    arerank_items,
    fold_adapter_input,
    omit_unset_budgets,
    omit_unset_long_document_options,
    omit_unused_quality,
    rerank_items,
)
from prism_integrations._common import budgets as _budgets
from prism_integrations._common import options as _options
from prism_integrations._common import quality as _quality
from prism_integrations._common.engine import (
    EngineBacked,
    EngineResolver,
    NotSerializableError,
    not_serializable_message,
)
from prism_integrations._common.options import LongDocumentsField, MaxTokensPerDocField
from prism_integrations._common.quality import QualityField

__all__ = ["AdapterFields"]


class AdapterFields(EngineBacked, BaseModel):
    """The adapters' ranking, quality and budget options, with their defaults and checks.

    Example:
        >>> class Demo(AdapterFields):
        ...     pass
        >>> Demo(model="path/or/hub-id", top_n=3).top_n
        3
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # The annotated field types come from the package (they carry the validators and serialisers).
    engine_config: EngineSpecField = Field(
        default=None,
        description="The engine's configuration (None only with a reranker object); built from model, "
        "backend and engine options at construction.",
    )
    reranker: Any = Field(
        default=None, exclude=True, repr=False, description="A ready prism_core.Reranker (never serialised)."
    )
    top_n: int | None = Field(
        default=_options.DEFAULT_TOP_N, description="Keep at most this many (None: no limit)."
    )
    score_threshold: float | None = Field(
        default=_options.DEFAULT_SCORE_THRESHOLD,
        description="Keep only items scoring at least this (None: no cut).",
    )
    use_evidence: bool = Field(
        default=_options.DEFAULT_USE_EVIDENCE,
        description="Swap a kept, relevant item's text for its evidence.",
    )
    add_contribution: bool = Field(
        default=_options.DEFAULT_ADD_CONTRIBUTION,
        description="Put the contribution into metadata['contribution'].",
    )
    keep_original: bool = Field(
        default=_options.DEFAULT_KEEP_ORIGINAL,
        description="Keep the original text in metadata['original_content'].",
    )
    drop_irrelevant: bool = Field(
        default=_options.DEFAULT_DROP_IRRELEVANT,
        description="Leave out items judged irrelevant (score <= 0.5).",
    )
    grounded_only: bool = Field(
        default=_options.DEFAULT_GROUNDED_ONLY, description=_options.GROUNDED_ONLY_DOC
    )
    quality: QualityField = Field(default=None, description="The quality prior (a QualityScorer), or None.")
    min_quality: float | None = Field(
        default=_quality.DEFAULT_MIN_QUALITY, description="Drop items whose raw quality (0-5) is below this."
    )
    quality_weight: float = Field(
        default=_quality.DEFAULT_QUALITY_WEIGHT,
        description="w of the blend (1 - w) * relevance + w * quality / 5.",
    )
    max_tokens_per_doc: MaxTokensPerDocField = Field(
        default=None, description="Document tokens the engine reads per row (None: its default)."
    )
    long_documents: LongDocumentsField = Field(
        default=None, description="'truncate' or 'chunk' for a long document (None: the engine's default)."
    )
    max_context_tokens: int | None = Field(
        default=_budgets.DEFAULT_MAX_CONTEXT_TOKENS, description="Token budget of the returned items' text."
    )
    time_budget: float | None = Field(
        default=_budgets.DEFAULT_TIME_BUDGET,
        description="Seconds per call (fail-open: returns what is done).",
    )
    token_counter: Any = Field(
        default=_budgets.DEFAULT_TOKEN_COUNTER,
        exclude=True,
        repr=False,
        description="Counts tokens for max_context_tokens (None: the model's tokenizer); not serialisable.",
    )

    _resolver: EngineResolver = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _fold(cls, data: Any) -> Any:
        return fold_adapter_input(data)

    def model_post_init(self, context: Any, /) -> None:
        """Set up the (lazy) engine look-up."""
        self._resolver = EngineResolver(self.engine_config, self.reranker)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        """A deep copy that shares the quality scorer (and the engine), like the configuration says."""
        memo = {} if memo is None else memo
        _quality.share_quality(memo, self.quality)
        return super().__deepcopy__(memo)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        """Rebuild from the pickled state: the quality scorer travels as its description."""
        super().__setstate__({**state, "__dict__": _quality.quality_from_pickle(dict(state["__dict__"]))})

    def _rank(self, query: str, items: list[Item], name: str = "documents") -> Ranking:
        """The adapter's one engine call, with its ranking options, quality and budgets."""
        settings = RerankSettings.of(self)
        return rerank_items(self._resolver, query, items, settings, adapter=type(self).__name__, name=name)

    async def _arank(self, query: str, items: list[Item], name: str = "documents") -> Ranking:
        """:meth:`_rank` through the engine's ``arerank`` (the event loop is not blocked)."""
        settings = RerankSettings.of(self)
        return await arerank_items(
            self._resolver, query, items, settings, adapter=type(self).__name__, name=name
        )

    def _check_serialisable(self) -> None:
        if self.reranker is not None:
            raise NotSerializableError(not_serializable_message(type(self).__name__))
        if self.token_counter is not None:
            raise NotSerializableError(not_serializable_message(type(self).__name__, "token_counter"))

    @staticmethod
    def _omit_unset(data: dict[str, Any]) -> dict[str, Any]:
        """The serialised options without the unset long-document, budget and quality keys."""
        return omit_unset_budgets(omit_unset_long_document_options(omit_unused_quality(data)))
