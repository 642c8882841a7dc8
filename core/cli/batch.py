"""``prism-rerank batch``: rerank a JSONL or Parquet file on a Ray Data actor pool (resumable).

Usage::

    prism-rerank batch queries.jsonl -o results.jsonl --model infgrad/Prism-Qwen3.5-Reranker-0.8B \\
        --actors 4 \\
        --gpus-per-actor 1

One loaded model per actor; records are written as batches finish (each carries its input line
number); a rerun with the same ``-o`` skips the lines already there. A bad line gets
``{"line": N, "error": "..."}``, as in the main command. See :mod:`prism_core.serving.ray_batch`.

Exit statuses: 0 every line succeeded, 1 some line failed (its error record is in the output) or the
run failed, 2 bad arguments, 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from prism_core.cli.arg_types import non_negative_float
from prism_core.cli.demo_model import warn_random_weights_once
from prism_core.cli.errors import exits_with_status, failures_reported
from prism_core.cli.options import (
    ModelOptions,
    RerankerFactory,
    add_model_arguments,
    build_reranker,
    positive_int,
    probability,
)
from prism_core.cli.terminal import setup_terminal

PROG = "prism-rerank batch"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``prism-rerank batch``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Rerank a JSONL or Parquet file with a pool of Ray Data actors (one model each); "
        "resumable.",
        epilog="Exit status: 0 ok, 1 some line failed or the run failed, 2 bad arguments, 130 interrupted.",
    )
    parser.add_argument("input", help='JSONL ({"query": str, "documents": [str]} per line) or Parquet file')
    parser.add_argument("-o", "--output", required=True, help="JSONL output (appended to when resuming)")
    parser.add_argument(
        "--format", choices=("jsonl", "parquet"), help="input format (default: from the name)"
    )
    parser.add_argument(
        "--actors", type=positive_int, default=1, help="actors, one loaded model each (default 1)"
    )
    parser.add_argument(
        "--gpus-per-actor", type=non_negative_float, default=0.0, help="GPUs per actor (default 0)"
    )
    parser.add_argument(
        "--cpus-per-actor", type=non_negative_float, default=1.0, help="CPUs per actor (default 1)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, help="lines per actor batch (default 16)"
    )
    parser.add_argument("--top-n", type=positive_int, help="keep only the best N results per line")
    parser.add_argument("--threshold", type=probability, help="drop results scoring below this, in [0, 1]")
    parser.add_argument(
        "--no-evidence", dest="evidence", action="store_false", help="scores and verdicts only"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument(
        "--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)"
    )
    add_model_arguments(parser)
    return parser


@exits_with_status
def main(argv: Sequence[str] | None = None, *, reranker_factory: RerankerFactory | None = None) -> int:
    """Entry point of ``prism-rerank batch``.

    Args:
        argv: Arguments after ``batch``; ``None`` reads ``sys.argv[2:]``.
        reranker_factory: Checks the model options in this process (tests inject one); the actors
            build their own engines from the options.

    Returns:
        The exit status (argument errors exit with 2 through :class:`SystemExit`).

    Example:
        >>> main(["in.jsonl", "-o", "out.jsonl", "--model", "m", "--actors", "2"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[2:] if argv is None else argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = ModelOptions.from_args(args)
    setup_terminal(None if args.progress else False)
    with failures_reported(parser, PROG, invalid=(ValueError, TypeError)):
        build_reranker(options, reranker_factory)  # constructs (loads nothing): option errors surface here
        config = options.engine_config()

    warn_random_weights_once(options.model, PROG)

    def log(message: str) -> None:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    try:
        from prism_core.serving.ray_batch import run_batch

        summary = run_batch(
            args.input,
            args.output,
            config,
            actors=args.actors,
            gpus_per_actor=args.gpus_per_actor,
            cpus_per_actor=args.cpus_per_actor,
            batch_size=args.batch_size,
            top_n=args.top_n,
            score_threshold=args.threshold,
            evidence=args.evidence,
            fmt=args.format,
            progress=None if args.progress else False,
            address=args.ray_address,
            log=log,
        )
    except ImportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except Exception as exc:  # a Ray failure (an actor could not load the model, ...)
        reason = " ".join(str(exc).split())[:2000]
        print(f"{PROG}: error: the batch run failed: {type(exc).__name__}: {reason}", file=sys.stderr)
        print(f"{PROG}: rerun the same command to resume", file=sys.stderr)
        return 1
    log(
        f"{summary.total} line(s): {summary.processed} processed now, {summary.skipped} already done, "
        f"{summary.failed} failed in all; output in {args.output}"
    )
    return 1 if summary.failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
