"""The service's ASGI middleware: the body size limit (and UTF-8 check), and the request metrics.

Example:
    >>> KNOWN_ENDPOINTS[0]
    '/v2/rerank'
"""

from __future__ import annotations

import time

from prism_core.extras import require_extra

require_extra("fastapi", "server")

from fastapi.responses import JSONResponse  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from prism_core.serving.http_errors import error_response  # noqa: E402
from prism_core.serving.metrics import ServerMetrics  # noqa: E402

#: The endpoints counted by name in the metrics (any other path counts as ``"other"``).
KNOWN_ENDPOINTS = ("/v2/rerank", "/v1/rerank", "/rerank", "/v1/info", "/health", "/metrics")


class BodyLimit:
    """Reads a request's body up to ``limit`` bytes (413 beyond), then hands it to the app."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(int(declared), "")(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            return  # the client went away
        if isinstance(body, int):
            await self._too_large(body, "at least ")(scope, receive, send)
            return
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = (
                f"the request body is not valid UTF-8 (byte {body[exc.start]:#04x} at offset {exc.start})"
            )
            detail = [{"loc": ["body"], "msg": reason, "type": "json_invalid"}]
            answer = JSONResponse({"detail": detail, "message": f"body: {reason}"}, status_code=422)
            await answer(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | int | None:
        """The whole body, the size read so far once it passes the limit, or ``None`` on disconnect."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return size
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, size: int, more: str) -> ASGIApp:
        return error_response(
            413, f"request body of {more}{size} bytes exceeds this server's limit of {self.limit} bytes"
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then defers to the original (for the disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class RequestMetrics:
    """Counts requests by endpoint and status, and times them."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in KNOWN_ENDPOINTS else "other"
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - start)
