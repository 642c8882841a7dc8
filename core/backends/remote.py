"""``RemoteReranker``: the core's reranker protocol over HTTP, against a rerank service.

It talks to ``prism-rerank serve`` (every field: verdicts, contributions, evidence, threshold
applied server-side) and, for scores, to stock rerank servers of every common dialect: Cohere v2
and v1, Jina, Together, vLLM, Infinity and Text Embeddings Inference (see
:mod:`prism_core.backends.remote_apis` for the routes and bodies). Which one it faces it learns
once (``GET /v1/info``, then TEI's ``GET /info``, then the first rerank route that exists), or is
told with ``api=``. A foreign server is asked for every document's score, and
``top_n``/``score_threshold`` are applied here, by the same rule as every local backend. A call
larger than the server's advertised limits is split into several requests and merged with one
global ``top_n``.

Every answer is checked before it is believed: each result's ``index`` an integer in range and
unique, each score a finite number in ``[0, 1]``, and every input document accounted for (all of
them, or exactly ``min(top_n, n)``; with a threshold, no more than asked and none below it). A
server that answers anything else raises :class:`RemoteResponseError` naming the server: a list is
never silently shortened.

Connection errors, 429 and 5xx answers are retried ``max_retries`` times with exponential backoff
and jitter (``Retry-After`` honoured, up to 30 s); a read timeout is not retried (the request may
simply be heavy). Then :class:`RemoteUnavailableError` names the server, the attempts and the last
error.

Example:
    >>> from prism_core.backends.remote import RemoteReranker
    >>> reranker = RemoteReranker("http://127.0.0.1:8000", api_key="secret")  # connects on first use
    >>> reranker.rerank("what is rust?", ["Rust is a language.", "Paris."])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from prism_core.backends.remote_apis import (
    API_ROUTES,
    PROBE_ORDER,
    answer_items,
    canonical_api,
    request_body,
    tei_limits,
)
from prism_core.budgets import check_time_budget, unscored_result
from prism_core.config import EngineConfig
from prism_core.errors import PrismError
from prism_core.extras import require_extra
from prism_core.grounding import ground_result
from prism_core.protocol import SCORE_ONLY, Capabilities
from prism_core.ranking import select, sigmoid
from prism_core.results import PrismResult
from prism_core.validation import (
    check_documents,
    check_long_documents,
    check_optional_int,
    check_query,
    check_rerank_args,
    check_text,
)

logger = logging.getLogger(__name__)

#: Environment variable read for the API key when ``api_key`` is not given.
API_KEY_ENV = "PRISM_RERANK_API_KEY"
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_RETRIES = 3
#: First backoff delay in seconds (doubled per attempt, with jitter), and the cap on any wait.
BACKOFF_BASE = 0.2
BACKOFF_CAP = 30.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_INFO_PATH = "/v1/info"
_TEI_INFO_PATH = "/info"


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


def _require_httpx() -> Any:
    return require_extra("httpx", None, by="the remote backend")


def split_base_url(url: Any) -> tuple[str, str | None]:
    """``(base, route)``: ``http(s)://host[:port][/prefix]`` without a trailing slash, and the rerank
    route the URL ended in (``/v2/rerank``, ``/v1/rerank``, ``/rerank``), or ``None``.

    Example:
        >>> split_base_url("http://127.0.0.1:8000/rerank/")
        ('http://127.0.0.1:8000', '/rerank')
    """
    text = check_text(url, "base_url").strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
    route = None
    for path in ("/v2/rerank", "/v1/rerank", "/rerank"):
        if text.endswith(path):
            text, route = text[: -len(path)], path
            break
    if "://" not in text or not text.split("://", 1)[1]:
        raise ValueError(f"base_url has no host: {url!r}")
    return text, route


def normalise_base_url(url: Any) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash or a trailing rerank route.

    Example:
        >>> normalise_base_url("http://127.0.0.1:8000/v2/rerank/")
        'http://127.0.0.1:8000'
    """
    return split_base_url(url)[0]


