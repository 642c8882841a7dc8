"""Public names imported on first use: a package's ``__getattr__`` (PEP 562), written once."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, modules: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that imports each name of ``modules`` from its module on first
    use and keeps it in ``namespace`` (the package's ``globals()``), so the import happens once.

    Example:
        >>> getattr_ = lazy_getattr("pkg", {"sqrt": "math"}, {})
        >>> getattr_("sqrt")(9.0)
        3.0
        >>> getattr_("nope")
        Traceback (most recent call last):
        AttributeError: module 'pkg' has no attribute 'nope'
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
