"""Framework-free logic shared by the three adapters (this package imports no framework).

Every adapter does the same four things: validate its options, find its engine, make ONE engine
call with the candidates' texts, and map the results back by index onto copies of the caller's
objects. Everything except the translation from and to framework objects lives here, so each rule
is written once:

* :mod:`.options`: the ranking options, their defaults and checks, and the metadata keys.
* :mod:`.engine`: the engine configuration an adapter holds and serialises (:class:`EngineSpec`)
  and how the engine is found (:class:`EngineResolver`, through the process-wide cache).
* :mod:`.ranking`: item checks, the engine call, and the mapping rules (order, body swap,
  metadata, items without text, and the quality prior's rules when one is set).
* :mod:`.budgets`: the agent budgets (``max_context_tokens``, ``time_budget``, ``token_counter``),
  their checks and serialisation, and the token budget applied to what an adapter returns.
* :mod:`.quality`: the quality prior's options (``quality``, ``min_quality``, ``quality_weight``),
  their checks, serialisation and copying.
* :mod:`.copying`: copies that never fail on the caller's data and share no container with it.
* :mod:`.fields`: :class:`~.fields.AdapterFields`, the pydantic adapters' options declared once
  (imported by the adapters from there, not re-exported here: it imports this package).
* :mod:`.quality_annotate`: the standalone quality components' shared logic (score, filter, annotate).

The composition of a rerank with the quality rules is :mod:`prism_core.quality.compose` (shared with
``prism-rerank``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator

from prism_core.extras import missing_extra
from prism_integrations._common.budgets import (
    DEFAULT_MAX_CONTEXT_TOKENS,
    DEFAULT_TIME_BUDGET,
    DEFAULT_TOKEN_COUNTER,
    budget_options_dict,
    check_budget_options,
    omit_unset_budgets,
)
from prism_integrations._common.copying import copy_object, merge_metadata, safe_copy
from prism_integrations._common.engine import (
    EngineResolver,
    EngineSpec,
    NotSerializableError,
    not_serializable_message,
    split_engine_input,
)
from prism_integrations._common.options import (
    CONTRIBUTION,
    DEFAULT_ADD_CONTRIBUTION,
    DEFAULT_DROP_IRRELEVANT,
    DEFAULT_GROUNDED_ONLY,
    DEFAULT_KEEP_ORIGINAL,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_TOP_N,
    DEFAULT_USE_EVIDENCE,
    EVIDENCE_USED,
    ORIGINAL_CONTENT,
    OUR_METADATA_KEYS,
    RELEVANCE_SCORE,
    RerankSettings,
    check_rule_options,
    long_document_options,
    omit_unset_long_document_options,
)
from prism_integrations._common.quality import (
    DEFAULT_MIN_QUALITY,
    DEFAULT_QUALITY_WEIGHT,
    QUALITY_OPTION_NAMES,
    check_quality_options,
    omit_unused_quality,
    quality_from_pickle,
    quality_options_dict,
    quality_to_pickle,
    share_quality,
)
from prism_integrations._common.ranking import (
    Item,
    KeptDocument,
    Ranking,
    arerank_items,
    build_kept_documents,
    check_items,
    rerank_items,
)

__all__ = [
    "CONTRIBUTION",
    "DEFAULT_ADD_CONTRIBUTION",
    "DEFAULT_DROP_IRRELEVANT",
    "DEFAULT_GROUNDED_ONLY",
    "DEFAULT_KEEP_ORIGINAL",
    "DEFAULT_MAX_CONTEXT_TOKENS",
    "DEFAULT_MIN_QUALITY",
    "DEFAULT_QUALITY_WEIGHT",
    "DEFAULT_SCORE_THRESHOLD",
    "DEFAULT_TIME_BUDGET",
    "DEFAULT_TOKEN_COUNTER",
    "DEFAULT_TOP_N",
    "DEFAULT_USE_EVIDENCE",
    "EVIDENCE_USED",
    "ORIGINAL_CONTENT",
    "OUR_METADATA_KEYS",
    "RELEVANCE_SCORE",
    "EngineResolver",
    "EngineSpec",
    "EngineSpecField",
    "Item",
    "KeptDocument",
    "NotSerializableError",
    "Ranking",
    "RerankSettings",
    "arerank_items",
    "budget_options_dict",
    "build_kept_documents",
    "check_budget_options",
    "check_items",
    "check_quality_options",
    "check_rule_options",
    "copy_object",
    "fold_adapter_input",
    "long_document_options",
    "merge_metadata",
    "missing_framework_error",
    "not_serializable_message",
    "omit_unset_budgets",
    "omit_unset_long_document_options",
    "omit_unused_quality",
    "quality_from_pickle",
    "quality_options_dict",
    "quality_to_pickle",
    "rerank_items",
    "safe_copy",
    "share_quality",
    "split_engine_input",
]


def missing_framework_error(framework: str, extra: str, module: str) -> ImportError:
    """Return the :class:`ImportError` an adapter raises when its framework is not installed.

    Args:
        framework: Human name of the framework, e.g. ``"Haystack"``.
        extra: The package extra that installs it, e.g. ``"haystack"``.
        module: The adapter module, e.g. ``"prism_integrations.haystack"``.

    Example:
        >>> str(missing_framework_error("Haystack", "haystack", "m")).split(". ")[1]
        'Install it with: pip install "prism-integrations[haystack]"'
    """
    return missing_extra(extra, needs=framework, by=module)


def fold_adapter_input(data: Any, *, top_n_name: str = "top_n") -> Any:
    """The ``mode="before"`` validation of the pydantic adapters (LangChain, LlamaIndex).

    Folds ``model``, ``backend`` and engine options (or ``engine_config``) into one
    ``engine_config`` (:class:`EngineSpec`, ``None`` with a ``reranker``), and checks the ranking
    options with :mod:`prism_core.validation` (and the quality options with
    :func:`check_quality_options`: a ``quality`` mapping is rebuilt into its scorer) before pydantic
    sees them, so nothing is coerced. Errors are raised as they are (a ``TypeError`` stays a
    ``TypeError``; pydantic wraps a ``ValueError`` into its ``ValidationError``, itself a
    ``ValueError``).

    Example:
        >>> out = fold_adapter_input({"model": "m", "top_n": 2})
        >>> out["engine_config"].to_dict(), out["top_n"], out["reranker"]
        ({'model': 'm', 'backend': None}, 2, None)
    """
    if not isinstance(data, dict):
        return data  # an instance being revalidated, or something pydantic will refuse itself
    rest, spec, reranker = split_engine_input(data)
    rest.update(check_rule_options(rest, top_n_name=top_n_name))
    rest.update(check_budget_options(rest))
    if any(name in rest for name in QUALITY_OPTION_NAMES):
        quality, min_quality, weight = check_quality_options(
            rest.get("quality"), rest.get("min_quality"), rest.get("quality_weight")
        )
        rest.update(quality=quality, min_quality=min_quality, quality_weight=weight)
    rest["engine_config"] = spec
    rest["reranker"] = reranker
    return rest


def _spec_or_none(value: Any) -> EngineSpec | None:
    return None if value is None else EngineSpec.from_dict(value)


def _spec_to_dict(value: EngineSpec | None) -> dict[str, Any] | None:
    return None if value is None else value.to_dict()


#: The pydantic field type of an adapter's ``engine_config``: an :class:`EngineSpec` in Python, its
#: :meth:`EngineSpec.to_dict` in ``model_dump``/JSON, and parsed back from that dict.
EngineSpecField = Annotated[
    EngineSpec | None,
    PlainValidator(_spec_or_none, json_schema_input_type=dict[str, Any] | None),
    PlainSerializer(_spec_to_dict, return_type=dict[str, Any] | None),
]
