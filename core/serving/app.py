"""The rerank service: a FastAPI app over any backend of the core (Cohere v2 compatible).

Endpoints (request and answer shapes per dialect: :mod:`.dialects`):

- ``POST /v2/rerank``: Cohere's v2 rerank (see :mod:`.schemas`), plus Prism's per-result fields and
  the ``score_threshold`` and ``evidence`` request fields.
- ``POST /v1/rerank`` and ``POST /rerank``: Cohere v1, Jina, vLLM, Together and Infinity bodies
  (documents as strings or objects with ``rank_fields``), and TEI's ``texts`` body (answered with
  TEI's bare list and error shape). Handlers are just more callers of the engine's
  ``arerank``: the engine loop coalesces concurrent requests into shared forward passes.
- ``GET /v1/info``: backend, model, capabilities and limits (what :class:`prism_core.RemoteReranker`
  reads to know whether the server generates evidence).
- ``GET /health``: 503 until the model is loaded (loading runs in a worker thread from the app's
  lifespan, so the port answers at once), 200 after; 503 with the error if loading failed.
- ``GET /metrics``: Prometheus text format (see :mod:`.metrics`).

Errors: 401 without the bearer API key (when one is set; ``/health`` and ``/metrics`` stay open), 413
for a body over the limit, 400 for a document count over it (413 in TEI's dialect, as TEI does), 422
naming the bad field (malformed JSON, wrong types, a lone surrogate in a document, a blank query), 503
while loading, 504 when a request runs past ``request_timeout`` (its engine work is cancelled)
**unless the client sent a ``time_budget``**: then the engine's deadline is
``min(time_budget, request_timeout)`` and the answer is a 200 with what is done by then (fail-open,
:mod:`prism_core.budgets`; 504 only if the engine overran that by ``TIME_BUDGET_GRACE``), 500 for an
engine failure. A client that disconnects has its engine work cancelled too. On SIGTERM, uvicorn
stops accepting connections and finishes the requests in flight before the process exits.

Example:
    >>> from prism_core.config import EngineConfig
    >>> from prism_core.serving.app import ServerSettings, create_app
    >>> app = create_app(
    ...     EngineConfig(model="infgrad/Prism-Qwen3.5-Reranker-0.8B", backend="prism"),
    ...     settings=ServerSettings(api_key="secret", max_documents=500),
    ... )  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prism_core.extras import require_extra

require_extra("fastapi", "server")

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from prism_core.budgets import fit_token_budget, returned_tokens  # noqa: E402
from prism_core.config import EngineConfig  # noqa: E402
from prism_core.errors import EngineClosedError, NonFiniteScoreError  # noqa: E402
from prism_core.protocol import Reranker  # noqa: E402
from prism_core.results import PrismResult  # noqa: E402
from prism_core.serving.dialects import DIALECTS, dialect_of  # noqa: E402
from prism_core.serving.dialects.cohere import error_body, rerank_answer  # noqa: E402
from prism_core.serving.dialects.tei import tei_answer, tei_error  # noqa: E402
from prism_core.serving.metrics import ServerMetrics  # noqa: E402
from prism_core.serving.schemas import (  # noqa: E402
    InfoResponse,
    RerankRequest,
    RerankResponse,
    TEIRerankRequest,
)

logger = logging.getLogger(__name__)

SERVER_NAME = "prism-rerank"
#: With a client's ``time_budget``, seconds past ``request_timeout`` the server still waits for the
#: engine (which returns by the deadline plus one engine step) before it answers 504.
TIME_BUDGET_GRACE = 30.0
KNOWN_ENDPOINTS = ("/v2/rerank", "/v1/rerank", "/rerank", "/v1/info", "/health", "/metrics")

LoadMode = Literal["background", "blocking", "none"]


@dataclass(frozen=True)
class ServerSettings:
    """Limits and policies of one service.

    Attributes:
        api_key: When set, ``/v2/rerank`` and ``/v1/info`` need ``Authorization: Bearer <api_key>``
            (401 otherwise).
        max_documents: Documents per request, at most (413 beyond).
        max_body_bytes: Request body size in bytes, at most (413 beyond).
        request_timeout: Seconds a rerank request may take (504 beyond, its work cancelled);
            ``None`` for no limit.
        load: ``"background"`` (load in a worker thread from the lifespan: ``/health`` says 503
            until done), ``"blocking"`` (the lifespan waits for the load: startup fails if it does;
            what Ray Serve replicas use) or ``"none"`` (the engine is ready as given).

    Example:
        >>> ServerSettings(max_documents=100).max_documents
        100
    """

    api_key: str | None = None
    max_documents: int = 1000
    max_body_bytes: int = 32 * 1024 * 1024
    request_timeout: float | None = 300.0
    load: LoadMode = "background"

    def __post_init__(self) -> None:
        from prism_core.validation import check_float, check_int, check_text

        check_int(self.max_documents, "max_documents", 1)
        check_int(self.max_body_bytes, "max_body_bytes", 1024)
        if self.request_timeout is not None:
            check_float(self.request_timeout, "request_timeout", 0.001, 86400.0)
        if self.api_key is not None and not check_text(self.api_key, "api_key"):
            raise ValueError("api_key must not be empty (pass None for no key)")
        if self.load not in ("background", "blocking", "none"):
            raise ValueError(f"load must be 'background', 'blocking' or 'none', got {self.load!r}")


class EngineState:
    """The served engine and whether it is ready (shared by the handlers and the lifespan).

    Attributes:
        engine: The reranker every request goes to.
        backend: Its backend name.
        model: Its model (a hub id, a path, or a URL).
        ready: ``True`` once the model is loaded.
        load_error: Why loading failed, or ``None``.
        on_load_failure: Called (from the event loop) when loading fails; the CLI stops the server.
    """

    def __init__(self, engine: Reranker, backend: str, model: str) -> None:
        self.engine = engine
        self.backend = backend
        self.model = model
        self.ready = False
        self.load_error: str | None = None
        self.on_load_failure: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the engine's model now (blocking; idempotent)."""
        load = getattr(self.engine, "load", None)
        if callable(load):
            load()
        self.ready = True

    def engine_loop(self) -> Any:
        """The engine loop once loaded (``None`` before, or for a backend without one)."""
        if not self.ready or not getattr(self.engine, "is_loaded", False):
            return None
        return getattr(self.engine, "engine_loop", None)

    def queue_depth(self) -> int:
        """Jobs waiting or running in the engine loop."""
        loop = self.engine_loop()
        return int(loop.queue_depth) if loop is not None else 0

    def engine_stats(self) -> Any:
        """The engine loop's counters, or ``None``."""
        loop = self.engine_loop()
        return loop.stats if loop is not None else None

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the model's tokenizer (0 when the backend has none)."""
        prompts = getattr(self.engine, "prompt_tokenizer", None) if self.ready else None
        count = getattr(prompts, "count_tokens", None)
        return int(count(text)) if callable(count) else 0


