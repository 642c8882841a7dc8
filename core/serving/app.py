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

The parts: :mod:`.settings` (limits, the engine's state), :mod:`.handling` (a request to one
engine call and back), :mod:`.routes` (endpoints, authorization, error handlers),
:mod:`.middleware` (body limit, metrics), :mod:`.http_errors` (error answers) and
:mod:`.lifecycle` (loading, uvicorn).
"""

from __future__ import annotations

from prism_core.extras import require_extra

require_extra("fastapi", "server")

from fastapi import FastAPI  # noqa: E402

from prism_core.config import EngineConfig  # noqa: E402
from prism_core.protocol import Reranker  # noqa: E402
from prism_core.serving.handling import TIME_BUDGET_GRACE, RerankService, server_version  # noqa: E402
from prism_core.serving.lifecycle import lifespan, run_uvicorn  # noqa: E402
from prism_core.serving.metrics import ServerMetrics  # noqa: E402
from prism_core.serving.middleware import KNOWN_ENDPOINTS, BodyLimit, RequestMetrics  # noqa: E402
from prism_core.serving.routes import add_routes  # noqa: E402
from prism_core.serving.settings import SERVER_NAME, EngineState, LoadMode, ServerSettings  # noqa: E402

__all__ = [
    "KNOWN_ENDPOINTS",
    "SERVER_NAME",
    "TIME_BUDGET_GRACE",
    "EngineState",
    "LoadMode",
    "ServerSettings",
    "create_app",
    "run_uvicorn",
]


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
    state = EngineState.of(engine)
    state.ready = settings.load == "none"
    metrics = ServerMetrics(state.queue_depth, state.engine_stats, lambda: state.ready)
    app = FastAPI(
        title="Prism rerank service",
        version=server_version(),
        summary="Cohere v2 compatible reranking with Prism's verdicts, contributions and evidence.",
        lifespan=lifespan(state, settings.load),
    )
    app.state.prism = state
    app.state.metrics = metrics
    app.state.settings = settings
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    add_routes(app, RerankService(state, settings, metrics))
    return app
