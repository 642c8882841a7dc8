"""HTTP for :class:`~prism_core.backends.remote.RemoteReranker`: clients, retries, and what an answer means.

A request is written once, as a body of work (:data:`prism_core.backends.driving.Work`) that yields
an :class:`Attempt` (one HTTP exchange) or a :class:`Pause` (the backoff before the next one):
:meth:`HttpTransport.run` carries the steps out in the caller's thread, :meth:`HttpTransport.arun`
on the event loop, so the sync and async paths share every rule.

Connection errors, 429 and 5xx answers are retried ``max_retries`` times with exponential backoff and
jitter (``Retry-After`` honoured, up to :data:`BACKOFF_CAP` seconds); a read timeout is not retried
(the request may simply be heavy). Then :class:`RemoteUnavailableError` names the server, the
attempts and the last error. A 401/403 or another 4xx raises :class:`RemoteRequestError` with the
server's reason.

Example:
    >>> from prism_core.backends.driving import drive_sync
    >>> transport = HttpTransport("http://127.0.0.1:9", api_key=None, timeout=5.0, max_retries=0)
    >>> transport.headers()["Accept"]
    'application/json'
    >>> drive_sync(transport.request("GET", "/health"), run=transport.run)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from prism_core.backends.driving import Work
from prism_core.errors import PrismError
from prism_core.extras import require_extra

logger = logging.getLogger(__name__)

#: Environment variable read for the API key when ``api_key`` is not given.
API_KEY_ENV = "PRISM_RERANK_API_KEY"
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_RETRIES = 3
#: First backoff delay in seconds (doubled per attempt, with jitter), and the cap on any wait.
BACKOFF_BASE = 0.2
BACKOFF_CAP = 30.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RemoteRerankError(PrismError, RuntimeError):
    """A rerank server refused a request, could not be reached, or answered something invalid.

    Attributes:
        url: The server's base URL.
        status: The HTTP status of the last answer, or ``None`` when there was none.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class RemoteUnavailableError(RemoteRerankError):
    """The server could not be reached, or kept failing (5xx, 429), through every retry."""


class RemoteRequestError(RemoteRerankError, ValueError):
    """The server refused the request as invalid (4xx): the message carries the server's reason."""


class RemoteResponseError(RemoteRerankError, ValueError):
    """The server answered something that is not a valid, complete rerank response."""


@dataclass(frozen=True)
class Attempt:
    """One HTTP exchange: what :meth:`HttpTransport.run` sends (its value: the response)."""

    method: str
    path: str
    body: dict[str, Any] | None


@dataclass(frozen=True)
class Pause:
    """The backoff before the next attempt, in seconds."""

    seconds: float


def httpx_module() -> Any:
    """``httpx`` (a dependency of the package; an ImportError naming it when missing)."""
    return require_extra("httpx", None, by="the remote backend")


