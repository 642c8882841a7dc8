"""Tests of the ``prism-rerank`` command line, on the scripted fake reranker (fast).

Only the option-error tests that need a real engine to refuse an option build one (construct only,
on the tiny Prism checkpoint): nothing is loaded or run here. ``test_cli_real_model.py`` runs the
real tiny models end to end.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

import prism_core.cli as cli_package
from prism_core.cli import rerank as cli
from prism_core.cli.options import ModelOptions
from prism_core.errors import ModelLoadError
from prism_core.registry import BACKENDS
from prism_core.results import PrismResult
from tests.fakes import FakeReranker

RESULT_FIELDS = {f.name for f in dataclasses.fields(PrismResult)}


class LoadableFake(FakeReranker):
    """The fake reranker whose ``load`` can fail, like a real one whose weights are missing."""

    def __init__(self, load_error: Exception | None = None) -> None:
        super().__init__()
        self.load_error = load_error
        self.load_calls = 0

    def load(self) -> LoadableFake:
        self.load_calls += 1
        if self.load_error is not None:
            raise self.load_error
        self.loaded = True
        return self


class Factory:
    """A reranker factory that records the options it gets and hands out one (unloaded) fake."""

    def __init__(self, error: Exception | None = None, fake: FakeReranker | None = None) -> None:
        self.fake = fake or LoadableFake()
        self.options: list[ModelOptions] = []
        self.error = error

    def __call__(self, options: ModelOptions) -> FakeReranker:
        self.options.append(options)
        if self.error is not None:
            raise self.error
        return self.fake


def line(query: Any = "q", documents: Any = None, **extra: Any) -> str:
    obj: dict[str, Any] = {"query": query, "documents": ["a [yes:0.9]", "b [no:0.2]"]}
    if documents is not None:
        obj["documents"] = documents
    obj.update(extra)
    return json.dumps(obj)


def write_input(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(text + "\n" for text in lines), encoding="utf-8")
    return path


def records(text: str) -> list[dict[str, Any]]:
    out = text.split("\n")
    assert out[-1] == "", "the output ends with a newline"
    assert all(o.strip() for o in out[:-1]), "no blank output lines"
    return [json.loads(o) for o in out[:-1]]


def run_cli(argv: list[str], factory: Any = None) -> int:
    return cli.main([*argv, "--no-progress"], reranker_factory=factory or Factory())


def bytes_stdin(data: bytes) -> io.TextIOWrapper:
    """A stand-in for ``sys.stdin`` with a binary buffer, like the real one."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# good input
# ---------------------------------------------------------------------------------------------


def test_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(
        tmp_path,
        line("first", ["low [no:0.2]", "high [yes:0.9]", "mid [partial:0.6]"]),
        line("second", ["only [notags:0.7]"]),
    )
    factory = Factory()
    assert run_cli([str(path)], factory) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = records(captured.out)
    assert [o["line"] for o in out] == [1, 2]
    assert [o["query"] for o in out] == ["first", "second"]
    first = out[0]["results"]
    assert [r["index"] for r in first] == [1, 2, 0]
    assert [r["rank"] for r in first] == [1, 2, 3]
    assert [r["score"] for r in first] == sorted((r["score"] for r in first), reverse=True)
    for rec in out:
        for r in rec["results"]:
            assert set(r) == RESULT_FIELDS | {"rank"}
    assert first[0]["evidence"] == "EVIDENCE(high [yes:0.9])"
    assert first[0]["evidence_complete"] is True
    assert first[1]["evidence_complete"] is False
    assert first[2]["relevant"] is False
    # Each result is exactly PrismResult.to_dict() plus its rank.
    expected = factory.fake.rerank("first", ["low [no:0.2]", "high [yes:0.9]", "mid [partial:0.6]"])
    assert [{k: v for k, v in r.items() if k != "rank"} for r in first] == [e.to_dict() for e in expected]
    assert len(factory.options) == 1  # built once for all lines
    assert factory.fake.load_calls == 1  # and loaded once


