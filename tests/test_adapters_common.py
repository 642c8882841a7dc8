"""The framework-free rules in prism_integrations._common, and what all three adapters share."""

from __future__ import annotations

import copy
import importlib
import sys
import types
from typing import Any, ClassVar

import pytest
from _adapter_cases import ORDER_ALL, ORDER_RELEVANT, QUERY, TEXTS, expected_body, expected_metadata, metadata
from fakes import FakeReranker

from prism_core.results import PrismResult
from prism_integrations import _common
from prism_integrations._common import (
    CONTRIBUTION,
    DEFAULT_DROP_IRRELEVANT,
    DEFAULT_KEEP_ORIGINAL,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_TOP_N,
    DEFAULT_USE_EVIDENCE,
    EVIDENCE_USED,
    ORIGINAL_CONTENT,
    OUR_METADATA_KEYS,
    RELEVANCE_SCORE,
    EngineResolver,
    RerankSettings,
    arerank_texts,
    build_kept_documents,
    check_engine_source,
    engine_options,
    merge_metadata,
    missing_framework_error,
    normalize_dtype,
    rerank_texts,
    validate_score_threshold,
    validate_top_n,
)


def _run(settings: RerankSettings, reranker: FakeReranker | None = None) -> list[_common.KeptDocument]:
    return rerank_texts(reranker or FakeReranker(), QUERY, TEXTS, [metadata(i) for i in range(6)], settings)


# --- options ---------------------------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    assert (DEFAULT_TOP_N, DEFAULT_SCORE_THRESHOLD) == (None, None)
    assert (DEFAULT_USE_EVIDENCE, DEFAULT_KEEP_ORIGINAL, DEFAULT_DROP_IRRELEVANT) == (True, True, True)
    assert OUR_METADATA_KEYS == (RELEVANCE_SCORE, CONTRIBUTION, EVIDENCE_USED, ORIGINAL_CONTENT)
    assert OUR_METADATA_KEYS == ("relevance_score", "contribution", "evidence_used", "original_content")


@pytest.mark.parametrize("bad", [0, -3])
def test_validate_top_n_rejects_below_one(bad: int) -> None:
    with pytest.raises(ValueError, match=f"top_n must be >= 1, got {bad}"):
        validate_top_n(bad)
    with pytest.raises(ValueError, match=f"top_k must be >= 1, got {bad}"):
        validate_top_n(bad, "top_k")


@pytest.mark.parametrize("bad", [1.5, "3", True])
def test_validate_top_n_rejects_non_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="top_n must be an int"):
        validate_top_n(bad)


def test_validate_top_n_accepts() -> None:
    assert validate_top_n(None) is None
    assert validate_top_n(1) == 1


@pytest.mark.parametrize("bad", [-0.01, 1.01, 5])
def test_validate_threshold_range(bad: float) -> None:
    with pytest.raises(ValueError, match=r"score_threshold must be in \[0, 1\]"):
        validate_score_threshold(bad)


def test_validate_threshold_accepts() -> None:
    assert validate_score_threshold(None) is None
    assert validate_score_threshold(0) == 0.0
    assert validate_score_threshold(1) == 1.0
    with pytest.raises(ValueError):
        validate_score_threshold("0.5")  # type: ignore[arg-type]


def test_engine_options_only_set_ones() -> None:
    assert engine_options() == {}
    assert engine_options(device="cpu", max_new_tokens=16) == {"device": "cpu", "max_new_tokens": 16}


def test_normalize_dtype() -> None:
    torch = pytest.importorskip("torch")
    assert normalize_dtype(None) is None
    assert normalize_dtype("float16") == "float16"
    assert normalize_dtype(torch.bfloat16) == "bfloat16"
    assert engine_options(dtype=torch.float32) == {"dtype": "float32"}


def test_check_engine_source() -> None:
    check_engine_source(None, None, {})
    check_engine_source("some/model", None, {"device": "cpu"})
    check_engine_source(None, FakeReranker(), {})
    with pytest.raises(ValueError, match="not both"):
        check_engine_source("some/model", FakeReranker(), {})
    with pytest.raises(ValueError, match="apply only with `model`"):
        check_engine_source(None, FakeReranker(), {"device": "cpu"})
    with pytest.raises(TypeError, match="Reranker protocol"):
        check_engine_source(None, object(), {})


