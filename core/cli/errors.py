"""How the ``prism-rerank`` commands sort what goes wrong into two kinds.

- :class:`OptionError`: the options are wrong; a command reports it like argparse does
  (``prism-rerank: error: ...``), exit status 2.
- :class:`ModelUnavailable`: the options are fine but the model cannot be had; one line, exit status 1.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec

from prism_core.protocol import Reranker

if TYPE_CHECKING:
    from prism_core.cli.options import ModelOptions

P = ParamSpec("P")


class OptionError(ValueError):
    """The model options are wrong; report like argparse (``prog: error: message``, exit 2)."""


class ModelUnavailable(Exception):
    """The reranker could not be built or loaded; the message is ready for stderr (exit 1)."""


class CommandFailed(Exception):
    """A command stops with this exit status, its message already on stderr."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@contextmanager
def failures_reported(
    parser: argparse.ArgumentParser,
    prog: str,
    *,
    invalid: tuple[type[BaseException], ...] = (),
    unavailable: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """Report what goes wrong inside the one way every command does.

    An :class:`OptionError` (or one of ``invalid``) is reported as argparse does and exits with
    status 2; a :class:`ModelUnavailable` (or one of ``unavailable``) is one line on stderr, then
    :class:`CommandFailed` with status 1 (a command decorated with :func:`exits_with_status` returns it).

    Example:
        >>> parser = argparse.ArgumentParser(prog="x")
        >>> with failures_reported(parser, "x"):  # doctest: +SKIP
        ...     raise ModelUnavailable("no weights")  # prints "x: error: no weights", status 1
    """
    try:
        yield
    except OptionError as exc:
        parser.error(str(exc))  # exits with status 2
    except invalid as exc:
        parser.error(one_line(exc))
    except BaseException as exc:
        if not isinstance(exc, (ModelUnavailable, *unavailable)):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise CommandFailed(1) from None


def exits_with_status(command: Callable[P, int]) -> Callable[P, int]:
    """A command that returns its exit status, also when :class:`CommandFailed` stops it.

    Example:
        >>> @exits_with_status
        ... def command() -> int:
        ...     raise CommandFailed(1)
        >>> command()
        1
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return command(*args, **kwargs)
        except CommandFailed as failed:
            return failed.status

    return run


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none).

    Example:
        >>> one_line(ValueError("bad\\n  value"))
        'bad value'
    """
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def check_backend_name(backend: str | None) -> None:
    """Refuse an unknown backend name before anything is built.

    Raises:
        OptionError: ``backend`` is not registered; the message lists the known backends.

    Example:
        >>> check_backend_name("prism")
        >>> check_backend_name("nope")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        OptionError: unknown backend 'nope'; known backends: prism, ...
    """
    from prism_core.errors import UnknownBackendError
    from prism_core.registry import BACKENDS, backend_class

    if backend is None or backend in BACKENDS:
        return
    try:
        backend_class(backend)  # raises with the registry's own message
    except UnknownBackendError as exc:
        raise OptionError(one_line(exc)) from None


def load_now(reranker: Reranker, options: ModelOptions) -> None:
    """Load the reranker's weights now, when it has a ``load()`` (idempotent), sorting failures.

    Args:
        reranker: What :func:`build_reranker` returned.
        options: The options it was built from (for messages).

    Raises:
        OptionError: The backend refused an option once its tokenizer was known (``max_length``
            below the exact prompt length): a usage error, exit 2.
        ModelUnavailable: Anything else that stops the model loading: exit 1.
    """
    load = getattr(reranker, "load", None)
    if not callable(load):
        return
    try:
        load()
    except ValueError as exc:  # transformers' own errors come wrapped in ModelLoadError (an OSError)
        raise OptionError(one_line(exc)) from None
    except Exception as exc:
        raise ModelUnavailable(load_failure(options, exc)) from None


def load_failure(options: ModelOptions, exc: BaseException) -> str:
    """One line saying why the model cannot be loaded, naming it once.

    A :class:`~prism_core.errors.ModelLoadError` already names the model (and what to do): it is
    used as it is; anything else gets ``cannot load model '<model>': `` in front.

    Example:
        >>> from prism_core.cli.options import ModelOptions
        >>> load_failure(ModelOptions(model="m"), OSError("disk gone"))
        "cannot load model 'm': disk gone"
    """
    from prism_core.errors import ModelLoadError

    text = one_line(exc)
    if isinstance(exc, ModelLoadError) and text.startswith(("cannot load ", "could not load ")):
        return text
    return f"cannot load model {options.model_name!r}: {text}"
