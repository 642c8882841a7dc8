"""Loading a BEIR-layout directory: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

See :mod:`prism_core.evaluation.datasets` for the format.
"""

from __future__ import annotations

import os
from pathlib import Path

from prism_core.evaluation.eval_set import Document, EvalDataError, EvalSet
from prism_core.evaluation.jsonl_fields import _identified, _label, _lines, _text


# ------------------------------------------------------------------------------------- BEIR
def load_corpus(path: str | os.PathLike[str]) -> dict[str, Document]:
    """Read a BEIR ``corpus.jsonl``: ``{"_id", "text", "title"?}`` per line.

    Raises:
        EvalDataError: Missing file, bad JSON, a missing or duplicate ``_id``, a document with
            neither title nor text (file and line named).
    """
    file = Path(path)
    documents: dict[str, Document] = {}
    for number, obj, doc_id in _identified(file, "document"):
        text = _text(obj, "text", file, number)
        title = _text(obj, "title", file, number, required=False)
        if not text.strip() and not title.strip():
            raise EvalDataError(f"document {doc_id!r} has no text", path=file, line=number)
        documents[doc_id] = Document(doc_id, text, title)
    if not documents:
        raise EvalDataError("no documents", path=file)
    return documents


def load_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl``: ``{"_id", "text"}`` per line.

    Raises:
        EvalDataError: Missing file, bad JSON, a missing or duplicate ``_id``, an empty query.
    """
    file = Path(path)
    queries: dict[str, str] = {}
    for number, obj, query_id in _identified(file, "query"):
        text = _text(obj, "text", file, number)
        if not text.strip():
            raise EvalDataError(f"query {query_id!r} is empty", path=file, line=number)
        queries[query_id] = text
    if not queries:
        raise EvalDataError("no queries", path=file)
    return queries


def load_qrels(
    path: str | os.PathLike[str],
    queries: dict[str, str] | None = None,
    documents: dict[str, Document] | None = None,
) -> dict[str, dict[str, int]]:
    """Read qrels: BEIR TSV (``query-id corpus-id score``, header optional) or TREC (``qid iter docid rel``).

    Columns are split on tabs, or on whitespace when a line has no tab.

    Args:
        path: The qrels file.
        queries: When given, a judgment for a query not in it is an error.
        documents: When given, a judgment for a document not in it is an error.

    Raises:
        EvalDataError: Missing file, a wrong column count, a bad label, an unknown or duplicate
            (query, document) pair (file and line named).
    """
    file = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    first = True
    for number, line in _lines(file):
        is_first, first = first, False
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if len(parts) not in (3, 4):
            raise EvalDataError(
                f"expected 3 columns (query-id, corpus-id, score) or 4 (TREC: qid iter docid rel), "
                f"got {len(parts)}: {line!r:.80}",
                path=file,
                line=number,
            )
        query_id, doc_id, raw = (
            (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], parts[2], parts[3])
        )
        if is_first and not _is_int(raw):
            continue  # the header line
        label = _label(raw, file, number, "relevance score")
        if queries is not None and query_id not in queries:
            raise EvalDataError(f"query id {query_id!r} is not in the queries file", path=file, line=number)
        if documents is not None and doc_id not in documents:
            raise EvalDataError(f"document id {doc_id!r} is not in the corpus", path=file, line=number)
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            raise EvalDataError(f"duplicate judgment for ({query_id!r}, {doc_id!r})", path=file, line=number)
        judged[doc_id] = label
    if not qrels:
        raise EvalDataError("no judgments", path=file)
    return qrels


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def load_beir(directory: str | os.PathLike[str], split: str = "test") -> EvalSet:
    """Load a BEIR-layout directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

    Args:
        directory: The dataset directory (for example an unzipped BEIR download).
        split: The qrels split to evaluate.

    Raises:
        EvalDataError: A missing file (the available splits are listed) or a bad line.

    Example:
        >>> data = load_beir(builtin_path())
        >>> data.split, data.format
        ('test', 'beir')
    """
    root = Path(directory)
    if not root.is_dir():
        raise EvalDataError("not a directory (expected a BEIR-layout dataset)", path=root)
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        available = (
            sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        )
        hint = f"; available splits: {', '.join(available)}" if available else "; no qrels/*.tsv found"
        raise EvalDataError(f"qrels for split {split!r} not found{hint}", path=qrels_file)
    documents = load_corpus(root / "corpus.jsonl")
    queries = load_queries(root / "queries.jsonl")
    qrels = load_qrels(qrels_file, queries, documents)
    # Only the split's queries, in the queries file's order.
    split_queries = {q: t for q, t in queries.items() if q in qrels}
    return EvalSet(
        name=root.resolve().name,
        format="beir",
        source=str(root),
        documents=documents,
        queries=split_queries,
        qrels=qrels,
        split=split,
        judgments=sum(len(j) for j in qrels.values()),
        queries_in_file=len(queries),
    )
