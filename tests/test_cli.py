"""Tests of the ``prism-rerank`` command line and its demo, on the scripted fake reranker."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeReranker

from prism_core.cli import demo
from prism_core.cli import rerank as cli
from prism_core.cli.rerank import ModelOptions
from prism_core.errors import ModelLoadError
from prism_core.results import PrismResult

RESULT_FIELDS = {f.name for f in dataclasses.fields(PrismResult)}


class Factory:
    """A reranker factory that records its calls and hands out one FakeReranker."""

    def __init__(self, error: Exception | None = None) -> None:
        self.fake = FakeReranker()
        self.options: list[ModelOptions] = []
        self.error = error

    def __call__(self, options: ModelOptions) -> FakeReranker:
        self.options.append(options)
        if self.error is not None:
            raise self.error
        return self.fake.load()


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
    out = text.splitlines()
    assert all(o.strip() for o in out), "no blank output lines"
    return [json.loads(o) for o in out]


def run_cli(argv: list[str], factory: Factory | None = None) -> int:
    return cli.main([*argv, "--no-progress"], reranker_factory=factory or Factory())


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
    assert len(factory.options) == 1  # loaded once for all lines


@pytest.mark.parametrize("argv", [[], ["-"]])
def test_stdin(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(line("q1") + "\n" + line("q2")))  # no final newline
    assert run_cli(argv) == 0
    out = records(capsys.readouterr().out)
    assert [(o["line"], o["query"]) for o in out] == [(1, "q1"), (2, "q2")]
    assert out[0]["results"][0]["index"] == 0


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
    argv = [str(path), "--model", "my/model", "--device", "cpu", "--dtype", "float32"]
    argv += ["--max-length", "512", "--max-new-tokens", "64"]
    assert run_cli(argv, factory) == 0
    assert factory.options == [ModelOptions("my/model", "cpu", "float32", 512, 64)]


def test_defaults_passed_to_reranker(tmp_path: Path) -> None:
    path = write_input(tmp_path, line())
    factory = Factory()
    assert run_cli([str(path)], factory) == 0
    assert factory.options == [ModelOptions()]
    assert factory.fake.calls[0][2] == {"top_n": None, "score_threshold": None, "evidence": True}


def test_top_n_threshold_no_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = ["a [yes:0.9]", "b [yes:0.8]", "c [yes:0.7]", "d [no:0.1]"]
    path = write_input(tmp_path, line("q", docs))
    factory = Factory()
    assert run_cli([str(path), "--top-n", "2", "--threshold", "0.5", "--no-evidence"], factory) == 0
    assert factory.fake.calls == [("q", docs, {"top_n": 2, "score_threshold": 0.5, "evidence": False})]
    (rec,) = records(capsys.readouterr().out)
    assert [r["index"] for r in rec["results"]] == [0, 1]
    assert all(r["evidence"] is None and r["contribution"] is None for r in rec["results"])


def test_threshold_drops_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("q", ["a [no:0.1]"]))
    assert run_cli([str(path), "--threshold", "1"]) == 0
    assert records(capsys.readouterr().out) == [{"line": 1, "query": "q", "results": []}]


def test_empty_documents_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line("q", []))
    factory = Factory()
    assert run_cli([str(path)], factory) == 0
    assert records(capsys.readouterr().out) == [{"line": 1, "query": "q", "results": []}]
    assert factory.options == []  # nothing to rank: no model loaded


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
    factory = Factory(error=AssertionError("must not be called"))
    assert run_cli([str(path)], factory) == 1
    assert factory.options == []
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


def test_fail_fast_on_first_line_loads_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, "{", line())
    factory = Factory()
    assert run_cli([str(path), "--fail-fast"], factory) == 1
    assert factory.options == []
    assert [o["line"] for o in records(capsys.readouterr().out)] == [1]


def test_blank_lines_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n" + line("a") + "\n   \n\t\n" + line("b") + "\r\n\n", encoding="utf-8")
    assert run_cli([str(path)]) == 0
    captured = capsys.readouterr()
    assert [(o["line"], o["query"]) for o in records(captured.out)] == [(2, "a"), (5, "b")]
    assert captured.err == ""


def test_empty_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    factory = Factory()
    assert run_cli([], factory) == 0
    assert capsys.readouterr().out == ""
    assert factory.options == []


def test_invalid_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"query": "\xff", "documents": []}\n')
    assert run_cli([str(path)]) == 1
    assert "UTF-8" in capsys.readouterr().err


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([str(tmp_path / "missing.jsonl")]) == 1
    captured = capsys.readouterr()
    assert "cannot open input" in captured.err and "missing.jsonl" in captured.err
    assert "Traceback" not in captured.err


# ---------------------------------------------------------------------------------------------
# arguments and model loading
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


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--top-n" in out and "demo" in out


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


def test_progress_bar_off_when_not_a_tty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_input(tmp_path, line())
    assert cli.main([str(path)], reranker_factory=Factory()) == 0  # progress requested, stderr no TTY
    captured = capsys.readouterr()
    assert captured.err == ""
    assert len(records(captured.out)) == 1


def test_parse_line() -> None:
    assert cli.parse_line('{"query": "q", "documents": ["a"], "id": 7}') == ("q", ["a"])
    with pytest.raises(cli.LineError, match="got a number"):
        cli.parse_line("3")


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------

EXAMPLE = """
import json, os, sys
def main(argv=None):
    with open(os.environ["PRISM_DEMO_LOG"], "a") as f:
        f.write(json.dumps({{"name": {name!r}, "argv": argv}}) + "\\n")
    print("{name} example ran")
    return {status}
