"""``prism-rerank``: rerank JSON Lines from the command line, with any backend.

Input is JSON Lines, one query per line::

    {"query": "what do bees eat?", "documents": ["Bees feed on nectar ...", "..."]}

Output is JSON Lines too, one record per non-blank input line, in input order::

    {"line": 1, "query": "...", "results": [{"rank": 1, "index": 0, "score": 0.97, ...}, ...]}
    {"line": 2, "error": "invalid JSON: Expecting value: line 1 column 1 (char 0)"}

Each result is :meth:`prism_core.PrismResult.to_dict` plus its 1-based ``rank``; results are
sorted best first, cut by ``--threshold`` then ``--top-n`` for each query. Other keys of an input
object (an ``"id"``...) are ignored.

Budgets (optional): ``--time-budget S`` gives each query ``S`` seconds (fail-open: the line's
record holds what was done by then; results whose evidence was cut say ``evidence_skipped``,
unscored ones come last with ``scored: false``). ``--max-context-tokens N`` keeps, per query, the
best results whose returned text (the evidence when complete, else the document) fits ``N``
tokens of the model's tokenizer, skipping one that alone exceeds what is left; each kept result
gets ``context_tokens`` and the record lists ``dropped_by_budget`` (input indices), after the
quality rules when a quality prior is set.

Quality prior (optional): ``--quality-head H`` (repeatable: the heads are averaged),
``--quality-embedder E``, ``--min-quality X``, ``--quality-weight W``, ``--trust-remote-code`` put a
query-free quality score (JQL-Edu heads on document embeddings, raw scale 0–5) beside the
reranker's relevance. Each result then also has ``quality_score`` (the raw quality) and
``blended_score`` = ``(1 − W) · score + W · clip(quality_score / 5, 0, 1)`` (``score`` stays the raw
relevance). The rules, in order: results below ``--min-quality`` are dropped, the rest are ranked by
``blended_score``, cut by ``--threshold`` on ``blended_score``, then by ``--top-n``. With ``W = 0``
(the default) the order is the reranker's and ``blended_score`` equals ``score``. Quality is
computed only for documents that can still be returned, on the documents' original text. The
scorer is built before any input is read (a missing head file is an option error, exit 2) and
loaded at the first line that needs it (a load failure stops the run, exit 1).

Line accounting (every input line is accounted for, whatever its bytes):

- The input is read as bytes and only ``\\n`` ends a line; one ``\\r\\n`` or ``\\n`` line ending is
  removed, and any other ``\\r`` is data (inside a JSON string it is a character of the string,
  outside one it is JSON whitespace). Lines are numbered from 1, blank ones included.
- Each line is decoded as UTF-8 on its own. A UTF-8 byte-order mark at the start of a line is
  dropped. A line that is not valid UTF-8 gets an error record naming the offending byte and its
  offset in the line and in the input; the run goes on.
- A blank line (only spaces, tabs and carriage returns) is skipped and gets no record. Every other
  line gets exactly one record: its results, or ``{"line": N, "error": "..."}`` when it is not JSON,
  not a ``{"query": str, "documents": [str, ...]}`` object, holds text that cannot be encoded as
  UTF-8 (a lone surrogate such as ``"\\ud800"``, named: ``"query"`` or ``"documents"[i]``), or is
  refused by the engine (a blank query, a query longer than ``--max-length`` allows, non-finite
  scores). Each error is also written to stderr as ``prism-rerank: line N: ...``; the rest of the
  file is processed and the exit status is 1. With ``--fail-fast`` the first error record ends the
  run (exit 1).
- The output never overwrites the input: ``-o`` naming the input file (the same path, or the same
  file through a link), or standard output redirected into the input file, is refused as an option
  error before anything is written.
- A write error (a full disk...) stops the run with one message naming the input line to resume
  from, exit 1. An interrupted run (Ctrl-C) says which input line to resume from, the first line
  without an output record, and exits with 130; ``--start-line N`` then processes the rest with the
  original line numbers (``prism-rerank in.jsonl --start-line N -o rest.jsonl``).
- Option errors (an unknown ``--backend``, ``--max-length`` below the backend's fixed prompt length,
  an option the backend does not take) are reported like argparse's own, ``prism-rerank: error:
  ...``, exit 2, before any input is read (the engine is built first and loaded at the first line
  that needs it). A model that cannot be loaded is reported in one line, exit 1.

Exit statuses: 0 success, 1 a line failed, the model could not be loaded or the output could not
be written, 2 bad arguments or options, 130 interrupted.

Example:
    >>> from prism_core.cli.lines import parse_line
    >>> parse_line('{"query": "q", "documents": ["a", "b"]}')
    ('q', ['a', 'b'])
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import IO, Any

from prism_core.cli.demo_model import warn_random_weights_once
from prism_core.cli.errors import exits_with_status, failures_reported
from prism_core.cli.lines import (
    LineError,
    decode_line,
    parse_line,
    split_lines,
)
from prism_core.cli.options import (
    ModelOptions,
    ModelUnavailable,
    OptionError,
    QualityOptions,
    RerankerFactory,
    add_model_arguments,
    add_quality_arguments,
    build_quality_scorer,
    build_reranker,
    default_reranker_factory,
    one_line,
    positive_float,
    positive_int,
    probability,
)
from prism_core.cli.rerank_files import (
    OutputError,
    _binary_chunks,
    _close_quietly,
    _count_lines,
    _Writer,
    output_is_input,
)
from prism_core.cli.rerank_runner import PROG, _Runner
from prism_core.cli.terminal import setup_terminal

__all__ = [
    "PROG",
    "LineError",
    "ModelOptions",
    "ModelUnavailable",
    "OptionError",
    "RerankerFactory",
    "add_model_arguments",
    "build_parser",
    "decode_line",
    "default_reranker_factory",
    "main",
    "parse_line",
    "run",
]

LINE_ACCOUNTING_HELP = """\
line accounting:
  Only \\n ends a line (one \\r\\n or \\n ending is removed; any other \\r is data). Each line is
  decoded as UTF-8 on its own; a byte-order mark at the start of a line is dropped. Blank lines
  (spaces, tabs, \\r) are skipped; every other line gets exactly one output record, in order:
  its results, or {"line": N, "error": "..."} when it is not valid UTF-8 (the byte and its
  offset are named), not JSON, not a {"query", "documents"} object, holds a lone surrogate, or is
  refused by the engine. The run goes on after an error record (exit status 1 at the end) unless
  --fail-fast is given.
  The output never overwrites the input: -o naming the input file (or a link to it), or stdout
  redirected into it, is refused (exit 2) before anything is written. A write error (disk full)
  stops the run with the input line to resume from (exit 1); so does Ctrl-C (exit 130): rerun
  with --start-line N to process the rest, with the original line numbers.