@pytest.mark.parametrize("argv", [[], ["-"]])
def test_stdin(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(line("q1") + "\n" + line("q2")))  # no final newline
    assert run_cli(argv) == 0
    out = records(capsys.readouterr().out)
    assert [(o["line"], o["query"]) for o in out] == [(1, "q1"), (2, "q2")]
    assert out[0]["results"][0]["index"] == 0


def test_stdin_bytes_are_accounted_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (line("q1") + "\n").encode() + b'{"query": "\xc3", "documents": []}\n' + line("q3").encode()
    monkeypatch.setattr("sys.stdin", bytes_stdin(data))
    assert run_cli([]) == 1
    out = records(capsys.readouterr().out)
    assert [o["line"] for o in out] == [1, 2, 3]
    assert "0xc3" in out[1]["error"] and out[2]["query"] == "q3"


def test_output_file_and_unicode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("Wie tanzen Bienen? 蜜蜂", ["Schwänzeltanz [yes:0.8]"]))
    target = tmp_path / "out.jsonl"
    assert run_cli([str(path), "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    text = target.read_text(encoding="utf-8")
    assert "蜜蜂" in text  # written as UTF-8, not escaped
    (rec,) = records(text)
    assert rec["query"] == "Wie tanzen Bienen? 蜜蜂"
    assert rec["results"][0]["evidence"] == "EVIDENCE(Schwänzeltanz [yes:0.8])"


def test_options_passed_to_factory(tmp_path: Path) -> None:
    path = write_input(tmp_path, line())
    factory = Factory()
    argv = [str(path), "--model", "my/model", "--backend", "qwen3-reranker", "--device", "cpu"]
    argv += ["--dtype", "float32", "--max-length", "512", "--max-new-tokens", "64", "--batch-tokens", "999"]
    argv += ["--instruction", "Find code"]
    assert run_cli(argv, factory) == 0
    assert factory.options == [
        ModelOptions(
            model="my/model",
            backend="qwen3-reranker",
            device="cpu",
            dtype="float32",
            max_length=512,
            max_new_tokens=64,
            batch_tokens=999,
            instruction="Find code",
        )
    ]
    config = factory.options[0].engine_config()
    assert config.to_dict() == {
        "model": "my/model",
        "backend": "qwen3-reranker",
        "device": "cpu",
        "dtype": "float32",
        "max_length": 512,
        "max_new_tokens": 64,
        "batch_tokens": 999,
        "instruction": "Find code",
    }


def test_defaults_passed_to_reranker(tmp_path: Path) -> None:
    path = write_input(tmp_path, line())
    factory = Factory()
    assert run_cli([str(path)], factory) == 0
    assert factory.options == [ModelOptions()]
    assert factory.fake.calls[0][2] == {"top_n": None, "score_threshold": None, "evidence": True}
    # No model and no backend: Prism's default model.
    config = ModelOptions().engine_config()
    assert (config.backend, config.model) == ("prism", "infgrad/Prism-Qwen3.5-Reranker-0.8B")
    config = ModelOptions(backend="qwen3-reranker").engine_config()
    assert (config.backend, config.model) == ("qwen3-reranker", "Qwen/Qwen3-Reranker-0.6B")


def test_top_n_threshold_no_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = ["a [yes:0.9]", "b [yes:0.8]", "c [yes:0.7]", "d [no:0.1]"]
    path = write_input(tmp_path, line("q", docs), line("q2", ["e [yes:0.95]", "f [no:0.3]"]))
    factory = Factory()
    assert run_cli([str(path), "--top-n", "2", "--threshold", "0.5", "--no-evidence"], factory) == 0
    options = {"top_n": 2, "score_threshold": 0.5, "evidence": False}
    assert factory.fake.calls == [("q", docs, options), ("q2", ["e [yes:0.95]", "f [no:0.3]"], options)]
    first, second = records(capsys.readouterr().out)
    assert [r["index"] for r in first["results"]] == [0, 1]  # per query: the top 2 above 0.5
    assert [r["index"] for r in second["results"]] == [0]
    assert all(r["evidence"] is None and r["contribution"] is None for r in first["results"])


def test_threshold_drops_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("q", ["a [no:0.1]"]))
    assert run_cli([str(path), "--threshold", "1"]) == 0
    assert records(capsys.readouterr().out) == [{"line": 1, "query": "q", "results": []}]


def test_empty_documents_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("q", []))
    factory = Factory()
    assert run_cli([str(path)], factory) == 0
    assert records(capsys.readouterr().out) == [{"line": 1, "query": "q", "results": []}]
    assert len(factory.options) == 1 and factory.fake.load_calls == 0  # built, nothing to rank: not loaded


