"""Loading evaluation data: BEIR-layout directories, ``{query, documents, labels}`` JSONL, TREC runs.

Two input formats are accepted:

- **BEIR layout**: a directory with ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line),
  ``queries.jsonl`` (``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``,
  ``score`` columns, tab-separated, with or without the header line; four-column TREC qrels
  ``qid iter docid label`` are read too). Only the queries judged in the split are evaluated.
- **JSONL**: one query per line, ``{"query": str, "documents": [str, ...], "labels": [int, ...]}``,
  with optional ``"id"`` (the query id) and ``"doc_ids"``. Each line's documents are that query's
  candidates, in the given order (the baseline ranking).

Labels are graded integers ``>= 0`` (``0`` not relevant; anything above counts as relevant for
MRR and recall; nDCG uses the grade as gain). Every problem is an :class:`EvalDataError` whose
message starts with ``file:line:``.

The built-in set (:func:`builtin_path`) is a small BEIR-layout set written for this project:
40 questions over 280 short passages, graded 0-2, each question with several near-miss passages.

Example:
    >>> data = load_dataset("builtin")
    >>> len(data.evaluated_query_ids()), len(data.documents)
    (40, 280)
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from prism_core.evaluation.beir import load_beir as load_beir
from prism_core.evaluation.beir import load_corpus as load_corpus
from prism_core.evaluation.beir import load_qrels as load_qrels
from prism_core.evaluation.beir import load_queries as load_queries
from prism_core.evaluation.eval_set import Document as Document
from prism_core.evaluation.eval_set import EvalDataError as EvalDataError
from prism_core.evaluation.eval_set import EvalSet as EvalSet
from prism_core.evaluation.jsonl_fields import _id, _json_object, _label, _lines, _parsed, _text

#: The name that selects the built-in evaluation set.
BUILTIN = "builtin"


# ------------------------------------------------------------------------------------- helpers
def builtin_path() -> Path:
    """The directory of the built-in evaluation set (BEIR layout, package data).

    Example:
        >>> (builtin_path() / "corpus.jsonl").is_file()
        True
    """
    return Path(str(files("prism_core.evaluation") / "data"))


# ------------------------------------------------------------------------------------- JSONL
def load_jsonl(path: str | os.PathLike[str]) -> EvalSet:
    """Load ``{"query", "documents", "labels", "id"?, "doc_ids"?}`` lines (blank lines skipped).

    Each line's ``documents`` are that query's candidates in order; ``labels`` grade them (same
    length, integers ``>= 0``). Query ids default to ``line<N>``; document ids to ``<query id>/<i>``.
    A ``doc_ids`` entry repeated across lines must carry the same text.

    Raises:
        EvalDataError: Missing file, bad JSON, a missing or empty query, an empty or non-string
            document list, labels of another length or not integers ``>= 0``, duplicate ids.

    Example:
        >>> import tempfile, json, os
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        >>> _ = f.write(json.dumps({"query": "q", "documents": ["a", "b"], "labels": [0, 2]}) + "\\n")
        >>> f.close()
        >>> load_jsonl(f.name).qrels
        {'line1': {'line1/0': 0, 'line1/1': 2}}
        >>> os.unlink(f.name)
    """
    file = Path(path)
    documents: dict[str, Document] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    candidates: dict[str, list[str]] = {}
    for number, line in _lines(file):
        obj = _json_object(file, number, line)
        query_id = _id(obj["id"], "id", file, number) if "id" in obj else f"line{number}"
        if query_id in queries:
            raise EvalDataError(f"duplicate query id {query_id!r}", path=file, line=number)
        query = _text(obj, "query", file, number)
        if not query.strip():
            raise EvalDataError("empty query", path=file, line=number)
        docs = obj.get("documents")
        if "documents" not in obj:
            raise EvalDataError("missing 'documents'", path=file, line=number)
        if not isinstance(docs, list) or not docs:
            raise EvalDataError("'documents' must be a non-empty list of strings", path=file, line=number)
        for i, doc in enumerate(docs):
            if not isinstance(doc, str):
                raise EvalDataError(
                    f"documents[{i}] must be a string, got {type(doc).__name__}", path=file, line=number
                )
        if "labels" not in obj:
            raise EvalDataError("missing 'labels'", path=file, line=number)
        labels = obj["labels"]
        if not isinstance(labels, list) or len(labels) != len(docs):
            size = len(labels) if isinstance(labels, list) else type(labels).__name__
            raise EvalDataError(
                f"'labels' must be a list as long as 'documents' ({len(docs)}), got {size}",
                path=file,
                line=number,
            )
        grades = [_label(v, file, number, f"labels[{i}]") for i, v in enumerate(labels)]
        if "doc_ids" in obj:
            ids = obj["doc_ids"]
            if not isinstance(ids, list) or len(ids) != len(docs):
                raise EvalDataError("'doc_ids' must be a list as long as 'documents'", path=file, line=number)
            doc_ids = [_id(v, f"doc_ids[{i}]", file, number) for i, v in enumerate(ids)]
        else:
            doc_ids = [f"{query_id}/{i}" for i in range(len(docs))]
        if len(set(doc_ids)) != len(doc_ids):
            raise EvalDataError("'doc_ids' must be unique within a line", path=file, line=number)
        for doc_id, text in zip(doc_ids, docs, strict=True):
            known = documents.get(doc_id)
            if known is not None and known.text != text:
                raise EvalDataError(
                    f"document id {doc_id!r} was given earlier with a different text", path=file, line=number
                )
            documents[doc_id] = Document(doc_id, text)
        queries[query_id] = query
        qrels[query_id] = dict(zip(doc_ids, grades, strict=True))
        candidates[query_id] = doc_ids
    if not queries:
        raise EvalDataError("no queries", path=file)
    return EvalSet(
        name=file.stem,
        format="jsonl",
        source=str(file),
        documents=documents,
        queries=queries,
        qrels=qrels,
        candidates=candidates,
        judgments=sum(len(j) for j in qrels.values()),
        queries_in_file=len(queries),
    )


def load_dataset(spec: str | os.PathLike[str] | None = None, *, split: str = "test") -> EvalSet:
    """Load ``"builtin"`` (or ``None``), a BEIR-layout directory, or a ``{query, documents, labels}`` JSONL.

    Args:
        spec: What to load.
        split: The qrels split for BEIR input.

    Raises:
        EvalDataError: The path does not exist, or its content is bad.

    Example:
        >>> load_dataset().name
        'builtin'
    """
    if spec is None or (isinstance(spec, str) and spec == BUILTIN):
        data = load_beir(builtin_path(), split)
        data.name = BUILTIN
        return data
    path = Path(spec)
    if path.is_dir():
        return load_beir(path, split)
    if not path.exists():
        raise EvalDataError(
            "not found (expected a BEIR-layout directory, a JSONL file, or 'builtin')", path=path
        )
    return load_jsonl(path)


# ------------------------------------------------------------------------------------- TREC run
def load_run(path: str | os.PathLike[str], data: EvalSet) -> dict[str, list[tuple[str, float]]]:
    """Read a TREC run file (``qid Q0 docid rank score tag``), best first per query.

    Each query's documents are sorted by score (descending), ties by the file's rank column, then
    by order of appearance. Queries not in ``data`` are ignored (a run often covers every split).

    Raises:
        EvalDataError: Missing file, a wrong column count, a bad rank or score, a document not in
            the corpus, a document listed twice for one query (file and line named).
    """
    file = Path(path)
    rows: dict[str, list[tuple[float, int, int, str]]] = {}
    seen: dict[str, set[str]] = {}
    for number, line in _lines(file):
        parts = line.split()
        if len(parts) != 6:
            raise EvalDataError(
                f"expected 6 columns (qid Q0 docid rank score tag), got {len(parts)}: {line!r:.80}",
                path=file,
                line=number,
            )
        query_id, _, doc_id, rank_text, score_text, _ = parts
        rank = _parsed(rank_text, int, "rank must be an integer", file, number)
        score = _parsed(score_text, float, "score must be a number", file, number)
        if score != score or score in (float("inf"), float("-inf")):
            raise EvalDataError(f"score must be finite, got {score_text!r}", path=file, line=number)
        if doc_id not in data.documents:
            raise EvalDataError(f"document id {doc_id!r} is not in the corpus", path=file, line=number)
        if query_id not in data.queries:
            continue
        if doc_id in seen.setdefault(query_id, set()):
            raise EvalDataError(
                f"document {doc_id!r} listed twice for query {query_id!r}", path=file, line=number
            )
        seen[query_id].add(doc_id)
        rows.setdefault(query_id, []).append((-score, rank, number, doc_id))
    if not seen:
        raise EvalDataError("no line of the run names a query of the evaluation set", path=file)
    return {q: [(doc_id, -neg) for neg, _, _, doc_id in sorted(r)] for q, r in rows.items()}
