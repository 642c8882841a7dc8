"""The wire format of a result (``prism_core.wire``): the server writes it, ``RemoteReranker`` reads it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from prism_core.budgets import unscored_result
from prism_core.results import PrismResult
from prism_core.wire import RESULT_FIELDS, json_fields, result_from_item, result_to_item

#: A result with every field set to something other than its default.
FULL = PrismResult(
    index=3,
    score=0.8807970779778823,
    logit=2.0,
    relevant=True,
    contribution="It names the tower's height.",
    evidence="The tower is 330 m tall.",
    evidence_complete=True,
    truncated=True,
    raw_output="yes<contribution>...</contribution>",
    document_tokens=120,
    evidence_tokens=9,
    chunk=(10, 500),
    grounding=0.75,
    unsupported=("330 m",),
    evidence_spans=((0, 24), None),
    scored=True,
    evidence_skipped="time_budget",
)


def _over_the_wire(result: PrismResult, n: int = 5) -> PrismResult:
    item = json.loads(json.dumps(result_to_item(result)))
    return result_from_item(item, position=0, n=n)


def test_every_field_survives_the_round_trip() -> None:
    for field in dataclasses.fields(PrismResult):  # the fixture differs from every default (but scored)
        assert field.name == "scored" or getattr(FULL, field.name) != field.default, field.name
    assert _over_the_wire(FULL) == FULL


def test_defaults_and_unscored_results_survive_the_round_trip() -> None:
    plain = PrismResult(index=0, score=0.25, logit=-1.0986122886681098, relevant=False)
    assert _over_the_wire(plain) == plain
    unscored = unscored_result(4, truncated=True, document_tokens=700)
    assert _over_the_wire(unscored) == unscored


def test_item_carries_every_field_of_the_result_in_order() -> None:
    item = result_to_item(FULL)
    names = [f.name for f in dataclasses.fields(PrismResult)]
    assert list(item) == ["index", "relevance_score", *[n for n in names if n not in ("index", "score")]]
    assert tuple(item)[2:] == RESULT_FIELDS
    assert item["chunk"] == [10, 500] and item["evidence_spans"] == [[0, 24], None]
    assert result_to_item(FULL, raw_scores=True)["relevance_score"] == 2.0
    assert list(json_fields()) == list(item)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"index": True}, "results[0].index must be an integer, got True"),
        ({"relevance_score": 1.5}, "relevance_score 1.5 is not in [0, 1]"),
        ({"logit": -3.0}, "logit -3.0 does not match its relevance_score"),
        ({"truncated": "yes"}, "results[0].truncated must be bool or null, got 'yes'"),
        ({"document_tokens": True}, "results[0].document_tokens must be int or null"),
        ({"chunk": [5, 5]}, "results[0].chunk must be [start, end) or null"),
        ({"evidence_spans": [[3, 1]]}, "evidence_spans must be a list of [start, end] or null"),
    ],
)
def test_a_bad_field_is_refused_by_name(change: dict[str, Any], message: str) -> None:
    item = {**result_to_item(FULL), **change}
    with pytest.raises(ValueError) as info:
        result_from_item(item, position=0, n=5)
    assert message in str(info.value)


def test_missing_fields_take_their_defaults_and_half_grounding_is_dropped() -> None:
    read = result_from_item({"index": 1, "relevance_score": 0.5, "grounding": 0.5}, 0, 2)
    expected = PrismResult(index=1, score=0.5, logit=0.0, relevant=False)
    assert read == expected


def test_the_server_schema_documents_the_same_fields() -> None:
    pytest.importorskip("fastapi")
    from prism_core.serving.schemas import RerankResultItem

    assert list(RerankResultItem.model_fields)[: len(json_fields())] == list(json_fields())
    checked = RerankResultItem.model_validate(result_to_item(FULL)).model_dump()
    assert {k: checked[k] for k in json_fields()} == json.loads(json.dumps(result_to_item(FULL)))
