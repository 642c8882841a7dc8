"""Offline, every command that loads a model fails in seconds with one clear line, or uses the cache.

Each command runs as a real process with the Hub made unreachable on purpose (``HF_ENDPOINT`` at a
closed local port, an empty Hugging Face cache), so the test means the same on a machine that can
reach the Hub. Before the quick probe these commands sat through huggingface_hub's retries (five
per file, ``Retrying in 8s``: ~50 s) and printed the error twice, with a "resume" hint.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HUB_ID = "infgrad/Prism-Qwen3.5-Reranker-0.8B"
#: Far below the ~50 s of retries, far above a process start on a loaded 2-core machine.
BOUND_S = 45


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once the socket is: connections are refused


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(tmp_path / "hf-home" / "hub"),
        PRISM_HUB_PROBE_TIMEOUT="3",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _prism_rerank(
    args: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    exe = Path(sys.executable).with_name("prism-rerank")
    command = (
        [str(exe)] if exe.exists() else [sys.executable, "-c", "from prism_core.cli import main; main()"]
    )
    start = time.monotonic()
    done = subprocess.run(
        command + args,
        cwd=tmp_path,
        env=env or _env(tmp_path),
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stderr, time.monotonic() - start


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text('{"query": "q", "documents": ["a", "b"]}\n')
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["in.jsonl"],  # the default model
        ["in.jsonl", "--model", "someone/some-reranker", "--backend", "prism"],
        ["eval", "--model", HUB_ID, "--out", "eval-out", "--max-queries", "1"],
        ["serve", "--model", HUB_ID, "--port", "0"],
        ["batch", "in.jsonl", "-o", "out.jsonl", "--model", HUB_ID],
    ],
    ids=["rerank-default", "rerank-model", "eval", "serve", "batch"],
)
def test_unreachable_hub_fails_fast_in_one_line(args: list[str], input_file: Path, tmp_path: Path) -> None:
    status, err, _ = _prism_rerank(args, tmp_path)
    model = args[args.index("--model") + 1] if "--model" in args else HUB_ID
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 1, err
    assert "Retrying" not in err and "Traceback" not in err
    assert len(lines) == 1, err
    (message,) = lines
    assert f"cannot load model {model!r}" in message
    assert "cannot be reached" in message
    assert "--model ./model" in message and "HF_HUB_OFFLINE=1" in message
    assert "resume" not in message
    assert message.count(model) <= 3  # named, and in the download command: not repeated by every layer


def test_hub_offline_set_and_not_cached_fails_fast(input_file: Path, tmp_path: Path) -> None:
    env = {**_env(tmp_path), "HF_HUB_OFFLINE": "1"}
    status, err, _ = _prism_rerank(["in.jsonl"], tmp_path, env)
    assert status == 1 and "Retrying" not in err
    assert f"cannot load model {HUB_ID!r}: HF_HUB_OFFLINE is set and it is not in the local cache" in err


def test_unreachable_hub_uses_a_cached_checkpoint(
    tiny_qwen35_path: str, input_file: Path, tmp_path: Path
) -> None:
    """A hub id already in the local cache loads from it, with one line saying the process went offline."""
    env = _env(tmp_path)
    snapshot = Path(env["HF_HUB_CACHE"]) / "models--someone--tiny-prism" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_qwen35_path, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    args = [
        "in.jsonl",
        "--model",
        "someone/tiny-prism",
        "--backend",
        "prism",
        "--no-evidence",
        "-o",
        "out.jsonl",
    ]
    status, err, _ = _prism_rerank(args, tmp_path, env)
    assert status == 0, err
    assert "Retrying" not in err
    assert err.count("cannot be reached; using cached files only") == 1
    assert '"results"' in (tmp_path / "out.jsonl").read_text()
