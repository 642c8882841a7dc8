"""``serve`` and ``batch`` without Ray or a running service: option errors, line parsing, resume
bookkeeping, the batch actor's records, and a server whose model cannot load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prism_core.config import EngineConfig
from prism_core.serving.ray_batch import RerankActor, parse_request, read_done, read_rows


# ------------------------------------------------------------------------------- batch lines
def test_parse_request_accepts_bom_and_crlf_and_names_problems() -> None:
    assert parse_request(b'\xef\xbb\xbf{"query": "q", "documents": ["a"]}\r') == ("q", ["a"])
    assert parse_request(b'{"query": "a\rb", "documents": ["c"]}') == ("a\rb", ["c"])  # as the CLI reads it
    for raw, words in [
        (
            b'{"query": "q", "documents": ["\xff"]}',
            "not valid UTF-8: byte 0xff at byte offset 30 of the line",
        ),
        (b'{"query": "q", "documents": ["\\ud800"]}', '"documents"[0]'),
        (b"[1]", "expected a JSON object"),
        (b'{"documents": []}', 'missing "query"'),
        (b'{"query": null, "documents": []}', '"query" must be a string, got null'),
        (b'{"query": "q", "documents": {"a": 1}}', '"documents" must be a list of strings, got an object'),
        (b'{"query": "q", "documents": ["a", true]}', '"documents"[1] must be a string, got a boolean'),
        (b"{", "invalid JSON"),
    ]:
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_request(raw)


def test_read_rows_jsonl_numbers_lines_and_skips_blank_ones(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"b": "x\ry"}\r\n\xef\xbb\xbf\n{"c": 3}')
    rows = list(read_rows(path, "jsonl"))
    assert [(r["line"], r["raw"]) for r in rows] == [
        (1, b'{"a": 1}'),
        (4, b'{"b": "x\ry"}'),
        (6, b'{"c": 3}'),
    ]


def test_read_rows_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    table = pa.table({"query": ["q1", None, "q3"], "documents": [["a", "b"], ["c"], []], "extra": [1, 2, 3]})
    pq.write_table(table, path)
    rows = list(read_rows(path, "parquet"))
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert parse_request(rows[0]["raw"]) == ("q1", ["a", "b"])
    with pytest.raises(ValueError, match='"query" must be a string, got null'):
        parse_request(rows[1]["raw"])
    pq.write_table(pa.table({"question": ["q"]}), tmp_path / "bad.parquet")
    with pytest.raises(
        ValueError, match=r"needs columns 'query' and 'documents'; missing \['query', 'documents'\]"
    ):
        list(read_rows(tmp_path / "bad.parquet", "parquet"))


def test_read_done_drops_a_cut_record_and_refuses_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(
        '{"line": 2, "results": []}\n{"line": 5, "error": "x"}\n{"line": 7, "res', encoding="utf-8"
    )
    assert read_done(out) == ({2, 5}, 1)
    assert out.read_text(encoding="utf-8").endswith('"error": "x"}\n')
    out.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a batch record"):
        read_done(out)
    assert read_done(tmp_path / "missing.jsonl") == (set(), 0)


def test_batch_actor_accounts_for_every_line(tiny_config: EngineConfig, tiny_engine: Any) -> None:
    actor = RerankActor(tiny_config.to_dict(), top_n=2, evidence=False)
    good = json.dumps({"query": "what is rust?", "documents": ["Rust is a language.", "Paris.", "Bananas."]})
    batch = {
        "line": [1, 2, 3, 4, 5],
        "raw": [
            good.encode(),
            b'{"query": "\\ud800", "documents": ["a"]}',
            b"",
            b'{"query": "q", "documents": []}',
            b'{"query": "q", "documents": ["ok", "\\udfff"]}',
        ],
        "error": ["", "", "row cannot be read: boom", "", ""],
    }
    out = actor(batch)
    assert out["line"] == [1, 2, 3, 4, 5]
    records = [json.loads(r) for r in out["record"]]
    local = tiny_engine.rerank(
        "what is rust?", ["Rust is a language.", "Paris.", "Bananas."], top_n=2, evidence=False
    )
    assert [r["index"] for r in records[0]["results"]] == [r.index for r in local]
    assert [r["score"] for r in records[0]["results"]] == pytest.approx([r.score for r in local], abs=1e-4)
    assert "query" in records[1]["error"] and "UTF-8" in records[1]["error"]
    assert records[2] == {"line": 3, "error": "row cannot be read: boom"}
    assert records[3] == {"line": 4, "query": "q", "results": []}
    assert '"documents"[1]' in records[4]["error"]  # named as the main command names it


def test_batch_refuses_to_overwrite_its_input(tmp_path: Path, tiny_config: EngineConfig) -> None:
    pytest.importorskip("ray")
    from prism_core.serving.ray_batch import run_batch

    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "q", "documents": ["a"]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="is the input"):
        run_batch(path, tmp_path / "." / "in.jsonl", tiny_config)
    assert path.read_text(encoding="utf-8") == '{"query": "q", "documents": ["a"]}\n'


# ------------------------------------------------------------------------------- option errors
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--max-length", "0"], "must be >= 1"),
        (["--dtype", "int8"], "invalid choice"),
        (["--model", "m", "--backend", "nope"], "unknown backend 'nope'"),
        (["--autoscale", "3:1", "--ray"], "--autoscale must be MIN:MAX"),
        (["--port", "70000"], "--port must be in"),
    ],
)
def test_serve_option_errors_exit_2(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    from prism_core.cli import serve

    with pytest.raises(SystemExit) as exit_info:
        serve.main(argv)
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["in.jsonl"], "-o/--output"),
        (["in.jsonl", "-o", "out.jsonl", "--threshold", "2"], "must be in [0, 1]"),
        (["in.jsonl", "-o", "out.jsonl", "--actors", "0"], "must be >= 1"),
        (
            ["in.jsonl", "-o", "o.jsonl", "--model", "m", "--backend", "prism", "--max-length", "5"],
            "max_length",
        ),
    ],
)
def test_batch_option_errors_exit_2(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    from prism_core.cli import batch

    with pytest.raises(SystemExit) as exit_info:
        batch.main(argv)
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_serve_exits_1_when_the_model_cannot_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prism_core.cli import serve

    missing = tmp_path / "no-such-model"
    status = serve.main(
        ["--model", str(missing), "--backend", "prism", "--port", "0", "--log-level", "critical"]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot load model" in err and "no-such-model" in err
