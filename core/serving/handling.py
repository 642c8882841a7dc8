"""Request handling of the rerank service: a request body to one engine call, back to a dialect's answer.

:class:`RerankService` holds what every handler shares (the engine's state, the settings, the
metrics). Each rerank request goes the same way: refused while loading or over the document limit,
the engine's ``arerank`` awaited under the request's timeout (and cancelled when the client goes
away), engine failures mapped to statuses, then the answer in the caller's dialect
(:mod:`.dialects`).

Example:
    >>> from prism_core.serving.settings import EngineState, ServerSettings
    >>> state = EngineState.of(object())  # type: ignore[arg-type]
    >>> service = RerankService(state, ServerSettings(), metrics=None)  # type: ignore[arg-type]
    >>> service.refusal(1, 400).status  # the model is not loaded yet
    503
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from prism_core.extras import require_extra

require_extra("fastapi", "server")

from fastapi import Request  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from prism_core.budgets import fit_token_budget, returned_tokens  # noqa: E402
from prism_core.errors import EngineClosedError, NonFiniteScoreError  # noqa: E402
from prism_core.protocol import Reranker  # noqa: E402
from prism_core.results import PrismResult  # noqa: E402
from prism_core.serving.dialects import DIALECTS, dialect_of  # noqa: E402
from prism_core.serving.dialects.cohere import error_body, rerank_answer  # noqa: E402
from prism_core.serving.dialects.tei import tei_answer  # noqa: E402
from prism_core.serving.http_errors import (  # noqa: E402
    HTTPError,
    error_response,
    invalid_response,
    tei_error_response,
)
from prism_core.serving.metrics import ServerMetrics  # noqa: E402
from prism_core.serving.schemas import RerankRequest, TEIRerankRequest  # noqa: E402
from prism_core.serving.settings import SERVER_NAME, EngineState, ServerSettings  # noqa: E402

logger = logging.getLogger(__name__)

#: With a client's ``time_budget``, seconds past ``request_timeout`` the server still waits for the
#: engine (which returns by the deadline plus one engine step) before it answers 504.
TIME_BUDGET_GRACE = 30.0


def server_version() -> str:
    """The package version (``"unknown"`` when it cannot be read)."""
    try:
        from prism_core import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


class _Disconnected(Exception):
    pass


class RerankService:
    """The handlers' shared state and the work of each endpoint.

    Args:
        state: The served engine and whether it is ready.
        settings: The service's limits and policies.
        metrics: The service's Prometheus metrics.
    """

    def __init__(self, state: EngineState, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.state = state
        self.settings = settings
        self.metrics = metrics

    @property
    def engine(self) -> Reranker:
        """The reranker every request goes to."""
        return self.state.engine

    # ----------------------------------------------------------------- the small endpoints
    def health(self) -> JSONResponse:
        """``GET /health``: 503 while loading (or after a failed load), 200 once ready."""
        state = self.state
        if state.load_error is not None:
            return JSONResponse({"status": "failed", "error": state.load_error}, status_code=503)
        if not state.ready:
            return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ok", "model": state.model, "backend": state.backend})

    def metrics_text(self) -> Response:
        """``GET /metrics``: the Prometheus text format."""
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    def info(self) -> dict[str, Any]:
        """``GET /v1/info``: what this server serves (read by ``RemoteReranker``)."""
        capabilities = getattr(self.engine, "capabilities", None)
        settings = self.settings
        return {
            "server": SERVER_NAME,
            "version": server_version(),
            "backend": self.state.backend,
            "model": self.state.model,
            "capabilities": {
                "verdict": bool(getattr(capabilities, "verdict", False)),
                "evidence": bool(getattr(capabilities, "evidence", False)),
            },
            "limits": {
                "max_documents": settings.max_documents,
                "max_body_bytes": settings.max_body_bytes,
                "request_timeout": settings.request_timeout,
                "max_input_tokens": getattr(self.engine, "max_length", None),
            },
            "defaults": {"evidence": RerankRequest.model_fields["evidence"].default},
            "dialects": DIALECTS,
            "ready": self.state.ready,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }

    # ----------------------------------------------------------------- the rerank endpoints
    async def rerank_any(self, request: Request) -> Response:
        """``/v1/rerank`` and ``/rerank``: the ``documents`` family, or TEI's ``texts`` body."""
        try:
            data = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            message = f"invalid JSON at character {exc.pos}: {exc.msg}"
            error = {**error_body(422, f"body: {message}"), "detail": [{"loc": ["body"], "msg": message}]}
            return JSONResponse(error, status_code=422)
        if dialect_of(data) == "tei":
            return await self.rerank_tei(data, request)
        try:
            body = RerankRequest.model_validate(data)
        except ValidationError as exc:
            return invalid_response(exc.errors(), ("body",))
        if request.url.path.rstrip("/").endswith("/v1/rerank"):
            return await self.rerank_documents(body, request, "1", default_return=True)
        # /rerank is Infinity's route (``document`` a string) and vLLM's (an object): each of their
        # clients parses only its own shape, and all of them take an answer without ``document``.
        return await self.rerank_documents(body, request, "1", default_return=False, never_return=True)

    async def rerank_documents(
        self,
        body: RerankRequest,
        request: Request,
        api_version: str,
        default_return: bool,
        never_return: bool = False,
    ) -> JSONResponse:
        """The ``documents`` family (Cohere v1/v2, Jina, vLLM, Together, Infinity)."""
        started = time.perf_counter()
        try:
            results, prompt, generated = await self.run(
                request, body.query, body.texts, top_n=body.top_n, score_threshold=body.score_threshold,
                evidence=body.evidence, max_tokens_per_doc=body.max_tokens_per_doc,
                long_documents=body.long_documents, time_budget=body.time_budget,
            )  # fmt: skip
            costs, dropped = None, None
            if body.max_context_tokens is not None:
                results, costs, dropped = await self.fit_context(results, body)
        except HTTPError as exc:
            return error_response(exc.status, exc.message, exc.headers, exc.detail)
        returned = (
            default_return if body.return_documents is None else body.return_documents
        ) and not never_return
        meta = {
            "evidence": bool(body.evidence and getattr(self.engine.capabilities, "evidence", False)),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
            **({} if dropped is None else {"dropped_by_budget": dropped}),
        }
        answer = rerank_answer(
            results, body.documents, return_documents=returned, raw_scores=body.raw_scores,
            model=self.state.model, backend=self.state.backend, api_version=api_version,
            prompt_tokens=prompt, generated_tokens=generated, extra_meta=meta, context_tokens=costs,
        )  # fmt: skip
        return JSONResponse(answer)

    async def rerank_tei(self, data: Any, request: Request) -> JSONResponse:
        """TEI's ``texts`` body, answered with TEI's bare list (and TEI's error shape)."""
        try:
            body = TEIRerankRequest.model_validate(data)
        except ValidationError as exc:
            return invalid_response(exc.errors(), ("body",), tei=True)
        try:
            # 413 for too many documents: what TEI answers for a batch over max_client_batch_size
            results, _, _ = await self.run(
                request,
                body.query,
                body.texts,
                top_n=body.top_n,
                score_threshold=None,
                evidence=False,
                too_many_status=413,
            )
        except HTTPError as exc:
            return tei_error_response(exc)
        return JSONResponse(tei_answer(results, body.texts, body.raw_scores, body.return_text))

    # ----------------------------------------------------------------- one engine call
    def refusal(self, n: int, too_many_status: int) -> HTTPError | None:
        """Why a request of ``n`` documents is refused now (loading, failed, too many), or ``None``."""
        if self.state.load_error is not None:
            return HTTPError(503, f"the model failed to load: {self.state.load_error}")
        if not self.state.ready:
            return HTTPError(503, "the model is still loading; retry shortly", {"Retry-After": "5"})
        if n > self.settings.max_documents:
            return HTTPError(
                too_many_status,
                f"documents: {n} documents exceed this server's limit of {self.settings.max_documents} "
                "per request",
            )
        return None

    async def run(
        self,
        request: Request,
        query: str,
        texts: list[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        time_budget: float | None = None,
        too_many_status: int = 400,
        **selection: Any,
    ) -> tuple[list[PrismResult], int, int]:
        """Rerank on the engine: ``(results, prompt tokens, generated tokens)``, or raise :class:`HTTPError`.

        ``selection`` is passed to ``arerank`` as is (``top_n``, ``score_threshold``, ``evidence``).
        """
        refused = self.refusal(len(texts), too_many_status)
        if refused is not None:
            raise refused
        options = _long_document_options(self.engine, max_tokens_per_doc, long_documents)
        timeout = self.settings.request_timeout
        if time_budget is not None:
            # The client asked for what is done by a deadline: the server's timeout takes the same
            # fail-open path (a 200 with what is done), and the wait gets a grace for one engine step.
            options["time_budget"] = time_budget if timeout is None else min(time_budget, timeout)
            timeout = None if timeout is None else timeout + TIME_BUDGET_GRACE
        work = self.engine.arerank(query, texts, **selection, **options)
        try:
            results = await _run_cancellable(work, request, timeout)
        except Exception as exc:
            raise self._failure(exc) from None
        self.metrics.documents.inc(len(texts))
        return results, *self._usage(query, texts, results)

    def _failure(self, exc: Exception) -> HTTPError:
        """The answer to an engine call that raised ``exc`` (logged when it is the engine's fault)."""
        if isinstance(exc, _Disconnected):
            return HTTPError(499, "client disconnected; the request's work was cancelled")
        if isinstance(exc, asyncio.TimeoutError):
            return HTTPError(
                504,
                f"the request ran past this server's timeout of {self.settings.request_timeout:g} s; "
                "its work was cancelled",
            )
        if isinstance(exc, (ValueError, TypeError)):
            message = " ".join(str(exc).split())
            return HTTPError(422, message, detail=[{"loc": ["body"], "msg": message, "type": "value_error"}])
        if isinstance(exc, NonFiniteScoreError):
            return HTTPError(500, f"the model produced non-finite scores: {exc}")
        if isinstance(exc, EngineClosedError):
            return HTTPError(503, f"the engine is shutting down: {exc}")
        logger.error("rerank failed", exc_info=exc)
        return HTTPError(500, f"the engine failed: {type(exc).__name__}: {exc}")

    def _usage(self, query: str, texts: Sequence[str], results: Sequence[PrismResult]) -> tuple[int, int]:
        """``(prompt, generated)`` tokens: the inputs' tokens (query once per document, the fixed
        prompt not counted) and this request's generated text re-tokenized (the end-of-turn token,
        skipped when decoding, is not counted); ``/metrics`` counts the engine's tokens exactly."""
        count = self.state.count_tokens
        prompt = count(query) * len(texts) + sum(count(t) for t in texts)
        return prompt, sum(count(r.raw_output) for r in results if r.raw_output)

    async def fit_context(
        self, results: list[PrismResult], body: RerankRequest
    ) -> tuple[list[PrismResult], dict[int, int], list[int]]:
        """``max_context_tokens`` on an answer: kept results, their ``context_tokens``, left-out indices."""
        try:
            return await asyncio.to_thread(
                _fit_context, self.engine, results, body.texts, body.evidence, body.max_context_tokens or 0
            )
        except (ValueError, TypeError) as exc:
            raise HTTPError(422, f"max_context_tokens: {exc}") from None


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
            raise HTTPError(
                422,
                f"long_documents: this server's {type(engine).__name__} does not take long_documents "
                f"(got {long_documents!r})",
            )
        options["long_documents"] = long_documents
    return options


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
    swapped = [bool(evidence and r.relevant and r.evidence and r.evidence_complete) for r in results]
    texts = [
        r.evidence if s and r.evidence else documents[r.index] for r, s in zip(results, swapped, strict=True)
    ]
    costs = returned_tokens(texts, results, swapped, None, engine)
    kept, dropped = fit_token_budget(costs, budget)
    counts = {results[i].index: costs[i] for i in kept}
    return [results[i] for i in kept], counts, [results[i].index for i in dropped]
