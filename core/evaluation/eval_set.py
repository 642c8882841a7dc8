"""The evaluation data model: :class:`EvalSet` (queries, documents, graded judgments), its
:class:`Document` and :class:`EvalDataError`, the error every loader raises (``file:line:`` first).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal


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
