"""The CLI end to end on the tiny real model (the other CLI tests use a scripted fake)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
