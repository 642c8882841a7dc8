"""A query-free quality prior beside any reranker: JQL-Edu heads on document embeddings.

* :class:`QualityScorer`: raw educational-value scores (0–5 scale, mean over heads).
* :mod:`prism_core.quality.blend`: the framework-free rules the adapters apply (quality filter,
  blend ``(1 − w) · relevance + w · clip(raw / 5, 0, 1)``, threshold, top-n).
* :mod:`prism_core.quality.heads`: head specs (local ``.ckpt`` or ``"repo_id:path/in/repo.ckpt"``)
  and reading Lightning checkpoints without Lightning.

Example:
    >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer, normalize_quality
    >>> scorer = QualityScorer(JQL_EDU_HEADS, trust_remote_code=True)  # loads nothing yet
    >>> [normalize_quality(q) for q in scorer.score(["some text"])]  # doctest: +SKIP
"""

from prism_core.quality.blend import (
    DEFAULT_QUALITY_WEIGHT,
    QUALITY_SCALE,
    QUALITY_SCORE,
    QualityDecision,
    QualityOutcome,
    QualityPlan,
    aapply_quality,
    apply_quality,
    blend,
    check_min_quality,
    check_quality_weight,
    engine_cuts,
    finish_quality,
    normalize_quality,
    plan_quality,
    select_by_quality,
)
from prism_core.quality.heads import (
    JQL_EDU_HEADS,
    JQL_EDU_REPO,
    HeadFileError,
    HeadSource,
    QualityHead,
    load_head,
    parse_head_spec,
    read_head_file,
)
from prism_core.quality.scorer import DEFAULT_EMBEDDER, DEFAULT_MAX_LENGTH, QualityScorer, as_quality_scorer

__all__ = [
    "DEFAULT_EMBEDDER",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_QUALITY_WEIGHT",
    "JQL_EDU_HEADS",
    "JQL_EDU_REPO",
    "QUALITY_SCALE",
    "QUALITY_SCORE",
    "HeadFileError",
    "HeadSource",
    "QualityDecision",
    "QualityHead",
    "QualityOutcome",
    "QualityPlan",
    "QualityScorer",
    "aapply_quality",
    "apply_quality",
    "as_quality_scorer",
    "blend",
    "check_min_quality",
    "check_quality_weight",
    "engine_cuts",
    "finish_quality",
    "load_head",
    "normalize_quality",
    "parse_head_spec",
    "plan_quality",
    "read_head_file",
    "select_by_quality",
]
