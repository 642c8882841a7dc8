"""Caches above the engine: the process-wide result cache (:mod:`prism_core.caching.pair_cache`)."""

from prism_core.caching.pair_cache import *  # noqa: F403  (the package re-exports the cache)
from prism_core.caching.pair_cache import __all__ as __all__
