"""Long documents on the causal backends: chunk mode reads overlapping windows, scores each document
by its best window, reports the window, and finds a passage truncation cannot see.

The tiny random Prism model gives real (meaningless) scores for the equality checks; for "found by
chunk mode, missed by truncation" a scripted runner makes relevance visible: a row is relevant
exactly when its ids contain the needle's (everything else, the windowing, batching, reduction and
the second generation job, is the real code path).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from prism_core.backends.long_documents import OVERLAP, window_tokens
from prism_core.backends.prism import PrismReranker
from prism_core.runtime.cache import PrefillState
from prism_core.runtime.runner import ModelRunner

QUERY = "which animal is the needle?"
FILLER = " ".join(
    f"Sentence {i} talks about weather, rivers and the history of small towns." for i in range(60)
)
NEEDLE = " XYZZYQUUX"
SHORT = "Rust is a systems programming language focused on memory safety."


@pytest.fixture(scope="module")
def prism(tiny_qwen35_path: str) -> PrismReranker:
    return PrismReranker(tiny_qwen35_path, max_new_tokens=8, show_progress=False).load()


def test_chunk_scores_equal_each_window_scored_alone(prism: PrismReranker) -> None:
    long_doc = FILLER + NEEDLE
    budget = 64
    results = prism.rerank(
        QUERY, [SHORT, long_doc], evidence=False, max_tokens_per_doc=budget, long_documents="chunk"
    )
    by_index = {r.index: r for r in results}
    assert by_index[0].chunk is None and not by_index[0].truncated  # a short document is read whole
    chunked = by_index[1]
    assert chunked.chunk is not None and not chunked.truncated
    start, end = chunked.chunk
    window = long_doc[start:end]
    alone = prism.rerank(QUERY, [window], evidence=False)[0]
    assert chunked.logit == pytest.approx(alone.logit, abs=1e-4)
    assert alone.document_tokens is not None and alone.document_tokens <= budget
    # The maximum over every window: no window scores above the chosen one.
    prompts, _ = prism.prompt_tokenizer.encode_long(
        QUERY, [long_doc], max_tokens_per_doc=budget, long_documents="chunk"
    )
    spans = [p.chunk for p in prompts if p.chunk is not None]
    assert len(spans) == len(prompts)
    assert (
        spans[0] is not None and spans[0][0] == 0 and spans[-1] is not None and spans[-1][1] == len(long_doc)
    )
    assert len(spans) > 3 and all(a[0] < b[0] < a[1] for a, b in itertools.pairwise(spans))  # overlapping
    each = prism.score(QUERY, [long_doc[a:b] for a, b in spans])
    assert max(each) == pytest.approx(chunked.score, abs=1e-4)
    assert prism.score(QUERY, [SHORT, long_doc], max_tokens_per_doc=budget, long_documents="chunk")[
        1
    ] == pytest.approx(chunked.score, abs=1e-4)
    assert window_tokens(budget) == budget - 2 and 0 < OVERLAP < 1


def test_truncate_mode_cuts_to_max_tokens_per_doc_and_says_so(prism: PrismReranker) -> None:
    full, cut = (
        prism.rerank(QUERY, [FILLER], evidence=False)[0],
        prism.rerank(QUERY, [FILLER], evidence=False, max_tokens_per_doc=40)[0],
    )
    assert not full.truncated and cut.truncated and cut.chunk is None
    assert cut.document_tokens is not None and cut.document_tokens <= 40 < (full.document_tokens or 0)
    with pytest.raises(ValueError, match="long_documents must be 'truncate' or 'chunk', got 'split'"):
        prism.rerank(QUERY, [FILLER], long_documents="split")
    with pytest.raises(ValueError, match="max_tokens_per_doc must be >= 1, got 0"):
        prism.score(QUERY, [FILLER], max_tokens_per_doc=0)


class NeedleRunner(ModelRunner):
    """Real passes, verdicts scripted: +4 (yes) for a row holding the needle's ids, -4 otherwise."""

    needle: Sequence[int] = ()

    def _script(self, rows: Sequence[Sequence[int]], state: PrefillState) -> PrefillState:
        import torch

        def has(row: Sequence[int]) -> bool:
            k = len(self.needle)
            return any(list(row[i : i + k]) == list(self.needle) for i in range(len(row) - k + 1))

        yes = torch.tensor([4.0 if has(r) else -4.0 for r in rows], device=state.verdict_logits.device)
        state.verdict_logits = torch.stack([yes, torch.zeros_like(yes)], dim=1)
        return state

    def prefill(
        self, prompts: Sequence[Sequence[int]], *, keep_cache: bool, width: int | None = None
    ) -> PrefillState:
        return self._script(prompts, super().prefill(prompts, keep_cache=keep_cache, width=width))

    def score_after_prefix(
        self,
        prefix_cache: Any,
        prefix_len: int,
        continuations: Sequence[Sequence[int]],
        width: int | None = None,
    ) -> PrefillState:
        return self._script(
            continuations, super().score_after_prefix(prefix_cache, prefix_len, continuations, width)
        )

    def prefill_after_prefix(
        self, prefix_cache: Any, prefix_len: int, continuations: Sequence[Sequence[int]]
    ) -> PrefillState:
        return self._script(
            continuations, super().prefill_after_prefix(prefix_cache, prefix_len, continuations)
        )


