"""The engine loop: one thread owns a loaded model and serves every caller's requests.

Callers (threads, asyncio tasks, HTTP handlers) never touch the model. Each builds a :class:`Job`
(its prompts and its rules), :meth:`EngineLoop.submit` queues it and returns a
:class:`concurrent.futures.Future`; the loop's thread drives every active job, one step at a time:

1. **Admit** new jobs (first come, first admitted) and **drop** cancelled ones: a request whose
   future was cancelled (``asyncio.wait_for`` timing out, a client gone) stops costing work at the
   next step boundary, and its caches are freed.
2. **One coalesced prefill pass.** Each job offers at most its next pass (:class:`Pass`); passes
   with the same ``key`` are joined while ``rows × longest row`` stays within the first job's
   budget. The job offering first rotates (round robin), so a large request cannot hold the model:
   while ``n`` jobs are active each gets a pass at least every ``n`` steps, and usually every step,
   sharing it with the others. While rows are decoding, the pass is capped at ``step_tokens``
   padded tokens (a job cuts its next batch to fit), so a decoding request waits at most one
   bounded pass per token, never another request's bulk batch.
3. **Rows join the decode batch** as soon as their prefill has run: each job hands over its kept
   rows as plain :class:`DecodeGroup` data (round robin, up to ``decode_rows`` rows in all), and the
   executor copies them into free slots of its persistent decode batch.
4. **One decode pass** over the generating rows of *every* request (continuous batching): rows of
   different requests and prompt lengths advance together, and leave at end of turn, a stop string
   or their budget, each job getting its rows' ids.
5. **Finish** jobs with nothing left to do: their future gets the result.

The prefill pass and the decode pass run in the same step, one after the other: a new request's
prefill never waits for others' generation to end, and generation never stops for a prefill.

Failure isolation: when a coalesced pass raises, each job's part is run again alone, so only the job
whose input fails sees the error; a job's part that runs out of memory alone is split by the job
(down to a single row) before the job fails. When the shared decode pass raises, the decode state is
as it was, and each job's rows run the pass alone (out of memory: in halves, down to one row): only
the job whose rows fail sees the error. An exception inside one job's callback fails that job only.
Cancelled and failed jobs leave the decode batch at the next step. The loop keeps serving afterwards.

A caller's latency is therefore bounded by its own work plus, per step, one bounded share of a
coalesced prefill pass and its rows' share of one decode pass.
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
from functools import partial
from typing import Any

import torch

from prism_core.errors import EngineClosedError
from prism_core.runtime.jobs import BULK_FACTOR as BULK_FACTOR
from prism_core.runtime.jobs import DECODE_ROW_CAP as DECODE_ROW_CAP
from prism_core.runtime.jobs import STEP_TOKENS as STEP_TOKENS
from prism_core.runtime.jobs import DecodeGroup as DecodeGroup
from prism_core.runtime.jobs import Executor as Executor
from prism_core.runtime.jobs import Job as Job
from prism_core.runtime.jobs import LoopStats as LoopStats
from prism_core.runtime.jobs import Pass as Pass
from prism_core.runtime.jobs import is_bulk as is_bulk

logger = logging.getLogger(__name__)

#: Every engine loop with a running thread, closed at interpreter exit (see :func:`_close_all`).
_LIVE: weakref.WeakSet[EngineLoop] = weakref.WeakSet()


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

    def __init__(
        self,
        executor: Executor,
        *,
        name: str = "prism-engine",
        decode_rows: int = DECODE_ROW_CAP,
        step_tokens: int = STEP_TOKENS,
        shared_decode: bool = True,
    ) -> None:
        self.executor = executor
        self.name = name
        self.decode_rows = decode_rows
        self.step_tokens = int(getattr(executor, "step_tokens", None) or step_tokens)
        #: ``False`` runs one decode pass per request instead of one for all (what the engine did
        #: before continuous batching): kept only so that benchmarks can compare the two in one run.
        self.shared_decode = shared_decode
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
        """Submit ``job`` and wait for it; interrupting the wait (Ctrl-C) cancels the job.

        The job is cancelled whenever this call does not return its result, a ``KeyboardInterrupt``
        landing between the submission and the wait included.
        """
        try:
            return self.submit(job).result()
        except BaseException:
            job.future.cancel()
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

    @property
    def _decoder(self) -> Any:
        return getattr(self.executor, "decoder", None)

    def _step(self) -> bool:
        """One step; returns whether anything ran (a pass, a decode step or a finished job)."""
        before = (self.stats.passes, self.stats.decode_steps, self.stats.jobs_done, self.stats.jobs_failed)
        self._expire_due()
        self._drop_cancelled()
        decoder = self._decoder
        decoding = decoder is not None and decoder.n > 0
        if decoding or len(self._active) > 1:
            # Prefill up to ``step_tokens`` this step, one pass led by each request at most (bulk
            # requests cut their batches to fit): a small request's passes run beside a bulk one's
            # instead of waiting a step each, whether it is decoding yet or still prefilling.
            led: set[Job] = set()
            spent = self._run_one_pass(self.step_tokens, led=led)
            while spent and spent < self.step_tokens:
                more = self._run_one_pass(self.step_tokens - spent, fit=True, led=led)
                if not more:
                    break
                spent += more
        else:
            self._run_one_pass(None)
        self._drop_cancelled()
        if decoder is not None:
            self._admit(decoder)
            if decoder.n:
                self._decode(decoder)
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
                self._remove(job)
                self.stats.jobs_cancelled += 1
                logger.debug("engine loop %s: dropped a cancelled job", self.name)

    # ------------------------------------------------------------------ decoding
    def _admit(self, decoder: Any) -> None:
        """Rows whose prefill has run join the decode batch, round robin over jobs, up to the cap."""
        progress = True
        while progress:
            progress = False
            for job in self._rotation():
                group = self._guard(job, job.peek_decode)
                if not isinstance(group, DecodeGroup):
                    continue
                if decoder.n and decoder.n + len(group.docs) > self.decode_rows:
                    return
                group = self._guard(job, job.pop_decode)
                if not isinstance(group, DecodeGroup):
                    continue
                done = self._guard(
                    job,
                    partial(
                        decoder.join, job, group.state, group.docs, group.max_new_tokens, group.stop_strings
                    ),
                )
                group.state = None  # the decode batch holds the rows now
                for fin in done or ():
                    self._guard(job, partial(job.on_generated, fin.doc, fin.ids))
                progress = True

    def _decode(self, decoder: Any) -> None:
        """One decode pass over every generating row; finished rows go back to their jobs."""
        emitted, finished = decoder.emit()
        self.stats.tokens_generated += emitted
        self._route(finished)
        rows = decoder.n
        if not rows:
            return
        if not self.shared_decode:
            self.stats.decode_steps += self._decode_apart(decoder)
            self.stats.decode_rows += rows
            return
        try:
            decoder.forward()
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            _free_memory(exc)
            self.stats.decode_retries += 1
            logger.warning(
                "a decode pass shared by %d request(s) failed (%s: %s); running each request's rows alone",
                len(decoder.owners()), type(exc).__name__, exc,
            )  # fmt: skip
            self._decode_apart(decoder)
        self.stats.decode_steps += 1
        self.stats.decode_rows += rows

    def _decode_apart(self, decoder: Any) -> int:
        """Run the pending decode pass for each request's rows alone (out of memory: in halves); a
        request whose rows fail leaves the batch and fails. Returns the number of requests."""
        owners = decoder.owners()
        groups = [[s for s, r in enumerate(decoder.rows) if r.owner is owner] for owner in owners]
        for slots, error in decoder.forward_apart(groups, _is_oom):
            owner = decoder.rows[slots[0]].owner
            decoder.drop(owner)
            if isinstance(owner, Job):
                self._fail(owner, error)
        return len(groups)

    def _route(self, finished: Sequence[Any]) -> None:
        for fin in finished:
            job = fin.owner
            if isinstance(job, Job):
                self._guard(job, partial(job.on_generated, fin.doc, fin.ids))

    # ------------------------------------------------------------------ prefill
    def _run_one_pass(
        self, max_tokens: int | None = None, fit: bool = False, led: set[Job] | None = None
    ) -> int:
        """Build and run one coalesced pass from the jobs' offers, leader chosen round robin.

        Returns the tokens the pass computed (0: nothing ran). ``max_tokens`` caps what other jobs'
        rows may add to the leader's; with ``fit``, only an offer within ``max_tokens`` may lead (a
        later pass of a step that already ran one). Jobs are always asked for their offer against
        the whole ``step_tokens``, so whether a request is bulk, and how its batches are cut, never
        depends on what else ran this step. Jobs in ``led`` do not lead (the jobs that led a pass
        this step), and the leader is added to it.
        """
        offer_tokens = None if max_tokens is None else self.step_tokens
        order = self._rotation()
        for n, job in enumerate(order):
            if led is not None and job in led:
                continue
            lead = self._offer(job, offer_tokens)
            if lead is None or (fit and max_tokens is not None and lead.step_tokens > max_tokens):
                continue
            self._rr = (self._active.index(job) + 1) % len(self._active)
            if led is not None:
                led.add(job)
            group = [(job, lead)]
            if lead.shareable:
                # two caps: memory (rows × held width, the leader's budget) and compute (rows ×
                # computed tokens, this step's budget)
                width, cost, rows = lead.width, lead.cost or lead.width, len(lead.rows)
                for other in order[n + 1 :]:
                    more = self._offer(other, offer_tokens, like=lead.key)
                    if more is None or not more.shareable or more.key != lead.key:
                        continue
                    new_width, new_cost = max(width, more.width), max(cost, more.cost or more.width)
                    total = rows + len(more.rows)
                    if total * new_width > lead.budget or (
                        max_tokens is not None and total * new_cost > max_tokens
                    ):
                        continue
                    group.append((other, more))
                    width, cost, rows = new_width, new_cost, total
            self._run_group(group)
            return max(1, sum(len(p.rows) for _, p in group) * max(p.cost or p.width for _, p in group))
        return 0

    def _offer(self, job: Job, max_tokens: int | None = None, like: Hashable | None = None) -> Pass | None:
        """A job's next pass (one of kind ``like`` first, where it has one: see ``Job.next_pass_like``)."""
        ask = partial(job.next_pass, max_tokens)
        if like is not None:
            ask = partial(job.next_pass_like, like, max_tokens)
        offer = self._guard(job, ask)
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
            decoder = self._decoder
            if decoder is not None and decoder.n:
                decoder.drop(job)  # its rows leave the decode batch now
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
