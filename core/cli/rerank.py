"""``prism-rerank``: rerank JSONL from the command line, or run the built-in demo.

Input is JSON Lines, one query per line::

    {"query": "what do bees eat?", "documents": ["Bees feed on nectar ...", "..."]}

Output is JSON Lines too, one line per non-blank input line, in input order::

    {"line": 1, "query": "...", "results": [{"rank": 1, "index": 0, "score": 0.97, ...}, ...]}

Each result is :meth:`prism_core.PrismResult.to_dict` plus its 1-based ``rank``; results are
sorted best first. A line that cannot be processed (invalid JSON, a missing or non-string
``query``, ``documents`` not a list of strings, ...) yields ``{"line": N, "error": "..."}`` in the
output and a message on stderr; the rest of the file is still processed and the exit status is 1.
With ``--fail-fast`` the first bad line stops the run (exit 1) after its error record is written.
Blank lines are skipped.

``prism-rerank demo`` runs a small built-in example end to end (see :mod:`prism_core.cli.demo`).

Exit statuses: 0 success, 1 a line failed or the model could not be loaded, 2 bad arguments,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any

from prism_core.protocol import Reranker
from prism_core.results import PrismResult

PROG = "prism-rerank"


@dataclass(frozen=True)
class ModelOptions:
    """How to build the reranker, as given on the command line.

    Attributes:
        model: Hugging Face model id or local path; ``None`` means the engine's default model.
        device: Torch device string (``"cuda"``, ``"cpu"``, ...); ``None`` lets the engine choose.
        dtype: Torch dtype name (``"bfloat16"``, ...); ``None`` lets the engine choose.
        max_length: Token budget for prompt plus document; ``None`` keeps the engine's default.
        max_new_tokens: Generation budget per document; ``None`` keeps the engine's default.
    """

    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    max_length: int | None = None
    max_new_tokens: int | None = None

    @property
    def model_name(self) -> str:
        """The model as it should appear in messages (the default model's id when unset)."""
        if self.model is not None:
            return self.model
        try:
            from prism_core import DEFAULT_MODEL
        except ImportError:  # pragma: no cover - only while the engine is missing
            return "<default model>"
        return DEFAULT_MODEL


RerankerFactory = Callable[[ModelOptions], Reranker]
"""Builds a *loaded* reranker; raises :class:`OSError` (e.g. ``ModelLoadError``) when it cannot."""


def default_reranker_factory(options: ModelOptions) -> Reranker:
    """Build and load a :class:`prism_core.PrismReranker` from ``options``.

    Args:
        options: Model, device, dtype and budgets from the command line.

    Returns:
        The loaded reranker.

    Raises:
        prism_core.errors.ModelLoadError: The model cannot be loaded.
    """
    from prism_core import DEFAULT_MODEL, PrismReranker

    kwargs: dict[str, Any] = {"device": options.device, "dtype": options.dtype, "show_progress": False}
    if options.max_length is not None:
        kwargs["max_length"] = options.max_length
    if options.max_new_tokens is not None:
        kwargs["max_new_tokens"] = options.max_new_tokens
    reranker = PrismReranker(options.model or DEFAULT_MODEL, **kwargs)
    reranker.load()
    return reranker


class LineError(ValueError):
    """An input line that cannot be processed; the message says why (without the line number)."""


class ModelUnavailable(Exception):
    """The reranker could not be built; the message is ready for stderr."""


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


DTYPES = ("bfloat16", "float16", "float32")


def add_model_arguments(parser: argparse.ArgumentParser, *, budgets: bool = True) -> None:
    """Add the model-loading options shared by ``prism-rerank`` and ``prism-rerank demo``.

    Args:
        parser: The parser to extend.
        budgets: Also add ``--max-length`` and ``--max-new-tokens``.
    """
    group = parser.add_argument_group("model")
    group.add_argument("--model", help="Hugging Face model id or local path (default: the engine's default)")
    group.add_argument("--device", help='torch device, e.g. "cuda", "cuda:1", "cpu" (default: auto)')
    group.add_argument("--dtype", choices=DTYPES, help="weights dtype (default: auto)")
    if budgets:
        group.add_argument(
            "--max-length", type=_positive_int, help="token budget for prompt plus document (default: 10240)"
        )
        group.add_argument(
            "--max-new-tokens", type=_positive_int, help="generation budget per document (default: 1024)"
        )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for ``prism-rerank`` (the JSONL reranking command)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            'Rerank JSONL with Prism-Reranker. Each input line is {"query": str, "documents": [str, ...]}; '
            "each output line carries the input line number and the results, best first."
        ),
        epilog=(
            f"Run '{PROG} demo --help' for the built-in demo. "
            "Exit status: 0 ok, 1 some line failed or the model could not be loaded, 2 bad arguments."
        ),
    )
    parser.add_argument(
        "input", nargs="?", default="-", help="JSONL file to read, or '-' for stdin (default: stdin)"
    )
    parser.add_argument(
        "-o", "--output", default="-", help="file to write JSONL results to, or '-' for stdout (default)"
    )
    parser.add_argument("--top-n", type=_positive_int, help="keep only the best N results per query")
    parser.add_argument(
        "--threshold", type=_probability, help="drop results scoring below this value, in [0, 1]"
    )
    parser.add_argument(
        "--no-evidence",
        dest="evidence",
        action="store_false",
        help="scores and verdicts only: generate no contribution/evidence (much faster)",
    )
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first bad line instead of reporting and going on",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar on stderr"
    )
    add_model_arguments(parser)
    return parser


