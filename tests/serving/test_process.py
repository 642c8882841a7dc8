"""``prism-rerank serve`` as a real process: killed mid-request (the client retries, then names the
server), and SIGTERM (the request in flight finishes, then the process exits 0)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import pytest

from prism_core.backends.remote import RemoteReranker, RemoteUnavailableError
from tests.serving.serving_helpers import API_KEY, ServerProcess, queue_depth, wait_until

pytestmark = pytest.mark.slow

# Enough work that the request is still in the engine for a while on a fast machine (CI answered 48
# such documents in 0.24 s), with small passes so that it crosses many step boundaries.
HEAVY = [f"Rust fact number {i}: " + "ownership borrowing lifetimes " * 14 for i in range(240)]


def serve_args(model: str) -> list[str]:
    return [
        "--model", model, "--api-key", API_KEY, "--log-level", "warning",
        "--max-new-tokens", "16", "--batch-tokens", "4096",
    ]  # fmt: skip


def in_background(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_server_killed_mid_request(tiny_qwen35_path: str) -> None:
    with ServerProcess(serve_args(tiny_qwen35_path)) as server:
        server.wait_ready()
        client = RemoteReranker(server.url, api_key=API_KEY, max_retries=2, timeout=60)
        assert client.capabilities.evidence  # info fetched before the kill
        thread, outcome = in_background(lambda: client.rerank("what is rust?", HEAVY, evidence=False))
        wait_until(lambda: queue_depth(server.url) >= 1, 30, "the request to reach the engine")
        assert server.proc is not None
        server.proc.kill()
        thread.join(30)
        assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, RemoteUnavailableError), outcome
    assert server.url in str(error) and "after 3 attempts" in str(error)


def test_sigterm_finishes_the_request_in_flight(tiny_qwen35_path: str) -> None:
    with ServerProcess(serve_args(tiny_qwen35_path)) as server:
        server.wait_ready()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        body = {"query": "what is rust?", "documents": HEAVY}
        thread, outcome = in_background(
            lambda: httpx.post(f"{server.url}/v2/rerank", json=body, headers=headers, timeout=120)
        )
        wait_until(lambda: queue_depth(server.url) >= 1, 30, "the request to reach the engine")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        thread.join(120)
        response = outcome.get("value")
        assert response is not None, outcome
        assert response.status_code == 200
        assert sorted(r["index"] for r in response.json()["results"]) == list(range(len(HEAVY)))
        assert server.proc.wait(60) == 0
        time.sleep(0.1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health", timeout=2)