def _describe(engine: Reranker) -> tuple[str, str]:
    config = getattr(engine, "engine_config", None)
    if isinstance(config, EngineConfig):
        return config.backend, config.model
    return type(engine).__name__, str(getattr(engine, "model_name", type(engine).__name__))


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, detail: Any = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, detail), status_code=status, headers=headers)


# ------------------------------------------------------------------------------- ASGI middleware
class _BodyLimit:
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
            await self._too_large(scope, receive, send, int(declared))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send, size, at_least=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = (
                f"the request body is not valid UTF-8 (byte {body[exc.start]:#04x} at offset {exc.start})"
            )
            response = JSONResponse(
                {
                    "detail": [{"loc": ["body"], "msg": reason, "type": "json_invalid"}],
                    "message": f"body: {reason}",
                },
                status_code=422,
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, size: int, at_least: bool = False
    ) -> None:
        more = "at least " if at_least else ""
        response = _error(
            413, f"request body of {more}{size} bytes exceeds this server's limit of {self.limit} bytes"
        )
        await response(scope, receive, send)


class _Metrics:
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


# ------------------------------------------------------------------------------- the app
def create_app(
    engine: Reranker | EngineConfig,
    *,
    settings: ServerSettings | None = None,
) -> FastAPI:
    """Build the rerank service over ``engine``.

    Args:
        engine: A reranker (any backend; shared with other callers in the process), or an
            :class:`~prism_core.config.EngineConfig` (the process-wide engine for it is used).
        settings: Limits and policies (defaults: :class:`ServerSettings`).

    Returns:
        The FastAPI app; run it with uvicorn (``prism-rerank serve`` does) or Ray Serve.

    Example:
        >>> app = create_app(EngineConfig(model="path/to/model", backend="prism"))  # doctest: +SKIP
    """
    settings = settings or ServerSettings()
    if isinstance(engine, EngineConfig):
        from prism_core.registry import get_engine

        engine = get_engine(engine)
    backend, model = _describe(engine)
    state = EngineState(engine, backend, model)
    if settings.load == "none":
        state.ready = True
    metrics = ServerMetrics(state.queue_depth, state.engine_stats, lambda: state.ready)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader: asyncio.Task[None] | None = None
        if settings.load == "blocking":
            await asyncio.to_thread(state.load)
            logger.info("%s: model %s (%s) loaded", SERVER_NAME, model, backend)
        elif settings.load == "background":
            loader = asyncio.create_task(_load_in_background(state))
        try:
            yield
        finally:
            if loader is not None and not loader.done():
                loader.cancel()  # the loading thread finishes on its own; nobody waits for it

    app = FastAPI(
        title="Prism rerank service",
        version=_version(),
        summary="Cohere v2 compatible reranking with Prism's verdicts, contributions and evidence.",
        lifespan=lifespan,
    )
    app.state.prism = state
    app.state.metrics = metrics
    app.state.settings = settings
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(_Metrics, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_clean_error(e) for e in exc.errors()]
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return JSONResponse({**error_body(422, message), "detail": errors}, status_code=422)

    async def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.api_key.encode()
        ):
            raise _HTTPError(
                401,
                "missing or invalid API key (send 'Authorization: Bearer <key>')",
                {"WWW-Authenticate": "Bearer"},
            )

    @app.exception_handler(_HTTPError)
    async def http_error(request: Request, exc: _HTTPError) -> JSONResponse:
        if request.url.path in ("/v1/rerank", "/rerank") and exc.status == 401:
            # TEI clients read ``error``; the documents family reads ``message``/``detail``: send all.
            body = {**error_body(exc.status, exc.message), **tei_error(exc.status, exc.message)}
            return JSONResponse(body, status_code=exc.status, headers=exc.headers)
        return _error(exc.status, exc.message, exc.headers, exc.detail)

    @app.get("/health", summary="Ready once the model is loaded (503 before)")
    async def health() -> JSONResponse:
        if state.load_error is not None:
            return JSONResponse({"status": "failed", "error": state.load_error}, status_code=503)
        if not state.ready:
            return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ok", "model": model, "backend": backend})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/info", response_model=InfoResponse, dependencies=[Depends(authorize)])
    async def info() -> dict[str, Any]:
        capabilities = getattr(engine, "capabilities", None)
        return {
            "server": SERVER_NAME,
            "version": _version(),
            "backend": backend,
            "model": model,
            "capabilities": {
                "verdict": bool(getattr(capabilities, "verdict", False)),
                "evidence": bool(getattr(capabilities, "evidence", False)),
            },
            "limits": {
                "max_documents": settings.max_documents,
                "max_body_bytes": settings.max_body_bytes,
                "request_timeout": settings.request_timeout,
                "max_input_tokens": getattr(engine, "max_length", None),
            },
            "defaults": {"evidence": RerankRequest.model_fields["evidence"].default},
            "dialects": DIALECTS,
            "ready": state.ready,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }

    def refusal(query: str, n: int, too_many_status: int) -> _HTTPError | None:
        if state.load_error is not None:
            return _HTTPError(503, f"the model failed to load: {state.load_error}")
        if not state.ready:
            return _HTTPError(503, "the model is still loading; retry shortly", {"Retry-After": "5"})
        if n > settings.max_documents:
            return _HTTPError(
                too_many_status,
                f"documents: {n} documents exceed this server's limit of {settings.max_documents} "
                "per request",
            )
        return None

    async def run(
        request: Request,
        query: str,
        texts: list[str],
        *,
        top_n: int | None,
        score_threshold: float | None,
        evidence: bool,
        max_tokens_per_doc: int | None,
        long_documents: str | None,
        time_budget: float | None = None,
        too_many_status: int = 400,
    ) -> tuple[list[PrismResult], int, int]:
        """Rerank on the engine; ``(results, prompt tokens, generated tokens)`` or raise ``_HTTPError``."""
        refused = refusal(query, len(texts), too_many_status)
        if refused is not None:
            raise refused
        options: dict[str, Any] = dict(_long_document_options(engine, max_tokens_per_doc, long_documents))
        timeout = settings.request_timeout
        if time_budget is not None:
            # The client asked for what is done by a deadline: the server's timeout takes the same
            # fail-open path (a 200 with what is done), and the wait gets a grace for one engine step.
            options["time_budget"] = time_budget if timeout is None else min(time_budget, timeout)
            timeout = None if timeout is None else timeout + TIME_BUDGET_GRACE
        work = engine.arerank(
            query, texts, top_n=top_n, score_threshold=score_threshold, evidence=evidence, **options
        )
        try:
            results = await _run_cancellable(work, request, timeout)
        except _Disconnected:
            raise _HTTPError(499, "client disconnected; the request's work was cancelled") from None
        except asyncio.TimeoutError:
            raise _HTTPError(
                504,
                f"the request ran past this server's timeout of {settings.request_timeout:g} s; "
                "its work was cancelled",
            ) from None
        except (ValueError, TypeError) as exc:
            message = " ".join(str(exc).split())
            raise _HTTPError(
                422, message, detail=[{"loc": ["body"], "msg": message, "type": "value_error"}]
            ) from None
        except NonFiniteScoreError as exc:
            raise _HTTPError(500, f"the model produced non-finite scores: {exc}") from None
        except EngineClosedError as exc:
            raise _HTTPError(503, f"the engine is shutting down: {exc}") from None
        except Exception as exc:
            logger.exception("rerank failed")
            raise _HTTPError(500, f"the engine failed: {type(exc).__name__}: {exc}") from None
        metrics.documents.inc(len(texts))
        # Usage: the inputs' tokens (query once per document, the fixed prompt not counted) and this
        # request's generated text re-tokenized (the end-of-turn token, skipped when decoding, is not
        # counted); /metrics counts the engine's tokens exactly.
        prompt = state.count_tokens(query) * len(texts) + sum(state.count_tokens(t) for t in texts)
        generated = sum(state.count_tokens(r.raw_output) for r in results if r.raw_output)
        return results, prompt, generated

    async def documents_family(
        body: RerankRequest,
        request: Request,
        api_version: str,
        default_return: bool,
        never_return: bool = False,
    ) -> JSONResponse:
        started = time.perf_counter()
        try:
            results, prompt, generated = await run(
                request,
                body.query,
                body.texts,
                top_n=body.top_n,
                score_threshold=body.score_threshold,
                evidence=body.evidence,
                max_tokens_per_doc=body.max_tokens_per_doc,
                long_documents=body.long_documents,
                time_budget=body.time_budget,
            )
        except _HTTPError as exc:
            return _error(exc.status, exc.message, exc.headers, exc.detail)
        dropped: list[int] | None = None
        costs: dict[int, int] | None = None
        if body.max_context_tokens is not None:
            try:
                results, costs, dropped = await asyncio.to_thread(
                    _fit_context, engine, results, body.texts, body.evidence, body.max_context_tokens
                )
            except (ValueError, TypeError) as exc:
                return _error(422, f"max_context_tokens: {exc}")
        return_documents = default_return if body.return_documents is None else body.return_documents
        return_documents = return_documents and not never_return
        answer = rerank_answer(
            results,
            body.documents,
            return_documents=return_documents,
            raw_scores=body.raw_scores,
            model=model,
            backend=backend,
            api_version=api_version,
            prompt_tokens=prompt,
            generated_tokens=generated,
            extra_meta={
                "evidence": bool(body.evidence and getattr(engine.capabilities, "evidence", False)),
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
                **({} if dropped is None else {"dropped_by_budget": dropped}),
            },
            context_tokens=costs,
        )
        return JSONResponse(answer)

    @app.post(
        "/v2/rerank",
        response_model=RerankResponse,
        dependencies=[Depends(authorize)],
        summary="Rerank documents for a query (Cohere v2, also vLLM's v2 route)",
    )
    async def rerank_v2(body: RerankRequest, request: Request) -> JSONResponse:
        return await documents_family(body, request, "2", default_return=False)

    async def rerank_any(request: Request) -> Any:
        """``/v1/rerank`` and ``/rerank``: the ``documents`` family, or TEI's ``texts`` body."""
        raw = await request.body()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON at character {exc.pos}: {exc.msg}"
            return JSONResponse(
                {**error_body(422, f"body: {message}"), "detail": [{"loc": ["body"], "msg": message}]},
                status_code=422,
            )
        if dialect_of(data) == "tei":
            return await rerank_tei(data, request)
        try:
            body = RerankRequest.model_validate(data)
        except ValidationError as exc:
            errors = [_clean_error({**e, "loc": ("body", *e["loc"])}) for e in exc.errors()]
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            return JSONResponse({**error_body(422, message), "detail": errors}, status_code=422)
        if request.url.path.rstrip("/").endswith("/v1/rerank"):
            return await documents_family(body, request, "1", default_return=True)
        # /rerank is Infinity's route (``document`` a string) and vLLM's (an object): each of their
        # clients parses only its own shape, and all of them take an answer without ``document``.
        return await documents_family(body, request, "1", default_return=False, never_return=True)

    async def rerank_tei(data: Any, request: Request) -> JSONResponse:
        try:
            body = TEIRerankRequest.model_validate(data)
        except ValidationError as exc:
            errors = [_clean_error({**e, "loc": ("body", *e["loc"])}) for e in exc.errors()]
            message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            return JSONResponse(tei_error(422, message), status_code=422)
        try:
            results, _, _ = await run(
                request,
                body.query,
                body.texts,
                top_n=body.top_n,
                score_threshold=None,
                evidence=False,
                max_tokens_per_doc=None,
                long_documents=None,
                too_many_status=413,  # what TEI answers for a batch over max_client_batch_size
            )
        except _HTTPError as exc:
            return JSONResponse(
                tei_error(exc.status, exc.message), status_code=exc.status, headers=exc.headers
            )
        return JSONResponse(tei_answer(results, body.texts, body.raw_scores, body.return_text))

    for path in ("/v1/rerank", "/rerank"):
        app.add_api_route(
            path,
            rerank_any,
            methods=["POST"],
            dependencies=[Depends(authorize)],
            summary="Rerank (Cohere v1, Jina, vLLM, Together, Infinity bodies; TEI's texts body)",
        )

    return app