# ---------------------------------------------------------------------------------------------
# bad lines
# ---------------------------------------------------------------------------------------------

BAD_LINES = [
    ('{"query": "q", "documents": ["a"]', "invalid JSON"),
    ('["q", ["a"]]', "JSON object"),
    ('{"documents": ["a"]}', 'missing "query"'),
    ('{"query": 3, "documents": ["a"]}', '"query" must be a string'),
    ('{"query": null, "documents": ["a"]}', '"query" must be a string'),
    ('{"query": "q"}', 'missing "documents"'),
    ('{"query": "q", "documents": "a"}', '"documents" must be a list of strings'),
    ('{"query": "q", "documents": {"a": 1}}', '"documents" must be a list of strings'),
    ('{"query": "q", "documents": ["a", 2]}', '"documents"[1] must be a string'),
    ('{"query": "q", "documents": ["a", null]}', '"documents"[1] must be a string'),
    ("[" * 100_000, "nested too deeply"),
    ('{"query": "q", "documents": [], "n": ' + "1" * 5000 + "}", "invalid JSON"),
    ("\u00a0", "invalid JSON"),  # not JSON whitespace: a record, not a skipped line
]


@pytest.mark.parametrize(("bad", "message"), BAD_LINES)
def test_bad_line_reported_and_rest_processed(
    bad: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line("before"), bad, line("after"))
    assert run_cli([str(path)]) == 1
    captured = capsys.readouterr()
    out = records(captured.out)
    assert [o["line"] for o in out] == [1, 2, 3]
    assert out[0]["query"] == "before" and out[2]["query"] == "after"
    assert set(out[1]) == {"line", "error"}
    assert message in out[1]["error"]
    assert f"line 2: {out[1]['error']}" in captured.err
    assert "1 line(s) failed" in captured.err
    assert "Traceback" not in captured.err


def test_several_bad_lines_all_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, "nope", line("ok"), "{}", line("ok2"))
    assert run_cli([str(path)]) == 1
    captured = capsys.readouterr()
    out = records(captured.out)
    assert [("error" in o, o["line"]) for o in out] == [(True, 1), (False, 2), (True, 3), (False, 4)]
    assert "line 1:" in captured.err and "line 3:" in captured.err
    assert "2 line(s) failed" in captured.err


def test_only_bad_lines_never_load_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, "nope", '{"query": 1}')
    factory = Factory(fake=LoadableFake(load_error=AssertionError("must not be loaded")))
    assert run_cli([str(path)], factory) == 1
    assert len(factory.options) == 1  # built before reading the input...
    assert factory.fake.load_calls == 0  # ...but never loaded
    assert [o["line"] for o in records(capsys.readouterr().out)] == [1, 2]


