"""The result cache's earlier module path: :mod:`prism_core.caching.pair_cache` under its old name,
so imports written against it keep working (the same objects, not copies).

Example:
    >>> from prism_core.caching import pair_cache as new
    >>> from prism_core.caching import results as old
    >>> old.ResultCache is new.ResultCache
    True
"""

from prism_core.caching.pair_cache import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    CachedPair,
    CacheStats,
    Claim,
    ResultCache,
    configure_result_cache,
    result_cache,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "CacheStats",
    "CachedPair",
    "Claim",
    "ResultCache",
    "configure_result_cache",
    "result_cache",
]