"""


def test_demo_fallback_banner_table_and_frameworks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "langchain_example.py").write_text(EXAMPLE.format(name="langchain", status=0))
    (examples / "llama_index_example.py").write_text(EXAMPLE.format(name="llama", status=3))
    (examples / "haystack_example.py").write_text(EXAMPLE.format(name="haystack", status=0))
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("PRISM_DEMO_LOG", str(log))
    monkeypatch.setattr(demo, "_installed", lambda module: module != "haystack")
    factory = Factory()
    resolved: list[str | None] = []

    def resolver(model: str | None) -> tuple[str, bool]:
        resolved.append(model)
        return "/tmp/tiny-prism", True

    status = demo.main(
        ["--device", "cpu"], reranker_factory=factory, resolve_model=resolver, examples_dir=examples
    )
    out = capsys.readouterr().out
    assert status == 1  # the llama example returned 3
    assert resolved == [None]
    assert "RANDOM" in out and "MEANINGLESS" in out and "/tmp/tiny-prism" in out
    assert factory.options[0].model == "/tmp/tiny-prism"
    assert factory.options[0].device == "cpu"
    assert factory.options[0].max_new_tokens == demo.FALLBACK_MAX_NEW_TOKENS
    assert demo.DEMO_QUERY in out
    assert "verdict" in out and "contribution" in out
    assert factory.fake.calls[0][:2] == (demo.DEMO_QUERY, list(demo.DEMO_DOCUMENTS))
    assert "langchain example ran" in out
    assert "LlamaIndex: FAILED" in out
    assert "Haystack: skipped (haystack is not installed)" in out
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    argv = ["--model", "/tmp/tiny-prism", "--max-new-tokens", str(demo.FALLBACK_MAX_NEW_TOKENS)]
    assert calls == [{"name": "langchain", "argv": argv}, {"name": "llama", "argv": argv}]


def test_demo_via_cli_real_weights_no_frameworks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "_default_resolver", lambda model: (model or "org/prism", False))
    monkeypatch.setattr(demo, "run_framework_examples", lambda *a: pytest.fail("frameworks must be skipped"))
    factory = Factory()
    assert cli.main(["demo", "--model", "my/model", "--no-frameworks"], reranker_factory=factory) == 0
    out = capsys.readouterr().out
    assert "RANDOM" not in out and "MEANINGLESS" not in out
    assert factory.options[0].model == "my/model"
    assert factory.options[0].max_new_tokens is None
    assert "Model: my/model" in out


def test_demo_missing_examples_are_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = demo.main(
        [], reranker_factory=Factory(), resolve_model=lambda m: ("x", False), examples_dir=tmp_path
    )
    assert status == 0
    out = capsys.readouterr().out
    assert out.count("not found") == 3


def test_demo_model_load_failure(capsys: pytest.CaptureFixture[str]) -> None:
    factory = Factory(error=ModelLoadError("no such model"))
    status = demo.main(
        ["--no-frameworks"], reranker_factory=factory, resolve_model=lambda m: ("org/x", False)
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot load model 'org/x': no such model" in err and "Traceback" not in err


def test_render_table_fits_width() -> None:
    docs = ["word " * 100, "short"]
    results = [
        PrismResult(0, 0.97, 3.5, True, "c " * 100, "ev", True, True, "raw"),
        PrismResult(1, 0.12, -2.0, False),
    ]
    for width in (60, 80, 140):
        table = demo.render_table(results, docs, width)
        assert all(len(row) <= width for row in table.splitlines())
        assert len(table.splitlines()) == 4  # header, two rows, truncation footnote
        assert "#0*" in table
    assert "2/500" in demo.render_table(results, docs, 100)
