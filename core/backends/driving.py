"""One body of work for a backend's sync and async entry points.

A backend front end writes the work of a call once, as a generator that *yields* what must wait:

- ``Blocking(fn)``: caller-thread work that may block (tokenising, waiting for another caller's
  pairs in the result cache). A sync call runs it; an async call runs it in a worker thread.
- a :class:`~prism_core.runtime.engine_loop.Job`: work for the engine loop. A sync call submits it and
  waits; an async call awaits its future (cancelling the task cancels the job).

What a step gives back is sent into the generator; what it raises is thrown into it (so the body's
own ``try``/``except`` sees it, e.g. to release a result-cache claim). :func:`drive_sync` and
:func:`drive_async` run the body; its ``return`` value is theirs.

Example:
    >>> def body():
    ...     value = yield Blocking(lambda: 20)
    ...     return value + 1
    >>> drive_sync(body(), run=lambda job: None)
    21
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: A front end's body of work: yields steps, receives their values, returns the call's value.
Work = Generator[Any, Any, T]


@dataclass(frozen=True)
class Blocking:
    """Caller-side work that may block: run as is (sync) or in a worker thread (async)."""

    fn: Callable[[], Any]


def _resume(work: Work[T], value: Any = None, error: BaseException | None = None) -> tuple[bool, Any]:
    """Send ``value`` (or throw ``error``) into the body: ``(True, its return value)`` when it is
    done, else ``(False, its next step)``."""
    try:
        return False, work.throw(error) if error is not None else work.send(value)
    except StopIteration as stop:
        return True, stop.value


def drive_sync(work: Work[T], *, run: Callable[[Any], Any]) -> T:
    """Run ``work`` in this thread; ``run(job)`` submits an engine job and waits for its value."""
    done, step = _resume(work)
    while not done:
        try:
            value = step.fn() if isinstance(step, Blocking) else run(step)
        except BaseException as exc:  # thrown into the body at its yield, then re-raised by it
            done, step = _resume(work, error=exc)
        else:
            done, step = _resume(work, value)
    result: T = step
    return result


async def drive_async(work: Work[T], *, run: Callable[[Any], Awaitable[Any]]) -> T:
    """Run ``work`` without blocking the event loop; ``await run(job)`` waits for an engine job."""
    done, step = _resume(work)
    while not done:
        blocking = isinstance(step, Blocking)
        try:
            value = await (asyncio.to_thread(step.fn) if blocking else run(step))
        except BaseException as exc:  # cancellation included: the body releases what it holds
            done, step = _resume(work, error=exc)
        else:
            done, step = _resume(work, value)
    result: T = step
    return result
