"""The quality prior as a standalone LlamaIndex node postprocessor (no reranker).

:class:`QualityNodePostprocessor` annotates ``metadata["quality_score"]`` with the raw JQL-Edu
quality score and optionally drops nodes below ``min_quality`` and orders them by quality, e.g.
``index.as_query_engine(node_postprocessors=[QualityNodePostprocessor(quality=scorer, min_quality=2)])``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prism_core.quality.blend import QUALITY_SCORE
from prism_core.quality.scorer import QualityScorer
from prism_integrations._common import copy_object, missing_framework_error
from prism_integrations._common.quality_annotate import (
    QualityAdapter,
    checked_options,
    validate_min_quality,
)

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("LlamaIndex (llama-index-core)", "llama-index", __name__) from exc

from prism_integrations.llama_index import node_text  # the one rule for which nodes have text

__all__ = ["QualityNodePostprocessor"]

logger = logging.getLogger(__name__)


def _extend_unique(keys: list[str], extra: str) -> list[str]:
    return keys if extra in keys else [*keys, extra]


def _annotated(source: NodeWithScore, metadata: dict[str, Any]) -> NodeWithScore:
    """A copy around a copy of the node holding ``metadata``, the quality key hidden from the
    LLM and the embedder."""
    node = copy_object(
        source.node,
        metadata=metadata,
        excluded_llm_metadata_keys=_extend_unique(
            list(source.node.excluded_llm_metadata_keys), QUALITY_SCORE
        ),
        excluded_embed_metadata_keys=_extend_unique(
            list(source.node.excluded_embed_metadata_keys), QUALITY_SCORE
        ),
    )
    return copy_object(source, node=node)


_NODES: QualityAdapter[NodeWithScore] = QualityAdapter(
    NodeWithScore,
    "a LlamaIndex NodeWithScore",
    lambda n: node_text(n.node),
    lambda n: n.node.metadata,
    _annotated,
    unchanged=lambda n: copy_object(n, node=copy_object(n.node)),
    name="nodes",
)


class QualityNodePostprocessor(BaseNodePostprocessor):
    """Annotate LlamaIndex nodes with a query-free quality score (JQL-Edu heads).

    Returns new ``NodeWithScore`` objects (same ``score``) around copies of the kept nodes (same
    ``node_id`` and text) whose metadata is a deep copy of the caller's followed by
    ``quality_score``, the raw score on the heads' 0–5 scale (the mean over heads). The key is added
    to the copies' ``excluded_llm_metadata_keys`` and ``excluded_embed_metadata_keys``, so it does
    not leak into prompts or embeddings. The scorer sees each node's text without metadata
    (``MetadataMode.NONE``); a node without text (image only) is not scored and comes back unchanged
    (never dropped). No query is needed. The caller's nodes are never modified.

    Args:
        quality: A :class:`prism_core.quality.QualityScorer` (or its ``to_dict()`` mapping).
        min_quality: Drop nodes whose raw quality is below this (``[0, 5]``; ``None``: keep all).
        sort_by_quality: Return nodes best quality first (ties keep the input order); otherwise in
            input order.

    The scorer's options are kept in the ``quality_config`` field, so ``to_dict``/``from_dict``
    round-trip the postprocessor.

    Example:
        >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer
        >>> scorer = QualityScorer(JQL_EDU_HEADS, trust_remote_code=True)  # loads nothing yet
        >>> pp = QualityNodePostprocessor(scorer, min_quality=2.0)
        >>> engine = index.as_query_engine(node_postprocessors=[pp])  # doctest: +SKIP
    """

    quality_config: dict[str, Any] = Field(
        default_factory=dict, description="The QualityScorer's options (QualityScorer.to_dict())."
    )
    min_quality: float | None = Field(default=None, description="Drop nodes below this raw quality (0-5).")
    sort_by_quality: bool = Field(default=False, description="Order the kept nodes by quality, best first.")

    _quality: QualityScorer = PrivateAttr()

    def __init__(
        self,
        quality: QualityScorer | Mapping[str, Any] | None = None,
        *,
        min_quality: float | None = None,
        sort_by_quality: bool = False,
        quality_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the postprocessor; nothing is loaded.

        Raises:
            TypeError: If neither ``quality`` nor ``quality_config`` gives a scorer.
            ValueError: If ``min_quality`` is not ``None`` or a number in ``[0, 5]``, or
                ``sort_by_quality`` is not a bool.
        """
        if quality is None and quality_config is None:
            raise TypeError("QualityNodePostprocessor needs quality (a prism_core.quality.QualityScorer)")
        scorer, min_quality, sort_by_quality = checked_options(
            quality if quality is not None else quality_config, min_quality, sort_by_quality
        )
        fields: dict[str, Any] = {
            "quality_config": scorer.to_dict(),
            "min_quality": min_quality,
            "sort_by_quality": sort_by_quality,
        }
        super().__init__(**fields, **kwargs)
        self._quality = scorer

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this component under."""
        return "QualityNodePostprocessor"

    @property
    def quality(self) -> QualityScorer:
        """The scorer this postprocessor calls."""
        return self._quality

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Score ``nodes`` and return annotated copies (the query is not used)."""
        min_quality = validate_min_quality(self.min_quality)
        return _NODES.annotate(
            self._quality, nodes, min_quality=min_quality, sort_by_quality=self.sort_by_quality
        )

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Async :meth:`_postprocess_nodes`: scores in a worker thread (the loop is not blocked)."""
        min_quality = validate_min_quality(self.min_quality)
        return await _NODES.aannotate(
            self._quality, nodes, min_quality=min_quality, sort_by_quality=self.sort_by_quality
        )
