"""Evaluation: what a reranker buys you on your own data (``prism-rerank eval``).

Load a BEIR-layout directory, a ``{query, documents, labels}`` JSONL or the built-in set; get
first-stage candidates (BM25, dense retrieval, a TREC run file, or the given documents); rerank
them with one or several systems; report nDCG@10, MRR@10 and Recall@k (``ir-measures``), paired
significance tests (SciPy), latency, throughput and, for evidence-generating backends, the tokens
the evidence swap saves. Needs ``pip install "prism-integrations[eval]"``.

Example:
    >>> from prism_core.evaluation import load_dataset
    >>> data = load_dataset("builtin")
    >>> len(data.queries)
    40
"""

from prism_core.evaluation.datasets import (
    BUILTIN,
    Document,
    EvalDataError,
    EvalSet,
    builtin_path,
    load_beir,
    load_dataset,
    load_jsonl,
    load_run,
)
from prism_core.evaluation.harness import (
    DEFAULT_CANDIDATES,
    DEFAULT_TOP_N,
    System,
    evaluate,
    first_stage,
    write_report,
)
from prism_core.evaluation.report import REPORT_FORMAT, build_report, render_markdown

__all__ = [
    "BUILTIN",
    "DEFAULT_CANDIDATES",
    "DEFAULT_TOP_N",
    "REPORT_FORMAT",
    "Document",
    "EvalDataError",
    "EvalSet",
    "System",
    "build_report",
    "builtin_path",
    "evaluate",
    "first_stage",
    "load_beir",
    "load_dataset",
    "load_jsonl",
    "load_run",
    "render_markdown",
    "write_report",
]
