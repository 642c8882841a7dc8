"""The former home of ``CrossEncoderReranker``: the family now lives in :mod:`prism_core.cross_encoder`
(backend, loading, rows, executor); its names stay importable from here."""

from prism_core.cross_encoder.executor import CrossEncoderExecutor, CrossEncoderJob
from prism_core.cross_encoder.loading import check_features, load_cross_encoder
from prism_core.cross_encoder.reranker import (
    DEFAULT_BATCH_TOKENS,
    MAX_BUDGET_GROWTH,
    MIN_LENGTH_HINT,
    PREDICT_BATCH_SIZE,
    CrossEncoderReranker,
)
from prism_core.cross_encoder.rows import (
    TOKENIZE_CHUNK,
    DocumentRows,
    Pair,
    Row,
    default_prompt,
    document_rows,
    encode_pairs,
    untruncated_lengths,
)

__all__ = [
    "DEFAULT_BATCH_TOKENS",
    "MAX_BUDGET_GROWTH",
    "MIN_LENGTH_HINT",
    "PREDICT_BATCH_SIZE",
    "TOKENIZE_CHUNK",
    "CrossEncoderExecutor",
    "CrossEncoderJob",
    "CrossEncoderReranker",
    "DocumentRows",
    "Pair",
    "Row",
    "check_features",
    "default_prompt",
    "document_rows",
    "encode_pairs",
    "load_cross_encoder",
    "untruncated_lengths",
]