def test_missing_framework_error_names_extra() -> None:
    err = missing_framework_error("Haystack", "haystack", "prism_integrations.haystack")
    assert isinstance(err, ImportError)
    assert 'pip install "prism-integrations[haystack]"' in str(err)


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="top_n must be >= 1, got 0"):
        RerankSettings(top_n=0)
    with pytest.raises(ValueError, match="score_threshold"):
        RerankSettings(score_threshold=2.0)
    assert RerankSettings(top_n=2, score_threshold=0.5).engine_kwargs() == {
        "top_n": 2,
        "score_threshold": 0.5,
        "evidence": True,
    }


# --- metadata --------------------------------------------------------------------------------------


def test_merge_metadata_order_and_overwrite_and_deep_copy() -> None:
    caller = {"relevance_score": 0.1, "a": {"deep": [1]}, "z": 2}
    before = copy.deepcopy(caller)
    merged = merge_metadata(caller, {"relevance_score": 0.9, "contribution": "c"})
    assert list(merged) == ["a", "z", "relevance_score", "contribution"]
    assert merged["relevance_score"] == 0.9
    merged["a"]["deep"].append(2)
    assert caller == before
    assert merge_metadata(None, {"x": 1}) == {"x": 1}


# --- turning results into kept documents -----------------------------------------------------------


def test_default_rules() -> None:
    kept = _run(RerankSettings())
    assert [k.index for k in kept] == ORDER_RELEVANT
    for k in kept:
        assert k.content == expected_body(k.index)
        assert k.metadata == expected_metadata(k.index)
        assert list(k.metadata) == list(expected_metadata(k.index))
        assert k.added_keys == tuple(key for key in OUR_METADATA_KEYS if key in k.metadata)
        assert k.evidence_used is (k.index in (1, 4))


def test_keep_original_off() -> None:
    kept = _run(RerankSettings(keep_original=False))
    for k in kept:
        assert k.metadata == expected_metadata(k.index, keep_original=False)
        assert ORIGINAL_CONTENT not in k.metadata


def test_use_evidence_off_keeps_bodies_and_contribution() -> None:
    kept = _run(RerankSettings(use_evidence=False))
    assert [k.index for k in kept] == ORDER_RELEVANT
    for k in kept:
        assert k.content == TEXTS[k.index]
        assert k.metadata == expected_metadata(k.index, use_evidence=False)
        assert k.metadata[EVIDENCE_USED] is False


def test_drop_irrelevant_off_keeps_everything_in_score_order() -> None:
    kept = _run(RerankSettings(drop_irrelevant=False))
    assert [k.index for k in kept] == ORDER_ALL
    for k in kept:
        assert k.content == expected_body(k.index)
        assert k.metadata == expected_metadata(k.index)


def test_incomplete_or_missing_evidence_keeps_original() -> None:
    kept = {k.index: k for k in _run(RerankSettings())}
    for i in (2, 3):
        assert kept[i].content == TEXTS[i]
        assert kept[i].metadata[EVIDENCE_USED] is False
        assert ORIGINAL_CONTENT not in kept[i].metadata


@pytest.mark.parametrize(
    ("top_n", "threshold", "expected"),
    [
        (2, None, [1, 4]),
        (None, 0.65, [1, 4, 2]),
        (3, 0.75, [1, 4]),
        (5, None, [1, 4, 2, 3]),  # the 5th (index 5) is irrelevant: dropped after the cut
        (1, 0.95, []),
    ],
)
def test_top_n_and_threshold(top_n: int | None, threshold: float | None, expected: list[int]) -> None:
    fake = FakeReranker()
    kept = _run(RerankSettings(top_n=top_n, score_threshold=threshold), fake)
    assert [k.index for k in kept] == expected
    assert fake.calls[0][2] == {"top_n": top_n, "score_threshold": threshold, "evidence": True}