def test_reranker_value_error_is_a_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Picky(FakeReranker):
        def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
            if not query:
                raise ValueError("query must not be empty")
            return super().rerank(query, documents, **kwargs)

    path = write_input(tmp_path, line(""), line("fine"))
    assert cli.main([str(path), "--no-progress"], reranker_factory=lambda _: Picky()) == 1
    captured = capsys.readouterr()
    out = records(captured.out)
    assert out[0] == {"line": 1, "error": "query must not be empty"}
    assert out[1]["query"] == "fine"
    assert "line 1: query must not be empty" in captured.err


def test_core_validation_message_reaches_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backend that validates with the core's validator: its message, naming the position, is the record."""
    from prism_core.validation import check_documents

    class Validating(FakeReranker):
        def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
            check_documents([d.replace("BAD", "\ud800") for d in documents])
            return super().rerank(query, documents, **kwargs)

    path = write_input(tmp_path, line("q", ["fine", "BAD"]), line("next"))
    assert cli.main([str(path), "--no-progress"], reranker_factory=lambda _: Validating()) == 1
    out = records(capsys.readouterr().out)
    assert "documents[1]" in out[0]["error"] and "cannot be encoded" in out[0]["error"]
    assert out[1]["query"] == "next"


@pytest.mark.parametrize(
    "error",
    [RuntimeError("CUDA out of memory"), ArithmeticError("non-finite verdict logits: try bfloat16")],
)
def test_engine_failure_on_one_line_is_a_record(
    error: Exception, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Flaky(FakeReranker):
        def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
            if query == "boom":
                raise error
            return super().rerank(query, documents, **kwargs)

    path = write_input(tmp_path, line("boom"), line("after"))
    assert cli.main([str(path), "--no-progress"], reranker_factory=lambda _: Flaky()) == 1
    captured = capsys.readouterr()
    out = records(captured.out)
    assert str(error) in out[0]["error"] and out[1]["query"] == "after"
    assert "Traceback" not in captured.err


def test_non_finite_score_never_reaches_the_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class NaNs(FakeReranker):
        def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
            return [dataclasses.replace(r, score=float("nan")) for r in super().rerank(query, documents)]

    path = write_input(tmp_path, line("nan"), line("after", []))
    assert cli.main([str(path), "--no-progress"], reranker_factory=lambda _: NaNs()) == 1
    text = capsys.readouterr().out
    assert ": NaN" not in text  # no bare NaN token (not JSON)
    out = records(text)
    assert "non-finite" in out[0]["error"] and out[1] == {"line": 2, "query": "after", "results": []}


def test_fail_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("one"), line("two"), '{"query": "three"}', line("four"))
    factory = Factory()
    assert run_cli([str(path), "--fail-fast"], factory) == 1
    captured = capsys.readouterr()
    out = records(captured.out)
    assert [o["line"] for o in out] == [1, 2, 3]
    assert [o.get("query") for o in out[:2]] == ["one", "two"]
    assert 'missing "documents"' in out[2]["error"]
    assert "line 3:" in captured.err and "--fail-fast" in captured.err
    assert [c[0] for c in factory.fake.calls] == ["one", "two"]


def test_fail_fast_on_an_undecodable_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes((line("one") + "\n").encode() + b"\xfe\n" + (line("three") + "\n").encode())
    assert run_cli([str(path), "--fail-fast"]) == 1
    out = records(capsys.readouterr().out)
    assert [o["line"] for o in out] == [1, 2] and "0xfe" in out[1]["error"]


def test_fail_fast_on_first_line_loads_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, "{", line())
    factory = Factory()
    assert run_cli([str(path), "--fail-fast"], factory) == 1
    assert factory.fake.load_calls == 0
    assert [o["line"] for o in records(capsys.readouterr().out)] == [1]


def test_blank_lines_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n" + line("a") + "\n   \n\t\n" + line("b") + "\r\n\r\n \r \n", encoding="utf-8")
    assert run_cli([str(path)]) == 0
    captured = capsys.readouterr()
    assert [(o["line"], o["query"]) for o in records(captured.out)] == [(2, "a"), (5, "b")]
    assert captured.err == ""


