"""``prism-rerank demo``: a small built-in example, end to end, printed as a table, for any backend.

The demo reranks six short documents for one question, some relevant and some not, and prints rank,
score, verdict and, for a backend that generates (Prism), the one-sentence contribution and the
evidence's length against the original document's, both in the model's tokens. ``--backend`` picks
the backend (``prism``, the default, ``qwen3-reranker`` or ``cross-encoder``); where its default
weights cannot be fetched (no network) the demo falls back to a tiny, locally built, random-weight
model of that backend (:mod:`prism_core.cli.demo_model`) and says so loudly: the pipeline then runs,
but its output means nothing.

From a checkout (editable install) it then runs the framework examples in ``examples/`` whose
framework is installed (``--no-frameworks`` skips them), with the same model and backend; an example
whose command line does not take ``--backend`` is skipped, with a note, for a backend other than
Prism.

Example:
    >>> from prism_core.cli.demo import main
    >>> main(["--backend", "cross-encoder", "--no-frameworks"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from prism_core.cli.demo_model import DEMO_BACKENDS, DEMO_MODELS, DemoModel, mark_banner_shown
from prism_core.cli.errors import exits_with_status, failures_reported
from prism_core.cli.options import (
    ModelOptions,
    RerankerFactory,
    add_model_arguments,
    build_reranker,
    load_now,
    one_line,
)
from prism_core.cli.terminal import setup_terminal
from prism_core.results import PrismResult

PROG = "prism-rerank"

ModelResolver = Callable[[str | None, str | None], DemoModel]
""":func:`prism_core.cli.demo_model.resolve_demo`'s signature: (model, backend) -> what to run."""

DEMO_QUERY = "How do honeybees tell their nestmates where to find food?"

DEMO_DOCUMENTS: tuple[str, ...] = (
    "Forager honeybees perform a waggle dance on the vertical comb: the angle of the waggle run "
    "from vertical gives the direction of the food relative to the sun, and the run's duration "
    "encodes the distance, about one second per kilometre.",
    "Honey is made from flower nectar that bees regurgitate and fan in the hive until its water "
    "content drops below about 18 percent.",
    "For flowers closer than roughly 50 metres a returning bee performs a round dance instead, "
    "which says that food is near without giving a direction; the scent on her body tells "
    "recruits which flowers to look for.",
    "The Great Wall of China is more than 21,000 kilometres long when all of its branches, built "
    "over two millennia, are counted.",
    "Karl von Frisch shared the 1973 Nobel Prize in Physiology or Medicine for decoding the "
    "honeybee dance language.",
    "Bumblebees do not dance: a successful forager runs excitedly around the nest and releases a "
    "pheromone that sends nestmates out searching, but it conveys no location.",
)

# (framework name, example file in examples/, module whose presence means "installed")
FRAMEWORK_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("LangChain", "langchain_example.py", "langchain_core"),
    ("LlamaIndex", "llama_index_example.py", "llama_index.core"),
    ("Haystack", "haystack_example.py", "haystack"),
)

FALLBACK_MAX_NEW_TOKENS = 128
"""Generation budget for the random-weight fallback when none is given: its text is noise."""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for ``prism-rerank demo``."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} demo",
        description=(
            "Rerank a small built-in example with one backend (--backend prism, qwen3-reranker or "
            "cross-encoder; default prism) and print the results as a table; then run the framework "
            "examples (LangChain, LlamaIndex, Haystack) that are installed, when run from a checkout. "
            "Where the backend's default weights cannot be fetched, a tiny random-weight model of that "
            "backend stands in (loudly flagged: its output is then meaningless)."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bars (default: progress bars only when stderr is a terminal)",
    )
    parser.add_argument(
        "--frameworks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the framework examples from examples/ when found (default: on)",
    )
    return parser


