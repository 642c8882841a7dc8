"""What a job and the engine loop hand each other: plain data and a small protocol.

A :class:`Job` (one caller's request) offers :class:`Pass` es and, when it generates,
:class:`DecodeGroup` s; an :class:`Executor` runs passes; :class:`LoopStats` counts what the loop did.
The scheduler itself is :class:`prism_core.runtime.engine_loop.EngineLoop`, which re-exports all of
these names.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Rows in the shared decode batch at most (more wait in their jobs, admitted round robin).
DECODE_ROW_CAP = 256

#: Padded prefill tokens per step of a bulk request while rows are decoding (bounds a decoding row's
#: per-token wait), unless the executor says otherwise (``executor.step_tokens``: the causal executor
#: sets it per device). Measured on this project's 2-core CPU, tiny model: a 2-document evidence
#: request beside a 6,000-document score-only one took 22.7x its time alone with 4,096, 8.0x with
#: 1,024, 7.6x with 512.
STEP_TOKENS = 1024

#: Only a *bulk* request (more than this many times ``step_tokens`` of prompt in all) has its passes
#: cut to ``step_tokens`` while others decode, as vLLM chunks only long prefills: a request of usual
#: size still prefills in one pass and joins the decode batch at once (measured on this project's
#: CPU: 8 concurrent 30-document requests shared 2.4x the rows per decode pass with every request
#: cut, 4x or more with only bulk ones cut).
BULK_FACTOR = 8


def is_bulk(prompt_tokens: int, max_tokens: int | None) -> bool:
    """Whether a request of ``prompt_tokens`` is cut to ``max_tokens`` per pass while others decode."""
    return max_tokens is not None and prompt_tokens > BULK_FACTOR * max_tokens


@dataclass
class DecodeGroup:
    """Kept rows of one job, ready to decode: plain data handed from the job to the loop.

    Attributes:
        state: The rows' prefill state (verdict logits, last hidden states, mask, cache).
        docs: The input index of each row.
        max_new_tokens: Generation budget per row.
        stop_strings: Generated text that ends a row (besides end-of-turn tokens).
    """

    state: Any
    docs: list[int]
    max_new_tokens: int
    stop_strings: tuple[str, ...] = ()


@dataclass
class Pass:
    """One forward pass a job asks for.

    Attributes:
        key: Passes with equal keys may run as one forward pass (the executor knows what a key means).
        rows: One payload per row (prompt ids, text pairs...).
        width: The longest row, in tokens it holds (its memory: a forked row holds its prefix too).
        budget: Cap on ``rows × width`` when this pass leads a coalesced group.
        shareable: ``False`` for a pass that must run alone (its key is private to the job anyway).
        cost: Tokens each row computes, what a step's token budget counts (``0``: ``width``). A row
            forked from a query prefix holds the prefix but computes only its continuation.
    """

    key: Hashable
    rows: Sequence[Any]
    width: int
    budget: int
    shareable: bool = True
    cost: int = 0

    @property
    def step_tokens(self) -> int:
        """What this pass spends of a step's token budget: ``rows × cost``."""
        return len(self.rows) * (self.cost or self.width)


class Executor(Protocol):
    """Runs forward passes for the loop (on the loop's thread only)."""

    def run(self, key: Hashable, rows: Sequence[Any]) -> Any:
        """Run one pass over ``rows``; return its output."""
        ...

    def split(self, key: Hashable, output: Any, sizes: Sequence[int]) -> list[Any]:
        """Cut a coalesced pass's output into consecutive parts of ``sizes`` rows."""
        ...


class Job:
    """One caller's request. After :meth:`EngineLoop.submit`, only the loop's thread calls its methods.

    Subclasses implement the policy: which passes to ask for, what to do with their output, whether
    to decode, and the result. The base class holds the future and the default out-of-memory rule.
    """

    def __init__(self) -> None:
        self.future: Future[Any] = Future()
        self.submitted_at = 0.0
        #: ``time.monotonic()`` value past which the loop calls :meth:`expire` (``None``: no deadline).
        self.deadline: float | None = None

    def next_pass(self, max_tokens: int | None = None) -> Pass | None:
        """The next forward pass this job needs now, or ``None``.

        Asking does not consume it: the loop may ask again (and get the same pass) when the pass
        did not fit into this step's group. :meth:`on_pass` is the job's cue to move on. With
        ``max_tokens``, the job cuts its next batch so that ``rows × width`` fits (one row always fits).
        """
        return None

    def next_pass_like(self, key: Hashable, max_tokens: int | None = None) -> Pass | None:
        """The next pass, preferring one of ``key`` (the pass another job leads this step).

        A job whose plan holds a pass of that kind further down may offer it now instead of its
        next one, so that it joins the leader's pass; one that has none (the default) offers its
        next pass, as :meth:`next_pass` does.
        """
        return self.next_pass(max_tokens)

    def on_pass(self, p: Pass, output: Any) -> None:
        """Take this job's output of the pass it offered; the job moves on to its next pass."""

    def retry_smaller(self, p: Pass) -> bool:
        """The pass ran out of memory alone: queue it again in smaller parts and return ``True``,
        or return ``False`` when it cannot be split (the job then fails)."""
        return False

    def peek_decode(self) -> DecodeGroup | None:
        """The next group of kept rows ready to decode, or ``None`` (asking does not consume it)."""
        return None

    def pop_decode(self) -> DecodeGroup:
        """Hand the group :meth:`peek_decode` showed over to the loop's decode batch."""
        raise NotImplementedError

    def on_generated(self, doc: int, ids: list[int]) -> None:
        """One of the job's rows finished decoding with ``ids`` (stop token included)."""

    def finished(self) -> bool:
        """Whether the job has nothing left to do."""
        return True

    def expire(self) -> None:
        """The job's :attr:`deadline` passed: stop spending on it. Afterwards :meth:`finished` must be
        ``True`` and :meth:`result` must return what is done (default: nothing to stop)."""

    def result(self) -> Any:
        """The value the caller's future gets."""
        return None

    def release(self) -> None:
        """Free what the job holds (caches); called once the job leaves the loop."""


@dataclass
class LoopStats:
    """Counters, read by tests, benchmarks and the server's metrics (plain ints, never reset)."""

    passes: int = 0
    coalesced_passes: int = 0
    rows: int = 0
    decode_steps: int = 0  # decode forward passes (one per step, shared by every request)
    decode_rows: int = 0  # rows advanced, summed over decode passes
    decode_retries: int = 0  # shared decode passes that failed and ran per request
    tokens_generated: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_cancelled: int = 0
    retried_alone: int = 0
    extra: dict[str, int] = field(default_factory=dict)
