"""The demo's terminal on a tiny model, framework examples included: one random-weight banner,
transformers' kernel notes in one line, no progress bars off a terminal, lengths in tokens."""

from __future__ import annotations

import pytest

import prism_core.cli as cli_package
from prism_core.cli import demo_model
from prism_core.runtime import quiet


@pytest.mark.slow
def test_demo_with_the_examples_is_quiet(
    tiny_qwen35_path: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_model, "_banner_shown", False)
    monkeypatch.setattr(quiet, "_filter", quiet._KernelFallbackFilter())  # this process may have spoken
    argv = ["demo", "--model", tiny_qwen35_path, "--device", "cpu", "--max-new-tokens", "4"]
    assert cli_package.main(argv) == 0
    out, err = capfd.readouterr()  # file descriptors: transformers' own handler writes there too
    both = out + err
    assert both.count("MEANINGLESS") == 1, both  # one banner, though three examples ran after it
    assert "--- LangChain: ok" in out or "LangChain: skipped" in out
    assert "falling back to its reference PyTorch implementation" not in both
    assert both.count("Qwen3.5's linear-attention layers run transformers' reference PyTorch code") <= 1
    assert "Loading weights" not in both and "Writing model shards" not in both  # stderr is no terminal
    assert "tokens ev/doc" in out and "chars" not in out
    assert "(lengths in tokens (Prism tokenizer))" not in out