quality prior:
  With --quality-head, each result also has "quality_score" (the heads' raw score, 0-5 scale,
  the mean over heads) and "blended_score" = (1 - W) * score + W * clip(quality_score / 5, 0, 1),
  W = --quality-weight ("score" stays the reranker's relevance). Rules, in order: --min-quality
  drops results below it; the rest are ranked by blended_score (best first), cut by --threshold
  on blended_score, then by --top-n. W = 0 (default) keeps the reranker's order. Quality is
  computed only for the documents that can still be returned, on their original text.

exit status:
  0 ok; 1 some line failed, the model (or the quality prior) could not be loaded or the output
  could not be written; 2 bad arguments or model options (unknown --backend, --max-length below
  the prompt's minimum, an option the backend does not take, a quality option without
  --quality-head, a missing head file), reported before any input is read; 130 interrupted.
"""


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for ``prism-rerank`` (the JSONL reranking command)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Rerank JSON Lines with Prism-Reranker, Qwen3-Reranker or a cross-encoder. Each input line is\n"
            '{"query": str, "documents": [str, ...]}; each output line carries the input line number and\n'
            "the results, best first.\n\n"
            "Subcommands: 'prism-rerank demo' (a built-in example; see 'prism-rerank demo --help'), and,\n"
            "where installed, 'serve', 'batch' and 'eval'. To rerank a file named like a subcommand,\n"
            "write it as ./demo."
        ),
        epilog=LINE_ACCOUNTING_HELP,
    )
    parser.add_argument(
        "input", nargs="?", default="-", help="JSONL file to read, or '-' for stdin (default: stdin)"
    )
    parser.add_argument(
        "-o",
        "--output",
        default="-",
        help="file to write JSONL results to, or '-' for stdout (default); refused when it is the input",
    )
    parser.add_argument("--top-n", type=positive_int, help="keep only the best N results per query")
    parser.add_argument(
        "--threshold", type=probability, help="drop results scoring below this value, in [0, 1]"
    )
    parser.add_argument(
        "--max-tokens-per-doc",
        type=positive_int,
        help="document tokens read per row (query and prompt not counted; default: what max_length leaves)",
    )
    parser.add_argument(
        "--long-documents",
        choices=("truncate", "chunk"),
        help="a document over its budget is cut ('truncate', the default: results say truncated) "
        "or read as overlapping windows scored by the best one ('chunk': results say chunk)",
    )
    parser.add_argument(
        "--max-context-tokens",
        type=positive_int,
        metavar="N",
        help="token budget per query: keep the best results whose returned text (the evidence when "
        "complete, else the document) fits N tokens of the model's tokenizer; a result that alone "
        "exceeds what is left is skipped and the next ones are tried. Each result gets "
        "context_tokens; the record lists dropped_by_budget (input indices)",
    )
    parser.add_argument(
        "--time-budget",
        type=positive_float,
        metavar="S",
        help="seconds per query (fail-open): return by then with what is done; unfinished evidence "
        "is flagged evidence_skipped, unscored documents come last with scored=false",
    )
    parser.add_argument(
        "--no-evidence",
        dest="evidence",
        action="store_false",
        help="scores and verdicts only: generate no contribution/evidence (much faster; "
        "score-only backends never generate)",
    )
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first line that gets an error record instead of reporting it and going on",
    )
    parser.add_argument(
        "--start-line",
        type=positive_int,
        default=1,
        metavar="N",
        help="skip input lines before N (output keeps the input's line numbers): to resume a run",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar on stderr"
    )
    add_model_arguments(parser)
    add_quality_arguments(parser)
    return parser


@exits_with_status
def run(
    args: argparse.Namespace,
    factory: RerankerFactory | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Rerank every line of ``args.input`` into ``args.output``.

    Args:
        args: Parsed command-line arguments (see :func:`build_parser`).
        factory: Builds the reranker (before any input is read); ``None`` uses
            :func:`prism_core.cli.options.default_reranker_factory`.
        parser: Reports option errors (exit 2); ``None`` builds :func:`build_parser`'s.

    Returns:
        The exit status: 0; 1 when a line failed, the model could not be loaded or the output could
        not be written; 2 for an option error found at load time; 130 when interrupted.

    Raises:
        SystemExit: With status 2, for an option error found before any input is read.
    """
    parser = parser or build_parser()
    if output_is_input(args.input, args.output):
        where = "standard output is" if args.output == "-" else f"-o {args.output!r} is"
        source_name = "standard input" if args.input == "-" else repr(args.input)
        parser.error(f"{where} the input file ({source_name}); refusing to overwrite the input")
    options = ModelOptions.from_args(args)
    quality_options = QualityOptions.from_args(args)
    show = setup_terminal(
        None if args.progress else False
    )  # bars only on a terminal, never with --no-progress
    with failures_reported(parser, PROG):
        quality = build_quality_scorer(quality_options, options.device)
        reranker = build_reranker(options, factory)
    warn_random_weights_once(options.model, PROG)

    from tqdm import tqdm

    with ExitStack() as stack:
        source: IO[Any] = sys.stdin
        sink: IO[str] = sys.stdout
        total = None
        try:
            if args.input != "-":
                source = stack.enter_context(open(args.input, "rb"))
                total = _count_lines(args.input)
        except OSError as exc:
            reason = exc.strerror or one_line(exc)
            print(f"{PROG}: error: cannot open input {args.input!r}: {reason}", file=sys.stderr)
            return 1
        try:
            if args.output != "-":
                sink = open(args.output, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
                stack.callback(_close_quietly, sink)  # after a write error: the error is reported already
        except OSError as exc:
            reason = exc.strerror or one_line(exc)
            print(f"{PROG}: error: cannot open output {args.output!r}: {reason}", file=sys.stderr)
            return 1

        bar = stack.enter_context(
            tqdm(total=total, desc=PROG, unit=" lines", file=sys.stderr, disable=not show, dynamic_ncols=True)
        )

        def log(message: str) -> None:
            if show:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr, flush=True)

        output_name = "standard output" if args.output == "-" else repr(args.output)
        runner = _Runner(args, options, reranker, _Writer(sink, output_name), log, quality, quality_options)

        def resume() -> str:
            return f"resume from input line {runner.next_line} (--start-line {runner.next_line})"

        try:
            for lineno, offset, body in split_lines(_binary_chunks(source)):
                if lineno >= args.start_line:
                    go_on = runner.process(lineno, offset, body)
                    if not go_on:
                        log(f"{PROG}: stopping at line {lineno} (--fail-fast)")
                        break
                bar.update(1)
            if sink is not sys.stdout:
                sink.close()  # now, so that a failing close (a full disk) is reported
        except KeyboardInterrupt:
            log(f"\n{PROG}: interrupted; {resume()}")
            return 130
        except OutputError as exc:
            log(f"{PROG}: error: {exc}; {resume()}")
            return 1
        except OSError as exc:  # reading the input or closing the output failed
            if isinstance(exc, BrokenPipeError):
                raise
            log(f"{PROG}: error: {exc.strerror or one_line(exc)}; {resume()}")
            return 1
        except OptionError as exc:  # found when the model loaded (exact prompt length)
            log(f"{PROG}: error: {exc}")
            return 2
        except ModelUnavailable as exc:  # resuming helps only once some line was written
            log(f"{PROG}: error: {exc}" + (f"; {resume()}" if runner.written else ""))
            return 1
    if runner.failed:
        print(f"{PROG}: {runner.failed} line(s) failed", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None, *, reranker_factory: RerankerFactory | None = None) -> int:
    """Entry point of ``prism-rerank`` without a subcommand (see :func:`prism_core.cli.main`).

    Args:
        argv: Command-line arguments without the program name; ``None`` reads ``sys.argv``.
        reranker_factory: Builds the reranker from the :class:`ModelOptions` (tests inject a fake);
            defaults to :func:`prism_core.cli.options.default_reranker_factory`.

    Returns:
        The exit status (argument and option errors exit with 2 through :class:`SystemExit`).

    Example:
        >>> main(["in.jsonl", "-o", "out.jsonl", "--backend", "qwen3-reranker"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        return run(parser.parse_args(argv), reranker_factory, parser)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - stdout without a descriptor
            pass
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
