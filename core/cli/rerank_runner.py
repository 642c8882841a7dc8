"""The per-line run of ``prism-rerank``: one input line in, one output record out."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from prism_core.budgets import fit_token_budget, returned_tokens
from prism_core.cli.lines import (
    LineError,
    decode_line,
    is_blank,
    parse_line,
)
from prism_core.cli.options import (
    ModelOptions,
    ModelUnavailable,
    QualityOptions,
    load_failure,
    load_now,
    one_line,
)
from prism_core.cli.rerank_files import _Writer
from prism_core.errors import EngineClosedError, ModelLoadError
from prism_core.grounding import ground_result
from prism_core.protocol import Reranker
from prism_core.quality.blend import engine_cuts
from prism_core.quality.compose import compose_quality, unscored_in_input_order
from prism_core.quality.scorer import QualityScorer
from prism_core.results import PrismResult

PROG = "prism-rerank"


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


_RESULT_FIELDS = frozenset(PrismResult.__dataclass_fields__)


class _Runner:
    """Processes input lines one at a time, loading the reranker at the first line that needs it."""

    def __init__(
        self,
        args: argparse.Namespace,
        options: ModelOptions,
        reranker: Reranker,
        writer: _Writer,
        log: Callable[[str], None],
        quality: QualityScorer | None = None,
        quality_options: QualityOptions | None = None,
    ) -> None:
        self.args = args
        self.options = options
        self._reranker = reranker
        self._loaded = False
        self._quality = quality
        self.quality_options = quality_options or QualityOptions()
        self._quality_loaded = False
        self.writer = writer
        self.log = log
        self.failed = 0
        self.written = 0  # output records written so far
        self.next_line = args.start_line
        """The first input line not yet accounted for (no record written, not skipped)."""

    def reranker(self) -> Reranker:
        if not self._loaded:
            load_now(self._reranker, self.options)
            self._loaded = True
        return self._reranker

    def process(self, lineno: int, offset: int, body: bytes) -> bool:
        """Account for one line; return ``False`` when the run must stop (fail-fast)."""
        try:
            text = decode_line(body, offset)
            if is_blank(text):
                self.next_line = lineno + 1
                return True
            query, documents = parse_line(text)
            results = self._results(query, documents)
            record: dict[str, Any] = {"line": lineno, "query": query, "results": results}
            if self.args.max_context_tokens is not None:
                record["results"], record["dropped_by_budget"] = self._budget(results, documents)
            try:
                out = self.writer.dumps(record)
            except ValueError:
                raise LineError(
                    "the model returned a non-finite score (NaN or infinity); "
                    "with float16 weights, try --dtype bfloat16 or float32"
                ) from None
        except LineError as exc:
            self.failed += 1
            self.writer.write(self.writer.dumps({"line": lineno, "error": str(exc)}))
            self.written += 1
            self.next_line = lineno + 1
            self.log(f"{PROG}: line {lineno}: {exc}")
            return not self.args.fail_fast
        self.writer.write(out)
        self.written += 1
        self.next_line = lineno + 1
        return True

    def _results(self, query: str, documents: list[str]) -> list[dict[str, Any]]:
        """The result records of one query, best first."""
        if self._quality is None:
            results = self._rerank(query, documents, self.args.top_n, self.args.threshold)
            return [{"rank": rank, **_grounded(r, documents).to_dict()} for rank, r in enumerate(results, 1)]
        rules: dict[str, Any] = {
            "min_quality": self.quality_options.min_quality,
            "quality_weight": self.quality_options.weight,
            "top_n": self.args.top_n,
            "score_threshold": self.args.threshold,
        }
        top_n, threshold = engine_cuts(**rules)  # what the reranker may cut itself, before quality
        results = self._rerank(query, documents, top_n, threshold)
        by_index = {r.index: r for r in results}
        try:
            outcome = compose_quality(
                results,
                len(documents),
                lambda idx: self._quality_scores([documents[i] for i in idx]),
                **rules,
            )
        except (ValueError, TypeError) as exc:  # a malformed result or score (LineError passes through)
            if isinstance(exc, LineError):
                raise
            raise LineError(one_line(exc)) from None
        return [
            {
                "rank": rank,
                **_grounded(by_index[d.index], documents).to_dict(),
                "quality_score": d.quality,
                "blended_score": d.score,
            }
            for rank, d in enumerate(outcome.kept, 1)
        ] + [  # the time budget left these unscored: last, in input order
            {"rank": len(outcome.kept) + k, **r.to_dict(), "quality_score": None, "blended_score": None}
            for k, r in enumerate(unscored_in_input_order(results), 1)
        ]

    def _budget(
        self, records: list[dict[str, Any]], documents: list[str]
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """``--max-context-tokens`` on one query's records (ranks renumbered), and the left-out indices."""
        results = [PrismResult(**{k: v for k, v in r.items() if k in _RESULT_FIELDS}) for r in records]
        swapped = [
            bool(self.args.evidence and r.relevant and r.evidence and r.evidence_complete) for r in results
        ]
        texts = [
            r.evidence if s and r.evidence else documents[r.index]
            for r, s in zip(results, swapped, strict=True)
        ]
        try:
            costs = returned_tokens(texts, results, swapped, None, self.reranker())
        except ValueError as exc:
            raise LineError(one_line(exc)) from None
        kept, dropped = fit_token_budget(costs, self.args.max_context_tokens)
        out = [{**records[i], "rank": rank, "context_tokens": costs[i]} for rank, i in enumerate(kept, 1)]
        return out, [records[i]["index"] for i in dropped]

    def _quality_scores(self, texts: list[str]) -> list[float]:
        """Raw quality of ``texts``; the scorer is loaded at the first call (a failure stops the run)."""
        assert self._quality is not None
        if not self._quality_loaded:
            try:
                self._quality.load()
            except Exception as exc:  # ModelLoadError, HeadFileError, a missing extra...
                heads = ", ".join(self._quality.heads)
                raise ModelUnavailable(f"cannot load the quality prior ({heads}): {one_line(exc)}") from None
            self._quality_loaded = True
        try:
            return self._quality.score(texts)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise LineError(f"quality prior: {one_line(exc)}") from None
        except Exception as exc:  # anything else (out of memory...) fails this line only
            raise LineError(f"quality prior: {type(exc).__name__}: {one_line(exc)}") from None

    def _rerank(
        self, query: str, documents: list[str], top_n: int | None, threshold: float | None
    ) -> list[PrismResult]:
        if not documents:
            return []
        reranker = self.reranker()
        budget = {} if self.args.time_budget is None else {"time_budget": self.args.time_budget}
        try:
            long_options = {
                name: value
                for name in ("max_tokens_per_doc", "long_documents")
                if (value := getattr(self.args, name, None)) is not None
            }
            return reranker.rerank(
                query,
                documents,
                top_n=top_n,
                score_threshold=threshold,
                evidence=self.args.evidence,
                **long_options,
                **budget,
            )
        except (ModelLoadError, EngineClosedError) as exc:  # the model itself is gone: stop
            raise ModelUnavailable(load_failure(self.options, exc)) from None
        except (ValueError, TypeError, ArithmeticError) as exc:  # NonFiniteScoreError is an ArithmeticError
            raise LineError(one_line(exc)) from None
        except Exception as exc:  # anything else (out of memory...) fails this line only
            raise LineError(f"{type(exc).__name__}: {one_line(exc)}") from None


def _grounded(result: PrismResult, documents: list[str]) -> PrismResult:
    """The result with its evidence checked against its document, when its backend did not check it."""
    if 0 <= result.index < len(documents):
        return ground_result(result, documents[result.index])
    return result
