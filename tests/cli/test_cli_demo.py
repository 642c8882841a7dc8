"""Tests of ``prism-rerank demo`` on the scripted fake reranker (fast; the real tiny models run in
``test_cli_real_model.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import prism_core.cli as cli_package
import prism_core.runtime.hub as hub
from prism_core.cli import demo, demo_model
from prism_core.cli.demo_model import DemoModel
from prism_core.cli.options import ModelOptions
from prism_core.errors import ModelLoadError
from prism_core.protocol import SCORE_ONLY
from prism_core.results import PrismResult
from tests.fakes import FakeReranker


class ScoreOnlyFake(FakeReranker):
    """The fake as a score-only backend would be: no contribution, no evidence."""

    capabilities = SCORE_ONLY
    backend = "cross-encoder"

    def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
        return super().rerank(query, documents, **{**kwargs, "evidence": False})


class Factory:
    """A reranker factory that records the options it gets and hands out one fake."""

    def __init__(self, error: Exception | None = None, fake: FakeReranker | None = None) -> None:
        self.fake = fake or FakeReranker()
        self.options: list[ModelOptions] = []
        self.error = error

    def __call__(self, options: ModelOptions) -> FakeReranker:
        self.options.append(options)
        if self.error is not None:
            raise self.error
        return self.fake


EXAMPLE = """
import json, os, sys
def main(argv=None):
    if argv == ["--help"]:
        print("usage: example [--model M]{backend_help}")
        raise SystemExit(0)
    with open(os.environ["PRISM_DEMO_LOG"], "a") as f:
        f.write(json.dumps({{"name": {name!r}, "argv": argv}}) + "\\n")
    print("{name} example ran")
    return {status}
"""


def write_examples(
    directory: Path, *, backend_help: bool = False, statuses: tuple[int, int, int] = (0, 3, 0)
) -> Path:
    directory.mkdir()
    help_text = " [--backend B]" if backend_help else ""
    for (name, filename), status in zip(
        [
            ("langchain", "langchain_example.py"),
            ("llama", "llama_index_example.py"),
            ("haystack", "haystack_example.py"),
        ],
        statuses,
        strict=True,
    ):
        (directory / filename).write_text(EXAMPLE.format(name=name, status=status, backend_help=help_text))
    return directory


def test_demo_fallback_banner_table_and_frameworks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = write_examples(tmp_path / "examples")
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("PRISM_DEMO_LOG", str(log))
    monkeypatch.setattr(demo, "_installed", lambda module: module != "haystack")
    factory = Factory()
    resolved: list[tuple[str | None, str | None]] = []

    def resolver(model: str | None, backend: str | None) -> DemoModel:
        resolved.append((model, backend))
        return DemoModel("/tmp/tiny-prism", "prism", True)

    status = demo.main(
        ["--device", "cpu"], reranker_factory=factory, resolve_model=resolver, examples_dir=examples
    )
    out = capsys.readouterr().out
    assert status == 1  # the llama example returned 3
    assert resolved == [(None, None)]
    assert "RANDOM" in out and "MEANINGLESS" in out and "/tmp/tiny-prism" in out
    assert factory.options[0].model == "/tmp/tiny-prism"
    assert factory.options[0].backend == "prism"
    assert factory.options[0].device == "cpu"
    assert factory.options[0].max_new_tokens == demo.FALLBACK_MAX_NEW_TOKENS
    assert factory.fake.loaded  # loaded before the table
    assert demo.DEMO_QUERY in out
    assert "verdict" in out and "contribution" in out and "tokens ev/doc" in out
    assert factory.fake.calls[0][:2] == (demo.DEMO_QUERY, list(demo.DEMO_DOCUMENTS))
    assert "langchain example ran" in out
    assert "LlamaIndex: FAILED" in out
    assert "Haystack: skipped (haystack is not installed)" in out
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    argv = ["--model", "/tmp/tiny-prism", "--max-new-tokens", str(demo.FALLBACK_MAX_NEW_TOKENS)]
    assert calls == [{"name": "langchain", "argv": argv}, {"name": "llama", "argv": argv}]


@pytest.mark.parametrize("backend", ["qwen3-reranker", "cross-encoder"])
def test_demo_score_only_backend_fallback(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A score-only backend's fallback: its banner, a table without evidence columns, no max_new_tokens."""
    examples = write_examples(tmp_path / "examples", statuses=(0, 0, 0))
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("PRISM_DEMO_LOG", str(log))
    monkeypatch.setattr(demo, "_installed", lambda module: True)
    fake = ScoreOnlyFake()
    fake.backend = backend
    factory = Factory(fake=fake)
    resolver = lambda model, b: DemoModel(f"/tmp/tiny-{b}", b, True)  # noqa: E731
    argv = ["--backend", backend]
    status = demo.main(argv, reranker_factory=factory, resolve_model=resolver, examples_dir=examples)
    out = capsys.readouterr().out
    assert status == 0
    assert f"tiny locally built {backend} model" in out and "MEANINGLESS" in out
    assert factory.options[0].backend == backend and factory.options[0].max_new_tokens is None
    assert f"backend: {backend}" in out
    assert "score-only" in out and "tokens ev/doc" not in out and "contribution" not in out
    assert factory.fake.calls[0][2]["evidence"] is False  # nothing asked of a score-only backend
    # The examples cannot take --backend (yet): skipped, said so, not run as Prism.
    assert out.count("does not take --backend yet") == 3
    assert not log.exists()


