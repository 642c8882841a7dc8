"""The result cache's earlier module path: :mod:`prism_core.caching.pair_cache` under its old name,
so imports written against it keep working (the same objects, not copies).

Example:
    >>> from prism_core.caching import pair_cache as new
    >>> from prism_core.caching import results as old
    >>> old.ResultCache is new.ResultCache
    True
"""

from prism_core.caching.pair_cache import *  # noqa: F403  (the same objects under the earlier path)
from prism_core.caching.pair_cache import __all__ as __all__