class NeedlePrism(PrismReranker):
    runner_class = NeedleRunner


async def test_chunk_mode_finds_the_passage_at_the_end_that_truncation_misses(tiny_qwen35_path: str) -> None:
    reranker = NeedlePrism(tiny_qwen35_path, max_new_tokens=8, show_progress=False).load()
    runner = reranker.runner
    assert isinstance(runner, NeedleRunner)
    runner.needle = reranker.prompt_tokenizer.plain_encode([NEEDLE])[0]
    docs = [SHORT, FILLER + NEEDLE, FILLER]
    cut = reranker.rerank(QUERY, docs, max_tokens_per_doc=128, top_n=2)
    assert not any(r.relevant for r in cut) and cut[0].index == 0  # the needle was cut off: all tie at -4
    assert all(r.truncated for r in cut if r.index > 0)
    found = reranker.rerank(QUERY, docs, max_tokens_per_doc=128, long_documents="chunk", top_n=2)
    best = found[0]
    assert best.index == 1 and best.relevant and best.chunk is not None
    assert NEEDLE.strip() in docs[1][best.chunk[0] : best.chunk[1]] and best.chunk[1] == len(docs[1])
    assert best.raw_output is not None  # evidence generated from the best window (second job)
    assert found[1].raw_output is None and not found[1].relevant
    again = await reranker.arerank(QUERY, docs, max_tokens_per_doc=128, long_documents="chunk", top_n=2)
    assert [(r.index, r.score, r.chunk, r.raw_output) for r in again] == [
        (r.index, r.score, r.chunk, r.raw_output) for r in found
    ]
    assert (await reranker.ascore(QUERY, docs, max_tokens_per_doc=128, long_documents="chunk"))[
        1
    ] == best.score


def test_qwen3_reranker_chunk_mode(tiny_qwen3_path: str) -> None:
    from prism_core.backends.qwen3_reranker import Qwen3Reranker

    reranker = Qwen3Reranker(tiny_qwen3_path, show_progress=False).load()
    long_doc = FILLER + NEEDLE
    best = next(
        r
        for r in reranker.rerank(QUERY, [SHORT, long_doc], max_tokens_per_doc=64, long_documents="chunk")
        if r.index == 1
    )
    assert best.chunk is not None and best.raw_output is None
    alone = reranker.rerank(QUERY, [long_doc[best.chunk[0] : best.chunk[1]]])[0]
    assert best.logit == pytest.approx(alone.logit, abs=1e-4)
    cut = reranker.rerank(QUERY, [long_doc], max_tokens_per_doc=64)[0]
    assert cut.truncated and cut.chunk is None