# --------------------------------------------------------------------------------------------
# JSONL processing
# --------------------------------------------------------------------------------------------


def parse_line(text: str) -> tuple[str, list[str]]:
    """Validate one input line and return its query and documents.

    Args:
        text: The line, without its line ending.

    Returns:
        ``(query, documents)``.

    Raises:
        LineError: The line is not valid JSON or not a valid request.

    Example:
        >>> parse_line('{"query": "q", "documents": ["a", "b"]}')
        ('q', ['a', 'b'])
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise LineError(f'expected a JSON object {{"query": ..., "documents": [...]}}, got {_json_type(obj)}')
    if "query" not in obj:
        raise LineError('missing "query"')
    query = obj["query"]
    if not isinstance(query, str):
        raise LineError(f'"query" must be a string, got {_json_type(query)}')
    if "documents" not in obj:
        raise LineError('missing "documents"')
    documents = obj["documents"]
    if not isinstance(documents, list):
        raise LineError(f'"documents" must be a list of strings, got {_json_type(documents)}')
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise LineError(f'"documents"[{i}] must be a string, got {_json_type(doc)}')
    return query, documents


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - json.loads yields nothing else


def _count_lines(path: str) -> int | None:
    """Number of lines in a regular file (for the progress bar), or ``None``."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