class _IgnoresLimits(FakeReranker):
    """A protocol reranker that ignores top_n/score_threshold and returns results unsorted."""

    def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
        results = super().rerank(query, documents, evidence=kwargs.get("evidence", True))
        return list(reversed(results))


def test_rules_enforced_even_if_reranker_ignores_them() -> None:
    kept = _run(RerankSettings(top_n=2, score_threshold=0.5), _IgnoresLimits())
    assert [k.index for k in kept] == [1, 4]


def test_every_document_accounted_for() -> None:
    kept = _run(RerankSettings(drop_irrelevant=False))
    assert sorted(k.index for k in kept) == list(range(len(TEXTS)))


def test_invalid_result_indices_raise() -> None:
    bad = [PrismResult(index=7, score=0.5, logit=0.0, relevant=True)]
    with pytest.raises(ValueError, match="invalid or repeated index 7"):
        build_kept_documents(bad, ["a"], [None], RerankSettings())
    dup = [PrismResult(0, 0.5, 0.0, True), PrismResult(0, 0.4, 0.0, True)]
    with pytest.raises(ValueError, match="repeated"):
        build_kept_documents(dup, ["a", "b"], [None, None], RerankSettings())
    with pytest.raises(ValueError, match="metadata"):
        build_kept_documents([], ["a"], [], RerankSettings())


def test_does_not_mutate_inputs() -> None:
    metas = [metadata(i) for i in range(6)]
    texts = list(TEXTS)
    before = copy.deepcopy((texts, metas))
    kept = rerank_texts(FakeReranker(), QUERY, texts, metas, RerankSettings())
    kept[0].metadata["nested"]["tags"].append("changed")
    assert (texts, metas) == before


def test_empty_input_does_not_touch_engine() -> None:
    fake = FakeReranker()
    assert rerank_texts(fake, QUERY, [], [], RerankSettings()) == []
    assert fake.calls == []
    assert not fake.loaded


async def test_async_uses_arerank() -> None:
    class Spy(FakeReranker):
        async_calls = 0

        async def arerank(self, *args: Any, **kwargs: Any) -> list[PrismResult]:
            self.async_calls += 1
            return await super().arerank(*args, **kwargs)

    spy = Spy()
    kept = await arerank_texts(spy, QUERY, TEXTS, [metadata(i) for i in range(6)], RerankSettings())
    assert [k.index for k in kept] == ORDER_RELEVANT
    assert spy.async_calls == 1
    assert await arerank_texts(spy, QUERY, [], [], RerankSettings()) == []
    assert spy.async_calls == 1


# --- engine resolution -----------------------------------------------------------------------------


class _SharedSpy:
    """Stands in for prism_core.PrismReranker: counts shared() look-ups, one instance per config."""

    instances: ClassVar[dict[Any, Any]] = {}
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> _SharedSpy:
        self.loads += 1
        return self

    @classmethod
    def shared(cls, model: str, **options: Any) -> _SharedSpy:
        cls.calls.append((model, options))
        key = (model, tuple(sorted(options.items())))
        return cls.instances.setdefault(key, cls())


@pytest.fixture
def shared_spy(monkeypatch: pytest.MonkeyPatch) -> type[_SharedSpy]:
    import prism_core

    _SharedSpy.instances = {}
    _SharedSpy.calls = []
    monkeypatch.setattr(prism_core, "PrismReranker", _SharedSpy, raising=False)
    monkeypatch.setattr(prism_core, "DEFAULT_MODEL", "default/model", raising=False)
    return _SharedSpy


def test_resolver_uses_shared_lazily_and_caches(shared_spy: type[_SharedSpy]) -> None:
    resolver = EngineResolver()
    assert not resolver.resolved
    engine = resolver.get("m", None, {"device": "cpu"})
    assert resolver.resolved
    assert shared_spy.calls == [("m", {"device": "cpu"})]
    assert resolver.get("m", None, {"device": "cpu"}) is engine
    assert len(shared_spy.calls) == 1  # cached
    other = resolver.get("m2", None, {})
    assert other is not engine  # re-resolved after a config change
    assert resolver.get(None, None, {}) is shared_spy.instances[("default/model", ())]
    assert engine.loads == 0  # get() never loads


