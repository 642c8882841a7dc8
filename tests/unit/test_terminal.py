"""A quiet terminal: kernel-fallback warnings folded, progress bars switched off, one random-weight line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from prism_core.cli import demo_model
from prism_core.cli.terminal import setup_terminal
from prism_core.runtime import hub, quiet
from prism_core.testing.tiny_models import TINY_MARKER

FALLBACK = (
    "`{}` is falling back to its reference PyTorch implementation because `causal_conv1d` is either not "
    "installed or doesn't support the device of the inputs. This is correct but much slower."
)


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord(quiet.KERNEL_LOGGER, logging.WARNING, __file__, 1, message, None, None)


def test_kernel_fallback_warnings_fold_into_one_line(caplog: pytest.LogCaptureFixture) -> None:
    fold = quiet._KernelFallbackFilter()  # a fresh one: the process-wide filter may have spoken already
    with caplog.at_level(logging.WARNING, logger=quiet.__name__):
        kept = [
            fold.filter(_record(FALLBACK.format(name)))
            for name in ("causal_conv1d_fn", "chunk_gated_delta_rule", "causal_conv1d_update")
        ]
        unrelated = fold.filter(_record("an unrelated transformers warning"))
    assert kept == [False, False, False] and unrelated is True  # transformers' lines dropped, others kept
    assert [r.getMessage() for r in caplog.records] == [quiet.FOLDED_MESSAGE]  # said once instead
    assert "Expected on a CPU" in quiet.FOLDED_MESSAGE


def test_the_fold_is_installed_on_transformers_kernel_logger() -> None:
    quiet.fold_kernel_fallback_warnings()
    quiet.fold_kernel_fallback_warnings()
    assert logging.getLogger(quiet.KERNEL_LOGGER).filters.count(quiet._filter) == 1


def test_setup_terminal_turns_progress_bars_off() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    try:
        assert setup_terminal(True) is True and hf_logging.is_progress_bar_enabled()
        assert setup_terminal(False) is False and not hf_logging.is_progress_bar_enabled()
        assert quiet._filter in logging.getLogger(quiet.KERNEL_LOGGER).filters
    finally:
        hf_logging.enable_progress_bar()


def test_no_progress_bars_restores_the_setting() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    with quiet.no_progress_bars():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()


def test_random_weight_warning_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_model, "_banner_shown", False)
    (tmp_path / TINY_MARKER).write_text("random")
    assert not demo_model.warn_random_weights_once("org/real", "prism-rerank")
    assert demo_model.warn_random_weights_once(str(tmp_path), "prism-rerank")
    assert not demo_model.warn_random_weights_once(str(tmp_path), "prism-rerank")
    err = capsys.readouterr().err
    assert err.count("RANDOM-WEIGHT") == 1 and str(tmp_path) in err


def test_check_hub_leaves_local_paths_and_urls_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "_reachable", False)  # the probe's answer: unreachable
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # (the examples set it in-process)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    hub.check_hub("./some/dir")
    hub.check_hub("http://host:8000")
    with pytest.raises(
        OSError, match=r"cannot load model 'org/absent': the Hugging Face Hub .* cannot be reached"
    ):
        hub.check_hub("org/absent")


def test_probe_answers_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    calls: list[str] = []

    def refuse(url: str, **kwargs: object) -> None:
        calls.append(url)
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(hub, "_reachable", None)
    monkeypatch.setattr(httpx, "head", refuse)
    monkeypatch.delenv("PRISM_HUB_PROBE_TIMEOUT", raising=False)
    assert hub.hub_reachable() is False and hub.hub_reachable() is False
    assert len(calls) == 1
