"""The service's life: loading the model from the app's lifespan, and serving it with uvicorn until a signal.

Example:
    >>> from prism_core.serving.app import create_app, run_uvicorn  # doctest: +SKIP
    >>> run_uvicorn(create_app(engine), port=8000)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prism_core.extras import require_extra
from prism_core.serving.settings import SERVER_NAME, EngineState, LoadMode

logger = logging.getLogger(__name__)


def lifespan(
    state: EngineState, load: LoadMode
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: load the model as ``load`` says (blocking, in the background, or not)."""

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        loader: asyncio.Task[None] | None = None
        if load == "blocking":
            await asyncio.to_thread(state.load)
            logger.info("%s: model %s (%s) loaded", SERVER_NAME, state.model, state.backend)
        elif load == "background":
            loader = asyncio.create_task(state.load_in_background())
        try:
            yield
        finally:
            if loader is not None and not loader.done():
                loader.cancel()  # the loading thread finishes on its own; nobody waits for it

    return run


def run_uvicorn(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    graceful_timeout: float | None = None,
    on_started: Callable[[Any], None] | None = None,
) -> bool:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM (in-flight requests finish first).

    Args:
        app: The app from :func:`prism_core.serving.app.create_app`.
        host: Interface to listen on (``127.0.0.1`` by default: pass ``0.0.0.0`` to expose it).
        port: TCP port (0 picks a free one).
        log_level: uvicorn's log level.
        graceful_timeout: Seconds to wait for in-flight requests on shutdown (``None``: the app's
            request timeout plus 10 s, or no limit).
        on_started: Called with the ``uvicorn.Server`` once it listens.

    Returns:
        ``True`` when the model loaded and the server stopped normally, ``False`` when loading failed.
    """
    uvicorn = require_extra("uvicorn", "server")
    request_timeout = app.state.settings.request_timeout
    if graceful_timeout is None and request_timeout is not None:
        graceful_timeout = request_timeout + 10.0
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
