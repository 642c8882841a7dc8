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

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

#: The name that selects the built-in evaluation set.
BUILTIN = "builtin"


class EvalDataError(ValueError):
    """A problem with evaluation input; the message names the file and, when it applies, the line.

    Attributes:
        path: The file (or directory) at fault.
        line: The 1-based line number, or ``None``.

    Example:
        >>> str(EvalDataError("empty query", path="queries.jsonl", line=3))
        'queries.jsonl:3: empty query'
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str], line: int | None = None) -> None:
        self.path = os.fspath(path)
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Document:
    """One passage of the corpus.

    Attributes:
        id: The document id (as in the qrels and run files).
        text: The passage text.
        title: The title, or ``""``.
    """

    id: str
    text: str
    title: str = ""

    @property
    def content(self) -> str:
        """What the rerankers read: ``title``, a newline, then ``text`` (just ``text`` without a title)."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass
class EvalSet:
    """Queries, corpus and graded judgments, as loaded.

    Attributes:
        name: A short name for reports (directory or file name, or ``"builtin"``).
        format: ``"beir"`` or ``"jsonl"``.
        source: Where it was read from.
        documents: Document id → :class:`Document`, in file order.
        queries: Query id → text, every query of the file, in file order.
        qrels: Query id → {document id → label} (the split's judgments; labels ``>= 0``).
        candidates: For JSONL input, query id → its given documents in order (the first stage);
            ``None`` for BEIR input (a retriever or a run file supplies candidates).
        split: The qrels split (BEIR), else ``None``.
        judgments: How many (query, document) judgments ``qrels`` holds.
        queries_in_file: How many queries the queries file holds (BEIR: every split's).
    """

    name: str
    format: Literal["beir", "jsonl"]
    source: str
    documents: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[str]] | None = None
    split: str | None = None
    judgments: int = field(default=0)
    queries_in_file: int = field(default=0)

    def evaluated_query_ids(self) -> list[str]:
        """Queries with at least one relevant (label > 0) judgment, in file order: those evaluated."""
        return [q for q in self.queries if any(label > 0 for label in self.qrels.get(q, {}).values())]

    def unjudged_query_ids(self) -> list[str]:
        """Queries of the file without any judgment in this split (not evaluated)."""
        return [q for q in self.queries if q not in self.qrels]

    def no_relevant_query_ids(self) -> list[str]:
        """Judged queries whose judgments are all 0 (not evaluated: every metric would be 0)."""
        return [q for q in self.queries if q in self.qrels and not any(v > 0 for v in self.qrels[q].values())]

    def relevant_judgments(self) -> int:
        """How many (query, document) judgments have a label above 0."""
        return sum(1 for judged in self.qrels.values() for label in judged.values() if label > 0)

    def subset(self, query_ids: list[str]) -> EvalSet:
        """The same corpus with only ``query_ids`` (kept in file order) queried and judged."""
        keep = set(query_ids)
        qrels = {q: j for q, j in self.qrels.items() if q in keep}
        return EvalSet(
            name=self.name,
            format=self.format,
            source=self.source,
            documents=self.documents,
            queries={q: t for q, t in self.queries.items() if q in keep},
            qrels=qrels,
            candidates=None
            if self.candidates is None
            else {q: c for q, c in self.candidates.items() if q in keep},
            split=self.split,
            judgments=sum(len(j) for j in qrels.values()),
            queries_in_file=self.queries_in_file,
        )


# ------------------------------------------------------------------------------------- helpers
def builtin_path() -> Path:
    """The directory of the built-in evaluation set (BEIR layout, package data).

    Example:
        >>> (builtin_path() / "corpus.jsonl").is_file()
        True
    """
    return Path(str(files("prism_core.evaluation") / "data"))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a UTF-8 text file with their 1-based numbers."""
    if not path.is_file():
        raise EvalDataError("file not found" if not path.exists() else "not a regular file", path=path)
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from None


def _json_object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=number) from None
    if not isinstance(value, dict):
        raise EvalDataError(f"expected a JSON object, got {type(value).__name__}", path=path, line=number)
    return value


def _id(value: Any, key: str, path: Path, number: int) -> str:
    """An id: a non-empty string (an integer is accepted and turned into its decimal string)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EvalDataError(
            f"{key!r} must be a string, got {type(value).__name__}: {value!r:.60}", path=path, line=number
        )
    text = str(value)
    if not text.strip():
        raise EvalDataError(f"{key!r} must not be empty", path=path, line=number)
    return text


def _text(obj: dict[str, Any], key: str, path: Path, number: int, *, required: bool = True) -> str:
    if key not in obj:
        if required:
            raise EvalDataError(f"missing {key!r}", path=path, line=number)
        return ""
    value = obj[key]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise EvalDataError(
            f"{key!r} must be a string, got {type(value).__name__}: {value!r:.60}", path=path, line=number
        )
    return value


def _label(value: Any, path: Path, number: int, what: str = "label") -> int:
    if isinstance(value, bool):
        raise EvalDataError(f"{what} must be an integer >= 0, got {value!r}", path=path, line=number)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise EvalDataError(
                f"{what} must be an integer >= 0, got {value!r:.60}", path=path, line=number
            ) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise EvalDataError(f"{what} must be an integer >= 0, got {value!r:.60}", path=path, line=number)
    return value


# ------------------------------------------------------------------------------------- BEIR
def load_corpus(path: str | os.PathLike[str]) -> dict[str, Document]:
    """Read a BEIR ``corpus.jsonl``: ``{"_id", "text", "title"?}`` per line.

    Raises:
        EvalDataError: Missing file, bad JSON, a missing or duplicate ``_id``, a document with
            neither title nor text (file and line named).
    """
    file = Path(path)
    documents: dict[str, Document] = {}
    for number, line in _lines(file):
        obj = _json_object(file, number, line)
        if "_id" not in obj:
            raise EvalDataError("missing '_id'", path=file, line=number)
        doc_id = _id(obj["_id"], "_id", file, number)
        if doc_id in documents:
            raise EvalDataError(f"duplicate document id {doc_id!r}", path=file, line=number)
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
    for number, line in _lines(file):
        obj = _json_object(file, number, line)
        if "_id" not in obj:
            raise EvalDataError("missing '_id'", path=file, line=number)
        query_id = _id(obj["_id"], "_id", file, number)
        if query_id in queries:
            raise EvalDataError(f"duplicate query id {query_id!r}", path=file, line=number)
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
        try:
            rank = int(rank_text)
        except ValueError:
            raise EvalDataError(
                f"rank must be an integer, got {rank_text!r}", path=file, line=number
            ) from None
        try:
            score = float(score_text)
        except ValueError:
            raise EvalDataError(
                f"score must be a number, got {score_text!r}", path=file, line=number
            ) from None
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
