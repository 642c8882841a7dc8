"""Continuous batching on the tiny real models: one decode pass for every request's rows, exact.

Rows of several requests (different prompt lengths, joining and leaving at different steps) decode
in one persistent batch; each request's greedy text and scores equal the model card loop's, and the
same request run alone. Cancellation frees a request's slots at the next step; a failing shared
decode pass is run per request, so only the request whose rows fail sees the error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from prism_core import PrismReranker
from prism_core.testing.reference import ReferenceLoop

QUERY = "How does the borrow checker work?"
MAX_NEW = 10
_WORDS = [
    "rust",
    "memory",
    "safety",
    "borrow",
    "checker",
    "python",
    "paris",
    "tower",
    "energy",
    "glucose",
    "cell",
    "river",
    "bank",
    "loan",
    "rate",
]


def _pool(n: int = 24, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.choice([5, 20, 60, 150]))) for _ in range(n)]


#: Requests of different sizes and document lengths (so rows join and leave at different steps).
REQUESTS = [_pool()[0:5], _pool()[5:12], _pool()[12:16], _pool()[16:24]]
TIMEOUT = 120


@pytest.fixture(scope="module")
def oracle(tiny_path: str) -> tuple[str, list[list[Any]]]:
    loop = ReferenceLoop(tiny_path, max_new_tokens=MAX_NEW)
    outs = [loop.run(QUERY, docs) for docs in REQUESTS]
    relevant = sum(o.logit > 0 for out in outs for o in out)
    assert relevant >= 2, "need several 'yes' rows across requests to exercise shared decoding"
    return tiny_path, outs


def _check(results: list[Any], ref: list[Any]) -> None:
    assert sorted(r.index for r in results) == list(range(len(ref)))
    for r in results:
        o = ref[r.index]
        assert abs(r.logit - o.logit) < 1e-4
        assert r.raw_output == (o.text if o.logit > 0 else None)


def test_concurrent_requests_share_decode_passes_and_stay_exact(oracle: tuple[str, list[list[Any]]]) -> None:
    path, ref = oracle
    engine = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW)
    stats = engine.engine_loop.stats
    alone_steps, alone_per_pass = [], []
    for docs, expected in zip(REQUESTS, ref, strict=True):
        before, before_rows = stats.decode_steps, stats.decode_rows
        _check(engine.rerank(QUERY, docs), expected)
        alone_steps.append(stats.decode_steps - before)
        if alone_steps[-1]:
            alone_per_pass.append((stats.decode_rows - before_rows) / alone_steps[-1])

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(engine.arerank(QUERY, docs) for docs in REQUESTS)))

    steps, rows = stats.decode_steps, stats.decode_rows
    results = asyncio.run(together())
    for got, expected in zip(results, ref, strict=True):
        _check(got, expected)
    shared_steps, shared_rows = stats.decode_steps - steps, stats.decode_rows - rows
    # Decoding alongside each other costs fewer decode passes than one after another, with more
    # rows per pass (the rows of several requests in one pass).
    assert shared_steps < sum(alone_steps)
    assert shared_rows / shared_steps > max(alone_per_pass)
    decoder = engine.engine_loop.executor.decoder  # type: ignore[attr-defined]
    assert decoder.n == 0  # every slot freed


def test_per_request_decoding_switch_gives_the_same_results(oracle: tuple[str, list[list[Any]]]) -> None:
    path, ref = oracle
    engine = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW)
    loop = engine.engine_loop
    loop.shared_decode = False
    try:

        async def together() -> list[Any]:
            return list(await asyncio.gather(*(engine.arerank(QUERY, docs) for docs in REQUESTS)))

        for got, expected in zip(asyncio.run(together()), ref, strict=True):
            _check(got, expected)
    finally:
        loop.shared_decode = True


@pytest.fixture
def slow_body(tiny_qwen35_path: str) -> Iterator[list[int]]:
    """Every decoder-body call takes >= 30 ms; yields the rows of each single-token (decode) call."""
    engine = PrismReranker(tiny_qwen35_path, device="cpu")
    body = engine.runner.body
    seen: list[int] = []

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            seen.append(int(ids.shape[0]))
        threading.Event().wait(0.03)

    handle = body.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def test_cancelling_mid_decode_frees_the_slots_and_others_go_on(
    tiny_qwen35_path: str, slow_body: list[int]
) -> None:
    ref_all = ReferenceLoop(tiny_qwen35_path, max_new_tokens=MAX_NEW).run(QUERY, _pool())
    yes = [d for d, o in zip(_pool(), ref_all, strict=True) if o.logit > 0]
    assert yes, "need a relevant document on the tiny model"
    docs = yes * 3
    engine = PrismReranker(tiny_qwen35_path, device="cpu", max_new_tokens=200)
    other = PrismReranker(tiny_qwen35_path, device="cpu", max_new_tokens=MAX_NEW)
    ref = ReferenceLoop(tiny_qwen35_path, max_new_tokens=MAX_NEW).run(QUERY, REQUESTS[0])
    decoder = engine.engine_loop.executor.decoder  # type: ignore[attr-defined]

    async def scenario() -> list[Any]:
        victim = asyncio.ensure_future(engine.arerank(QUERY, docs))
        for _ in range(400):  # until the victim's rows decode
            await asyncio.sleep(0.01)
            if decoder.n:
                break
        assert decoder.n > 0
        survivor = asyncio.ensure_future(other.arerank(QUERY, REQUESTS[0]))
        await asyncio.sleep(0.1)
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim
        return await asyncio.wait_for(survivor, TIMEOUT)

    cancelled = engine.engine_loop.stats.jobs_cancelled
    _check(asyncio.run(scenario()), ref)
    assert engine.engine_loop.stats.jobs_cancelled == cancelled + 1
    assert decoder.n == 0


def test_a_failing_shared_decode_pass_fails_only_the_request_whose_rows_fail(
    oracle: tuple[str, list[list[Any]]],
) -> None:
    path, ref = oracle
    engine = PrismReranker(path, device="cpu", max_new_tokens=MAX_NEW)
    loop = engine.engine_loop
    decoder = loop.executor.decoder  # type: ignore[attr-defined]
    lengths = [[len(p.ids) for p in engine.prompt_tokenizer.encode(QUERY, docs)] for docs in REQUESTS]
    relevant = [
        [n for n, o in zip(ls, out, strict=True) if o.logit > 0] for ls, out in zip(lengths, ref, strict=True)
    ]
    candidates = [k for k in range(len(REQUESTS)) if relevant[k]]
    bad = max(candidates, key=lambda k: max(relevant[k]))
    bad_len = max(relevant[bad])  # rows at or past this position belong to the bad request only
    good = [k for k in candidates if k != bad and max(relevant[k]) + MAX_NEW < bad_len]
    if not good:
        pytest.skip("no request decodes entirely below the bad request's positions on this tiny model")

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        ids, pos = kwargs.get("input_ids"), kwargs.get("position_ids")
        if ids is not None and ids.shape[1] == 1 and bool((pos >= bad_len).any()):
            raise RuntimeError("injected decode failure")

    handle = engine.runner.body.register_forward_pre_hook(hook, with_kwargs=True)
    retries = loop.stats.decode_retries
    order = [bad, *good]
    try:

        async def together() -> list[Any]:
            calls = [engine.arerank(QUERY, REQUESTS[k]) for k in order]
            return list(await asyncio.gather(*calls, return_exceptions=True))

        outcomes = asyncio.run(together())
    finally:
        handle.remove()
    assert isinstance(outcomes[0], RuntimeError) and "injected" in str(outcomes[0])
    for k, got in zip(good, outcomes[1:], strict=True):
        _check(got, ref[k])
    assert loop.stats.decode_retries > retries
    assert decoder.n == 0
    _check(engine.rerank(QUERY, REQUESTS[good[0]]), ref[good[0]])  # the engine keeps serving


def test_decode_slots_grow_and_rows_of_different_lengths_join_mid_flight(tiny_path: str) -> None:
    """Direct test of the decode batch: rows join while others decode, rows of longer prompts
    join later (the column range grows to the left), and each row's ids equal decoding it alone."""
    engine = PrismReranker(tiny_path, device="cpu")
    runner, prompts = engine.runner, engine.prompt_tokenizer
    texts = ["tiny", "a much longer document about memory safety " * 6, "short doc", "x " * 40]
    ids = [p.ids for p in prompts.encode("q", texts)]
    alone = [runner.generate(runner.prefill([i], keep_cache=True), 8)[0] for i in ids]
    batch = runner.new_decode_batch()
    outputs: dict[int, list[int]] = {}
    order = [0, 2, 1, 3]  # the long prompt (1) joins after two steps of short rows
    for step in range(40):
        if step < len(order) * 2 and step % 2 == 0:
            doc = order[step // 2]
            batch.join("owner", runner.prefill([ids[doc]], keep_cache=True), [doc], 8, ())
        _, done = batch.step()
        for fin in done:
            outputs[fin.doc] = fin.ids
        if len(outputs) == len(texts):
            break
    assert batch.n == 0
    assert [outputs[d] for d in range(len(texts))] == alone
    with torch.inference_mode():
        assert batch.capacity >= 4
