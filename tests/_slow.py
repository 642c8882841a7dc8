"""Slowing a real engine down, so that tests about timeouts and cancellation hold on any machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def slowed_passes(engine: Any, seconds: float) -> Iterator[list[float]]:
    """Every forward pass of ``engine``'s model (prefill and decode steps) first sleeps ``seconds``.

    Yields the list of slowed passes (one entry each), so a test can check that the hook fired.
    """
    slowed: list[float] = []

    def slow(*_: Any) -> None:
        slowed.append(seconds)
        time.sleep(seconds)

    hook = engine.runner.body.register_forward_pre_hook(slow)  # the runner calls the decoder body
    try:
        yield slowed
    finally:
        hook.remove()
