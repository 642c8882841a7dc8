"""A document's score does not depend on what else is in its request or its pass (causal backends).

Every row runs in a shape set by its own length (its bucket width, or whether it forks from the
query prefix): scored alone, with the rest of its request, or coalesced with other callers' rows of
other lengths, under CPU load or not, a document scores the same within float32 rounding (1e-6).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from prism_core import PrismReranker, Qwen3Reranker
from prism_core.runtime.pipeline import runs_after_prefix
from tests._slow import slowed_passes

QUERY = "how does rust manage memory?"
DOCS = [
    "Rust uses ownership and borrowing.",
    "Paris is in France.",
    "memory safety " * 40,
    "ok",
    "The borrow checker enforces aliasing rules at compile time. " * 9,
    "Ownership moves values; borrowing lends them. " * 60,  # long: runs whole, coalesces with others
]
OTHERS = [
    "noise " * 300,
    "x",
    "the borrow checker " * 12,
    "Rust",
    "Ownership moves values; borrowing lends them. " * 61,
]


def _busy(stop: threading.Event) -> None:
    import torch

    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def _spread(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(("family", "chunk"), [("prism", None), ("qwen3", None), ("prism", 64)])
def test_scores_do_not_depend_on_the_rest_of_the_request_or_on_other_callers(
    family: str,
    chunk: int | None,
    tiny_qwen35_path: str,
    tiny_qwen3_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if chunk is not None:  # long prompts prefilled in chunks: the chunks are a rule on the row too
        from prism_core.runtime import pipeline

        monkeypatch.setattr(pipeline, "LONG_PROMPT_CHUNK", chunk)
    engine = (
        PrismReranker(tiny_qwen35_path, device="cpu", show_progress=False)
        if family == "prism"
        else Qwen3Reranker(tiny_qwen3_path, device="cpu", show_progress=False)
    )
    alone = [engine.score(QUERY, [d])[0] for d in DOCS]
    together = engine.score(QUERY, DOCS)
    mixed = engine.score(QUERY, OTHERS[:2] + DOCS + OTHERS[2:])[2 : 2 + len(DOCS)]
    stop = threading.Event()
    hog = threading.Thread(target=_busy, args=(stop,), daemon=True)
    hog.start()
    try:
        loaded = engine.score(QUERY, DOCS)
        coalesced = engine.engine_loop.stats.coalesced_passes

        async def concurrently() -> list[list[float]]:
            calls = [engine.ascore(QUERY, DOCS)] + [
                engine.ascore(QUERY, [o, *DOCS[k:]]) for k, o in enumerate(OTHERS)
            ]
            return list(await asyncio.gather(*calls))

        with slowed_passes(engine, 0.02):  # every caller is queued before the first one is done
            shared = asyncio.run(concurrently())[0]
    finally:
        stop.set()
        hog.join(5)
    assert engine.engine_loop.stats.coalesced_passes > coalesced  # callers really shared passes
    assert loaded == together  # the same plan under load: bit-identical
    for other in (together, mixed, shared):
        assert _spread(other, alone) <= 1e-6


def test_generating_requests_score_alike_whatever_their_other_documents(tiny_qwen35_path: str) -> None:
    """With evidence on, rows fork from the query prefix by a rule on the row alone: a document's
    score (and its greedy text) is the same in a request of 1, 5 or 9 documents."""
    engine = PrismReranker(tiny_qwen35_path, device="cpu", show_progress=False, max_new_tokens=6)
    alone = [engine.rerank(QUERY, [d])[0] for d in DOCS]
    together = sorted(engine.rerank(QUERY, DOCS), key=lambda r: r.index)
    mixed = sorted(engine.rerank(QUERY, OTHERS + DOCS), key=lambda r: r.index)[len(OTHERS) :]
    for group in (together, mixed):
        assert _spread([r.score for r in group], [r.score for r in alone]) <= 1e-6
        assert [r.raw_output for r in group] == [r.raw_output for r in alone]


def test_the_prefix_rule_reads_the_row_alone() -> None:
    assert runs_after_prefix(200, 400, generate=False)  # short document: the prefix pays
    assert not runs_after_prefix(200, 2400, generate=False)  # long one: a masked continuation costs more
    assert runs_after_prefix(200, 2400, generate=True)  # decoding rows run unpadded: always pays
    assert not runs_after_prefix(8, 40, generate=True)  # too short a prefix to run apart
    assert not runs_after_prefix(200, 200, generate=True)  # nothing after the prefix


def test_requests_with_one_query_share_their_forked_passes(tiny_qwen35_path: str) -> None:
    """Rows that fork from the same query prefix coalesce across requests, and score as alone."""
    engine = PrismReranker(tiny_qwen35_path, device="cpu", show_progress=False, max_new_tokens=4)
    short = DOCS[:4]  # all fork from the prefix, with evidence on or off
    alone = [engine.score(QUERY, [d])[0] for d in short]
    before = engine.engine_loop.stats.coalesced_passes

    async def concurrently() -> list[list[float]]:
        calls = [engine.ascore(QUERY, short) for _ in range(4)]
        calls += [engine.ascore("another question entirely?", short)]  # another prefix: never mixed in
        return list(await asyncio.gather(*calls))

    with slowed_passes(engine, 0.05):  # every request is queued before the first one is done
        got = asyncio.run(concurrently())
    assert engine.engine_loop.stats.coalesced_passes > before
    for scores in got[:4]:
        assert _spread(scores, alone) <= 1e-6
    other = [engine.score("another question entirely?", [d])[0] for d in short]
    assert _spread(got[4], other) <= 1e-6
