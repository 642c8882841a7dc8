"""``prism-rerank eval`` end to end: tiny real models, scripted fakes, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prism_core.cli.eval import main, pair_systems, system_name
from prism_core.cli.options import ModelOptions
from prism_core.evaluation import load_dataset
from tests.evaluation._eval_cases import ScriptedReranker, write_jsonl


def _fake_factory(**kwargs: Any) -> Any:
    made: list[ModelOptions] = []

    def factory(options: ModelOptions) -> ScriptedReranker:
        made.append(options)
        return ScriptedReranker(**kwargs)

    factory.made = made  # type: ignore[attr-defined]
    return factory


@pytest.mark.slow
def test_end_to_end_on_the_tiny_models(
    tiny_qwen35_path: str,
    tiny_qwen3_path: str,
    tiny_tokenizer: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    argv = [
        "builtin",
        "--model", tiny_qwen35_path, "--backend", "prism",
        "--model", tiny_qwen3_path, "--backend", "qwen3-reranker",
        "--max-queries", "2", "--candidates", "3", "--top-n", "2",
        "--max-new-tokens", "4", "--device", "cpu", "--no-progress",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "quality_vs_tokens.png"}
    report = json.loads((out / "report.json").read_text())
    prism_name = f"prism:{Path(tiny_qwen35_path).name}"
    qwen_name = f"qwen3-reranker:{Path(tiny_qwen3_path).name}"
    assert list(report["systems"]) == ["bm25", prism_name, qwen_name]
    for name, system in report["systems"].items():
        for metric in ("ndcg@10", "mrr@10", "recall@3"):
            assert isinstance(system[metric], float) and 0.0 <= system[metric] <= 1.0, (name, metric)
        assert system["queries"] == {"evaluated": 2, "ranked": 2, "failed": 0, "without_candidates": 0}
        assert system["documents"]["ranked"] == system["documents"]["candidates"] == 6
    prism = report["systems"][prism_name]
    assert prism["evidence"] is True
    assert isinstance(prism["original_tokens"], int) and isinstance(prism["evidence_tokens"], int)
    assert prism["latency"]["median_ms"] > 0 and prism["documents_per_second"] > 0
    assert report["systems"][qwen_name]["evidence"] is False
    assert "evidence_tokens" not in report["systems"][qwen_name]
    # Random weights: said in the JSON, the Markdown and on stderr.
    assert report["meaningless"] is True
    assert prism["meaningless"] and report["systems"][qwen_name]["meaningless"]
    assert "TINY RANDOM-WEIGHT MODEL" in (out / "report.md").read_text()
    assert "MEANINGLESS" in captured.err and "TINY RANDOM-WEIGHT MODEL" in captured.err
    assert "| bm25 (first stage) |" in captured.out and "Wrote " in captured.out

    # Token accounting, exact: every returned document and evidence counted with the model's tokenizer.
    def count(text: str) -> int:
        return len(tiny_tokenizer.encode(text, add_special_tokens=False))

    data = load_dataset("builtin")
    original = evidence = 0
    for query_id, detail in report["per_query"][prism_name].items():
        returned = detail["returned"]
        assert sorted(r["doc_id"] for r in returned) == sorted(detail["ranking"][:2]), query_id
        for r in returned:
            text = data.documents[r["doc_id"]].content
            assert r["document_tokens"] == count(text), (r["doc_id"], r["document_tokens"], count(text))
            original += count(text)
            if r["evidence"] is not None:
                assert r["evidence_tokens"] == count(r["evidence"])
                if r["relevant"] and r["evidence_complete"]:
                    evidence += count(r["evidence"])
            else:
                assert r["evidence_tokens"] is None
    assert prism["original_tokens"] == original
    assert prism["evidence_tokens"] == evidence


def test_dispatch_through_prism_rerank(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prism_core.cli import main as cli_main

    factory = _fake_factory()
    out = tmp_path / "out"
    argv = [
        "eval",
        "--model",
        "fake-model",
        "--backend",
        "prism",
        "--max-queries",
        "2",
        "--out",
        str(out),
        "--no-plot",
    ]
    assert cli_main(argv, reranker_factory=factory) == 0
    assert factory.made[0].model == "fake-model" and factory.made[0].backend == "prism"
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md"}
    report = json.loads((out / "report.json").read_text())
    assert report["meaningless"] is False and "MEANINGLESS" not in capsys.readouterr().err
    assert report["first_stage"]["candidates_per_query"] == 30


def test_shared_model_options_reach_every_system(tmp_path: Path) -> None:
    factory = _fake_factory()
    argv = [
        "--model", "a", "--model", "b", "--backend", "prism",
        "--max-new-tokens", "16", "--device", "cpu", "--max-queries", "1",
        "--no-plot", "--out", str(tmp_path),
    ]  # fmt: skip
    assert main(argv, reranker_factory=factory) == 0
    assert [(o.model, o.backend, o.max_new_tokens, o.device) for o in factory.made] == [
        ("a", "prism", 16, "cpu"),
        ("b", "prism", 16, "cpu"),
    ]
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["systems"]) == ["bm25", "prism:a", "prism:b"]
    assert report["settings"]["command"]["engine_options"] == {"device": "cpu", "max_new_tokens": 16}


def test_a_failing_query_is_reported_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failing = load_dataset().queries["q02"]
    factory = _fake_factory(fail_on=[failing])
    argv = ["--model", "m", "--backend", "prism", "--max-queries", "3", "--no-plot", "--out", str(tmp_path)]
    assert main(argv, reranker_factory=factory) == 1
    err = capsys.readouterr().err
    assert "1 of 3 queries failed" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["systems"]["prism:m"]["failures"][0]["query_id"] == "q02"


def test_jsonl_input_end_to_end(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"query": "q", "documents": ["a", "b", "c"], "labels": [0, 1, 2]},
            {"query": "r", "documents": ["d"], "labels": [1]},
        ],
    )
    assert (
        main(
            [str(data), "--model", "m", "--backend", "prism", "--no-plot", "--out", str(tmp_path / "o")],
            reranker_factory=_fake_factory(),
        )
        == 0
    )
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["first_stage"]["name"] == "given"
    assert report["dataset"]["queries_evaluated"] == 2


# ------------------------------------------------------------------------------------- bad input
def test_missing_data_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert (
        main(
            [str(missing), "--model", "m", "--backend", "prism", "--out", str(tmp_path / "o")],
            reranker_factory=_fake_factory(),
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"prism-rerank eval: error: {missing}: not found" in err
    assert not (tmp_path / "o").exists()


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(
        tmp_path / "bad.jsonl", [{"query": "q", "documents": ["a"], "labels": [1]}, "{not json"]
    )
    assert (
        main(
            [str(data), "--model", "m", "--backend", "prism", "--out", str(tmp_path / "o")],
            reranker_factory=_fake_factory(),
        )
        == 2
    )
    assert f"{data}:2: invalid JSON" in capsys.readouterr().err


def test_qrels_for_unknown_document_names_file_and_line(
    small_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qrels = small_beir / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "q2\tghost\t1\n")
    assert (
        main(
            [str(small_beir), "--model", "m", "--backend", "prism", "--out", str(tmp_path / "o")],
            reranker_factory=_fake_factory(),
        )
        == 2
    )
    assert f"{qrels}:6: document id 'ghost' is not in the corpus" in capsys.readouterr().err


def test_unpairable_models_and_backends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--model", "a", "--model", "b", "--backend", "prism", "--backend", "prism", "--backend", "prism"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path)], reranker_factory=_fake_factory())
    assert exit_info.value.code == 2
    assert "got 2 --model and 3 --backend" in capsys.readouterr().err


def test_unknown_backend_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "m", "--backend", "nope", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_model_that_cannot_load_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-checkpoint"
    assert (
        main(["--model", str(missing), "--backend", "prism", "--device", "cpu", "--out", str(tmp_path / "o")])
        == 1
    )
    assert "prism-rerank eval: error: cannot load model" in capsys.readouterr().err


def test_out_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--model", "m"])
    assert "--out" in capsys.readouterr().err


def test_pairing_and_names() -> None:
    assert pair_systems([], []) == [(None, None)]
    assert pair_systems([], ["prism", "qwen3-reranker"]) == [(None, "prism"), (None, "qwen3-reranker")]
    assert pair_systems(["a", "b"], []) == [("a", None), ("b", None)]
    assert pair_systems(["a", "b"], ["x", "y"]) == [("a", "x"), ("b", "y")]
    taken: set[str] = set()
    assert system_name("/models/tiny/", "prism", taken) == "prism:tiny"
    assert system_name("/other/tiny", "prism", taken) == "prism:tiny#2"
