"""The engine loop: coalescing, fairness, cancellation and failure isolation (fake executor),
and exact split/merge of real model states."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable, Sequence
from concurrent.futures import CancelledError
from typing import Any

import pytest
import torch

from prism_core import PrismReranker
from prism_core.errors import EngineClosedError
from prism_core.runtime.cache import split_state
from prism_core.runtime.engine_loop import EngineLoop, Job, Pass

TIMEOUT = 20.0


class FakeExecutor:
    """Output of a row = row * 10. Optionally blocks the first pass, fails on poisoned rows, or runs
    out of memory above a number of rows."""

    def __init__(self, *, gate: threading.Event | None = None, poison: int | None = None,
                 oom_above: int | None = None, delay: float = 0.0) -> None:  # fmt: skip
        self.gate = gate
        self.poison = poison
        self.oom_above = oom_above
        self.delay = delay
        self.passes: list[list[int]] = []
        self.started = threading.Event()

    def run(self, key: Hashable, rows: Sequence[Any]) -> list[int]:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(TIMEOUT)
            self.gate = None
        if self.delay:
            time.sleep(self.delay)
        if self.oom_above is not None and len(rows) > self.oom_above:
            raise torch.OutOfMemoryError(f"fake OOM on {len(rows)} rows")
        if self.poison is not None and self.poison in rows:
            raise RuntimeError(f"poisoned row {self.poison}")
        self.passes.append(list(rows))
        return [r * 10 for r in rows]

    def split(self, key: Hashable, output: Any, sizes: Sequence[int]) -> list[Any]:
        parts, start = [], 0
        for n in sizes:
            parts.append(output[start : start + n])
            start += n
        return parts


class ListJob(Job):
    """Offers its batches one pass at a time; the result is every row's output in order."""

    def __init__(
        self, batches: list[list[int]], budget: int = 1000, key: str = "k", width: int = 1, cost: int = 0
    ) -> None:
        super().__init__()
        self.batches = deque(batches)
        self.budget = budget
        self.key = key
        self.width, self.cost = width, cost
        self.out: list[int] = []
        self.passes_seen = 0
        self.offered: list[int | None] = []  # the max_tokens of every offer asked for

    def next_pass(self, max_tokens: int | None = None) -> Pass | None:
        self.offered.append(max_tokens)
        if not self.batches:
            return None
        rows = self.batches[0]
        return Pass(self.key, rows, width=self.width, budget=self.budget, cost=self.cost)

    def on_pass(self, p: Pass, output: Any) -> None:
        self.batches.popleft()
        self.out.extend(output)
        self.passes_seen += 1

    def retry_smaller(self, p: Pass) -> bool:
        batch = self.batches[0]
        if len(batch) < 2:
            return False
        self.batches.popleft()
        self.batches.extendleft([batch[len(batch) // 2 :], batch[: len(batch) // 2]])
        return True

    def finished(self) -> bool:
        return not self.batches

    def result(self) -> list[int]:
        return self.out


@pytest.fixture
def make_loop():  # type: ignore[no-untyped-def]
    loops: list[EngineLoop] = []

    def make(executor: Any) -> EngineLoop:
        loop = EngineLoop(executor, name="test-loop")
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.close()


def test_concurrent_jobs_share_passes_and_get_their_own_rows(make_loop) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    executor = FakeExecutor(gate=gate)
    loop = make_loop(executor)
    first = loop.submit(ListJob([[0]]))
    assert executor.started.wait(TIMEOUT)  # the loop is busy with the first pass: the others queue up
    inputs = [[i * 100 + j for j in range(1 + i % 3)] for i in range(1, 8)]
    futures = [loop.submit(ListJob([rows])) for rows in inputs]
    gate.set()
    assert first.result(TIMEOUT) == [0]
    for rows, future in zip(inputs, futures, strict=True):
        assert future.result(TIMEOUT) == [r * 10 for r in rows]
    assert len(executor.passes) == 2  # the blocked pass, then all seven jobs in one coalesced pass
    assert loop.stats.coalesced_passes == 1


def test_budget_keeps_groups_apart(make_loop) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    executor = FakeExecutor(gate=gate)
    loop = make_loop(executor)
    futures = [loop.submit(ListJob([[i, i]], budget=2)) for i in range(4)]
    gate.set()
    for i, future in enumerate(futures):
        assert future.result(TIMEOUT) == [i * 10, i * 10]
    assert [len(p) for p in executor.passes] == [2, 2, 2, 2]  # 2 rows already fill the budget


def test_a_step_counts_computed_tokens_and_asks_every_offer_against_the_whole_step() -> None:
    # rows forked from a query prefix hold 248 tokens and compute 53: eight fit a 1,024-token step
    # (8 × 53), where counting what they hold would cap the pass at four (4 × 248)
    gate = threading.Event()
    executor = FakeExecutor(gate=gate)
    loop = EngineLoop(executor, name="test-loop", step_tokens=1024)
    try:
        first = loop.submit(ListJob([[0]]))
        assert executor.started.wait(TIMEOUT)
        jobs = [ListJob([[i], [i + 100]], budget=16384, width=248, cost=53) for i in range(1, 9)]
        futures = [loop.submit(job) for job in jobs]
        gate.set()
        assert first.result(TIMEOUT) == [0]
        for i, future in enumerate(futures, start=1):
            assert future.result(TIMEOUT) == [i * 10, (i + 100) * 10]
    finally:
        loop.close()
    assert [len(p) for p in executor.passes] == [1, 8, 8]
    # whether a job is bulk, and how it cuts its batches, never depends on what else ran this step
    assert {n for job in jobs for n in job.offered} == {1024}


def test_a_failing_row_fails_only_its_own_job(make_loop) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    executor = FakeExecutor(gate=gate, poison=666)
    loop = make_loop(executor)
    blocker = loop.submit(ListJob([[1]]))
    assert executor.started.wait(TIMEOUT)
    good = [loop.submit(ListJob([[10 + i, 20 + i]])) for i in range(3)]
    bad = loop.submit(ListJob([[5, 666]]))
    gate.set()
    assert blocker.result(TIMEOUT) == [10]
    for i, future in enumerate(good):
        assert future.result(TIMEOUT) == [(10 + i) * 10, (20 + i) * 10]
    with pytest.raises(RuntimeError, match="poisoned row 666"):
        bad.result(TIMEOUT)
    assert loop.stats.retried_alone == 1
    assert loop.submit(ListJob([[7]])).result(TIMEOUT) == [70]  # the loop keeps serving


def test_out_of_memory_is_split_per_job_down_to_one_row(make_loop) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    executor = FakeExecutor(gate=gate, oom_above=1)
    loop = make_loop(executor)
    blocker = loop.submit(ListJob([[0]]))
    assert executor.started.wait(TIMEOUT)
    small = loop.submit(ListJob([[1]]))  # 1 document and 3 documents share the pass that runs out of memory
    large = loop.submit(ListJob([[2, 3, 4]]))
    gate.set()
    assert blocker.result(TIMEOUT) == [0]
    assert small.result(TIMEOUT) == [10]
    assert large.result(TIMEOUT) == [20, 30, 40]
    assert all(len(p) == 1 for p in executor.passes)


def test_out_of_memory_on_a_single_row_fails_that_job_only(make_loop) -> None:  # type: ignore[no-untyped-def]
    executor = FakeExecutor(oom_above=0)
    loop = make_loop(executor)
    with pytest.raises(torch.OutOfMemoryError):
        loop.submit(ListJob([[1]])).result(TIMEOUT)
    executor.oom_above = None
    assert loop.submit(ListJob([[2]])).result(TIMEOUT) == [20]


def test_a_small_job_is_not_starved_by_a_large_one(make_loop) -> None:  # type: ignore[no-untyped-def]
    executor = FakeExecutor(delay=0.01)
    loop = make_loop(executor)
    large = ListJob([[i] for i in range(200)], key="large")  # 200 passes; keys differ: never coalesced
    large_future = loop.submit(large)
    while large.passes_seen < 3:
        time.sleep(0.005)
    small = ListJob([[1000], [1001], [1002]], key="small")
    assert loop.submit(small).result(TIMEOUT) == [10000, 10010, 10020]
    # Round robin: the small job's 3 passes alternate with the large job's, it waits ~3 of them.
    assert large.passes_seen <= 3 + 3 + 3
    large_future.cancel()


def test_a_cancelled_job_stops_costing_work(make_loop) -> None:  # type: ignore[no-untyped-def]
    executor = FakeExecutor(delay=0.01)
    loop = make_loop(executor)
    job = ListJob([[i] for i in range(500)])
    future = loop.submit(job)
    while job.passes_seen < 2:
        time.sleep(0.005)
    assert future.cancel()
    with pytest.raises(CancelledError):
        future.result(TIMEOUT)
    seen = job.passes_seen
    assert loop.submit(ListJob([[1]])).result(TIMEOUT) == [10]
    assert job.passes_seen <= seen + 1  # at most the pass already running
    assert loop.stats.jobs_cancelled == 1
    assert loop.queue_depth == 0


@pytest.mark.parametrize("where", ["while waiting", "between submitting and waiting"])
def test_ctrl_c_during_run_cancels_the_job(make_loop, monkeypatch, where: str) -> None:  # type: ignore[no-untyped-def]
    """A KeyboardInterrupt in ``EngineLoop.run`` cancels the job, wherever it lands after submission."""
    executor = FakeExecutor(delay=0.01)
    loop = make_loop(executor)
    job = ListJob([[i] for i in range(500)])
    if where == "while waiting":

        def interrupted(timeout: float | None = None) -> Any:
            deadline = time.monotonic() + TIMEOUT
            while job.passes_seen < 2 and time.monotonic() < deadline:  # the job runs when it lands
                time.sleep(0.005)
            raise KeyboardInterrupt

        monkeypatch.setattr(job.future, "result", interrupted)
    else:
        submit = loop.submit

        def submit_then_interrupt(j: Job) -> Any:
            submit(j)
            raise KeyboardInterrupt  # after the job is queued, before anything waits on it

        monkeypatch.setattr(loop, "submit", submit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run(job)
    assert job.future.cancelled()
    monkeypatch.undo()
    assert loop.submit(ListJob([[1]])).result(TIMEOUT) == [10]  # the loop goes on serving
    seen = job.passes_seen
    assert loop.submit(ListJob([[2]])).result(TIMEOUT) == [20]
    assert job.passes_seen == seen < 500  # the cancelled job costs no more passes
    assert loop.stats.jobs_cancelled + loop.stats.jobs_done >= 2
    assert loop.queue_depth == 0


def test_an_error_inside_a_job_fails_that_job_only(make_loop) -> None:  # type: ignore[no-untyped-def]
    class Broken(ListJob):
        def on_pass(self, p: Pass, output: Any) -> None:
            raise ValueError("bad job")

    loop = make_loop(FakeExecutor())
    with pytest.raises(ValueError, match="bad job"):
        loop.submit(Broken([[1]])).result(TIMEOUT)
    assert loop.submit(ListJob([[3]])).result(TIMEOUT) == [30]


def test_closing_fails_waiting_jobs_clearly(make_loop) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    executor = FakeExecutor(gate=gate)
    loop = make_loop(executor)
    first = loop.submit(ListJob([[1], [2]]))
    assert executor.started.wait(TIMEOUT)
    waiting = loop.submit(ListJob([[3]]))
    closer = threading.Thread(target=loop.close)
    closer.start()
    gate.set()
    closer.join(TIMEOUT)
    for future in (first, waiting):
        with pytest.raises(EngineClosedError):
            future.result(TIMEOUT)
    with pytest.raises(EngineClosedError):
        loop.submit(ListJob([[4]]))


def test_split_state_of_a_real_merged_batch_generates_exactly(tiny_qwen35_path: str) -> None:
    engine = PrismReranker(tiny_qwen35_path, device="cpu")
    runner, prompts = engine.runner, engine.prompt_tokenizer
    docs_a = ["short one", "a somewhat longer document about the borrow checker " * 3]
    docs_b = ["another document " * 12]
    ids_a = [p.ids for p in prompts.encode("q", docs_a)]
    ids_b = [p.ids for p in prompts.encode("q", docs_b)]
    merged = runner.prefill(ids_a + ids_b, keep_cache=True)
    part_a, part_b = split_state(merged, [2, 1])
    alone_a = runner.prefill(ids_a, keep_cache=True)
    alone_b = runner.prefill(ids_b, keep_cache=True)
    torch.testing.assert_close(part_a.verdict_logits, alone_a.verdict_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(part_b.verdict_logits, alone_b.verdict_logits, atol=1e-5, rtol=0)
    assert runner.generate(part_a, 6) == runner.generate(alone_a, 6)
    assert runner.generate(part_b, 6) == runner.generate(alone_b, 6)


def test_merged_states_of_different_widths_decode_exactly(tiny_path: str) -> None:
    from prism_core.runtime.cache import merge_states

    engine = PrismReranker(tiny_path, device="cpu")
    runner, prompts = engine.runner, engine.prompt_tokenizer
    short = [p.ids for p in prompts.encode("q", ["tiny", "short doc here"])]
    long = [p.ids for p in prompts.encode("q", ["a much longer document about memory safety " * 6])]
    expected = runner.generate(runner.prefill(short, keep_cache=True), 6) + runner.generate(
        runner.prefill(long, keep_cache=True), 6
    )
    a, b = runner.prefill(short, keep_cache=True), runner.prefill(long, keep_cache=True)
    assert a.attention_mask.shape[1] != b.attention_mask.shape[1]
    merged = merge_states([a, b])
    assert merged.last_hidden.shape[0] == 3
    assert runner.generate(merged, 6) == expected


def test_a_decode_pass_run_apart_in_halves_after_out_of_memory_decodes_exactly(tiny_qwen35_path: str) -> None:
    """After a shared decode pass fails, rows run in groups (halves on out of memory), and the
    state the failed pass left is the one before it: every row's ids stay exact."""
    engine = PrismReranker(tiny_qwen35_path, device="cpu")
    runner, prompts = engine.runner, engine.prompt_tokenizer
    ids = [p.ids for p in prompts.encode("q", ["one doc", "two docs here", "three documents here now"])]
    expected = runner.generate(runner.prefill(ids, keep_cache=True), 6)
    batch = runner.new_decode_batch()
    batch.join("o", runner.prefill(ids, keep_cache=True), [0, 1, 2], 6, ())
    batch.step()
    batch.emit()
    calls = []

    def failing(module: Any, args: Any, kwargs: Any) -> None:
        calls.append(int(kwargs["input_ids"].shape[0]))
        if kwargs["input_ids"].shape[0] > 1:
            raise torch.OutOfMemoryError("injected")

    handle = runner.body.register_forward_pre_hook(failing, with_kwargs=True)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            batch.forward()
        failed = batch.forward_apart([[0, 1, 2]], lambda e: isinstance(e, torch.OutOfMemoryError))
    finally:
        handle.remove()
    assert failed == [] and calls == [3, 3, 1, 2, 1, 1]  # shared, group, halves, halves of the half
    outputs: dict[int, list[int]] = {}
    while batch.n:
        for fin in batch.step()[1]:
            outputs[fin.doc] = fin.ids
    assert [outputs[i] for i in range(3)] == expected


class KeyedJob(ListJob):
    """Batches with a key each; offers a later batch of the leader's key when asked for one."""

    def __init__(self, batches: list[tuple[str, list[int]]]) -> None:
        super().__init__([rows for _, rows in batches])
        self.keys = deque(key for key, _ in batches)

    def next_pass(self, max_tokens: int | None = None) -> Pass | None:
        if not self.batches:
            return None
        return Pass(self.keys[0], self.batches[0], width=1, budget=self.budget)

    def next_pass_like(self, key: Hashable, max_tokens: int | None = None) -> Pass | None:
        if key in self.keys and self.keys[0] != key:
            k = list(self.keys).index(key)
            self.keys.rotate(-k), self.batches.rotate(-k)  # that batch first, the rest in order after
        return self.next_pass(max_tokens)

    def on_pass(self, p: Pass, output: Any) -> None:
        self.keys.popleft()
        super().on_pass(p, output)


def test_a_follower_offers_a_later_pass_of_the_leaders_kind(make_loop) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    executor = FakeExecutor(gate=gate)
    loop = make_loop(executor)
    first = loop.submit(ListJob([[0]], key="other"))
    assert executor.started.wait(TIMEOUT)
    a = loop.submit(KeyedJob([("long", [1, 2]), ("short", [3])]))
    b = loop.submit(KeyedJob([("short", [4]), ("long", [5])]))
    gate.set()
    assert first.result(TIMEOUT) == [0]
    assert sorted(a.result(TIMEOUT)) == [10, 20, 30] and sorted(b.result(TIMEOUT)) == [40, 50]
    # each leader's kind was taken from the other's plan: two shared passes, not four
    assert sorted(map(sorted, executor.passes[1:])) == [[1, 2, 5], [3, 4]]