class RemoteReranker:
    """A reranker over HTTP: ``prism-rerank serve``, or a Cohere-, Jina-, TEI- or Infinity-style server.

    Constructing it is cheap: nothing is sent until the first call. ``capabilities`` comes from the
    server's ``GET /v1/info`` (fetched once); a server without it is taken as score-only.

    Args:
        base_url: The server, e.g. ``"http://127.0.0.1:8000"``; a trailing rerank route
            (``/v2/rerank``, ``/v1/rerank``, ``/rerank``) is taken as the route to post to.
        api_key: Bearer token; ``None`` reads ``PRISM_RERANK_API_KEY`` (unset: no header).
        timeout: Seconds per HTTP request (default 300; connecting gets at most 10 s).
        max_retries: Retries on connection errors, 429 and 5xx (default 3).
        model: Sent as the request's ``model`` (a hosted Cohere-style API needs one; our server and
            most self-hosted ones do not). Not part of :attr:`engine_config`.
        api: The server's rerank API: ``"auto"`` (default: found from ``/v1/info``, TEI's
            ``/info``, then the first of ``/v2/rerank``, ``/v1/rerank``, ``/rerank`` that exists),
            ``"prism"``, ``"cohere"``, ``"cohere-v1"``, ``"jina"``, ``"together"``, ``"infinity"``,
            ``"vllm"`` or ``"tei"`` (see :mod:`prism_core.backends.remote_apis`).
        max_documents: Documents per request at most (a server's advertised limit applies too);
            a larger call is split and merged.

    Raises:
        ValueError: A ``base_url`` that is not an http(s) URL, or a bad option.

    Example:
        >>> reranker = RemoteReranker("http://127.0.0.1:8000", timeout=30, max_retries=2)
        >>> reranker.engine_config.to_dict()
        {'model': 'http://127.0.0.1:8000', 'backend': 'remote', 'timeout': 30.0, 'max_retries': 2}
        >>> reranker.score("what is rust?", ["Rust is a language."])  # doctest: +SKIP
        [0.93]
    """

    backend: ClassVar[str] = "remote"

    def __init__(
        self,
        base_url: Any,
        *,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        model: str | None = None,
        api: str = "auto",
        max_documents: int | None = None,
    ) -> None:
        self.base_url, self._path = split_base_url(base_url)
        self.api = canonical_api(api)
        self.max_documents = check_optional_int(max_documents, "max_documents", minimum=1)
        self.engine_config = EngineConfig(
            model=self.base_url, backend=self.backend, timeout=timeout, max_retries=max_retries
        )
        self.timeout = DEFAULT_TIMEOUT if self.engine_config.timeout is None else self.engine_config.timeout
        self.max_retries = (
            DEFAULT_MAX_RETRIES if self.engine_config.max_retries is None else self.engine_config.max_retries
        )
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        self._api_key = None if api_key is None else check_text(api_key, "api_key")
        self.model = None if model is None else check_text(model, "model")
        self._info: Mapping[str, Any] | None = None
        self._info_known = False
        self._route: _Route | None = None
        self._lock = threading.Lock()
        self._client: Any = None
        self._async_client: Any = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def shared(cls, base_url: Any, **options: Any) -> RemoteReranker:
        """The process-wide client for this server and options (a new one if its API key differs).

        Example:
            >>> RemoteReranker.shared("http://127.0.0.1:8000") is RemoteReranker.shared("http://127.0.0.1:8000/")
            True
        """
        from prism_core.registry import shared_engine

        candidate = cls(base_url, **options)
        engine = shared_engine(cls, candidate)
        if (engine._api_key, engine.model, engine.api, engine._path, engine.max_documents) != (
            candidate._api_key,
            candidate.model,
            candidate.api,
            candidate._path,
            candidate.max_documents,
        ):
            return candidate
        return engine

    def __repr__(self) -> str:
        return (
            f"RemoteReranker({self.base_url!r}, timeout={self.timeout!r}, max_retries={self.max_retries!r}, "
            f"api_key={'***' if self._api_key else None})"
        )

    @property
    def config(self) -> dict[str, Any]:
        """The resolved, JSON-safe configuration (defaults filled in; never the API key)."""
        return {
            "model": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "api": self.api,
        }

    @property
    def is_loaded(self) -> bool:
        """Whether the server has been asked what it serves."""
        return self._info_known

    def load(self) -> RemoteReranker:
        """Ask the server what it serves now (otherwise done on first use); idempotent.

        Raises:
            RemoteUnavailableError: The server cannot be reached.
        """
        self._server_info()
        return self

    @property
    def server_info(self) -> Mapping[str, Any] | None:
        """The server's ``/v1/info`` (``None`` for a server without it); fetched once."""
        return self._server_info()

    @property
    def capabilities(self) -> Capabilities:
        """What the server can do: from ``/v1/info``; score-only for a server without it.

        While the server cannot be reached this says score-only (with a warning) without caching
        it, so that checking a reranker's type never fails; the next call asks again.
        """
        if self.api not in ("auto", "prism"):
            return SCORE_ONLY  # a foreign API: scores only, whatever else the server could do
        try:
            info = self._server_info(retry=False)  # one attempt: type checks read this property
        except RemoteRerankError as exc:
            logger.warning(
                "%s: cannot read capabilities (%s); assuming score-only for now", self.base_url, exc
            )
            return SCORE_ONLY
        return _capabilities(info)

    def close(self) -> None:
        """Close the HTTP connections (the reranker opens new ones if used again)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async HTTP connections of the running event loop's client."""
        client, self._async_client, self._async_loop = self._async_client, None, None
        if client is not None:
            await client.aclose()

    def __enter__(self) -> RemoteReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- public API
    def score(
        self,
        query: str,
        documents: Sequence[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
    ) -> list[float]:
        """Relevance scores in ``[0, 1]``, in input order (nothing generated; split as :meth:`rerank`).

        Example:
            >>> RemoteReranker("http://127.0.0.1:8000").score("q", [])
            []
        """
        query, docs = check_query(query), check_documents(documents)
        options = _Options(None, None, False, *check_long_documents(max_tokens_per_doc, long_documents))
        if not docs:
            return []
        return _in_input_order(self._call(query, docs, options), len(docs))

    async def ascore(
        self,
        query: str,
        documents: Sequence[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
    ) -> list[float]:
        """:meth:`score` without blocking the event loop (cancelling it closes the request)."""
        query, docs = check_query(query), check_documents(documents)
        options = _Options(None, None, False, *check_long_documents(max_tokens_per_doc, long_documents))
        if not docs:
            return []
        return _in_input_order(await self._acall(query, docs, options), len(docs))

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        time_budget: float | None = None,
    ) -> list[PrismResult]:
        """Results sorted best first (ties by input position); ``score_threshold`` before ``top_n``.

        Args:
            query: The query (non-empty).
            documents: Candidate texts.
            top_n: Keep the best ``top_n`` results (after the threshold).
            score_threshold: Keep results with ``score >= score_threshold``, in ``[0, 1]``.
            evidence: Ask for contribution and evidence (only a server that generates them does).
            max_tokens_per_doc: The document token budget, sent as ``max_tokens_per_doc``.
            long_documents: ``"truncate"`` or ``"chunk"`` (a prism-rerank server only); ``None``
                leaves it to the server.
            time_budget: Seconds the server may spend (sent as the request's ``time_budget`` to our
                server, which answers by then with what is done; a foreign server is not told).

        A request larger than the server's advertised limits (``max_documents``, ``max_body_bytes``
        of ``/v1/info``; TEI's ``max_client_batch_size``) is sent as several, and the answers are
        merged with one global ``top_n``; each request asks for ``top_n``, so with ``evidence``
        up to ``requests × top_n`` documents get evidence generated while ``top_n`` are returned.

        Raises:
            TypeError, ValueError: Bad input (checked here, as every local backend checks it).
            RemoteRequestError: The server refused the request (4xx), with its reason.
            RemoteResponseError: The server answered an invalid or incomplete result list.
            RemoteUnavailableError: The server could not be reached through every retry.
        """
        query, docs, top_n, score_threshold, evidence = check_rerank_args(
            query, documents, top_n, score_threshold, evidence
        )
        options = _Options(
            top_n,
            score_threshold,
            evidence,
            *check_long_documents(max_tokens_per_doc, long_documents),
            check_time_budget(time_budget),
        )
        if not docs:
            return []
        return self._call(query, docs, options)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        time_budget: float | None = None,
    ) -> list[PrismResult]:
        """:meth:`rerank` without blocking the event loop (with ``httpx.AsyncClient``)."""
        query, docs, top_n, score_threshold, evidence = check_rerank_args(
            query, documents, top_n, score_threshold, evidence
        )
        options = _Options(
            top_n,
            score_threshold,
            evidence,
            *check_long_documents(max_tokens_per_doc, long_documents),
            check_time_budget(time_budget),
        )
        if not docs:
            return []
        return await self._acall(query, docs, options)

    # ----------------------------------------------------------------- requests
    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "prism-integrations RemoteReranker"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _timeout(self) -> Any:
        httpx = _require_httpx()
        return httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                httpx = _require_httpx()
                self._client = httpx.Client(
                    base_url=self.base_url, headers=self._headers(), timeout=self._timeout()
                )
            return self._client

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop or loop.is_closed():
            # An AsyncClient's connections belong to one event loop: a new loop gets a new client.
            httpx = _require_httpx()
            self._async_client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers(), timeout=self._timeout()
            )
            self._async_loop = loop
        return self._async_client

    def _server_info(self, retry: bool = True) -> Mapping[str, Any] | None:
        if not self._info_known:
            response = self._send("GET", _INFO_PATH, None, missing_ok=True, retry=retry)
            self._remember_info(response)
        return self._info

    async def _aserver_info(self) -> Mapping[str, Any] | None:
        if not self._info_known:
            response = await self._asend("GET", _INFO_PATH, None, missing_ok=True)
            self._remember_info(response)
        return self._info

    def _remember_info(self, response: Any) -> None:
        if response is None:  # no /v1/info: a foreign rerank server
            info = None
            logger.info("%s has no %s: treating it as a score-only rerank server", self.base_url, _INFO_PATH)
        else:
            info = self._json(response, _INFO_PATH)
            if not isinstance(info, Mapping) or not isinstance(info.get("capabilities"), Mapping):
                info = None
        self._info, self._info_known = info, True

    # ----------------------------------------------------------------- which API, which route
    def _route_after_info(self, info: Mapping[str, Any] | None) -> _Route | None:
        """The route once ``/v1/info`` is known, or ``None`` when TEI's ``/info`` must be asked."""
        if info is not None and self.api in ("auto", "prism"):
            limits = info.get("limits") or {}
            return _Route("prism", self._path or API_ROUTES["prism"], _limit(limits, "max_documents"),
                          _limit(limits, "max_body_bytes"))  # fmt: skip
        if self.api == "prism":  # asked for, but the server has no /v1/info: score-only Cohere v2
            return _Route("cohere", self._path or API_ROUTES["cohere"], None, None)
        if self.api in ("auto", "tei"):
            return None
        return _Route(self.api, self._path or API_ROUTES[self.api], None, None)

    def _route_after_tei_info(self, response: Any) -> _Route:
        limits = tei_limits(self._json(response, _TEI_INFO_PATH)) if response is not None else None
        if limits is not None or self.api == "tei":
            size = (limits or {}).get("max_documents")
            return _Route("tei", self._path or API_ROUTES["tei"], size, None)
        return _Route("auto", self._path or "", None, None)  # the first route that exists is kept

    def _resolve(self) -> _Route:
        if self._route is None:
            info = self._server_info() if self.api in ("auto", "prism") else None
            route = self._route_after_info(info)
            if route is None:
                route = self._route_after_tei_info(self._send("GET", _TEI_INFO_PATH, None, missing_ok=True))
            self._route = route
        return self._route

    async def _aresolve(self) -> _Route:
        if self._route is None:
            info = await self._aserver_info() if self.api in ("auto", "prism") else None
            route = self._route_after_info(info)
            if route is None:
                response = await self._asend("GET", _TEI_INFO_PATH, None, missing_ok=True)
                route = self._route_after_tei_info(response)
            self._route = route
        return self._route

    def _candidates(self, route: _Route) -> list[tuple[str, str]]:
        """``(path, api)`` pairs to try: the route, or every known route for an unprobed server."""
        if route.api != "auto":
            return [(route.path, route.api)]
        if route.path:  # a base URL that ended in a route: that route, with the documents body
            return [(route.path, "cohere-v1" if route.path != "/v2/rerank" else "cohere")]
        return list(PROBE_ORDER)

    # ----------------------------------------------------------------- one call, maybe split
    def _plan(
        self,
        route: _Route,
        api: str,
        query: str,
        docs: list[str],
        options: _Options,
    ) -> list[tuple[int, dict[str, Any], int, tuple[int | None, float | None]]]:
        """``(offset, body, n, expected selection)`` per request: the documents split so that each
        request fits the server's advertised document count and body size."""
        if options.long_documents == "chunk" and api != "prism":
            raise ValueError(
                f"long_documents='chunk' needs a prism-rerank server; the server at {self.base_url} "
                f"speaks the {api!r} API"
            )
        most = route.max_documents if self.max_documents is None else self.max_documents
        if route.max_documents is not None:
            most = min(most or route.max_documents, route.max_documents)
        budget = None if route.max_body_bytes is None else int(route.max_body_bytes * 0.9) - 1024
        batches: list[tuple[int, list[str]]] = []
        start, size = 0, 0
        fixed = len(json.dumps(query).encode())
        for i, doc in enumerate(docs):
            cost = len(json.dumps(doc).encode()) + 2
            full = (most is not None and i - start >= most) or (
                budget is not None and i > start and fixed + size + cost > budget
            )
            if full:
                batches.append((start, docs[start:i]))
                start, size = i, 0
            size += cost
        batches.append((start, docs[start:]))
        evidence = bool(options.evidence and api == "prism" and _capabilities(self._info).evidence)
        plan = []
        for offset, part in batches:
            body = request_body(
                api, query, part, model=self.model, top_n=options.top_n, threshold=options.threshold,
                evidence=evidence, max_tokens_per_doc=options.max_tokens_per_doc,
                long_documents=options.long_documents,
            )  # fmt: skip
            if api == "prism" and options.time_budget is not None:  # only our server takes it
                body["time_budget"] = options.time_budget
            expect = (options.top_n, options.threshold) if api == "prism" else (None, None)
            plan.append((offset, body, len(part), expect))
        if len(plan) > 1:
            logger.info(
                "%s: %d documents sent as %d requests (server limits: %s documents, %s bytes)",
                self.base_url, len(docs), len(plan), route.max_documents, route.max_body_bytes,
            )  # fmt: skip
        return plan

    def _merge(
        self, parts: list[list[PrismResult]], offsets: list[int], options: _Options
    ) -> list[PrismResult]:
        """One list over every request, selected by the one ranking rule (a global ``top_n``); results
        our server could not score within a ``time_budget`` come last, in input order."""
        merged = [
            r if not offset else dataclasses.replace(r, index=r.index + offset)
            for part, offset in zip(parts, offsets, strict=True)
            for r in part
        ]
        unscored = sorted((r for r in merged if not r.scored), key=lambda r: r.index)
        return select([r for r in merged if r.scored], options.top_n, options.threshold) + unscored

    def _call(self, query: str, docs: list[str], options: _Options) -> list[PrismResult]:
        route = self._resolve()
        for path, api in self._candidates(route):
            plan = self._plan(route, api, query, docs, options)
            parts: list[list[PrismResult]] = []
            for number, (_, body, n, expect) in enumerate(plan):
                response = self._send("POST", path, body, missing_ok=number == 0 and route.api == "auto")
                if response is None:
                    break  # no such route here: try the next
                parts.append(self._results(api, self._json(response, path), n, expect))
            else:
                self._route = _Route(api, path, route.max_documents, route.max_body_bytes)
                merged = self._merge(parts, [p[0] for p in plan], options)
                return [ground_result(r, docs[r.index]) for r in merged]
        raise self._no_route()

    async def _acall(self, query: str, docs: list[str], options: _Options) -> list[PrismResult]:
        route = await self._aresolve()
        for path, api in self._candidates(route):
            plan = self._plan(route, api, query, docs, options)
            parts: list[list[PrismResult]] = []
            for number, (_, body, n, expect) in enumerate(plan):
                response = await self._asend(
                    "POST", path, body, missing_ok=number == 0 and route.api == "auto"
                )
                if response is None:
                    break
                parts.append(self._results(api, self._json(response, path), n, expect))
            else:
                self._route = _Route(api, path, route.max_documents, route.max_body_bytes)
                merged = self._merge(parts, [p[0] for p in plan], options)
                return [ground_result(r, docs[r.index]) for r in merged]
        raise self._no_route()

    def _no_route(self) -> RemoteRequestError:
        tried = ", ".join(path for path, _ in PROBE_ORDER)
        return RemoteRequestError(
            f"the server at {self.base_url} answers none of the rerank routes {tried} (HTTP 404/405); "
            "check the base URL, or pass api= ('cohere', 'cohere-v1', 'jina', 'infinity', 'tei', ...)",
            url=self.base_url,
            status=404,
        )

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        missing_ok: bool = False,
        retry: bool = True,
    ) -> Any:
        httpx = _require_httpx()
        client = self._sync_client()
        last = ""
        retries = self.max_retries if retry else 0
        for attempt in range(retries + 1):
            try:
                response = client.request(method, path, json=body)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                    raise self._timed_out(exc) from exc
                last = f"{type(exc).__name__}: {exc}"
                delay = self._delay(attempt, None)
            else:
                outcome = self._outcome(response, path, missing_ok)
                if outcome is not _RETRY:
                    return outcome
                last = self._status_text(response)
                delay = self._delay(attempt, response)
            if attempt < retries:
                logger.warning(
                    "%s%s: %s; retry %d of %d in %.2f s",
                    self.base_url,
                    path,
                    last,
                    attempt + 1,
                    retries,
                    delay,
                )
                time.sleep(delay)
        raise self._unavailable(path, last, retries + 1)

    async def _asend(
        self, method: str, path: str, body: dict[str, Any] | None, missing_ok: bool = False
    ) -> Any:
        httpx = _require_httpx()
        client = self._aclient()
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = await client.request(method, path, json=body)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                    raise self._timed_out(exc) from exc
                last = f"{type(exc).__name__}: {exc}"
                delay = self._delay(attempt, None)
            else:
                outcome = self._outcome(response, path, missing_ok)
                if outcome is not _RETRY:
                    return outcome
                last = self._status_text(response)
                delay = self._delay(attempt, response)
            if attempt < self.max_retries:
                logger.warning(
                    "%s%s: %s; retry %d of %d in %.2f s", self.base_url, path, last, attempt + 1,
                    self.max_retries, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise self._unavailable(path, last, self.max_retries + 1)

    def _outcome(self, response: Any, path: str, missing_ok: bool) -> Any:
        """The response, ``None`` (no such route here), ``_RETRY``, or raise for a refusal."""
        status = int(response.status_code)
        if 200 <= status < 300:
            return response
        if status in _RETRY_STATUSES:
            return _RETRY
        if missing_ok and status in (404, 405):
            return None
        reason = self._status_text(response)
        if status in (401, 403):
            raise RemoteRequestError(
                f"the rerank server at {self.base_url} refused the API key ({reason}); pass api_key= or set "
                f"{API_KEY_ENV}",
                url=self.base_url,
                status=status,
            )
        if 400 <= status < 500:
            raise RemoteRequestError(
                f"the rerank server at {self.base_url} refused the request to {path}: {reason}",
                url=self.base_url,
                status=status,
            )
        raise RemoteRerankError(
            f"the rerank server at {self.base_url} answered {path} with {reason}",
            url=self.base_url,
            status=status,
        )

    @staticmethod
    def _status_text(response: Any) -> str:
        detail: Any = None
        try:
            data = response.json()
            detail = (
                data.get("message") or data.get("detail") or data.get("error")
                if isinstance(data, dict)
                else None
            )
        except ValueError:
            pass
        if detail is None:
            detail = response.text[:300]
        return f"HTTP {response.status_code}: {' '.join(str(detail).split())[:500]}"

    def _delay(self, attempt: int, response: Any) -> float:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (0.5 + random.random() / 2)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: keep our own delay
                delay = max(delay, min(BACKOFF_CAP, float(retry_after)))
        return delay

    def _unavailable(self, path: str, last: str, attempts: int) -> RemoteUnavailableError:
        return RemoteUnavailableError(
            f"the rerank server at {self.base_url} failed {path} after {attempts} attempt"
            f"{'s' if attempts != 1 else ''}: {last}",
            url=self.base_url,
        )

    def _timed_out(self, exc: Exception) -> RemoteUnavailableError:
        return RemoteUnavailableError(
            f"the rerank server at {self.base_url} did not answer within {self.timeout:g} s "
            f"({type(exc).__name__}); raise timeout= for heavy requests",
            url=self.base_url,
        )

    def _json(self, response: Any, path: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteResponseError(
                f"the rerank server at {self.base_url} answered {path} with something that is not JSON: "
                f"{response.text[:200]!r}",
                url=self.base_url,
                status=int(response.status_code),
            ) from exc

    # ----------------------------------------------------------------- response validation
    def _results(
        self, api: str, data: Any, n: int, expect: tuple[int | None, float | None]
    ) -> list[PrismResult]:
        """One answer's results, checked (the selection over every request is made by the caller)."""

        def bad(reason: str) -> RemoteResponseError:
            return RemoteResponseError(
                f"the rerank server at {self.base_url} answered an invalid result list for {n} document"
                f"{'s' if n != 1 else ''}: {reason}",
                url=self.base_url,
                status=200,
            )

        items = answer_items(api, data)
        if not isinstance(items, list):
            shape = "a list" if api == "tei" else "an object with a 'results' list"
            raise bad(f"expected {shape}, got {str(data)[:200]!r}")
        asked_top_n, asked_threshold = expect
        seen: set[int] = set()
        results = []
        unscored = []  # our server's time budget ran out before these were scored: listed last
        for position, item in enumerate(items):
            result = self._result(item, position, n, bad)
            if result.index in seen:
                raise bad(f"results[{position}] repeats index {result.index}")
            seen.add(result.index)
            if not result.scored:
                unscored.append(result)
                continue
            if asked_threshold is not None and result.score < asked_threshold:
                raise bad(
                    f"results[{position}] scores {result.score} below the score_threshold {asked_threshold}"
                )
            results.append(result)
        most = n - len(unscored) if asked_top_n is None else min(asked_top_n, n - len(unscored))
        if asked_threshold is None and len(results) != most and not unscored:
            missing = sorted(set(range(n)) - seen)
            what = f"; missing indices {missing[:20]}" if asked_top_n is None else ""
            raise bad(f"expected {most} results, got {len(results)}{what}")
        if len(results) > most:
            raise bad(f"expected at most {most} results, got {len(results)}")
        return results + unscored

    def _result(self, item: Any, position: int, n: int, bad: Any) -> PrismResult:
        if not isinstance(item, Mapping):
            raise bad(f"results[{position}] is not an object: {str(item)[:100]!r}")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            raise bad(f"results[{position}].index must be an integer, got {index!r}")
        if not 0 <= index < n:
            raise bad(f"results[{position}].index {index} is out of range for {n} documents")
        if item.get("scored") is False:
            return unscored_result(index)
        score = item.get("relevance_score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise bad(f"results[{position}].relevance_score must be a finite number, got {score!r}")
        score = float(score)
        if not 0.0 <= score <= 1.0:
            raise bad(
                f"results[{position}].relevance_score {score} is not in [0, 1] (a server returning raw "
                "logits instead of probabilities is not supported)"
            )
        logit = item.get("logit")
        if isinstance(logit, bool) or not isinstance(logit, (int, float)) or not math.isfinite(logit):
            logit = _logit(score)
        if abs(sigmoid(float(logit)) - score) > 1e-6:
            raise bad(f"results[{position}].logit {logit} does not match its relevance_score {score}")
        fields: dict[str, Any] = {}
        for name, kind in (
            ("relevant", bool),
            ("contribution", str),
            ("evidence", str),
            ("evidence_complete", bool),
            ("truncated", bool),
            ("raw_output", str),
            ("document_tokens", int),
            ("evidence_tokens", int),
            ("evidence_skipped", str),
        ):
            value = item.get(name)
            if value is None:
                continue
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise bad(f"results[{position}].{name} must be {kind.__name__} or null, got {value!r:.80}")
            fields[name] = value
        chunk = item.get("chunk")
        if chunk is not None:
            if not (
                isinstance(chunk, list)
                and len(chunk) == 2
                and all(isinstance(c, int) and not isinstance(c, bool) for c in chunk)
                and 0 <= chunk[0] < chunk[1]
            ):
                raise bad(f"results[{position}].chunk must be [start, end) or null, got {chunk!r:.80}")
            fields["chunk"] = (chunk[0], chunk[1])
        fields.update(_grounding_fields(item, position, bad))
        relevant = fields.pop("relevant", float(logit) > 0)
        return PrismResult(index=index, score=score, logit=float(logit), relevant=relevant, **fields)


_RETRY = object()


@dataclasses.dataclass(frozen=True)
class _Route:
    """Where and how to post: the API, its path, and the server's advertised limits."""

    api: str
    path: str
    max_documents: int | None
    max_body_bytes: int | None


@dataclasses.dataclass(frozen=True)
class _Options:
    top_n: int | None
    threshold: float | None
    evidence: bool
    max_tokens_per_doc: int | None
    long_documents: str | None
    time_budget: float | None = None


def _limit(limits: Any, name: str) -> int | None:
    value = limits.get(name) if isinstance(limits, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _grounding_fields(item: Mapping[str, Any], position: int, bad: Any) -> dict[str, Any]:
    """``grounding``, ``unsupported`` and ``evidence_spans`` as the server sent them, checked (a server
    that does not send them gets them computed here, from the documents, by :func:`ground_result`)."""
    out: dict[str, Any] = {}
    grounding = item.get("grounding")
    if grounding is not None:
        if isinstance(grounding, bool) or not isinstance(grounding, (int, float)) or not 0 <= grounding <= 1:
            raise bad(
                f"results[{position}].grounding must be a number in [0, 1] or null, got {grounding!r:.80}"
            )
        out["grounding"] = float(grounding)
    unsupported = item.get("unsupported")
    if unsupported is not None:
        if not isinstance(unsupported, list) or not all(isinstance(u, str) for u in unsupported):
            raise bad(
                f"results[{position}].unsupported must be a list of strings or null, got {unsupported!r:.80}"
            )
        out["unsupported"] = tuple(unsupported)
    spans = item.get("evidence_spans")
    if spans is not None:
        ok = isinstance(spans, list) and all(
            s is None
            or (
                isinstance(s, list)
                and len(s) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in s)
                and s[0] <= s[1]
            )
            for s in spans
        )
        if not ok:
            raise bad(
                f"results[{position}].evidence_spans must be a list of [start, end] or null, "
                f"got {spans!r:.80}"
            )
        out["evidence_spans"] = tuple(None if s is None else (s[0], s[1]) for s in spans)
    if ("grounding" in out) != ("unsupported" in out):
        return {}  # half a report: recomputed from the document
    return out


def _capabilities(info: Mapping[str, Any] | None) -> Capabilities:
    if info is None:
        return SCORE_ONLY
    caps = info.get("capabilities") or {}
    return Capabilities(verdict=caps.get("verdict") is True, evidence=caps.get("evidence") is True)


def _logit(score: float) -> float:
    clipped = min(max(score, 1e-12), 1.0 - 1e-12)
    return math.log(clipped) - math.log1p(-clipped)


def _in_input_order(results: list[PrismResult], n: int) -> list[float]:
    scores = [0.0] * n
    for r in results:
        scores[r.index] = r.score
    return scores
