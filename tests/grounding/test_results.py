"""Grounding in the results: the Prism backend's output processing, ``to_dict``, the server and the client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from prism_core import PrismReranker, check_grounding
from prism_core.results import PrismResult
from prism_core.runtime.tokenization import EncodedPrompt

DOC = "The Eiffel Tower is 330 metres tall. It opened on 31 March 1889."


def test_to_dict_is_json_safe_and_round_trips() -> None:
    r = PrismResult(
        0,
        0.9,
        2.2,
        True,
        evidence="It is 512 m tall.",
        grounding=0.5,
        unsupported=("512 m",),
        evidence_spans=((0, 36), None),
    )
    data = r.to_dict()
    assert data["unsupported"] == ["512 m"] and data["evidence_spans"] == [[0, 36], None]
    assert json.loads(json.dumps(data)) == data
    assert r.grounded is False
    plain = PrismResult(1, 0.1, -2.2, False).to_dict()
    assert (plain["grounding"], plain["unsupported"], plain["evidence_spans"]) == (None, None, None)
    assert PrismResult(1, 0.1, -2.2, False).grounded is None


@pytest.fixture(scope="module")
def prism(tiny_qwen35_path: str) -> PrismReranker:
    return PrismReranker(tiny_qwen35_path, device="cpu", max_new_tokens=24).load()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("generated", "grounded"),
    [
        (
            "yes<contribution>It is tall.</contribution>\n<evidence>The tower is 330 m tall.</evidence>",
            True,
        ),
        ("yes<contribution>It is tall.</contribution>\n<evidence>The tower is 512 m tall.</evidence>", False),
        (
            "yes<contribution>It is tall.</contribution>\n<evidence>The tower is 512 m",
            False,
        ),  # budget ran out
    ],
)
def test_prism_output_processing_checks_the_evidence(
    prism: PrismReranker, generated: str, grounded: bool
) -> None:
    """The backend's own output processing fills grounding from the caller's document."""
    ids = prism.tokenizer.encode(generated, add_special_tokens=False)
    result = prism._result(3, EncodedPrompt(ids=[1, 2], truncated=False, document_tokens=9), 1.5, ids, DOC)
    assert result.evidence is not None
    report = check_grounding(DOC, result.evidence)
    assert (result.grounding, result.unsupported, result.evidence_spans) == (
        report.score,
        report.unsupported,
        report.spans,
    )
    assert result.grounded is grounded


@pytest.mark.slow
def test_prism_without_evidence_has_no_grounding(prism: PrismReranker) -> None:
    ids = prism.tokenizer.encode("no", add_special_tokens=False)
    prompt = EncodedPrompt(ids=[1], truncated=False, document_tokens=9)
    for generated in (ids, None):
        r = prism._result(0, prompt, -1.0, generated, DOC)
        assert (r.grounding, r.unsupported, r.evidence_spans) == (None, None, None)


@pytest.mark.slow
def test_prism_rerank_fills_grounding_for_every_generated_evidence(prism: PrismReranker) -> None:
    """End to end on the tiny model: wherever evidence came out, it carries its check."""
    docs = [DOC, "Paris is the capital of France.", "Bananas are yellow."]
    for r in prism.rerank("How tall is the Eiffel Tower?", docs):
        if r.evidence is None:
            assert r.grounding is None and r.unsupported is None and r.evidence_spans is None
        else:
            assert r.unsupported == check_grounding(docs[r.index], r.evidence).unsupported


def _item(**fields: Any) -> dict[str, Any]:
    return {
        "index": 0,
        "relevance_score": 0.9,
        "logit": 2.1972245773362196,
        "evidence": "It is 512 m tall.",
        **fields,
    }


def test_remote_client_reads_or_computes_grounding() -> None:
    from prism_core.backends.remote import RemoteReranker, RemoteResponseError

    client = RemoteReranker("http://127.0.0.1:9")

    def bad(reason: str) -> RemoteResponseError:
        return RemoteResponseError(reason, url=client.base_url, status=200)

    sent = client._result(_item(grounding=0.25, unsupported=["512 m"], evidence_spans=[[0, 10]]), 0, 1, bad)
    assert (sent.grounding, sent.unsupported, sent.evidence_spans) == (0.25, ("512 m",), ((0, 10),))
    missing = client._result(_item(), 0, 1, bad)
    assert missing.grounding is None  # a foreign server: the client fills it from the documents
    for broken in ({"grounding": 2}, {"unsupported": "512"}, {"evidence_spans": [[3, 1]]}):
        with pytest.raises(RemoteResponseError):
            client._result(_item(**broken), 0, 1, bad)


def test_server_result_item_carries_the_fields() -> None:
    pytest.importorskip("fastapi")
    from prism_core.serving.dialects.cohere import result_item as _result_item
    from prism_core.serving.schemas import RerankResultItem

    r = PrismResult(
        0,
        0.9,
        2.2,
        True,
        evidence="It is 512 m tall.",
        grounding=0.5,
        unsupported=("512 m",),
        evidence_spans=((0, 12),),
    )
    item = _result_item(r, None)
    assert (item["grounding"], item["unsupported"], item["evidence_spans"]) == (0.5, ["512 m"], [[0, 12]])
    assert RerankResultItem.model_validate(item).model_dump()["unsupported"] == ["512 m"]


def test_cli_records_carry_grounding(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from prism_core.cli import rerank as cli
    from tests.fakes import FakeReranker

    doc = "The bridge is 2,737 metres long. [fabricated:0.9]"
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"query": "how long", "documents": [doc, "x [yes:0.8]", "y [no:0.1]"]}) + "\n")
    assert cli.main([str(path), "--no-progress"], reranker_factory=lambda _: FakeReranker()) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_index = {r["index"]: r for r in record["results"]}
    assert by_index[0]["unsupported"] == ["999 km"] and 0 < by_index[0]["grounding"] < 1  # checked here
    assert (by_index[1]["grounding"], by_index[1]["unsupported"]) == (1.0, [])  # the backend's report
    assert (by_index[2]["grounding"], by_index[2]["unsupported"]) == (None, None)  # no evidence