def test_empty_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    factory = Factory()
    assert run_cli([], factory) == 0
    assert capsys.readouterr().out == ""
    assert factory.fake.load_calls == 0


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([str(tmp_path / "missing.jsonl")]) == 1
    captured = capsys.readouterr()
    assert "cannot open input" in captured.err and "missing.jsonl" in captured.err
    assert "Traceback" not in captured.err


# ---------------------------------------------------------------------------------------------
# line accounting: bytes, BOMs, carriage returns, surrogates
# ---------------------------------------------------------------------------------------------


def test_invalid_utf8_on_line_11_of_20_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [line(f"query {i}", [f"doc {i} [yes:0.{i % 9 + 1}]"]).encode() for i in range(1, 21)]
    lines[10] = b'{"query": "caf\xe9", "documents": ["x"]}'  # Latin-1 e-acute: not UTF-8
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert run_cli([str(path)]) == 1
    captured = capsys.readouterr()
    out = records(captured.out)
    assert [o["line"] for o in out] == list(range(1, 21))
    bad = out[10]
    assert set(bad) == {"line", "error"}
    assert "not valid UTF-8" in bad["error"] and "0xe9" in bad["error"]
    assert "byte offset 14 of the line" in bad["error"]  # {"query": "caf is 14 bytes
    offset_in_file = sum(len(x) + 1 for x in lines[:10]) + 14
    assert f"{offset_in_file} of the input" in bad["error"]
    assert all(o["query"] == f"query {o['line']}" for o in out if o["line"] != 11)
    assert "line 11:" in captured.err and "1 line(s) failed" in captured.err


def test_utf16_input_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes((line("q") + "\n").encode("utf-16"))
    assert run_cli([str(path)]) == 1
    out = records(capsys.readouterr().out)
    assert "UTF-16" in out[0]["error"]


def test_bom_is_dropped_on_any_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    bom = b"\xef\xbb\xbf"
    path.write_bytes(
        bom + line("one").encode() + b"\n" + line("two").encode() + b"\n" + bom + line("three").encode()
    )
    factory = Factory()
    assert run_cli([str(path)], factory) == 0
    captured = capsys.readouterr()
    assert [(o["line"], o["query"]) for o in records(captured.out)] == [(1, "one"), (2, "two"), (3, "three")]
    assert [c[0] for c in factory.fake.calls] == ["one", "two", "three"]
    assert captured.err == ""


def test_bom_only_line_is_blank(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf\n" + line("two").encode() + b"\n")
    assert run_cli([str(path)]) == 0
    assert [o["line"] for o in records(capsys.readouterr().out)] == [2]


def test_bare_carriage_return_inside_a_string_is_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    raw = b'{"query": "bees\rdance", "documents": ["one\rtwo [yes:0.9]", "three"]}\n' + line("next").encode()
    path.write_bytes(raw)
    factory = Factory()
    assert run_cli([str(path)], factory) == 0
    out = records(capsys.readouterr().out)
    assert [o["line"] for o in out] == [1, 2]
    assert out[0]["query"] == "bees\rdance"
    assert factory.fake.calls[0][:2] == ("bees\rdance", ["one\rtwo [yes:0.9]", "three"])


def test_bare_carriage_return_between_tokens_is_whitespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"query":\r"q",\r"documents":\r["a"]}\r\r\n' + b'\r{"query": "q2", "documents": []}\n')
    assert run_cli([str(path)]) == 0
    out = records(capsys.readouterr().out)
    assert [(o["line"], o["query"]) for o in out] == [(1, "q"), (2, "q2")]


