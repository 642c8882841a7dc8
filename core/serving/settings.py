"""A rerank service's configuration (:class:`ServerSettings`) and what it serves (:class:`EngineState`).

Nothing here needs the ``server`` extra: the Ray deployment and the CLI build settings before any
web framework is imported.

Example:
    >>> ServerSettings(max_documents=100, request_timeout=None).request_timeout is None
    True
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from prism_core.config import EngineConfig
from prism_core.protocol import Reranker

logger = logging.getLogger(__name__)

SERVER_NAME = "prism-rerank"

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

    Example:
        >>> state = EngineState.of(object())  # type: ignore[arg-type]
        >>> state.backend, state.ready
        ('object', False)
    """

    def __init__(self, engine: Reranker, backend: str, model: str) -> None:
        self.engine = engine
        self.backend = backend
        self.model = model
        self.ready = False
        self.load_error: str | None = None
        self.on_load_failure: Callable[[str], None] | None = None

    @classmethod
    def of(cls, engine: Reranker) -> EngineState:
        """The state of ``engine``, named by its configuration (else by its type)."""
        config = getattr(engine, "engine_config", None)
        if isinstance(config, EngineConfig):
            return cls(engine, config.backend, config.model)
        name = type(engine).__name__
        return cls(engine, name, str(getattr(engine, "model_name", name)))

    def load(self) -> None:
        """Load the engine's model now (blocking; idempotent)."""
        load = getattr(self.engine, "load", None)
        if callable(load):
            load()
        self.ready = True

    async def load_in_background(self) -> None:
        """:meth:`load` in a worker thread; a failure is kept in ``load_error`` (and reported)."""
        try:
            await asyncio.to_thread(self.load)
        except Exception as exc:
            self.load_error = " ".join(f"{type(exc).__name__}: {exc}".split())
            logger.error(
                "%s: cannot load model %s (%s): %s", SERVER_NAME, self.model, self.backend, self.load_error
            )
            if self.on_load_failure is not None:
                self.on_load_failure(self.load_error)
            return
        logger.info("%s: model %s (%s) loaded", SERVER_NAME, self.model, self.backend)

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