class _HTTPError(Exception):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, detail: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.detail = detail


def _long_document_options(
    engine: Reranker, max_tokens_per_doc: int | None, long_documents: str | None
) -> dict[str, Any]:
    """The long-document options the engine takes (an engine without them reads its ``max_length``)."""
    try:
        params = inspect.signature(engine.arerank).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options: dict[str, Any] = {}
    if max_tokens_per_doc is not None and (takes_any or "max_tokens_per_doc" in params):
        options["max_tokens_per_doc"] = max_tokens_per_doc
    if long_documents is not None:
        if not (takes_any or "long_documents" in params):
            raise _HTTPError(
                422,
                f"long_documents: this server's {type(engine).__name__} does not take long_documents "
                f"(got {long_documents!r})",
            )
        options["long_documents"] = long_documents
    return options


class _Disconnected(Exception):
    pass


async def _load_in_background(state: EngineState) -> None:
    try:
        await asyncio.to_thread(state.load)
    except Exception as exc:
        state.load_error = " ".join(f"{type(exc).__name__}: {exc}".split())
        logger.error(
            "%s: cannot load model %s (%s): %s", SERVER_NAME, state.model, state.backend, state.load_error
        )
        if state.on_load_failure is not None:
            state.on_load_failure(state.load_error)
        return
    logger.info("%s: model %s (%s) loaded", SERVER_NAME, state.model, state.backend)


