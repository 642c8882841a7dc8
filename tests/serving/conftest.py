"""Fixtures of the serving tests: real uvicorn servers on 127.0.0.1 (ephemeral ports), stopped by the tests.

The servers run in a thread of the test process (so a test can read the engine's counters), on the
tiny Prism checkpoint of ``tests/conftest.py``; the engine they serve is the process-wide one, the
same object the in-process comparisons call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from prism_core.config import EngineConfig
from tests.serving.serving_helpers import API_KEY, ServerThread


@pytest.fixture(scope="session")
def tiny_config(tiny_qwen35_path: str) -> EngineConfig:
    """The engine configuration every serving test uses (short generation budget)."""
    return EngineConfig(model=tiny_qwen35_path, backend="prism", max_new_tokens=16)


@pytest.fixture(scope="session")
def tiny_engine(tiny_config: EngineConfig) -> Any:
    """The process-wide tiny Prism engine, loaded."""
    from prism_core.registry import get_engine

    engine = get_engine(tiny_config)
    engine.load()  # type: ignore[attr-defined]
    return engine


@pytest.fixture(scope="module")
def live_server(tiny_engine: Any) -> Iterator[ServerThread]:
    """A real uvicorn server on the tiny engine, with an API key and small limits."""
    from prism_core.serving.app import ServerSettings, create_app

    settings = ServerSettings(
        api_key=API_KEY, max_documents=40, max_body_bytes=64 * 1024, request_timeout=60.0
    )
    with ServerThread(create_app(tiny_engine, settings=settings)) as server:
        server.wait_ready()
        yield server
