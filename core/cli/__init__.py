"""The ``prism-rerank`` command line.

``prism-rerank [options] [input]`` reranks JSON Lines (:mod:`prism_core.cli.rerank`); a first
argument naming a subcommand runs it instead: ``demo`` (:mod:`prism_core.cli.demo`), and ``serve``,
``batch``, ``eval`` (``prism_core.cli.<name>``, where installed). Each subcommand module has a
``main(argv, *, reranker_factory=None) -> int``, imported only when it runs. The model options all
commands share live in :mod:`prism_core.cli.options`.

Example:
    >>> from prism_core.cli import main
    >>> main(["demo", "--backend", "qwen3-reranker"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from prism_core.cli.options import RerankerFactory

#: Subcommands, each run by ``prism_core.cli.<name>.main``.
SUBCOMMANDS: tuple[str, ...] = ("demo", "serve", "batch", "eval")

__all__ = ["SUBCOMMANDS", "main"]


def main(argv: Sequence[str] | None = None, *, reranker_factory: RerankerFactory | None = None) -> int:
    """Entry point of the ``prism-rerank`` console script.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv[1:]`` (the console script).
        reranker_factory: Builds the reranker from the model options (tests inject a fake); passed on
            to the command that runs.

    Returns:
        The exit status. A subcommand whose module is not installed exits with 2 and says so; an
        interrupted command exits with 130. Run as the console script (``argv=None``), an
        interrupted command exits at once, without waiting for a forward pass still running on the
        engine's thread (its result is no longer wanted, and the interpreter must not shut down
        under it).
    """
    console = argv is None
    try:
        status = _dispatch(list(sys.argv[1:] if argv is None else argv), reranker_factory)
    except KeyboardInterrupt:
        print("\nprism-rerank: interrupted", file=sys.stderr)
        status = 130
    if console and status == 130:
        _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _dispatch(argv: list[str], reranker_factory: RerankerFactory | None) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        name, rest = argv[0], argv[1:]
        module_name = f"{__name__}.{name}"
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name == module_name:
                print(
                    f"prism-rerank: error: the {name!r} subcommand is not available in this installation "
                    f"({module_name} is missing)",
                    file=sys.stderr,
                )
                return 2
            # A dependency of the subcommand is missing (its message names the extra to install).
            print(f"prism-rerank {name}: error: {exc}", file=sys.stderr)
            return 1
        if reranker_factory is None:
            return int(module.main(rest))
        return int(module.main(rest, reranker_factory=reranker_factory))

    from prism_core.cli.rerank import main as rerank_main

    return rerank_main(argv, reranker_factory=reranker_factory)
