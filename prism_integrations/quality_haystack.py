"""The query-free quality prior as a standalone Haystack component: :class:`QualityAnnotator`.

The class lives in ``haystack_integrations.components.rankers.prism.quality`` (the namespace
Haystack's deserialisation allowlist trusts); this module re-exports it, so
``from prism_integrations.quality_haystack import QualityAnnotator`` is the same class.

Example:
    >>> from prism_integrations.quality_haystack import QualityAnnotator
    >>> from haystack_integrations.components.rankers.prism.quality import QualityAnnotator as Same
    >>> QualityAnnotator is Same
    True
"""

from __future__ import annotations

# Without Haystack this import raises the install hint (``pip install "prism-integrations[haystack]"``).
from haystack_integrations.components.rankers.prism.quality import QualityAnnotator

__all__ = ["QualityAnnotator"]
