"""The engine loop: one thread owns a loaded model and serves every caller's requests.

Callers (threads, asyncio tasks, HTTP handlers) never touch the model. Each builds a :class:`Job`
(its prompts and its rules), :meth:`EngineLoop.submit` queues it and returns a
:class:`concurrent.futures.Future`; the loop's thread drives every active job, one step at a time:

1. **Admit** new jobs (first come, first admitted) and **drop** cancelled ones: a request whose
   future was cancelled (``asyncio.wait_for`` timing out, a client gone) stops costing work at the
   next step boundary, and its caches are freed.
2. **One coalesced forward pass.** Each job offers at most its next pass (:class:`Pass`); passes
   with the same ``key`` are joined while ``rows × longest row`` stays within the first job's
   budget. The job offering first rotates (round robin), so a large request cannot hold the model:
   while ``n`` jobs are active each gets a pass at least every ``n`` steps, and usually every step,
   sharing it with the others.
3. **One decode step** for every job that is generating.
4. **Finish** jobs with nothing left to do: their future gets the result.

Failure isolation: when a coalesced pass raises, each job's part is run again alone, so only the job
whose input fails sees the error; a job's part that runs out of memory alone is split by the job
(down to a single row) before the job fails. An exception inside one job's step fails that job
only. The loop keeps serving afterwards.

A caller's latency is therefore bounded by its own work plus, per step, one share of a coalesced
pass and one decode step of each other active job.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch

from prism_core.errors import EngineClosedError

logger = logging.getLogger(__name__)

#: Every engine loop with a running thread, closed at interpreter exit (see :func:`_close_all`).
_LIVE: weakref.WeakSet[EngineLoop] = weakref.WeakSet()


@dataclass
class Pass:
    """One forward pass a job asks for.

    Attributes:
        key: Passes with equal keys may run as one forward pass (the executor knows what a key means).
        rows: One payload per row (prompt ids, text pairs...).
        width: The longest row, in tokens.
        budget: Cap on ``rows × width`` when this pass leads a coalesced group.
        shareable: ``False`` for a pass that must run alone (its key is private to the job anyway).
    """

    key: Hashable
    rows: Sequence[Any]
    width: int
    budget: int
    shareable: bool = True


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

    def next_pass(self) -> Pass | None:
        """The next forward pass this job needs now, or ``None``.

        Asking does not consume it: the loop may ask again (and get the same pass) when the pass
        did not fit into this step's group. :meth:`on_pass` is the job's cue to move on.
        """
        return None

    def on_pass(self, p: Pass, output: Any) -> None:
        """Take this job's output of the pass it offered; the job moves on to its next pass."""

    def retry_smaller(self, p: Pass) -> bool:
        """The pass ran out of memory alone: queue it again in smaller parts and return ``True``,
        or return ``False`` when it cannot be split (the job then fails)."""
        return False

    def decoding(self) -> bool:
        """Whether the job has rows to decode now."""
        return False

    def decode_step(self) -> int:
        """Run one decode step for this job's rows (safe to call again after it raised); return the
        number of tokens it emitted."""
        return 0

    def split_decode(self) -> bool:
        """A decode step ran out of memory: split the rows into smaller groups and return ``True``,
        or return ``False`` when they cannot be split (the job then fails)."""
        return False

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
    decode_steps: int = 0
    tokens_generated: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_cancelled: int = 0
    retried_alone: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class EngineLoop:
    """The owner of one loaded model: a thread that runs every caller's :class:`Job`.

    Args:
        executor: Runs forward passes on the model.
        name: Thread name (for logs and debuggers).

    Example:
        >>> loop = EngineLoop(executor, name="prism-engine")  # doctest: +SKIP
        >>> future = loop.submit(job)  # doctest: +SKIP
        >>> logits, generated = future.result()  # doctest: +SKIP
    """

    def __init__(self, executor: Executor, *, name: str = "prism-engine") -> None:
        self.executor = executor
        self.name = name
        self.stats = LoopStats()
        self._inbox: deque[Job] = deque()
        self._active: list[Job] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._rr = 0  # round-robin position: the job that leads the next pass

    # ------------------------------------------------------------------ caller side (any thread)
    def submit(self, job: Job) -> Future[Any]:
        """Queue ``job``; its future resolves to :meth:`Job.result` or to the job's error."""
        with self._cond:
            if self._closed:
                raise EngineClosedError(f"engine loop {self.name!r} is closed")
            job.submitted_at = time.monotonic()
            self._inbox.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
                self._thread.start()
                _LIVE.add(self)
            self._cond.notify()
        return job.future

    def run(self, job: Job) -> Any:
        """Submit ``job`` and wait for it; interrupting the wait (Ctrl-C) cancels the job."""
        future = self.submit(job)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    @property
    def queue_depth(self) -> int:
        """Jobs waiting or running."""
        with self._cond:
            return len(self._inbox) + len(self._active)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the thread; jobs still queued or running fail with :class:`EngineClosedError`."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ------------------------------------------------------------------ the loop's thread
    def _main(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._inbox and not self._active:
                    self._cond.wait()
                if self._closed:
                    pending = [*self._active, *self._inbox]
                    self._active.clear()
                    self._inbox.clear()
                    break
                self._active.extend(self._inbox)
                self._inbox.clear()
            try:
                if not self._step():  # every job is waiting on something else: do not spin
                    with self._cond:
                        self._cond.wait(0.005)
            except BaseException as exc:  # a bug in the loop itself: fail what it holds, keep serving
                logger.exception(
                    "engine loop %s: unexpected error; failing %d job(s)", self.name, len(self._active)
                )
                for job in list(self._active):
                    self._fail(job, exc)
        for job in pending:
            self._fail(job, EngineClosedError(f"engine loop {self.name!r} was closed"))

    def _step(self) -> bool:
        """One step; returns whether anything ran (a pass, a decode step or a finished job)."""
        before = (self.stats.passes, self.stats.decode_steps, self.stats.jobs_done, self.stats.jobs_failed)
        self._expire_due()
        self._drop_cancelled()
        self._run_one_pass()
        self._drop_cancelled()
        for job in self._rotation():
            if self._guard(job, job.decoding):
                self._guard(job, partial(self._decode, job))
        for job in list(self._active):
            if self._guard(job, job.finished):
                self._finish(job)
        after = (self.stats.passes, self.stats.decode_steps, self.stats.jobs_done, self.stats.jobs_failed)
        return after != before

    def _rotation(self) -> list[Job]:
        n = len(self._active)
        if not n:
            return []
        start = self._rr % n
        return self._active[start:] + self._active[:start]

    def _expire_due(self) -> None:
        """Expire every active job past its deadline and finish it now with what is done."""
        now = time.monotonic()
        for job in list(self._active):
            if job.deadline is not None and now >= job.deadline:
                self._guard(job, job.expire)
                if self._guard(job, job.finished):
                    self._finish(job)

    def _drop_cancelled(self) -> None:
        for job in list(self._active):
            if job.future.cancelled():
                self._active.remove(job)
                self.stats.jobs_cancelled += 1
                job.release()
                logger.debug("engine loop %s: dropped a cancelled job", self.name)

    def _decode(self, job: Job) -> None:
        try:
            emitted = job.decode_step()
        except torch.OutOfMemoryError as exc:
            _free_memory(exc)
            if not job.split_decode():
                raise
            logger.warning("out of memory in a decode step; the request decodes in smaller groups")
            return
        self.stats.decode_steps += 1
        self.stats.tokens_generated += emitted

    def _run_one_pass(self) -> None:
        """Build and run one coalesced pass from the jobs' offers, leader chosen round robin."""
        order = self._rotation()
        for n, job in enumerate(order):
            lead = self._offer(job)
            if lead is None:
                continue
            self._rr = (self._active.index(job) + 1) % len(self._active)
            group = [(job, lead)]
            if lead.shareable:
                width, rows = lead.width, len(lead.rows)
                for other in order[n + 1 :]:
                    more = self._offer(other)
                    if more is None or not more.shareable or more.key != lead.key:
                        continue
                    new_width = max(width, more.width)
                    if (rows + len(more.rows)) * new_width > lead.budget:
                        continue
                    group.append((other, more))
                    width, rows = new_width, rows + len(more.rows)
            self._run_group(group)
            return

    def _offer(self, job: Job) -> Pass | None:
        offer = self._guard(job, job.next_pass)
        return offer if isinstance(offer, Pass) else None

    def _run_group(self, group: list[tuple[Job, Pass]]) -> None:
        key = group[0][1].key
        rows = [row for _, p in group for row in p.rows]
        try:
            output = self.executor.run(key, rows)
            parts = (
                [output]
                if len(group) == 1
                else self.executor.split(key, output, [len(p.rows) for _, p in group])
            )
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if len(group) == 1:
                job, p = group[0]
                self._alone_failed(job, p, exc)
                return
            logger.warning(
                "a pass shared by %d requests failed (%s: %s); running each request's part alone",
                len(group), type(exc).__name__, exc,
            )  # fmt: skip
            self.stats.retried_alone += 1
            _free_memory(exc)
            for job, p in group:
                self._run_group([(job, p)])
            return
        self.stats.passes += 1
        self.stats.rows += len(rows)
        if len(group) > 1:
            self.stats.coalesced_passes += 1
        for (job, p), part in zip(group, parts, strict=True):
            self._guard(job, partial(job.on_pass, p, part))

    def _alone_failed(self, job: Job, p: Pass, exc: BaseException) -> None:
        if _is_oom(exc):
            _free_memory(exc)
            split = self._guard(job, partial(job.retry_smaller, p))
            if split:
                logger.warning("out of memory on a pass of %d rows; the request splits it", len(p.rows))
                return
        self._fail(job, exc)

    def _guard(self, job: Job, fn: Callable[[], Any]) -> Any:
        """Run one job callback; an exception fails that job only."""
        if job not in self._active:
            return None
        try:
            return fn()
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if _is_oom(exc):
                _free_memory(exc)
            self._fail(job, exc)
            return None

    def _finish(self, job: Job) -> None:
        try:
            value = job.result()
        except BaseException as exc:
            self._fail(job, exc)
            return
        self._remove(job)
        self.stats.jobs_done += 1
        _resolve(job.future, value=value)

    def _fail(self, job: Job, exc: BaseException) -> None:
        self._remove(job)
        self.stats.jobs_failed += 1
        logger.debug("engine loop %s: a job failed: %s: %s", self.name, type(exc).__name__, exc)
        _resolve(job.future, error=exc)

    def _remove(self, job: Job) -> None:
        if job in self._active:
            self._active.remove(job)
        try:
            job.release()
        except Exception:  # pragma: no cover - releasing must never take the loop down
            logger.exception("engine loop %s: releasing a job failed", self.name)


def _resolve(future: Future[Any], *, value: Any = None, error: BaseException | None = None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except InvalidStateError:  # cancelled meanwhile: nobody is waiting
        pass


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError)


def _free_memory(exc: BaseException) -> None:
    if _is_oom(exc) and torch.cuda.is_available():
        torch.cuda.empty_cache()


@atexit.register
def _close_all() -> None:
    """At interpreter exit, let each loop finish the step it is in and stop.

    A daemon thread killed inside a forward pass while the interpreter tears down can abort the
    process (seen on Ctrl-C in a script); closing first makes exit orderly.
    """
    for loop in list(_LIVE):
        loop.close(timeout=5.0)