async def _run_cancellable(
    work: Awaitable[list[PrismResult]], request: Request, timeout: float | None
) -> Any:
    """Await ``work``; cancel it (and so its engine job) on timeout or when the client goes away."""
    task = asyncio.ensure_future(work)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            done, _ = await asyncio.wait({task}, timeout=wait)
            if done:
                return task.result()
            if deadline is not None and time.monotonic() >= deadline:
                raise asyncio.TimeoutError
            if await request.is_disconnected():
                raise _Disconnected
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _fit_context(
    engine: Reranker, results: list[PrismResult], documents: Sequence[str], evidence: bool, budget: int
) -> tuple[list[PrismResult], dict[int, int], list[int]]:
    """``max_context_tokens`` on a response: kept results, their ``context_tokens``, left-out indices."""
    swapped = [bool(evidence and r.relevant and r.evidence and r.evidence_complete) for r in results]
    texts = [
        r.evidence if s and r.evidence else documents[r.index] for r, s in zip(results, swapped, strict=True)
    ]
    costs = returned_tokens(texts, results, swapped, None, engine)
    kept, dropped = fit_token_budget(costs, budget)
    counts = {results[i].index: costs[i] for i in kept}
    return [results[i] for i in kept], counts, [results[i].index for i in dropped]


def _clean_error(error: Any) -> dict[str, Any]:
    """A validation error without the offending input (it may be huge, or not encodable as UTF-8)."""
    loc, msg, kind = list(error.get("loc", ())), str(error.get("msg", "")), str(error.get("type", ""))
    if kind == "json_invalid":  # FastAPI puts the character position where a field name would be
        position = loc[1] if len(loc) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error")
        loc, msg = ["body"], f"invalid JSON at character {position}" + (f": {reason}" if reason else "")
    return {"loc": loc, "msg": msg, "type": kind}