def test_old_mac_line_endings_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only \\n ends a line: a file split by bare \\r is one line (one record, not silently several)."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("a").encode() + b"\r" + line("b").encode() + b"\r")
    assert run_cli([str(path)]) == 1
    out = records(capsys.readouterr().out)
    assert len(out) == 1 and out[0]["line"] == 1 and "invalid JSON" in out[0]["error"]


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ('{"query": "bees \\ud800", "documents": ["a"]}', '"query"'),
        ('{"query": "q", "documents": ["fine", "lone \\udfff low"]}', '"documents"[1]'),
    ],
)
def test_lone_surrogate_is_an_error_record(
    bad: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line("before"), bad, line("after"), line("last"))
    factory = Factory()
    assert run_cli([str(path)], factory) == 1
    captured = capsys.readouterr()
    out = records(captured.out)
    assert [o["line"] for o in out] == [1, 2, 3, 4]
    assert set(out[1]) == {"line", "error"}
    assert out[1]["error"].startswith(f"{name} holds text that cannot be encoded as UTF-8")
    assert [o["query"] for o in out if "query" in o] == ["before", "after", "last"]
    assert [c[0] for c in factory.fake.calls] == ["before", "after", "last"]
    assert "Traceback" not in captured.err


# ---------------------------------------------------------------------------------------------
# output: never over the input; write errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "other spelling", "symlink", "hard link"])
def test_output_naming_the_input_is_refused(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line("one"), line("two"))
    before = path.read_bytes()
    output = str(path)
    if how == "other spelling":
        (tmp_path / "sub").mkdir()
        monkeypatch.chdir(tmp_path / "sub")
        output = "../in.jsonl"
    elif how == "symlink":
        (tmp_path / "link.jsonl").symlink_to(path)
        output = str(tmp_path / "link.jsonl")
    elif how == "hard link":
        os.link(path, tmp_path / "hard.jsonl")
        output = str(tmp_path / "hard.jsonl")
    factory = Factory()
    with pytest.raises(SystemExit) as info:
        run_cli([str(path), "-o", output], factory)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite the input" in err and "prism-rerank: error:" in err
    assert path.read_bytes() == before
    assert factory.options == []  # refused before anything was built


def test_stdout_redirected_into_the_input_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line("one"))
    before = path.read_bytes()
    with open(path, "a", encoding="utf-8") as appended:  # prism-rerank in.jsonl >> in.jsonl
        monkeypatch.setattr("sys.stdout", appended)
        with pytest.raises(SystemExit) as info:
            run_cli([str(path)])
    assert info.value.code == 2
    assert "standard output is the input file" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_stdin_from_the_output_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line("one"))
    before = path.read_bytes()
    with open(path, "rb") as raw:  # prism-rerank -o in.jsonl < in.jsonl
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(raw, encoding="utf-8"))
        with pytest.raises(SystemExit) as info:
            run_cli(["-o", str(path)])
    assert info.value.code == 2
    assert path.read_bytes() == before


class FullDisk(io.StringIO):
    """A text stream that fails like a full disk once ``after`` records are written."""

    encoding = "utf-8"

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def write(self, text: str) -> int:
        if self.getvalue().count("\n") >= self.after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(text)