class _Writer:
    """Writes JSONL records, flushing each line so results stream through pipes."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        self._ascii = encoding not in ("utf8", "utf8sig", "")

    def write(self, record: dict[str, Any]) -> None:
        self._stream.write(json.dumps(record, ensure_ascii=self._ascii) + "\n")
        self._stream.flush()


class _Runner:
    """Processes input lines one at a time, loading the reranker on the first valid line."""

    def __init__(
        self,
        args: argparse.Namespace,
        factory: RerankerFactory,
        writer: _Writer,
        log: Callable[[str], None],
    ) -> None:
        self.args = args
        self.factory = factory
        self.writer = writer
        self.log = log
        self.options = ModelOptions(
            model=args.model,
            device=args.device,
            dtype=args.dtype,
            max_length=args.max_length,
            max_new_tokens=args.max_new_tokens,
        )
        self._reranker: Reranker | None = None
        self.failed = 0

    def reranker(self) -> Reranker:
        if self._reranker is None:
            try:
                self._reranker = self.factory(self.options)
            except (OSError, ValueError) as exc:  # ModelLoadError is an OSError
                raise ModelUnavailable(
                    f"cannot load model {self.options.model_name!r}: {_one_line(exc)}"
                ) from None
        return self._reranker

    def process(self, lineno: int, text: str) -> bool:
        """Handle one non-blank line; return ``False`` when the run must stop (fail-fast)."""
        try:
            query, documents = parse_line(text)
            results = self._rerank(query, documents)
        except LineError as exc:
            self.failed += 1
            self.writer.write({"line": lineno, "error": str(exc)})
            self.log(f"{PROG}: line {lineno}: {exc}")
            return not self.args.fail_fast
        self.writer.write(
            {
                "line": lineno,
                "query": query,
                "results": [{"rank": rank, **r.to_dict()} for rank, r in enumerate(results, 1)],
            }
        )
        return True

    def _rerank(self, query: str, documents: list[str]) -> list[PrismResult]:
        if not documents:
            return []
        reranker = self.reranker()
        try:
            return reranker.rerank(
                query,
                documents,
                top_n=self.args.top_n,
                score_threshold=self.args.threshold,
                evidence=self.args.evidence,
            )
        except (ValueError, TypeError) as exc:
            raise LineError(_one_line(exc)) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _numbered_lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for lineno, line in enumerate(stream, 1):
        yield lineno, line.rstrip("\r\n")


def run(args: argparse.Namespace, factory: RerankerFactory) -> int:
    """Rerank every line of ``args.input`` into ``args.output``.

    Args:
        args: Parsed command-line arguments (see :func:`build_parser`).
        factory: Builds the loaded reranker, called once, on the first valid line.

    Returns:
        The exit status: 0, or 1 when a line failed or the model could not be loaded.
    """
    from tqdm import tqdm

    with ExitStack() as stack:
        source: IO[str] = sys.stdin
        sink: IO[str] = sys.stdout
        total = None
        for role, path in (("input", args.input), ("output", args.output)):
            if path == "-":
                continue
            try:
                if role == "input":
                    source = stack.enter_context(open(path, encoding="utf-8"))
                    total = _count_lines(path)
                else:
                    sink = stack.enter_context(open(path, "w", encoding="utf-8"))
            except OSError as exc:
                print(f"{PROG}: error: cannot open {role} {path!r}: {exc.strerror or exc}", file=sys.stderr)
                return 1

        show = bool(args.progress) and sys.stderr.isatty()
        bar = stack.enter_context(
            tqdm(total=total, desc=PROG, unit=" lines", file=sys.stderr, disable=not show, dynamic_ncols=True)
        )

        def log(message: str) -> None:
            if show:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr, flush=True)

        runner = _Runner(args, factory, _Writer(sink), log)
        try:
            for lineno, text in _numbered_lines(source):
                go_on = runner.process(lineno, text) if text.strip() else True
                bar.update(1)
                if not go_on:
                    log(f"{PROG}: stopping at line {lineno} (--fail-fast)")
                    break
        except UnicodeDecodeError as exc:
            log(f"{PROG}: error: input is not valid UTF-8: {exc}")
            return 1
        except ModelUnavailable as exc:
            log(f"{PROG}: error: {exc}")
            return 1
    if runner.failed:
        print(f"{PROG}: {runner.failed} line(s) failed", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None, *, reranker_factory: RerankerFactory | None = None) -> int:
    """Entry point of ``prism-rerank``.

    Args:
        argv: Command-line arguments without the program name; ``None`` reads ``sys.argv``.
        reranker_factory: Builds the loaded reranker (tests inject a fake); defaults to
            :func:`default_reranker_factory`.

    Returns:
        The exit status (argument errors exit with 2 through :class:`SystemExit`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    factory = reranker_factory or default_reranker_factory
    try:
        if argv[:1] == ["demo"]:
            from prism_core.cli import demo

            return demo.main(argv[1:], reranker_factory=reranker_factory)
        return run(build_parser().parse_args(argv), factory)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
