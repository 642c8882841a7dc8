"""Shared data and the hand-written reference computation for the quality-prior tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

DOCS = [
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "BUY NOW!!! cheap pills, best prices, click here",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. " * 12,
    "",
    "def add(a, b):\n    return a + b\n",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Rust is a systems programming language focused on memory safety without garbage collection.",
]


@dataclass(frozen=True)
class TinyQuality:
    """Paths of the tiny encoder and its heads."""

    embedder: str
    heads: list[str]


def direct_head_scores(
    embedder: str | Path, heads: list[str], texts: list[str], max_length: int = 512
) -> list[list[float]]:
    """The JQL computation written out by hand, one document at a time, no batching:
    tokenize (truncate) → encoder → CLS → L2 → Linear → ReLU → Linear. Returns ``[head][document]``."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedder))
    model = AutoModel.from_pretrained(str(embedder), dtype=torch.float32).eval()
    embeddings = []
    for text in texts:
        enc = tokenizer(text, max_length=max_length, truncation=True, return_tensors="pt")
        with torch.no_grad():
            cls = model(**enc).last_hidden_state[:, 0]
        embeddings.append(torch.nn.functional.normalize(cls, p=2, dim=1))
    per_head: list[list[float]] = []
    for head_path in heads:
        ckpt = torch.load(head_path, map_location="cpu", weights_only=True)
        sd = {k.split("layer", 1)[1]: v for k, v in ckpt["state_dict"].items()}  # "1.weight", ...
        w1, b1, w2, b2 = (
            sd[k].to(torch.bfloat16).float() for k in ("1.weight", "1.bias", "2.weight", "2.bias")
        )
        out = []
        for x in embeddings:
            h = torch.relu(torch.nn.functional.linear(x, w1, b1))
            out.append(float(torch.nn.functional.linear(h, w2, b2)[0, 0]))
        per_head.append(out)
    return per_head


def direct_scores(
    embedder: str | Path, heads: list[str], texts: list[str], max_length: int = 512
) -> list[float]:
    """:func:`direct_head_scores` averaged over heads, per document."""
    per_head = direct_head_scores(embedder, heads, texts, max_length)
    return [sum(col) / len(col) for col in zip(*per_head, strict=True)]


# --- the standalone components ---------------------------------------------------------------------

#: Retrieved texts for the component tests (FakeReranker markers, for pipelines with a reranker after).
COMPONENT_TEXTS = [
    "alpha: Mars has two moons. [no:0.2]",
    "bravo: Paris is the capital of France, a country in Western Europe. [yes:0.9]",
    "charlie: Lyon is in France. [partial:0.7]",
    "delta: France borders Spain, Italy, Germany and Belgium. [notags:0.6]",
    "echo: The Eiffel Tower is in Paris. It was built for the 1889 World's Fair. [yes:0.8]",
    "foxtrot: Bananas are yellow. [no:0.4]",
]
QUERY = "What is the capital of France?"


def component_metadata(i: int) -> dict[str, object]:
    """Caller metadata: nested values, and a stale ``quality_score`` on even documents."""
    meta: dict[str, object] = {"source": f"doc{i}"}
    if i % 2 == 0:
        meta["quality_score"] = -1.0  # stale, from an earlier annotator
    meta["nested"] = {"tags": [f"t{i}"]}
    return meta


def expected_metadata(i: int, quality: float) -> dict[str, object]:
    """The caller's metadata with ``quality_score`` replaced and moved last."""
    meta = component_metadata(i)
    meta.pop("quality_score", None)
    meta["quality_score"] = quality
    return meta


def make_counting_scorer(tq: TinyQuality, **kwargs: object):  # type: ignore[no-untyped-def]
    """A two-head tiny scorer that counts its sync and async calls."""
    from prism_core.quality import QualityScorer

    class CountingScorer(QualityScorer):
        def __init__(self) -> None:
            super().__init__(tq.heads[:2], embedder=tq.embedder, device="cpu", **kwargs)  # type: ignore[arg-type]
            self.score_calls = 0
            self.ascore_calls = 0

        def score(self, documents):  # type: ignore[no-untyped-def]
            self.score_calls += 1
            return super().score(documents)

        async def ascore(self, documents):  # type: ignore[no-untyped-def]
            self.ascore_calls += 1
            return await super().ascore(documents)

    return CountingScorer()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def fake_reranker():  # type: ignore[no-untyped-def]
    """``fakes.FakeReranker`` (scripted by markers in the text), with ``capabilities`` if it lacks them."""
    from prism_core.protocol import Capabilities
    from tests.fakes import FakeReranker

    class Fake(FakeReranker):  # type: ignore[misc]
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(verdict=True, evidence=True)

    return Fake()