class HttpTransport:
    """The connections to one rerank server, and the retry policy of every request to it.

    Args:
        base_url: ``http(s)://host[:port][/prefix]``.
        api_key: Bearer token, or ``None`` for no ``Authorization`` header.
        timeout: Seconds per HTTP request (connecting gets at most 10 s).
        max_retries: Retries on connection errors, 429 and 5xx.
    """

    def __init__(self, base_url: str, *, api_key: str | None, timeout: float, max_retries: int) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self._lock = threading.Lock()
        self._client: Any = None
        self._async_client: Any = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- clients
    def headers(self) -> dict[str, str]:
        """The headers of every request (the bearer token when there is a key)."""
        headers = {"Accept": "application/json", "User-Agent": "prism-integrations RemoteReranker"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _new_client(self, kind: str) -> Any:
        httpx = httpx_module()
        timeout = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        return getattr(httpx, kind)(base_url=self.base_url, headers=self.headers(), timeout=timeout)

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._new_client("Client")
            return self._client

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop or loop.is_closed():
            # An AsyncClient's connections belong to one event loop: a new loop gets a new client.
            self._async_client, self._async_loop = self._new_client("AsyncClient"), loop
        return self._async_client

    def close(self) -> None:
        """Close the HTTP connections (new ones are opened if used again)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async HTTP connections of the running event loop's client."""
        client, self._async_client, self._async_loop = self._async_client, None, None
        if client is not None:
            await client.aclose()

    # ----------------------------------------------------------------- carrying out the steps
    def run(self, step: Attempt | Pause) -> Any:
        """Carry out one step in this thread (for :func:`~prism_core.backends.driving.drive_sync`)."""
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return None
        return self._sync_client().request(step.method, step.path, json=step.body)

    async def arun(self, step: Attempt | Pause) -> Any:
        """Carry out one step on the event loop (for :func:`~prism_core.backends.driving.drive_async`)."""
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return None
        return await self._aclient().request(step.method, step.path, json=step.body)

    # ----------------------------------------------------------------- one request, retried
    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        missing_ok: bool = False,
        retry: bool = True,
    ) -> Work[Any]:
        """One request with retries: the response, or ``None`` for a 404/405 when ``missing_ok``.

        Raises:
            RemoteUnavailableError: No answer (or only 429/5xx) through every retry, or a read timeout.
            RemoteRequestError: A 4xx refusal (401/403: the API key).
            RemoteRerankError: Another non-2xx answer.
        """
        httpx = httpx_module()
        retries = self.max_retries if retry else 0
        last = ""
        for attempt in range(retries + 1):
            response = None
            try:
                response = yield Attempt(method, path, body)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                    raise self._timed_out(exc) from exc
                last = f"{type(exc).__name__}: {exc}"
            else:
                if self._worth_retrying(response, path, missing_ok):
                    last = status_text(response)
                else:
                    return response if 200 <= int(response.status_code) < 300 else None
            if attempt < retries:
                delay = _delay(attempt, response)
                logger.warning(
                    "%s%s: %s; retry %d of %d in %.2f s",
                    self.base_url,
                    path,
                    last,
                    attempt + 1,
                    retries,
                    delay,
                )
                yield Pause(delay)
        raise RemoteUnavailableError(
            f"the rerank server at {self.base_url} failed {path} after {retries + 1} attempt"
            f"{'s' if retries else ''}: {last}",
            url=self.base_url,
        )

    def _worth_retrying(self, response: Any, path: str, missing_ok: bool) -> bool:
        """``True`` for a 429/5xx worth retrying, ``False`` for a 2xx (or a missing route when
        ``missing_ok``); raise for a refusal."""
        status = int(response.status_code)
        if 200 <= status < 300 or (missing_ok and status in (404, 405)):
            return False
        if status in _RETRY_STATUSES:
            return True
        reason = status_text(response)
        if status in (401, 403):
            message = f"refused the API key ({reason}); pass api_key= or set {API_KEY_ENV}"
        elif 400 <= status < 500:
            message = f"refused the request to {path}: {reason}"
        else:
            raise RemoteRerankError(
                f"the rerank server at {self.base_url} answered {path} with {reason}",
                url=self.base_url,
                status=status,
            )
        raise RemoteRequestError(
            f"the rerank server at {self.base_url} {message}", url=self.base_url, status=status
        )

    def _timed_out(self, exc: Exception) -> RemoteUnavailableError:
        return RemoteUnavailableError(
            f"the rerank server at {self.base_url} did not answer within {self.timeout:g} s "
            f"({type(exc).__name__}); raise timeout= for heavy requests",
            url=self.base_url,
        )

    def json(self, response: Any, path: str) -> Any:
        """The response's JSON, or :class:`RemoteResponseError` naming the server and the path."""
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteResponseError(
                f"the rerank server at {self.base_url} answered {path} with something that is not JSON: "
                f"{response.text[:200]!r}",
                url=self.base_url,
                status=int(response.status_code),
            ) from exc


def status_text(response: Any) -> str:
    """``HTTP <status>: <the server's reason>`` (its ``message``/``detail``/``error``, else the text)."""
    detail: Any = None
    with contextlib.suppress(ValueError):
        data = response.json()
        if isinstance(data, dict):
            detail = data.get("message") or data.get("detail") or data.get("error")
    if detail is None:
        detail = response.text[:300]
    return f"HTTP {response.status_code}: {' '.join(str(detail).split())[:500]}"


def _delay(attempt: int, response: Any) -> float:
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (0.5 + random.random() / 2)
    retry_after = response.headers.get("retry-after") if response is not None else None
    if retry_after is not None:
        with contextlib.suppress(ValueError):  # an HTTP date: keep our own delay
            delay = max(delay, min(BACKOFF_CAP, float(retry_after)))
    return delay
