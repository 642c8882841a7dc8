"""The budget rules on their own: the token-budget fit, the time-budget assembly, option checks."""

from __future__ import annotations

import numpy as np
import pytest

from prism_core.budgets import (
    TIME_BUDGET,
    assemble_results,
    check_max_context_tokens,
    check_time_budget,
    check_token_counter,
    count_with,
    fit_token_budget,
    returned_tokens,
)
from prism_core.results import PrismResult


def r(i: int, logit: float, **kw: object) -> PrismResult:
    from prism_core.ranking import sigmoid

    return PrismResult(index=i, score=sigmoid(logit), logit=logit, relevant=logit > 0, **kw)  # type: ignore[arg-type]


def test_fit_skips_a_document_that_alone_exceeds_what_is_left_and_goes_on() -> None:
    assert fit_token_budget([50, 80, 30, 10], 100) == ([0, 2, 3], [1])
    assert fit_token_budget([101, 5], 100) == ([1], [0])
    assert fit_token_budget([40, 60], 100) == ([0, 1], [])  # exactly full
    assert fit_token_budget([], 10) == ([], [])
    assert fit_token_budget([10**9], None) == ([0], [])


def test_assemble_ranks_scored_then_lists_unscored_in_input_order() -> None:
    base = {3: r(3, 2.0), 1: r(1, -1.0), 4: r(4, 1.0)}
    out = assemble_results(6, base, {}, top_n=2, threshold=None, generate=False, expired=True)
    assert [x.index for x in out] == [3, 4, 0, 2, 5]
    assert [x.scored for x in out] == [True, True, False, False, False]
    assert all(x.score == 0.0 and not x.relevant for x in out[2:])


def test_assemble_flags_survivors_whose_generation_did_not_finish() -> None:
    base = {0: r(0, 2.0), 1: r(1, 1.0), 2: r(2, -1.0)}
    full = {0: r(0, 2.0, evidence="E", evidence_complete=True, raw_output="yes")}
    out = assemble_results(3, base, full, top_n=None, threshold=None, generate=True, expired=True)
    assert out[0].evidence == "E" and out[0].evidence_skipped is None
    assert out[1].evidence is None and out[1].evidence_skipped == TIME_BUDGET
    assert out[2].evidence_skipped is None  # irrelevant: nothing was to be generated
    # not expired: nothing is flagged (a survivor without text was simply not generated)
    again = assemble_results(3, base, {}, top_n=None, threshold=None, generate=True, expired=False)
    assert all(x.evidence_skipped is None for x in again)


def test_assemble_without_expiry_equals_the_ranking_rule() -> None:
    base = {i: r(i, x) for i, x in enumerate([0.5, 3.0, -2.0, 3.0])}
    out = assemble_results(4, base, {}, top_n=3, threshold=0.5, generate=False, expired=False)
    assert [x.index for x in out] == [1, 3, 0]


def test_option_checks_name_the_bad_value() -> None:
    assert check_time_budget(np.float32(0.5)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="time_budget must be > 0 seconds, got 0"):
        check_time_budget(0)
    with pytest.raises(TypeError, match="time_budget"):
        check_time_budget("1")
    with pytest.raises(ValueError, match="time_budget"):
        check_time_budget(float("nan"))
    assert check_max_context_tokens(np.int64(2000)) == 2000
    with pytest.raises(ValueError, match="max_context_tokens must be >= 1, got 0"):
        check_max_context_tokens(0)
    with pytest.raises(TypeError, match="max_context_tokens"):
        check_max_context_tokens(True)
    with pytest.raises(TypeError, match="token_counter must be a callable"):
        check_token_counter(3)
    assert check_token_counter(len) is len


def test_counter_output_is_checked() -> None:
    assert count_with(lambda t: np.int64(3), "abc", "x") == 3
    with pytest.raises(ValueError, match=r"token_counter must return an int >= 0, got -1 for doc 2"):
        count_with(lambda t: -1, "abc", "doc 2")
    with pytest.raises(ValueError, match="token_counter"):
        count_with(lambda t: 2.5, "abc", "x")


def test_returned_tokens_uses_known_counts_then_the_tokenizer() -> None:
    class Engine:
        class prompt_tokenizer:
            @staticmethod
            def count_tokens(text: str) -> int:
                return len(text.split())

    results = [
        r(0, 1.0, evidence="a b", evidence_tokens=2, document_tokens=9),
        r(1, 1.0, document_tokens=7),
        r(2, 1.0, document_tokens=4, truncated=True),  # the body as returned is the whole text
        r(3, 1.0),
    ]
    texts = ["a b", "x " * 7, "one two three four five six", "w w w"]
    counts = returned_tokens(texts, results, [True, False, False, False], None, Engine())
    assert counts == [2, 7, 6, 3]
    assert returned_tokens(texts, results, [True, False, False, False], len, Engine()) == [
        len(t) for t in texts
    ]
    with pytest.raises(ValueError, match="pass token_counter="):
        returned_tokens(["t"], [r(0, 1.0)], [False], None, object())
