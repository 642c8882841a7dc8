"""One body of work for sync and async entry points: values in, errors thrown in, cleanup runs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from prism_core.backends.driving import Blocking, drive_async, drive_sync


def body(log: list[str]) -> Any:
    try:
        where = yield Blocking(lambda: threading.current_thread().name)
        log.append(f"blocking ran in {where}")
        answer = yield "job"
        log.append(f"job gave {answer}")
        return answer * 2
    except BaseException as exc:
        log.append(f"released after {type(exc).__name__}")
        raise


def test_sync_and_async_run_the_same_body() -> None:
    sync_log: list[str] = []
    assert drive_sync(body(sync_log), run=lambda job: 21) == 42
    assert sync_log == [f"blocking ran in {threading.current_thread().name}", "job gave 21"]

    async def run(job: Any) -> int:
        return 21

    async_log: list[str] = []
    assert asyncio.run(drive_async(body(async_log), run=run)) == 42
    assert async_log[1] == "job gave 21"
    assert async_log[0] != f"blocking ran in {threading.current_thread().name}"  # a worker thread


def test_a_failing_step_is_thrown_into_the_body() -> None:
    log: list[str] = []

    def run(job: Any) -> int:
        raise RuntimeError("engine failed")

    with pytest.raises(RuntimeError, match="engine failed"):
        drive_sync(body(log), run=run)
    assert log[-1] == "released after RuntimeError"


def test_cancelling_the_task_releases_what_the_body_holds() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def run(job: Any) -> int:
        started.set()
        await asyncio.sleep(30)
        return 0

    async def scenario() -> None:
        task = asyncio.ensure_future(drive_async(body(log), run=run))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert log[-1] == "released after CancelledError"
