"""Optional dependencies: one shape for "this needs an extra that is not installed".

Every place that imports an optional package goes through :func:`require_extra` (or raises
:func:`missing_extra` itself when it imports in a ``try``), so the hint always reads the same:
``Install it with: pip install "prism-integrations[<extra>]"``.

Example:
    >>> require_extra("json", "server").__name__
    'json'
    >>> str(missing_extra("server", needs="fastapi", by="the service")).split(". ")[1]
    'Install it with: pip install "prism-integrations[server]"'
"""

from __future__ import annotations

import importlib
from types import ModuleType


def missing_extra(
    extra: str | None, *, needs: str, by: str | None = None, alternative: str | None = None
) -> ImportError:
    """The ImportError for a missing optional package, naming the extra that installs it.

    Args:
        extra: The package extra that installs it (``"server"``, ``"eval"``...); ``None`` for a
            dependency of the base package (then the hint is ``pip install <alternative or needs>``).
        needs: What is missing (a module or a framework's name).
        by: What needs it (a module, a backend); ``None`` says only that ``needs`` is missing.
        alternative: The package alone, also named (``"or pip install <alternative>"``).

    Returns:
        The error, for the caller to raise (``raise missing_extra(...) from exc``).

    Example:
        >>> str(missing_extra("bench", needs="matplotlib", alternative="matplotlib")).split(": ")[1]
        'pip install "prism-integrations[bench]" (or pip install matplotlib)'
    """
    who = f"{needs} is not installed" if by is None else f"{by} needs {needs}, which is not installed"
    if extra is None:
        return ImportError(f"{who}. Install it with: pip install {alternative or needs}")
    hint = f'pip install "prism-integrations[{extra}]"'
    if alternative is not None:
        hint += f" (or pip install {alternative})"
    return ImportError(f"{who}. Install it with: {hint}")


def require_extra(
    module: str, extra: str | None, *, by: str | None = None, alternative: str | None = None
) -> ModuleType:
    """Import ``module``, or raise :func:`missing_extra`'s ImportError naming ``extra``.

    Args:
        module: The module to import (``"fastapi"``, ``"ray.serve"``).
        extra: The package extra that installs it (see :func:`missing_extra`).
        by: What needs it, for the message.
        alternative: The package alone, also named in the message.

    Returns:
        The imported module.

    Raises:
        ImportError: ``module`` is not installed; the message names
            ``pip install "prism-integrations[extra]"``.

    Example:
        >>> require_extra("math", "eval").sqrt(4.0)
        2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(extra, needs=module, by=by, alternative=alternative) from exc
