"""A prism_core reranker as a Haystack ranker component: :class:`PrismRanker`.

The class lives in ``haystack_integrations.components.rankers.prism`` (the namespace every Haystack
integration uses, which Haystack's deserialisation allowlist trusts by default); this module
re-exports it, so ``from prism_integrations.haystack import PrismRanker`` is the same class.

Pipelines saved before version 0.2 name the component ``prism_integrations.haystack.PrismRanker``;
importing this module registers that name too, so such a pipeline still loads (Haystack then asks
for ``allowed_modules=["prism_integrations.haystack"]``, as it did).

Example:
    >>> from prism_integrations.haystack import PrismRanker
    >>> from haystack_integrations.components.rankers.prism import PrismRanker as Same
    >>> PrismRanker is Same
    True
"""

from __future__ import annotations

from prism_integrations._common import missing_framework_error

try:
    from haystack import component
except ImportError as exc:  # pragma: no cover - exercised by simulating a missing package
    raise missing_framework_error("Haystack (haystack-ai)", "haystack", __name__) from exc

from haystack_integrations.components.rankers.prism.ranker import LEGACY_TYPE, PrismRanker

__all__ = ["PrismRanker"]

component.registry.setdefault(LEGACY_TYPE, PrismRanker)