def test_write_error_is_one_clean_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line("one"), "", line("three"), line("four"))
    sink = FullDisk(after=1)
    monkeypatch.setattr("sys.stdout", sink)
    assert run_cli([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "No space left on device" in err
    assert "resume from input line 3" in err  # line 1 written, line 2 blank, line 3 lost
    assert [o["line"] for o in records(sink.getvalue())] == [1]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_write_error_on_dev_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("one"), line("two"))
    assert run_cli([str(path), "-o", "/dev/full"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cannot write to '/dev/full'" in err and "resume from input line 1" in err


# ---------------------------------------------------------------------------------------------
# interruption and resuming
# ---------------------------------------------------------------------------------------------


class InterruptOn(FakeReranker):
    def __init__(self, query: str) -> None:
        super().__init__()
        self.query = query

    def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
        if query == self.query:
            raise KeyboardInterrupt
        return super().rerank(query, documents, **kwargs)


def test_interrupt_names_the_line_to_resume_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("one"), line("two"), line("three"), line("four"))
    status = cli.main([str(path), "--no-progress"], reranker_factory=lambda _: InterruptOn("three"))
    assert status == 130
    captured = capsys.readouterr()
    assert [o["line"] for o in records(captured.out)] == [1, 2]
    assert "interrupted" in captured.err and "resume from input line 3" in captured.err
    assert "--start-line 3" in captured.err and "Traceback" not in captured.err


def test_interrupt_after_blank_and_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("one"), "", "bad", "", line("stop"), line("six"))
    status = cli.main([str(path), "--no-progress"], reranker_factory=lambda _: InterruptOn("stop"))
    assert status == 130
    captured = capsys.readouterr()
    assert [o["line"] for o in records(captured.out)] == [1, 3]
    assert "resume from input line 5" in captured.err


def test_start_line_resumes_with_the_original_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line("one"), line("two"), line("three"), "", line("five"))
    factory = Factory()
    assert run_cli([str(path), "--start-line", "3"], factory) == 0
    out = records(capsys.readouterr().out)
    assert [(o["line"], o["query"]) for o in out] == [(3, "three"), (5, "five")]
    assert [c[0] for c in factory.fake.calls] == ["three", "five"]


# ---------------------------------------------------------------------------------------------
# arguments, options and model loading
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--top-n", "0"],
        ["--top-n", "-3"],
        ["--top-n", "two"],
        ["--threshold", "1.5"],
        ["--threshold", "-0.1"],
        ["--threshold", "nan"],
        ["--threshold", "high"],
        ["--max-length", "0"],
        ["--max-new-tokens", "-1"],
        ["--batch-tokens", "0"],
        ["--start-line", "0"],
        ["--dtype", "float77"],
        ["--bogus"],
    ],
)
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    factory = Factory()
    with pytest.raises(SystemExit) as info:
        cli.main(["-", *args], reranker_factory=factory)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err
    assert factory.options == []


def test_unknown_backend_is_an_option_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line())
    factory = Factory()
    with pytest.raises(SystemExit) as info:
        run_cli([str(path), "--backend", "colbert"], factory)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "prism-rerank: error: unknown backend 'colbert'" in err
    for name in BACKENDS:
        assert name in err
    assert factory.options == []