def test_resolver_warm_up_loads(shared_spy: type[_SharedSpy]) -> None:
    engine = EngineResolver().warm_up("m", None, {})
    assert isinstance(engine, _SharedSpy)
    assert engine.loads == 1


def test_resolver_returns_custom_reranker_untouched(shared_spy: type[_SharedSpy]) -> None:
    fake = FakeReranker()
    assert EngineResolver().get(None, fake, {}) is fake
    assert shared_spy.calls == []
    EngineResolver().warm_up(None, fake, {})
    assert fake.loaded


def test_adapters_configured_alike_share_one_engine(shared_spy: type[_SharedSpy]) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    from prism_integrations.haystack import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor

    torch = pytest.importorskip("torch")
    a = PrismDocumentCompressor(model="m", dtype=torch.bfloat16, max_new_tokens=8)
    b = PrismNodePostprocessor(model="m", dtype="bfloat16", max_new_tokens=8)
    c = PrismRanker(model="m", dtype="bfloat16", max_new_tokens=8)
    assert shared_spy.calls == []  # constructing looks nothing up
    c.warm_up()
    assert a.engine is b.engine is c.engine
    assert shared_spy.calls[0] == ("m", {"dtype": "bfloat16", "max_new_tokens": 8})
    assert len(shared_spy.instances) == 1


# --- package ---------------------------------------------------------------------------------------


def test_package_lazy_exports() -> None:
    import prism_integrations

    for name, module in [
        ("PrismDocumentCompressor", "langchain_core"),
        ("PrismNodePostprocessor", "llama_index.core"),
        ("PrismRanker", "haystack"),
    ]:
        pytest.importorskip(module)
        assert getattr(prism_integrations, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = prism_integrations.Nope  # type: ignore[attr-defined]


def test_common_imports_no_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    for top in ("langchain_core", "llama_index", "haystack"):
        for name in list(sys.modules):
            if name == top or name.startswith(top + "."):
                monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "prism_integrations._common")
    module = importlib.import_module("prism_integrations._common")
    assert isinstance(module, types.ModuleType)


# --- the tiny real model (fixture from the lead's tests/conftest.py) -------------------------------


@pytest.mark.slow
def test_three_adapters_share_one_loaded_engine(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three adapters of the three frameworks configured alike share one PrismReranker: weights load once."""
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    from _adapter_cases import tiny_model_path
    from haystack import Document as HaystackDocument
    from langchain_core.documents import Document as LangChainDocument
    from llama_index.core.schema import NodeWithScore, TextNode

    import prism_core.runtime.loading as loading
    from prism_core import PrismReranker
    from prism_integrations.haystack import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor

    path = tiny_model_path(request)
    # A clean slate, so that models loaded by other tests do not hide this test's load.
    monkeypatch.setattr(PrismReranker, "_shared", {})
    monkeypatch.setattr(loading.registry, "_models", {})
    monkeypatch.setattr(loading.registry, "_loading", {})
    loads: list[str] = []
    real_load = loading.load_model_and_tokenizer

    def counting_load(model: str, device: Any, dtype: Any) -> tuple[Any, Any]:
        loads.append(model)
        return real_load(model, device, dtype)

    monkeypatch.setattr(loading, "load_model_and_tokenizer", counting_load)

    options: dict[str, Any] = {"device": "cpu", "max_new_tokens": 8}
    compressor = PrismDocumentCompressor(model=path, **options)
    postprocessor = PrismNodePostprocessor(model=path, **options)
    ranker = PrismRanker(model=path, **options)
    assert loads == []  # constructing loads nothing

    texts = TEXTS[:3]
    compressor.compress_documents([LangChainDocument(page_content=t) for t in texts], QUERY)
    postprocessor.postprocess_nodes([NodeWithScore(node=TextNode(text=t)) for t in texts], query_str=QUERY)
    ranker.warm_up()
    ranker.run(query=QUERY, documents=[HaystackDocument(content=t) for t in texts])

    assert len(loads) == 1
    engine = compressor.engine
    assert isinstance(engine, PrismReranker) and engine.is_loaded
    assert engine is postprocessor.engine is ranker.engine
    assert engine is PrismReranker.shared(path, **options)
