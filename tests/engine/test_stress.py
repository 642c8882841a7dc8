"""The shared core under contention, faults and hostile input, on the tiny real model.

Bounded in time and count: every loop below has a fixed number of iterations and every wait a
timeout. Latency bounds are derived from the work measured alone in the same test (never absolute).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from prism_core import NonFiniteScoreError, PrismReranker
from prism_core.runtime.cache import PrefillState
from tests._slow import slowed_passes

QUERY = "how does rust manage memory?"
WORDS = [
    "ownership",
    "borrowing",
    "lifetimes",
    "stack",
    "heap",
    "allocation",
    "garbage",
    "collector",
    "reference",
    "counting",
]


def docs(n: int, seed: int) -> list[str]:
    """``n`` distinct documents of mixed lengths."""
    return [
        " ".join(WORDS[(seed + i + k) % len(WORDS)] for k in range(3 + (seed * 7 + i * 5) % 40))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def engine(tiny_qwen35_path: str) -> PrismReranker:
    # A small batch budget keeps single passes short, so bounds below are about scheduling.
    return PrismReranker(tiny_qwen35_path, device="cpu", max_new_tokens=6, batch_tokens=2048).load()


def same(a: list[Any], b: list[Any]) -> None:
    """Results equal up to float noise of different batch compositions."""
    assert [r.index for r in a] == [r.index for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.score == pytest.approx(y.score, abs=1e-4)
        assert (x.relevant, x.raw_output, x.evidence) == (y.relevant, y.raw_output, y.evidence)


def test_threads_with_mixed_sizes_get_sequential_results_and_no_one_starves(engine: PrismReranker) -> None:
    sizes = [1, 3, 8, 2, 16, 5]
    workloads = [docs(n, seed) for seed, n in enumerate(sizes)]
    expected = []
    alone = []
    for w in workloads:
        t0 = time.perf_counter()
        expected.append(engine.rerank(QUERY, w, top_n=4))
        alone.append(time.perf_counter() - t0)
    round_time = sum(alone)  # all callers' work of one round, run one after another
    passes_before = engine.engine_loop.stats.passes
    latencies: list[list[float]] = [[] for _ in workloads]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workloads))

    def caller(k: int) -> None:
        try:
            barrier.wait(30)
            for _ in range(3):
                t0 = time.perf_counter()
                got = engine.rerank(QUERY, workloads[k], top_n=4)
                latencies[k].append(time.perf_counter() - t0)
                same(got, expected[k])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(len(workloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(len(x) == 3 for x in latencies)
    # A fair engine bounds every call by about one round of everyone's work (each caller has at most
    # one call in flight); the starving leader of the old design waited for many rounds.
    worst = max(max(x) for x in latencies)
    assert worst <= 2.5 * round_time + 1.0, (worst, round_time, latencies)
    # Coalescing still happens: fewer passes than the callers' own batches run one by one.
    runs = engine.engine_loop.stats.passes - passes_before
    assert engine.engine_loop.stats.coalesced_passes > 0
    assert runs < 3 * sum(max(1, -(-n // 8)) for n in sizes) * 2


async def test_asyncio_tasks_with_mixed_sizes_match_sequential(engine: PrismReranker) -> None:
    workloads = [docs(n, 10 + seed) for seed, n in enumerate([2, 7, 1, 12])]
    expected = [engine.rerank(QUERY, w) for w in workloads]
    scores = [engine.score(QUERY, w) for w in workloads]
    got = await asyncio.gather(*(engine.arerank(QUERY, w) for w in workloads))
    got_scores = await asyncio.gather(*(engine.ascore(QUERY, w) for w in workloads))
    for g, e in zip(got, expected, strict=True):
        same(g, e)
    for g, e in zip(got_scores, scores, strict=True):
        assert g == pytest.approx(e, abs=1e-4)


def test_cancelled_requests_stop_costing_work(engine: PrismReranker) -> None:
    small = docs(2, 99)
    engine.rerank(QUERY, small)  # warm
    t0 = time.perf_counter()
    engine.rerank(QUERY, small)
    alone = time.perf_counter() - t0
    loop = engine.engine_loop
    cancelled_before = loop.stats.jobs_cancelled

    async def scenario() -> float:
        big = docs(200, 5)

        async def abandoned(timeout: float) -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(engine.arerank(QUERY, big), timeout=timeout)

        # Cancelled while their prompts are encoded: never submitted.
        await asyncio.gather(*(abandoned(0.01) for _ in range(4)))
        # Cancelled once the engine holds them. Passes are slowed while they are queued so that none
        # can finish before all four are held, however fast the machine.
        with slowed_passes(engine, 0.2) as slowed:
            await engine.ascore(QUERY, small)
            assert slowed, "the model's forward passes do not run under the slowing hook"
            tasks = [asyncio.create_task(engine.arerank(QUERY, big)) for _ in range(4)]
            deadline = time.monotonic() + 30
            while loop.queue_depth < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert loop.queue_depth >= 4
            for task in tasks:
                task.cancel()
            for task in tasks:
                with pytest.raises(asyncio.CancelledError):
                    await task
        t1 = time.perf_counter()
        await engine.arerank(QUERY, small)
        return time.perf_counter() - t1

    t_run = time.perf_counter()
    after = asyncio.run(scenario())
    total = time.perf_counter() - t_run
    # The 8 × 200 documents were dropped at a pass boundary: the next call pays at most the pass
    # that was running, not 1,600 documents of work.
    assert after <= 3 * alone + 1.5, (after, alone)
    assert total <= 10 * alone + 5.0, total  # and the event loop closed without waiting for them
    deadline = time.monotonic() + 10
    while loop.queue_depth and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.queue_depth == 0
    assert loop.stats.jobs_cancelled - cancelled_before == 4


@pytest.fixture
def poisoned(engine: PrismReranker, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Make the runner fail, run out of memory or overflow on chosen prompts (shared passes included)."""
    runner = engine.runner
    real_prefill = runner.prefill
    rules: dict[str, Any] = {"fail": set(), "oom_above": None, "nan": set(), "calls": []}
    marker_ids = {}

    def ids_of(text: str) -> tuple[int, ...]:
        if text not in marker_ids:
            marker_ids[text] = tuple(engine.prompt_tokenizer.plain_encode([" " + text])[0])
        return marker_ids[text]

    def contains(prompt: list[int], text: str) -> bool:
        needle = ids_of(text)
        return any(tuple(prompt[i : i + len(needle)]) == needle for i in range(len(prompt) - len(needle) + 1))

    def prefill(prompts: Any, *, keep_cache: bool) -> PrefillState:
        rules["calls"].append(len(prompts))
        if rules["oom_above"] is not None and len(prompts) > rules["oom_above"]:
            raise torch.OutOfMemoryError(f"fake OOM on {len(prompts)} rows")
        for text in rules["fail"]:
            if any(contains(p, text) for p in prompts):
                raise RuntimeError(f"injected failure for {text!r}")
        return overflow(real_prefill(prompts, keep_cache=keep_cache), prompts)

    def overflow(state: PrefillState, prompts: Any) -> PrefillState:
        rows = [row for row, p in enumerate(prompts) if any(contains(list(p), t) for t in rules["nan"])]
        if rows:
            logits = state.verdict_logits.clone()
            logits[rows] = float("nan")
            state.verdict_logits = logits
        return state

    real_after_prefix = runner.score_after_prefix

    def score_after_prefix(prefix: Any, length: int, continuations: Any) -> PrefillState:
        for text in rules["fail"]:
            if any(contains(list(c), text) for c in continuations):
                raise RuntimeError(f"injected failure for {text!r}")
        return overflow(real_after_prefix(prefix, length, continuations), continuations)

    monkeypatch.setattr(runner, "prefill", prefill)
    monkeypatch.setattr(runner, "score_after_prefix", score_after_prefix)
    yield rules


