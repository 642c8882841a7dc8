"""Helpers of the serving tests: servers in a thread or a subprocess, polling, a scripted engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prism_core.protocol import Capabilities
from prism_core.results import PrismResult

API_KEY = "test-key-123"
REPO = Path(__file__).resolve().parents[2]


class ServerThread:
    """A uvicorn server running an app in a daemon thread; a context manager that stops it."""

    def __init__(self, app: Any, *, ready_timeout: float = 60.0) -> None:
        import uvicorn

        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)
        self.ready_timeout = ready_timeout
        self.url = ""

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + self.ready_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait (bounded) until ``/health`` says 200."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.url} did not become ready in {timeout} s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the test server did not stop"


def free_port() -> int:
    """A port that was free a moment ago (for servers that cannot be told to pick one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m prism_core.cli.serve`` in a subprocess; a context manager that kills it if still alive."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "prism_core.cli.serve", "--port", str(self.port), *args]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {self.stderr()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.url} did not become ready in {timeout} s")

    def stderr(self) -> str:
        assert self.proc is not None
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def queue_depth(url: str) -> float:
    """``prism_queue_depth`` from a server's ``/metrics``."""
    import httpx

    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("prism_queue_depth "):
            return float(line.split()[1])
    raise AssertionError("no prism_queue_depth in /metrics")


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class GatedEngine:
    """A scripted reranker whose ``load`` waits for a gate and whose calls can be made slow.

    Scores are ``1 / (2 + i)`` for document ``i`` (best first = input order).
    """

    capabilities = Capabilities(verdict=True, evidence=False)

    def __init__(self, delay: float = 0.0) -> None:
        self.gate = threading.Event()
        self.delay = delay
        self.started = 0
        self.cancelled = 0
        self.finished = 0
        self.is_loaded = False

    def load(self) -> GatedEngine:
        if not self.gate.wait(30):
            raise RuntimeError("gate never opened")
        self.is_loaded = True
        return self

    def _results(self, documents: Sequence[str], top_n: int | None) -> list[PrismResult]:
        import math

        results = [
            PrismResult(
                index=i, score=1 / (2 + i), logit=math.log((1 / (2 + i)) / (1 - 1 / (2 + i))), relevant=False
            )
            for i in range(len(documents))
        ]
        return results[:top_n] if top_n is not None else results

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        return [r.score for r in self._results(documents, None)]

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.score(query, documents)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        return self._results(documents, top_n)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        self.started += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return self._results(documents, top_n)


def assert_same_pairs(got: Sequence[tuple[int, float]], want: Sequence[tuple[int, float]]) -> None:
    """The same indices in the same order, scores within 1e-5."""
    assert [i for i, _ in got] == [i for i, _ in want], (got, want)
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert abs(a - b) <= 1e-5, (got, want)


class Scripted:
    """A stdlib HTTP server on 127.0.0.1 answering what a test scripts: ``answer(path, body)`` gives
    ``(status, body, headers)``."""

    def __init__(self, answer: Callable[[str, Any], tuple[int, Any, dict[str, str]]]) -> None:
        self.requests: list[tuple[str, Any]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: Any) -> None:
                scripted.requests.append((self.path, body))
                status, payload, headers = answer(self.path, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._reply(json.loads(self.rfile.read(length)))

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)

    @property
    def rerank_calls(self) -> int:
        return sum(1 for path, _ in self.requests if path == "/v2/rerank")
