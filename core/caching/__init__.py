"""Caches above the engine: the process-wide result cache (:mod:`prism_core.caching.pair_cache`)."""

from prism_core.caching.pair_cache import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    CachedPair,
    CacheStats,
    ResultCache,
    configure_result_cache,
    result_cache,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "CacheStats",
    "CachedPair",
    "ResultCache",
    "configure_result_cache",
    "result_cache",
]