def concurrently(*calls: Any) -> list[Any]:
    """Run callables in threads started together; return each result or the exception it raised."""
    out: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(k: int) -> None:
        barrier.wait(30)
        try:
            out[k] = calls[k]()
        except BaseException as exc:
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_a_failure_in_a_shared_pass_reaches_only_the_culprit(
    engine: PrismReranker, poisoned: dict[str, Any]
) -> None:
    good = [docs(3, 1), docs(5, 2), docs(2, 3)]
    expected = [engine.rerank(QUERY, d) for d in good]
    poisoned["fail"].add("zebra")
    bad = [*docs(2, 4), "the zebra zebra zebra"]
    for _ in range(3):  # timing decides who shares a pass: repeat
        results = concurrently(*(lambda d=d: engine.rerank(QUERY, d) for d in good),
                               lambda: engine.rerank(QUERY, bad))  # fmt: skip
        for got, exp in zip(results[:3], expected, strict=True):
            assert not isinstance(got, BaseException), got
            same(got, exp)
        assert isinstance(results[3], RuntimeError) and "zebra" in str(results[3])
    with pytest.raises(RuntimeError, match="zebra"):  # the scoring-only path (shared prefix) too
        engine.score(QUERY, bad)
    poisoned["fail"].clear()
    assert len(engine.rerank(QUERY, bad)) == 3  # the engine keeps serving


