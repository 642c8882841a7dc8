"""``QualityAnnotator``: the query-free quality prior as a standalone Haystack component (no reranker).

It annotates each document's ``meta["quality_score"]`` with the raw JQL-Edu quality score and
optionally drops documents below ``min_quality`` and orders them by quality. It lives in the
``haystack_integrations`` namespace (like :class:`PrismRanker`), which Haystack's deserialisation
allowlist trusts, so saved pipelines holding it load without ``allowed_modules``;
``prism_integrations.quality_haystack`` re-exports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from prism_core.quality.scorer import QualityScorer
from prism_integrations._common import missing_framework_error
from prism_integrations._common.quality_annotate import (
    QualityAdapter,
    checked_options,
    validate_min_quality,
    with_field,
)

try:
    from haystack import Document, component, default_from_dict, default_to_dict
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("Haystack (haystack-ai)", "haystack", __name__) from exc

__all__ = ["QualityAnnotator"]

logger = logging.getLogger(__name__)

_DOCUMENTS = QualityAdapter(
    Document, "a Haystack Document", lambda d: d.content, lambda d: d.meta, with_field("meta")
)


@component
class QualityAnnotator:
    """Annotate Haystack documents with a query-free quality score (JQL-Edu heads).

    Returns ``{"documents": [...]}``: copies of the kept documents (same ``id``, ``content`` and
    ``score``) whose ``meta`` is a deep copy of the caller's followed by ``quality_score``, the raw
    score on the heads' 0–5 scale (the mean over heads). The caller's documents are never modified.
    A document whose ``content`` is ``None`` is not scored and comes back unchanged (never dropped);
    an empty ``content`` is scored as empty text.

    Args:
        quality: A :class:`prism_core.quality.QualityScorer` (or its ``to_dict()`` mapping).
        min_quality: Drop documents whose raw quality is below this (``[0, 5]``; ``None``: keep all).
        sort_by_quality: Return documents best quality first (ties keep the input order);
            otherwise in input order.

    Nothing is loaded at construction; :meth:`warm_up` (which a pipeline calls) loads the encoder
    and heads. ``to_dict``/``from_dict`` keep the scorer's options. Haystack versions with a
    deserialisation allowlist need this module trusted:
    ``Pipeline.loads(yaml_text, allowed_modules=["prism_integrations.quality_haystack"])``.

    Example:
        >>> from haystack import Pipeline
        >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer
        >>> scorer = QualityScorer(JQL_EDU_HEADS, trust_remote_code=True)  # loads nothing yet
        >>> annotator = QualityAnnotator(scorer, min_quality=2.0)
        >>> pipe = Pipeline()
        >>> pipe.add_component("retriever", retriever)  # doctest: +SKIP
        >>> pipe.add_component("quality", annotator)  # doctest: +SKIP
        >>> pipe.connect("retriever.documents", "quality.documents")  # doctest: +SKIP
    """

    def __init__(
        self,
        quality: QualityScorer | Mapping[str, Any],
        *,
        min_quality: float | None = None,
        sort_by_quality: bool = False,
    ) -> None:
        """Create the component; nothing is loaded.

        Raises:
            TypeError: If ``quality`` is not a scorer or its mapping.
            ValueError: If ``min_quality`` is not ``None`` or a number in ``[0, 5]``, or
                ``sort_by_quality`` is not a bool.
        """
        self.quality, self.min_quality, self.sort_by_quality = checked_options(
            quality, min_quality, sort_by_quality
        )

    def warm_up(self) -> None:
        """Load the encoder and heads (idempotent; a pipeline calls it before running)."""
        self.quality.load()

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` in a worker thread, so loading does not block the event loop."""
        if not self.quality.loaded:
            await asyncio.to_thread(self.quality.load)

    def to_dict(self) -> dict[str, Any]:
        """Serialise the component (the scorer's options, ``min_quality``, ``sort_by_quality``)."""
        return default_to_dict(
            self,
            quality=self.quality.to_dict(),
            min_quality=self.min_quality,
            sort_by_quality=self.sort_by_quality,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityAnnotator:
        """Rebuild a component serialised by :meth:`to_dict`."""
        return default_from_dict(cls, data)

    def _min_quality(self, override: float | None) -> float | None:
        return self.min_quality if override is None else validate_min_quality(override)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document], min_quality: float | None = None) -> dict[str, list[Document]]:
        """Score ``documents`` and return annotated copies.

        Args:
            documents: The documents (not modified).
            min_quality: Overrides the init ``min_quality`` for this call.

        Returns:
            ``{"documents": [...]}``.
        """
        threshold = self._min_quality(min_quality)
        kept = _DOCUMENTS.annotate(
            self.quality, documents, min_quality=threshold, sort_by_quality=self.sort_by_quality
        )
        return {"documents": kept}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, documents: list[Document], min_quality: float | None = None
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`: scores in a worker thread (the event loop is not blocked)."""
        threshold = self._min_quality(min_quality)
        kept = await _DOCUMENTS.aannotate(
            self.quality, documents, min_quality=threshold, sort_by_quality=self.sort_by_quality
        )
        return {"documents": kept}
