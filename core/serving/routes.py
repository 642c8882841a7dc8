"""The service's routes: each endpoint, its authorization and its error handlers, bound to a service.

Example:
    >>> from prism_core.serving.app import create_app  # doctest: +SKIP
    >>> sorted(r.path for r in create_app(engine).routes if "rerank" in r.path)  # doctest: +SKIP
    ['/rerank', '/v1/rerank', '/v2/rerank']
"""

from __future__ import annotations

import hmac
from typing import Any

from prism_core.extras import require_extra

require_extra("fastapi", "server")

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402

from prism_core.serving.dialects.cohere import error_body  # noqa: E402
from prism_core.serving.dialects.tei import tei_error  # noqa: E402
from prism_core.serving.handling import RerankService  # noqa: E402
from prism_core.serving.http_errors import HTTPError, error_response, invalid_response  # noqa: E402
from prism_core.serving.schemas import InfoResponse, RerankRequest, RerankResponse  # noqa: E402

#: The routes that answer every dialect but Cohere v2 (TEI's body included).
ANY_DIALECT_PATHS = ("/v1/rerank", "/rerank")


def add_routes(app: FastAPI, service: RerankService) -> None:
    """Add every endpoint of the service to ``app`` (and the handlers of its errors)."""
    authorized = [Depends(_authorization(service.settings.api_key))]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPError, _refused)  # type: ignore[arg-type]

    @app.get("/health", summary="Ready once the model is loaded (503 before)")
    async def health() -> JSONResponse:
        return service.health()

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return service.metrics_text()

    @app.get("/v1/info", response_model=InfoResponse, dependencies=authorized)
    async def info() -> dict[str, Any]:
        return service.info()

    @app.post(
        "/v2/rerank",
        response_model=RerankResponse,
        dependencies=authorized,
        summary="Rerank documents for a query (Cohere v2, also vLLM's v2 route)",
    )
    async def rerank_v2(body: RerankRequest, request: Request) -> JSONResponse:
        return await service.rerank_documents(body, request, "2", default_return=False)

    for path in ANY_DIALECT_PATHS:
        app.add_api_route(
            path,
            service.rerank_any,
            methods=["POST"],
            dependencies=authorized,
            summary="Rerank (Cohere v1, Jina, vLLM, Together, Infinity bodies; TEI's texts body)",
        )


def _authorization(api_key: str | None) -> Any:
    """The dependency that checks the bearer token (a no-op without a key)."""

    async def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise HTTPError(
                401,
                "missing or invalid API key (send 'Authorization: Bearer <key>')",
                {"WWW-Authenticate": "Bearer"},
            )

    return authorize


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return invalid_response(exc.errors())


async def _refused(request: Request, exc: HTTPError) -> JSONResponse:
    if request.url.path in ANY_DIALECT_PATHS and exc.status == 401:
        # TEI clients read ``error``; the documents family reads ``message``/``detail``: send all.
        body = {**error_body(exc.status, exc.message), **tei_error(exc.status, exc.message)}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)
    return error_response(exc.status, exc.message, exc.headers, exc.detail)