def test_out_of_memory_in_a_shared_pass_is_retried_for_every_caller(
    engine: PrismReranker, poisoned: dict[str, Any]
) -> None:
    one, three = docs(1, 7), docs(3, 8)
    expected = [engine.rerank(QUERY, one), engine.rerank(QUERY, three)]
    poisoned["oom_above"] = 1  # any pass of more than one row runs out of memory
    for _ in range(3):
        results = concurrently(lambda: engine.rerank(QUERY, one), lambda: engine.rerank(QUERY, three))
        for got, exp in zip(results, expected, strict=True):
            assert not isinstance(got, BaseException), got
            same(got, exp)
    poisoned["oom_above"] = 0  # even one row: that caller fails, with the real error
    with pytest.raises(torch.OutOfMemoryError):
        engine.rerank(QUERY, one)
    poisoned["oom_above"] = None
    same(engine.rerank(QUERY, one), expected[0])


def test_non_finite_logits_raise_a_clear_error_for_that_caller_only(
    engine: PrismReranker, poisoned: dict[str, Any]
) -> None:
    clean = docs(4, 12)
    expected = engine.rerank(QUERY, clean)
    poisoned["nan"].add("overflow")
    dirty = [*docs(2, 13), "an overflow overflow"]
    results = concurrently(lambda: engine.rerank(QUERY, clean), lambda: engine.rerank(QUERY, dirty),
                           lambda: engine.score(QUERY, dirty))  # fmt: skip
    same(results[0], expected)
    for err in results[1:]:
        assert isinstance(err, NonFiniteScoreError), err
        assert "bfloat16" in str(err) and "float32" in str(err) and "documents[2]" in str(err)
    poisoned["nan"].clear()
    assert len(engine.rerank(QUERY, dirty)) == 3


def test_lone_surrogates_name_the_document(engine: PrismReranker) -> None:
    with pytest.raises(ValueError, match=r"documents\[1\].*UTF-8"):
        engine.rerank(QUERY, ["fine", "bad \ud800 text"])
    with pytest.raises(ValueError, match=r"query.*UTF-8"):
        engine.score("bad \udfff", ["fine"])


def test_max_length_below_the_fixed_prompt_is_refused_at_construction(tiny_qwen35_path: str) -> None:
    with pytest.raises(ValueError, match=r"max_length must be >= 200.*got 5"):
        PrismReranker(tiny_qwen35_path, max_length=5)
    engine = PrismReranker(tiny_qwen35_path, device="cpu", max_length=200)
    assert engine.prompt_tokenizer.min_length == PrismReranker.min_length_hint  # the hint is exact here


@pytest.mark.parametrize("value", [3, "np.int64"])
def test_numpy_scalars_are_accepted_as_options(engine: PrismReranker, value: Any) -> None:
    import numpy as np

    top_n = np.int64(2) if value == "np.int64" else value
    results = engine.rerank(QUERY, docs(4, 3), top_n=top_n, score_threshold=np.float32(0.0))
    assert len(results) == min(2 if value == "np.int64" else 3, 4)


def test_tokens_generated_counts_every_generated_id(engine: PrismReranker, monkeypatch: Any) -> None:
    """``engine_loop.stats.tokens_generated`` (the server's ``prism_tokens_generated_total``) is exact."""
    loop = engine.engine_loop
    captured: list[Any] = []
    original = loop.run

    def run(job: Any) -> Any:
        out = original(job)
        captured.append(out)
        return out

    monkeypatch.setattr(loop, "run", run)
    before = loop.stats.tokens_generated
    results = engine.rerank(QUERY, docs(24, 3))
    _, generated = captured[-1]
    assert generated and len(generated) == sum(r.raw_output is not None for r in results)
    assert loop.stats.tokens_generated - before == sum(len(ids) for ids in generated.values())
    before = loop.stats.tokens_generated
    engine.rerank(QUERY, docs(24, 3), evidence=False)
    assert loop.stats.tokens_generated == before  # a scoring pass generates nothing