def find_examples_dir() -> Path | None:
    """The repository's ``examples/`` directory next to the package, when run from a checkout."""
    import prism_core

    package_dir = (
        Path(prism_core.__file__).resolve().parent
        if getattr(prism_core, "__file__", None)
        else Path(__file__).resolve().parent
    )
    candidate = package_dir.parent / "examples"
    return candidate if candidate.is_dir() else None


def _default_resolver(model: str | None, backend: str | None) -> DemoModel:
    from prism_core.cli.demo_model import resolve_demo

    return resolve_demo(model, backend)


def fallback_banner(
    model_path: str, width: int, *, requested: str | None = None, backend: str | None = None
) -> str:
    """The loud warning printed when the demo runs a tiny random-weight model.

    Args:
        model_path: Where the tiny model lives.
        width: Terminal width to fit the banner to.
        requested: The model that could not be fetched (``None``: the backend's demo model).
        backend: The backend the tiny model stands in for (``None``: Prism).

    Returns:
        The banner, several lines, without a trailing newline.
    """
    backend = backend or "prism"
    wanted = requested or DEMO_MODELS.get(backend, "the default model")
    width = max(60, min(width, 100))
    inner = width - 6
    if requested is not None and requested == model_path:
        why = [f"The {backend} model given is a tiny locally built model with RANDOM weights: {model_path}"]
    else:
        why = [
            f"The {backend} weights ({wanted}) could not be fetched (no network?).",
            f"This demo runs a tiny locally built {backend} model with RANDOM weights instead: {model_path}",
        ]
    body = [
        "OFFLINE FALLBACK: TINY RANDOM-WEIGHT MODEL",
        "",
        *why,
        "",
        "ITS SCORES, VERDICTS, CONTRIBUTIONS AND EVIDENCE ARE MEANINGLESS."
        if backend == "prism"
        else "ITS SCORES AND VERDICTS ARE MEANINGLESS.",
        "It only shows that the pipeline runs end to end.",
    ]
    lines = ["!" * width]
    for paragraph in body:
        for line in textwrap.wrap(paragraph, inner, break_on_hyphens=False) or [""]:
            lines.append(f"!! {line.ljust(inner)} !!")
    lines.append("!" * width)
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render_table(
    results: Sequence[PrismResult], documents: Sequence[str], width: int, *, evidence: bool = True
) -> str:
    """Format reranked results as a fixed-width table that fits ``width`` columns.

    Args:
        results: Results, best first.
        documents: The documents the results index into.
        width: Terminal width.
        evidence: Show the evidence and contribution columns (off for a score-only backend).

    Returns:
        The table, header and one row per result, without a trailing newline.

    Example:
        >>> r = PrismResult(index=1, score=0.91, logit=2.3, relevant=True, contribution="Bees dance.",
        ...                 evidence="Bees dance.", evidence_complete=True, document_tokens=8,
        ...                 evidence_tokens=3)
        >>> print(render_table([r], ["x", "Bees dance to say where food is."], 80))
         #  score  verdict    doc  tokens ev/doc  document        contribution
         1  0.910  relevant    #1            3/8  Bees dance to…  Bees dance.
        >>> print(render_table([r], ["x", "Bees dance to say where food is."], 60, evidence=False))
         #  score  verdict    doc  document
         1  0.910  relevant    #1  Bees dance to say where food is.
    """
    width = max(width, 60)
    fixed = f"{'#':>2}  {'score':>5}  {'verdict':<8}  {'doc':>4}  "
    if evidence:
        fixed += f"{'tokens ev/doc':>13}  "
    flexible = width - len(fixed) - 2
    doc_width = max(8, flexible * 2 // 5) if evidence else max(8, flexible + 2)
    contribution_width = max(8, flexible - doc_width)
    header = fixed + f"{'document':<{doc_width}}"
    if evidence:
        header += f"  {_clip('contribution', contribution_width)}"
    rows = [header.rstrip()]
    for rank, r in enumerate(results, 1):
        original = documents[r.index]
        verdict = "relevant" if r.relevant else "no"
        doc = f"#{r.index}" + ("*" if r.truncated else "")
        row = f"{rank:>2}  {r.score:>5.3f}  {verdict:<8}  {doc:>4}  "
        if evidence:
            doc_tokens = "?" if r.document_tokens is None else str(r.document_tokens)
            if r.evidence is None:
                lengths = f"-/{doc_tokens}" if r.relevant else ""
            else:
                ev_tokens = "?" if r.evidence_tokens is None else str(r.evidence_tokens)
                lengths = f"{ev_tokens}/{doc_tokens}"
                if not r.evidence_complete:
                    lengths = "cut " + lengths
            contribution = r.contribution or ("(none)" if r.relevant else "")
            row += f"{lengths:>13}  {_clip(original, doc_width):<{doc_width}}  "
            row += _clip(contribution, contribution_width)
        else:
            row += _clip(original, doc_width)
        rows.append(row.rstrip())
    if any(r.truncated for r in results):
        rows.append(_clip("* document truncated to fit the token budget (--max-length)", width))
    return "\n".join(rows)


def _top_evidence(results: Sequence[PrismResult], documents: Sequence[str], width: int) -> str | None:
    best = next((r for r in results if r.relevant and r.evidence), None)
    if best is None or best.evidence is None:
        return None
    wrap = max(40, min(width, 100)) - 4
    original = documents[best.index]
    doc_tokens = "?" if best.document_tokens is None else best.document_tokens
    ev_tokens = "?" if best.evidence_tokens is None else best.evidence_tokens
    parts = [
        f"Best document (#{best.index}), original ({doc_tokens} tokens):",
        textwrap.indent(textwrap.fill(original, wrap), "    "),
        f"Its evidence ({ev_tokens} tokens{'' if best.evidence_complete else ', cut by budget'}):",
        textwrap.indent(textwrap.fill(best.evidence, wrap), "    "),
    ]
    return "\n".join(parts)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _load_example(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_prism_example_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_takes_backend(module: ModuleType) -> bool:
    """Whether an example's command line takes ``--backend`` (its ``--help`` names it)."""
    text = io.StringIO()
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(io.StringIO()):
            module.main(["--help"])
    except SystemExit:
        pass
    except Exception:  # an example that cannot even print its help cannot take the option
        return False
    return "--backend" in text.getvalue()


def run_framework_examples(
    directory: Path, model: str, max_new_tokens: int | None = None, backend: str | None = None
) -> int:
    """Run each framework example in ``directory`` whose framework is installed.

    Each example is loaded from its file and its ``main(["--model", model, ...])`` called; a missing
    framework or file is skipped with a note. For a backend other than Prism, ``--backend`` is
    passed on; an example whose command line does not take it is skipped with a note (it would run
    the model as a Prism checkpoint).

    Args:
        directory: The repository's ``examples/`` directory.
        model: Model id or path to pass to every example.
        max_new_tokens: Generation budget to pass on (``None``: each example's default).
        backend: The backend to pass on (``None`` or ``"prism"``: the examples' default, Prism).

    Returns:
        How many examples failed.
    """
    failures = 0
    for name, filename, module in FRAMEWORK_EXAMPLES:
        path = directory / filename
        print()
        if not path.is_file():
            print(f"--- {name}: skipped ({path} not found)")
            continue
        if not _installed(module):
            print(f"--- {name}: skipped ({module} is not installed)")
            continue
        added = str(directory) not in sys.path
        if added:
            sys.path.insert(0, str(directory))
        try:
            argv = ["--model", model]
            if max_new_tokens is not None:
                argv += ["--max-new-tokens", str(max_new_tokens)]
            example = _load_example(path)
            if backend not in (None, "prism"):
                if not example_takes_backend(example):
                    print(f"--- {name}: skipped ({filename} does not take --backend yet)")
                    continue
                argv += ["--backend", str(backend)]
            print(f"--- {name}: {path}")
            sys.stdout.flush()
            status = example.main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception as exc:
            status = 1
            print(f"{name} example raised {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            if added:
                sys.path.remove(str(directory))
        if status:
            failures += 1
            print(f"--- {name}: FAILED (status {status})")
        else:
            print(f"--- {name}: ok")
    return failures


@exits_with_status
def main(
    argv: Sequence[str] | None = None,
    *,
    reranker_factory: RerankerFactory | None = None,
    resolve_model: ModelResolver | None = None,
    examples_dir: Path | None = None,
) -> int:
    """Entry point of ``prism-rerank demo``.

    Args:
        argv: Arguments after ``demo``; ``None`` reads ``sys.argv[2:]``.
        reranker_factory: Builds the reranker from the :class:`ModelOptions` (tests inject a fake);
            ``None`` uses :func:`prism_core.cli.options.default_reranker_factory`.
        resolve_model: Replaces :func:`prism_core.cli.demo_model.resolve_demo` (tests).
        examples_dir: The ``examples/`` directory to run; ``None`` looks next to the package.

    Returns:
        The exit status: 0, or 1 when the model could not be loaded or an example failed (bad
        arguments and options exit with 2 through :class:`SystemExit`).
    """
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[2:] if argv is None else argv))
    if args.backend is not None and args.backend not in DEMO_BACKENDS:
        parser.error(f"the demo runs --backend {', '.join(DEMO_BACKENDS)}; got {args.backend!r}")
    resolver = resolve_model or _default_resolver
    width = shutil.get_terminal_size((100, 24)).columns
    setup_terminal(args.progress)

    try:
        chosen = resolver(args.model, args.backend)
    except (OSError, ImportError) as exc:  # ModelLoadError included; ImportError: the fallback's package
        requested = args.model or DEMO_MODELS.get(args.backend or "prism", "the default model")
        print(f"{PROG} demo: error: cannot load model {requested!r}: {one_line(exc)}", file=sys.stderr)
        return 1
    model, fallback = chosen.model, chosen.fallback
    if fallback:
        print(fallback_banner(model, width, requested=args.model, backend=chosen.backend))
        print()
        mark_banner_shown()  # the examples run below, in this process, do not repeat it

    options = ModelOptions.from_args(args).replace(model=model, backend=chosen.backend)
    if fallback and options.max_new_tokens is None and chosen.backend in (None, "prism"):
        options = options.replace(max_new_tokens=FALLBACK_MAX_NEW_TOKENS)
    with failures_reported(parser, f"{PROG} demo"):
        reranker = build_reranker(options, reranker_factory)
    backend = getattr(reranker, "backend", None)
    backend = backend if isinstance(backend, str) else options.backend
    label = " (TINY RANDOM-WEIGHT FALLBACK)" if fallback else ""
    print(f"Model: {model}{label}" + (f", backend: {backend}" if backend else ""))
    print("Loading…", flush=True)
    with failures_reported(parser, f"{PROG} demo"):
        load_now(reranker, options)

    capabilities = getattr(reranker, "capabilities", None)
    generates = bool(getattr(capabilities, "evidence", True))
    documents = list(DEMO_DOCUMENTS)
    results = reranker.rerank(DEMO_QUERY, documents, evidence=generates)
    print()
    print(f"Query: {DEMO_QUERY}")
    print(f"{len(documents)} documents, best first" + ("" if generates else " (score-only backend)") + ":")
    print()
    print(render_table(results, documents, width, evidence=generates))
    evidence = _top_evidence(results, documents, width) if generates else None
    if evidence:
        print()
        print(evidence)

    failures = 0
    if args.frameworks:
        directory = examples_dir or find_examples_dir()
        if directory is None:
            print()
            print("Framework examples: skipped (no examples/ next to the package; run from a checkout).")
        else:
            failures = run_framework_examples(directory, model, options.max_new_tokens, backend)
    return 1 if failures else 0