def test_demo_passes_backend_to_examples_that_take_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = write_examples(tmp_path / "examples", backend_help=True, statuses=(0, 0, 0))
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("PRISM_DEMO_LOG", str(log))
    monkeypatch.setattr(demo, "_installed", lambda module: True)
    fake = ScoreOnlyFake()
    resolver = lambda model, b: DemoModel("/tmp/tiny-ce", b, True)  # noqa: E731
    status = demo.main(
        ["--backend", "cross-encoder"],
        reranker_factory=Factory(fake=fake),
        resolve_model=resolver,
        examples_dir=examples,
    )
    assert status == 0
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    assert [c["argv"] for c in calls] == [["--model", "/tmp/tiny-ce", "--backend", "cross-encoder"]] * 3


def test_demo_via_cli_real_weights_no_frameworks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        demo, "_default_resolver", lambda model, backend: DemoModel(model or "org/prism", backend, False)
    )
    monkeypatch.setattr(demo, "run_framework_examples", lambda *a: pytest.fail("frameworks must be skipped"))
    factory = Factory()
    assert cli_package.main(["demo", "--model", "my/model", "--no-frameworks"], reranker_factory=factory) == 0
    out = capsys.readouterr().out
    assert "RANDOM" not in out and "MEANINGLESS" not in out
    assert factory.options[0].model == "my/model"
    assert factory.options[0].backend is None  # told from the checkpoint by the engine's factory
    assert factory.options[0].max_new_tokens is None
    assert "Model: my/model" in out


def test_demo_missing_examples_are_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = demo.main(
        [],
        reranker_factory=Factory(),
        resolve_model=lambda m, b: DemoModel("x", b, False),
        examples_dir=tmp_path,
    )
    assert status == 0
    out = capsys.readouterr().out
    assert out.count("not found") == 3


def test_demo_model_load_failure(capsys: pytest.CaptureFixture[str]) -> None:
    factory = Factory(error=ModelLoadError("no such model"))
    status = demo.main(
        ["--no-frameworks"], reranker_factory=factory, resolve_model=lambda m, b: DemoModel("org/x", b, False)
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot load model 'org/x': no such model" in err and "Traceback" not in err


def test_demo_refuses_other_backends(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        demo.main(["--backend", "remote"], reranker_factory=Factory())
    assert info.value.code == 2
    assert "prism, qwen3-reranker, cross-encoder" in capsys.readouterr().err


def test_demo_option_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    factory = Factory(error=ValueError("max_length must be >= 200 for the prism prompt, got 5"))
    with pytest.raises(SystemExit) as info:
        demo.main(
            ["--max-length", "5", "--no-frameworks"],
            reranker_factory=factory,
            resolve_model=lambda m, b: DemoModel("org/x", b, False),
        )
    assert info.value.code == 2
    assert "max_length must be >= 200" in capsys.readouterr().err


def test_render_table_fits_width() -> None:
    docs = ["word " * 100, "short"]
    results = [
        PrismResult(
            0, 0.97, 3.5, True, "c " * 100, "ev", True, True, "raw", document_tokens=101, evidence_tokens=1
        ),
        PrismResult(1, 0.12, -2.0, False, document_tokens=1),
    ]
    for width in (60, 80, 140):
        for evidence in (True, False):
            table = demo.render_table(results, docs, width, evidence=evidence)
            assert all(len(row) <= width for row in table.splitlines())
            assert len(table.splitlines()) == 4  # header, two rows, truncation footnote
            assert "#0*" in table
    assert "1/101" in demo.render_table(results, docs, 100)  # tokens, not characters (2/500)
    assert "1/101" not in demo.render_table(results, docs, 100, evidence=False)


# ---------------------------------------------------------------------------------------------
# choosing the model: one tiny fallback per backend
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "backend", "kind"),
    [
        (None, None, "prism"),
        (None, "prism", "prism"),
        (None, "qwen3-reranker", "qwen3-reranker"),
        (None, "cross-encoder", "cross-encoder"),
        ("Qwen/Qwen3-Reranker-4B", None, "qwen3-reranker"),
        ("BAAI/bge-reranker-v2-m3", None, "cross-encoder"),
        ("someone/some-model", "cross-encoder", "cross-encoder"),
    ],
)
def test_offline_fallback_is_of_the_backend(
    model: str | None, backend: str | None, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "_reachable", False)  # the probe's answer: unreachable
    built: list[str] = []

    def fake_fallback(name: str) -> Path:
        built.append(name)
        return Path(f"/tmp/tiny-{name}")

    monkeypatch.setattr(demo_model, "tiny_fallback", fake_fallback)
    chosen = demo_model.resolve_demo(model, backend)
    assert chosen == DemoModel(f"/tmp/tiny-{kind}", kind, True)
    assert built == [kind]
    assert demo_model.resolve_demo_model(model, backend) == (f"/tmp/tiny-{kind}", True)


def test_tiny_fallback_refuses_unknown_backends() -> None:
    with pytest.raises(ValueError, match="no tiny fallback for backend 'remote'"):
        demo_model.tiny_fallback("remote")


def test_explicit_tiny_checkpoint_is_a_fallback(tiny_qwen35_path: str) -> None:
    assert demo_model.resolve_demo(tiny_qwen35_path) == DemoModel(tiny_qwen35_path, "prism", True)
    assert demo_model.resolve_demo(tiny_qwen35_path, "prism") == DemoModel(tiny_qwen35_path, "prism", True)


def test_local_path_that_cannot_load_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="could not load model"):
        demo_model.resolve_demo(str(tmp_path / "nothing-here"))