def _version() -> str:
    try:
        from prism_core import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


def run_uvicorn(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    graceful_timeout: float | None = None,
    on_started: Callable[[Any], None] | None = None,
) -> bool:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM (in-flight requests finish first).

    Args:
        app: The app from :func:`create_app`.
        host: Interface to listen on (``127.0.0.1`` by default: pass ``0.0.0.0`` to expose it).
        port: TCP port (0 picks a free one).
        log_level: uvicorn's log level.
        graceful_timeout: Seconds to wait for in-flight requests on shutdown (``None``: the app's
            request timeout plus 10 s, or no limit).
        on_started: Called with the ``uvicorn.Server`` once it listens.

    Returns:
        ``True`` when the model loaded and the server stopped normally, ``False`` when loading failed.
    """
    require_extra("uvicorn", "server")
    import uvicorn

    settings: ServerSettings = app.state.settings
    if graceful_timeout is None and settings.request_timeout is not None:
        graceful_timeout = settings.request_timeout + 10.0
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=None if graceful_timeout is None else math.ceil(graceful_timeout),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    state: EngineState = app.state.prism

    def stop(_: str) -> None:
        server.should_exit = True

    state.on_load_failure = stop
    if on_started is not None:
        _call_when_started(server, on_started)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the signal that stopped it once in-flight requests are done; a quiet
        # handler makes that a normal return (exit status 0) instead of death by SIGTERM.
        previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return state.load_error is None


def _call_when_started(server: Any, callback: Callable[[Any], None]) -> None:
    original: Callable[..., Awaitable[None]] = server.startup

    async def startup(*args: Any, **kwargs: Any) -> None:
        await original(*args, **kwargs)
        if server.started:
            callback(server)

    server.startup = startup
