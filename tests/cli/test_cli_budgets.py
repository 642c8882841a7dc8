"""``prism-rerank --max-context-tokens N --time-budget S`` on a scripted reranker."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from prism_core import cli
from prism_core.budgets import TIME_BUDGET, unscored_result
from prism_core.results import PrismResult
from tests.fakes import FakeReranker

DOCS = [
    "alpha: Mars has two moons. [no:0.2]",
    "bravo: Paris is the capital of France and its largest city. [yes:0.9]",
    "charlie: Lyon is in France. [yes:0.7]",
    "delta: France borders Spain. [yes:0.6]",
    "echo: a late document [yes:0.95]",
]


def words(text: str) -> int:
    return len(text.split())


class CountingFake(FakeReranker):
    """Reports token counts (words) as a real backend does, and takes ``time_budget``: with one,
    ``late`` documents are unscored and ``charlie``'s evidence is cut."""

    def __init__(self) -> None:
        super().__init__()
        self.budgets: list[Any] = []

    def rerank(  # type: ignore[override]
        self, query: str, documents: Sequence[str], **kwargs: Any
    ) -> list[PrismResult]:
        budget = kwargs.pop("time_budget", None)
        self.budgets.append(budget)
        out = [
            replace(
                r,
                document_tokens=words(documents[r.index]),
                evidence_tokens=None if r.evidence is None else words(r.evidence),
            )
            for r in super().rerank(query, documents, **kwargs)
        ]
        if budget is None:
            return out
        late = [i for i, d in enumerate(documents) if "late" in d]
        out = [
            replace(r, evidence=None, evidence_complete=False, raw_output=None, evidence_skipped=TIME_BUDGET)
            if "charlie" in documents[r.index]
            else r
            for r in out
            if r.index not in late
        ]
        return out + [unscored_result(i) for i in late]


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, dict[str, Any], CountingFake]:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"query": "capital of France?", "documents": DOCS}) + "\n", encoding="utf-8")
    fake = CountingFake()
    code = cli.main([str(path), "--no-progress", *options], reranker_factory=lambda _: fake)
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[0]), fake


def test_max_context_tokens_keeps_what_fits_and_lists_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, record, _ = run(tmp_path, capsys)
    assert code == 0 and "dropped_by_budget" not in record
    order = [r["index"] for r in record["results"]]
    assert order == [4, 1, 2, 3, 0]
    texts = {
        r["index"]: r["evidence"] if r["evidence_complete"] else DOCS[r["index"]] for r in record["results"]
    }
    budget = words(texts[4]) + words(texts[2])  # the 2nd (bravo) does not fit after echo; charlie does
    assert words(texts[1]) > words(texts[2])
    code, record, _ = run(tmp_path, capsys, "--max-context-tokens", str(budget))
    assert code == 0
    assert [r["index"] for r in record["results"]] == [4, 2]
    assert [r["rank"] for r in record["results"]] == [1, 2]
    assert [r["context_tokens"] for r in record["results"]] == [words(texts[4]), words(texts[2])]
    assert record["dropped_by_budget"] == [1, 3, 0]


def test_time_budget_reaches_the_reranker_and_flags_come_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, record, fake = run(tmp_path, capsys, "--time-budget", "1.5")
    assert code == 0 and fake.budgets == [1.5]
    results = record["results"]
    assert [r["index"] for r in results] == [1, 2, 3, 0, 4]
    assert results[-1]["scored"] is False
    assert next(r for r in results if r["index"] == 2)["evidence_skipped"] == TIME_BUDGET
    code, record, fake = run(tmp_path, capsys)
    assert fake.budgets == [None]


@pytest.mark.parametrize(
    "bad", [["--time-budget", "0"], ["--time-budget", "x"], ["--max-context-tokens", "0"]]
)
def test_bad_budgets_are_option_errors(
    bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main([str(path), "--no-progress", *bad], reranker_factory=lambda _: CountingFake())
    assert exc.value.code == 2
    assert bad[0] in capsys.readouterr().err
