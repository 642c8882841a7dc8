"""Optional dependencies: a missing one is an ImportError naming the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming ``pip install "prism-integrations[extra]"``.

    Example:
        >>> require("json", "server").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed; it is part of the {extra!r} extra: "
            f'pip install "prism-integrations[{extra}]"'
        ) from exc