def test_max_length_below_the_prompt_is_an_option_error(
    tiny_qwen35_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real factory builds (does not load) the Prism engine, which refuses the budget."""
    path = write_input(tmp_path, line())
    with pytest.raises(SystemExit) as info:
        cli.main([str(path), "--model", tiny_qwen35_path, "--device", "cpu", "--max-length", "5"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "prism-rerank: error: max_length must be >= 200" in err and "got 5" in err
    assert "cannot load" not in err and "Traceback" not in err


def test_option_the_backend_does_not_take(
    tiny_qwen35_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, line())
    with pytest.raises(SystemExit) as info:
        cli.main([str(path), "--model", tiny_qwen35_path, "--device", "cpu", "--instruction", "Find code"])
    assert info.value.code == 2
    assert "--instruction does not apply to the prism backend" in capsys.readouterr().err


def test_undetectable_backend_is_an_option_error(
    tiny_qwen3_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain Qwen3 checkpoint named neither prism nor qwen3-reranker: the message says to pass --backend."""
    path = write_input(tmp_path, line())
    with pytest.raises(SystemExit) as info:
        cli.main([str(path), "--model", tiny_qwen3_path, "--device", "cpu"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot tell the backend" in err and "qwen3-reranker" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_package.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--top-n" in out and "demo" in out and "--backend" in out and "--instruction" in out
    assert "line accounting" in out and "--start-line" in out and "exit status" in out


@pytest.mark.parametrize(
    "error",
    [
        ModelLoadError("repository not found"),
        OSError("We couldn't connect to 'https://huggingface.co'"),
    ],
)
def test_model_load_failure(error: Exception, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line(), line())
    factory = Factory(error=error)
    assert run_cli([str(path), "--model", "nope/missing-model"], factory) == 1
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1
    assert "cannot load model 'nope/missing-model'" in err_lines[0]
    assert str(error) in err_lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert len(factory.options) == 1  # tried once, not once per line


def test_weights_failing_to_load_at_the_first_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, "bad", line("two"), line("three"))
    factory = Factory(fake=LoadableFake(load_error=ModelLoadError("no weights in /x")))
    assert run_cli([str(path), "--model", "/x", "--backend", "prism"], factory) == 1
    captured = capsys.readouterr()
    assert [o["line"] for o in records(captured.out)] == [1]
    last = captured.err.strip().splitlines()[-1]
    assert "cannot load model '/x': no weights in /x" in last and "resume from input line 2" in last
    assert factory.fake.load_calls == 1


def test_option_refused_when_the_weights_load_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exact prompt length is known once the tokenizer is: a budget refused then is an option error."""
    path = write_input(tmp_path, line("one"), line("two"))
    error = ValueError("max_length must be >= 81 for this prompt, got 80")
    factory = Factory(fake=LoadableFake(load_error=error))
    assert run_cli([str(path), "--max-length", "80"], factory) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        "prism-rerank: error: max_length must be >= 81" in captured.err and "cannot load" not in captured.err
    )


def test_progress_bar_off_when_not_a_tty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line())
    assert cli.main([str(path)], reranker_factory=Factory()) == 0  # progress requested, stderr no TTY
    captured = capsys.readouterr()
    assert captured.err == ""
    assert len(records(captured.out)) == 1


def test_parse_line() -> None:
    assert cli.parse_line('{"query": "q", "documents": ["a"], "id": 7}') == ("q", ["a"])
    assert cli.parse_line('{"query": "a\rb", "documents": ["c\td"]}') == ("a\rb", ["c\td"])
    with pytest.raises(cli.LineError, match="got a number"):
        cli.parse_line("3")


def test_split_lines_only_on_newline() -> None:
    chunks = [b"a\r", b"\nb\rc", b"\n\n", b"\xff\r\r\nlast"]
    assert list(cli.split_lines(chunks)) == [
        (1, 0, b"a"),
        (2, 3, b"b\rc"),
        (3, 7, b""),
        (4, 8, b"\xff\r"),
        (5, 12, b"last"),
    ]


# ---------------------------------------------------------------------------------------------
# subcommand dispatch
# ---------------------------------------------------------------------------------------------


def test_missing_subcommand_module_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_package, "SUBCOMMANDS", (*cli_package.SUBCOMMANDS, "nosuchcommand"))
    assert cli_package.main(["nosuchcommand", "--x"]) == 2
    err = capsys.readouterr().err
    assert "'nosuchcommand' subcommand is not available" in err and "Traceback" not in err


def test_subcommands_are_imported_lazily_and_get_their_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    seen: list[tuple[list[str], dict[str, Any]]] = []
    fake = types.ModuleType("prism_core.cli.fakecmd")
    fake.main = lambda argv, **kwargs: seen.append((argv, kwargs)) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prism_core.cli.fakecmd", fake)
    monkeypatch.setattr(cli_package, "SUBCOMMANDS", (*cli_package.SUBCOMMANDS, "fakecmd"))
    factory = Factory()
    assert cli_package.main(["fakecmd", "a", "--b"]) == 7
    assert cli_package.main(["fakecmd"], reranker_factory=factory) == 7
    assert seen == [(["a", "--b"], {}), ([], {"reranker_factory": factory})]


def test_no_subcommand_reranks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("via package"))
    assert cli_package.main([str(path), "--no-progress"], reranker_factory=Factory()) == 0
    assert records(capsys.readouterr().out)[0]["query"] == "via package"
