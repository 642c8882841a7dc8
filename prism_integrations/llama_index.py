"""A prism_core reranker as a LlamaIndex node postprocessor.

Use :class:`PrismNodePostprocessor` wherever LlamaIndex takes a reranker, e.g.
``index.as_query_engine(node_postprocessors=[PrismNodePostprocessor(...)])``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prism_integrations._common import (
    Item,
    KeptDocument,
    Ranking,
    check_items,
    copy_object,
    missing_framework_error,
)
from prism_integrations._common.fields import AdapterFields
from prism_integrations._common.quality import quality_to_pickle

try:
    from llama_index.core.bridge.pydantic import (
        SerializationInfo,
        SerializerFunctionWrapHandler,
        model_serializer,
    )
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, Node, NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("LlamaIndex (llama-index-core)", "llama-index", __name__) from exc

__all__ = ["PrismNodePostprocessor", "node_text"]

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)


def _extend_unique(keys: list[str], extra: tuple[str, ...]) -> list[str]:
    return [*keys, *(key for key in extra if key not in keys)]


def node_text(node: BaseNode) -> str | None:
    """The text a node is judged on, or ``None`` when it has none (it is then not scored).

    A node has no text when it is a multimodal ``Node`` without a text resource (or with an empty
    one), or an ``ImageNode`` whose text is empty (an image only). Every other node is judged on
    ``get_content(MetadataMode.NONE)``, the text without metadata (an empty ``TextNode`` is judged
    as empty text, like an empty LangChain or Haystack document).
    """
    if isinstance(node, Node):
        resource = node.text_resource
        return resource.text if resource is not None and resource.text else None
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    if isinstance(node, ImageNode) and not text:
        return None
    return text if isinstance(text, str) else None


class PrismNodePostprocessor(AdapterFields, BaseNodePostprocessor):
    """Rerank LlamaIndex nodes with any prism_core backend; with Prism, swap their text for evidence.

    Nodes come back best first as new ``NodeWithScore`` objects whose ``score`` is the relevance
    score and whose node is a copy of the input node (same ``node_id``). With a generating backend
    (Prism) a kept, relevant node's text becomes the model's self-contained evidence passage when
    ``use_evidence`` is on and the evidence is complete. Its metadata ends with
    ``relevance_score``, ``contribution``, ``evidence_used`` and, when the text was swapped and
    ``keep_original`` is on, ``original_content`` (the same keys for every backend); these keys are
    added to the node's ``excluded_llm_metadata_keys`` and ``excluded_embed_metadata_keys``, so the
    original text does not leak into prompts. The model sees each node's text without metadata
    (``MetadataMode.NONE``), exactly the text it may replace. The caller's nodes are never
    modified; metadata values that cannot be deep-copied (a lock, an open file) are kept as they
    are (the copy holds the same object). Nodes without text (see :func:`node_text`) are not
    scored: they come back unchanged (copied) after the ranked ones, with a warning.

    The engine: ``model`` (hub id or local directory; ``None``: the backend's default model),
    ``backend`` (``"prism"``, ``"qwen3-reranker"``, ``"cross-encoder"``; ``None``: told from the
    checkpoint on first use) and engine options as keyword arguments (``device``, ``dtype``,
    ``max_length``, ``max_new_tokens``, ``batch_tokens``, ``instruction``...: see
    :class:`prism_core.EngineConfig`), folded into one ``engine_config``; or ``engine_config=``;
    or ``reranker=`` (any :class:`prism_core.Reranker`). The engine is the process-wide one for the
    configuration, looked up on the first call: constructing loads nothing, and adapters of any
    framework configured alike share one loaded model.

    Ranking options (the same in all three adapters): ``top_n=None``, ``score_threshold=None``,
    ``use_evidence=True``, ``add_contribution=True``, ``keep_original=True``,
    ``drop_irrelevant=True``, ``grounded_only=True`` (evidence with a verbatim item the node's text
    does not contain is not swapped in: ``evidence_rejected: "ungrounded"``; ``grounding``,
    ``unsupported`` and ``evidence_spans`` are in the metadata whenever evidence was generated);
    with ``use_evidence`` and ``add_contribution`` both off, or on a
    score-only backend, nothing is generated. ``to_dict``/``from_dict`` (and the JSON twins)
    round-trip the configuration; a postprocessor built with ``reranker=`` refuses to serialise.

    Quality prior (optional, off by default): ``quality`` (a
    :class:`prism_core.quality.QualityScorer`), ``min_quality`` (drop nodes whose raw quality is
    below this, on the heads' 0–5 scale) and ``quality_weight`` ``w`` in ``[0, 1]``. With
    ``quality``, each returned node's metadata ends with ``quality_score`` (the raw quality, also
    added to the excluded metadata keys); ``NodeWithScore.score`` is the blended score
    ``(1 − w) · relevance + w · clip(quality / 5, 0, 1)``, on which the nodes are ordered, cut by
    ``score_threshold`` and by ``top_n`` (rules in that order: quality filter, blend, threshold,
    top-n); ``metadata["relevance_score"]`` stays the raw relevance. Quality is computed only for
    nodes that can still be returned, on their original text. ``min_quality`` or ``w > 0`` without
    ``quality`` is refused. Serialised, ``quality`` is ``QualityScorer.to_dict()`` (without
    ``quality`` the three keys are left out); copies share the scorer.
    Emits ``ReRankStartEvent``/``ReRankEndEvent`` and a ``CBEventType.RERANKING`` callback event,
    like LlamaIndex's own rerankers.

    Example:
        >>> postprocessor = PrismNodePostprocessor(model="path/or/hub-id", top_n=3)  # loads nothing
        >>> postprocessor.to_dict()["engine_config"]
        {'model': 'path/or/hub-id', 'backend': None}
        >>> engine = index.as_query_engine(node_postprocessors=[postprocessor])  # doctest: +SKIP
        >>> response = engine.query("what is X?")  # doctest: +SKIP
        >>> [n.node.metadata["contribution"] for n in response.source_nodes]  # doctest: +SKIP

        Blended with the quality prior:

        >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer
        >>> blended = PrismNodePostprocessor(
        ...     quality=QualityScorer(JQL_EDU_HEADS, trust_remote_code=True), quality_weight=0.3, top_n=3
        ... )
        >>> nodes = blended.postprocess_nodes(nodes, query_str="what is X?")  # doctest: +SKIP
        >>> nodes[0].score, nodes[0].node.metadata["quality_score"]  # doctest: +SKIP
    """

    def __init__(self, model: Any = None, **kwargs: Any) -> None:
        """Create the postprocessor; nothing is loaded (see the class docstring for the options).

        Raises:
            TypeError: An unknown keyword, a wrongly typed option or a ``reranker`` that does not
                implement :class:`prism_core.Reranker`.
            ValueError: Both a configuration and ``reranker``, or an option out of range.
        """
        known = set(type(self).model_fields) | {"backend", "engine_config"}
        from prism_core.config import ENGINE_OPTION_NAMES

        unknown = sorted(set(kwargs) - known - set(ENGINE_OPTION_NAMES))
        if unknown:
            raise TypeError(
                f"PrismNodePostprocessor got unexpected keyword argument(s): {', '.join(unknown)}"
            )
        super().__init__(model=model, **kwargs)  # type: ignore[call-arg]  # folded by _fold

    def __eq__(self, other: object) -> bool:
        """Equal when configured alike: every field but LlamaIndex's per-instance ``callback_manager``."""
        if not isinstance(other, PrismNodePostprocessor):
            return NotImplemented
        mine, theirs = dict(self.__dict__), dict(other.__dict__)
        mine.pop("callback_manager", None)
        theirs.pop("callback_manager", None)
        return type(self) is type(other) and mine == theirs and self._resolver == other._resolver

    __hash__ = None  # type: ignore[assignment]  # mutable pydantic model, as BaseModel

    @model_serializer(mode="wrap")
    def custom_model_dump(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """LlamaIndex's serialiser (adds ``class_name``), without the quality keys when unused."""
        data = self._omit_unset(handler(self))
        data["class_name"] = self.class_name()
        return data

    def __getstate__(self) -> dict[str, Any]:
        """Pickle state: the quality scorer travels as its description (rebuilt on unpickling).

        LlamaIndex drops (from the live object too) attributes that do not pickle; the scorer is
        swapped for its description on a shallow copy first, so it is neither lost nor touched.
        """
        if self.quality is None:
            return super().__getstate__()
        clone = copy.copy(self)
        clone.__dict__.update(quality_to_pickle(clone.__dict__))
        return super(PrismNodePostprocessor, clone).__getstate__()

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this component under."""
        return "PrismNodePostprocessor"

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The configuration as a dict, with ``class_name``.

        Raises:
            NotSerializableError: The postprocessor was built with a ``reranker`` object.
        """
        self._check_serialisable()
        return super().to_dict(**kwargs)

    @contextmanager
    def _events(self, nodes: list[NodeWithScore], query_bundle: QueryBundle) -> Iterator[list[NodeWithScore]]:
        """Emit the start/end instrumentation and callback events around one rerank call.

        The caller appends the reranked nodes to the yielded list.
        """
        model_name = self._resolver.describe()
        top_n = self.top_n if self.top_n is not None else len(nodes)
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=top_n, model_name=model_name)
        )
        out: list[NodeWithScore] = []
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: model_name,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: top_n,
            },
        ) as event:
            yield out
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))

    @staticmethod
    def _items(nodes: list[NodeWithScore]) -> list[Item]:
        return [Item(node_text(n.node), n.node.metadata) for n in nodes]

    @staticmethod
    def _node(source: BaseNode, k: KeptDocument) -> BaseNode:
        node = copy_object(
            source,
            metadata=k.metadata,
            excluded_llm_metadata_keys=_extend_unique(list(source.excluded_llm_metadata_keys), k.added_keys),
            excluded_embed_metadata_keys=_extend_unique(
                list(source.excluded_embed_metadata_keys), k.added_keys
            ),
        )
        if k.evidence_used:
            node.set_content(k.content)
        return node

    def _output(self, nodes: list[NodeWithScore], ranking: Ranking) -> list[NodeWithScore]:
        out = [NodeWithScore(node=self._node(nodes[k.index].node, k), score=k.score) for k in ranking.kept]
        out.extend(copy_object(nodes[i], node=copy_object(nodes[i].node)) for i in ranking.unscored)
        return out

    @staticmethod
    def _check(nodes: Any, query_bundle: QueryBundle | None) -> tuple[list[NodeWithScore], QueryBundle]:
        if query_bundle is None:
            raise ValueError("PrismNodePostprocessor needs a query: pass query_bundle or query_str.")
        checked = check_items(nodes, NodeWithScore, "a LlamaIndex NodeWithScore", "nodes")
        for i, n in enumerate(checked):
            if not isinstance(n.node, BaseNode):
                raise TypeError(f"nodes[{i}].node must be a LlamaIndex node, got {type(n.node).__name__}")
        return checked, query_bundle

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Rerank ``nodes`` for the query and return annotated copies, best first."""
        nodes, query_bundle = self._check(nodes, query_bundle)
        with self._events(nodes, query_bundle) as out:
            out.extend(self._output(nodes, self._rank(query_bundle.query_str, self._items(nodes), "nodes")))
        return out

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Async :meth:`_postprocess_nodes`: awaits the engine's ``arerank`` (the loop is not blocked)."""
        nodes, query_bundle = self._check(nodes, query_bundle)
        with self._events(nodes, query_bundle) as out:
            ranking = await self._arank(query_bundle.query_str, self._items(nodes), "nodes")
            out.extend(self._output(nodes, ranking))
        return out
