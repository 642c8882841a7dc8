"""The framework-free rules in prism_integrations._common, and what all three adapters share."""

from __future__ import annotations

import collections
import copy
import dataclasses
import importlib
import logging
import sys
import threading
import types
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prism_core import registry
from prism_core.config import EngineConfig
from prism_core.errors import UnknownBackendError
from prism_core.protocol import SCORE_ONLY, Capabilities
from prism_core.results import PrismResult
from prism_integrations._common import (
    CONTRIBUTION,
    DEFAULT_ADD_CONTRIBUTION,
    DEFAULT_DROP_IRRELEVANT,
    DEFAULT_GROUNDED_ONLY,
    DEFAULT_KEEP_ORIGINAL,
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_TOP_N,
    DEFAULT_USE_EVIDENCE,
    EVIDENCE_USED,
    ORIGINAL_CONTENT,
    OUR_METADATA_KEYS,
    RELEVANCE_SCORE,
    EngineResolver,
    EngineSpec,
    Item,
    Ranking,
    RerankSettings,
    arerank_items,
    build_kept_documents,
    check_items,
    check_rule_options,
    copy_object,
    fold_adapter_input,
    merge_metadata,
    missing_framework_error,
    rerank_items,
    safe_copy,
    split_engine_input,
)
from tests._adapter_cases import (
    BACKEND_NAMES,
    OPTION_TABLE,
    ORDER_ALL,
    ORDER_RELEVANT,
    QUERY,
    TEXTS,
    check_hostile_copy,
    count_calls,
    expected_body,
    expected_metadata,
    expected_schema_metadata,
    hostile_metadata,
    linked_copy,
    metadata,
    shared_containers,
    tiny_backend,
)
from tests.fakes import FakeReranker, ScoreOnlyFakeReranker


def _items() -> list[Item]:
    return [Item(t, metadata(i)) for i, t in enumerate(TEXTS)]


def _run(settings: RerankSettings, reranker: FakeReranker | None = None) -> Ranking:
    resolver = EngineResolver(reranker=reranker or FakeReranker())
    return rerank_items(resolver, QUERY, _items(), settings, adapter="Test")


# --- options ---------------------------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    assert (DEFAULT_TOP_N, DEFAULT_SCORE_THRESHOLD) == (None, None)
    assert (
        DEFAULT_USE_EVIDENCE,
        DEFAULT_ADD_CONTRIBUTION,
        DEFAULT_KEEP_ORIGINAL,
        DEFAULT_DROP_IRRELEVANT,
        DEFAULT_GROUNDED_ONLY,
    ) == (
        True,
        True,
        True,
        True,
        True,
    )
    assert OUR_METADATA_KEYS[:4] == (RELEVANCE_SCORE, CONTRIBUTION, EVIDENCE_USED, ORIGINAL_CONTENT)
    assert OUR_METADATA_KEYS == (
        "relevance_score",
        "contribution",
        "evidence_used",
        "original_content",
        "grounding",
        "unsupported",
        "evidence_spans",
        "evidence_rejected",
    )


@pytest.mark.parametrize("bad", [0, -3])
def test_top_n_below_one_is_refused_by_name(bad: int) -> None:
    with pytest.raises(ValueError, match=f"top_n must be >= 1, got {bad}"):
        check_rule_options({"top_n": bad})
    with pytest.raises(ValueError, match=f"top_k must be >= 1, got {bad}"):
        check_rule_options({"top_k": bad}, top_n_name="top_k")
    with pytest.raises(ValueError, match=f"top_k must be >= 1, got {bad}"):
        RerankSettings(top_n=bad, top_n_name="top_k")


@pytest.mark.parametrize("bad", [1.5, "3", True, np.bool_(True)])
def test_top_n_non_int_is_refused_not_coerced(bad: Any) -> None:
    with pytest.raises(TypeError, match="top_n must be an int"):
        check_rule_options({"top_n": bad})


def test_numpy_numbers_are_accepted_as_plain_python() -> None:
    out = check_rule_options(
        {"top_n": np.int64(2), "score_threshold": np.float32(0.5), "use_evidence": np.bool_(False)}
    )
    assert out == {"top_n": 2, "score_threshold": 0.5, "use_evidence": False}
    assert type(out["top_n"]) is int and type(out["score_threshold"]) is float
    assert type(out["use_evidence"]) is bool


@pytest.mark.parametrize("bad", [-0.01, 1.01, 5, float("nan")])
def test_threshold_range(bad: float) -> None:
    with pytest.raises(ValueError, match=r"score_threshold must be in \[0, 1\]"):
        check_rule_options({"score_threshold": bad})


def test_threshold_accepts_and_refuses_strings() -> None:
    assert check_rule_options({"score_threshold": None}) == {"score_threshold": None}
    assert check_rule_options({"score_threshold": 0}) == {"score_threshold": 0.0}
    assert check_rule_options({"score_threshold": 1}) == {"score_threshold": 1.0}
    with pytest.raises(TypeError, match="score_threshold must be a number"):
        check_rule_options({"score_threshold": "0.5"})


@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_flags_must_be_bools(bad: Any) -> None:
    for name in ("use_evidence", "add_contribution", "keep_original", "drop_irrelevant", "grounded_only"):
        with pytest.raises(TypeError, match=f"{name} must be a bool"):
            check_rule_options({name: bad})


def test_settings_validate_and_generate_only_when_useful() -> None:
    with pytest.raises(ValueError, match="top_n must be >= 1, got 0"):
        RerankSettings(top_n=0)
    with pytest.raises(ValueError, match="score_threshold"):
        RerankSettings(score_threshold=2.0)
    can = Capabilities(verdict=True, evidence=True)
    assert RerankSettings(top_n=2, score_threshold=0.5).engine_kwargs(can) == {
        "top_n": 2,
        "score_threshold": 0.5,
        "evidence": True,
    }
    for use_evidence, add_contribution, expected in [
        (True, True, True),
        (True, False, True),
        (False, True, True),
        (False, False, False),
    ]:
        settings = RerankSettings(use_evidence=use_evidence, add_contribution=add_contribution)
        assert settings.generate(can) is expected
        assert settings.engine_kwargs(can)["evidence"] is expected
        assert settings.generate(SCORE_ONLY) is False  # a score-only backend never generates


def test_missing_framework_error_names_extra() -> None:
    err = missing_framework_error("Haystack", "haystack", "prism_integrations.haystack")
    assert isinstance(err, ImportError)
    assert 'pip install "prism-integrations[haystack]"' in str(err)


# --- the engine configuration ----------------------------------------------------------------------


def test_spec_normalises_and_round_trips() -> None:
    torch = pytest.importorskip("torch")
    spec = EngineSpec.create(
        "org/prism", "prism", dtype=torch.bfloat16, device=torch.device("cpu"), max_new_tokens=np.int64(8)
    )
    assert spec.to_dict() == {
        "model": "org/prism",
        "backend": "prism",
        "device": "cpu",
        "dtype": "bfloat16",
        "max_new_tokens": 8,
    }
    assert type(spec.to_dict()["max_new_tokens"]) is int
    assert EngineSpec.from_dict(spec.to_dict()) == spec
    config = spec.resolve()
    assert config == EngineConfig.create("org/prism", "prism", device="cpu", dtype="bf16", max_new_tokens=8)
    assert spec.to_dict() == config.to_dict()  # the same dict as EngineConfig's when both are set
    assert EngineSpec.from_dict(config) == spec
    assert EngineSpec.create().to_dict() == {"model": None, "backend": None}
    assert EngineSpec.create("m", device=None).to_dict() == {"model": "m", "backend": None}


def test_spec_refuses_bad_options_by_name() -> None:
    with pytest.raises(TypeError, match=r"unknown engine option.*top_n.*known: device"):
        EngineSpec.create("m", top_n=3)
    with pytest.raises(UnknownBackendError, match="unknown backend 'nope'; known backends: prism"):
        EngineSpec.create("m", "nope")
    with pytest.raises(ValueError, match="dtype must be"):
        EngineSpec.create("m", dtype="int8")
    with pytest.raises(TypeError, match="max_length must be an int"):
        EngineSpec.create("m", max_length="512")
    with pytest.raises(TypeError, match="engine_config must be a mapping"):
        EngineSpec.from_dict(["m"])  # type: ignore[arg-type]


def test_spec_resolves_backend_and_default_model_on_use_only(monkeypatch: pytest.MonkeyPatch) -> None:
    detected: list[str] = []

    def fake_detect(model: str) -> str:
        detected.append(model)
        return "qwen3-reranker"

    monkeypatch.setattr(registry, "detect_backend", fake_detect)
    spec = EngineSpec.create("org/some-reranker")
    assert detected == []  # creating tells nothing (telling a hub model's backend reads the Hub)
    assert spec.resolve().backend == "qwen3-reranker" and detected == ["org/some-reranker"]
    from prism_core import DEFAULT_MODEL
    from prism_core.backends.qwen3_reranker import DEFAULT_MODEL as QWEN3_DEFAULT

    assert EngineSpec.create().resolve() == EngineConfig.create(DEFAULT_MODEL, "prism")
    assert EngineSpec.create(backend="qwen3-reranker").resolve().model == QWEN3_DEFAULT
    assert EngineSpec.create(backend="qwen3-reranker").describe() == QWEN3_DEFAULT
    assert len(detected) == 1  # no model, or an explicit backend: nothing to detect


def test_spec_refuses_options_the_backend_does_not_take() -> None:
    spec = EngineSpec.create("m", "prism", instruction="Find code")
    with pytest.raises(TypeError, match="instruction do not apply to backend 'prism'"):
        spec.resolve()
    assert (
        EngineSpec.create("m", "qwen3-reranker", instruction="Find code").resolve().instruction == "Find code"
    )


def test_split_engine_input() -> None:
    rest, spec, reranker = split_engine_input({"model": "m", "backend": "prism", "device": "cpu", "top_n": 3})
    assert rest == {"top_n": 3} and reranker is None
    assert spec == EngineSpec.create("m", "prism", device="cpu")
    rest, spec, reranker = split_engine_input({"engine_config": {"model": "m", "backend": None}})
    assert spec == EngineSpec.create("m") and rest == {}
    fake = FakeReranker()
    assert split_engine_input({"reranker": fake}) == ({}, None, fake)
    assert split_engine_input({})[1] == EngineSpec.create()  # nothing given: the default model
    with pytest.raises(ValueError, match="not both"):
        split_engine_input({"model": "m", "reranker": fake})
    with pytest.raises(ValueError, match=r"Engine options \(backend, device\) apply only with `model`"):
        split_engine_input({"reranker": fake, "backend": "prism", "device": "cpu"})
    with pytest.raises(ValueError, match="engine_config` or `model`"):
        split_engine_input({"engine_config": {"model": "m"}, "max_length": 512})
    with pytest.raises(TypeError, match=r"Reranker protocol.*got object"):
        split_engine_input({"reranker": object()})


def test_fold_adapter_input() -> None:
    out = fold_adapter_input({"model": "m", "top_n": np.int64(2), "use_evidence": False})
    assert out == {
        "top_n": 2,
        "use_evidence": False,
        "engine_config": EngineSpec.create("m"),
        "reranker": None,
    }
    with pytest.raises(TypeError, match="top_n must be an int"):
        fold_adapter_input({"top_n": "3"})


# --- the engine look-up ----------------------------------------------------------------------------


class _Engine(FakeReranker):
    def __init__(self, config: EngineConfig) -> None:
        super().__init__()
        self.config = config
        self.loads = 0

    def load(self) -> _Engine:
        self.loads += 1
        return self


@pytest.fixture
def get_engine_spy(monkeypatch: pytest.MonkeyPatch) -> list[EngineConfig]:
    """Replace the process-wide engine cache by a spy: one :class:`_Engine` per configuration key."""
    calls: list[EngineConfig] = []
    engines: dict[Any, _Engine] = {}

    def fake_get_engine(config: EngineConfig) -> _Engine:
        calls.append(config)
        return engines.setdefault(config.key(), _Engine(config))

    monkeypatch.setattr(registry, "get_engine", fake_get_engine)
    return calls


def test_resolver_looks_up_lazily_once(get_engine_spy: list[EngineConfig]) -> None:
    resolver = EngineResolver(EngineSpec.create("m", "prism", device="cpu"))
    assert not resolver.ready and get_engine_spy == []
    engine = resolver.get()
    assert resolver.ready
    assert get_engine_spy == [EngineConfig.create("m", "prism", device="cpu")]
    assert resolver.get() is engine and len(get_engine_spy) == 1  # cached
    assert isinstance(engine, _Engine) and engine.loads == 0  # get() never loads
    assert resolver.warm_up() is engine and engine.loads == 1


def test_resolver_returns_custom_reranker_untouched(get_engine_spy: list[EngineConfig]) -> None:
    fake = FakeReranker()
    resolver = EngineResolver(reranker=fake)
    assert resolver.get() is fake and resolver.describe() == "FakeReranker"
    resolver.warm_up()
    assert fake.loaded and get_engine_spy == []
    with pytest.raises(ValueError, match="exactly one"):
        EngineResolver()


def test_no_op_generation_options_are_said_once(caplog: pytest.LogCaptureFixture) -> None:
    resolver = EngineResolver(reranker=ScoreOnlyFakeReranker())
    with caplog.at_level(logging.INFO, logger="prism_integrations"):
        for _ in range(3):
            rerank_items(resolver, QUERY, _items(), RerankSettings(), adapter="Test")
    said = [r for r in caplog.records if "only scores" in r.getMessage()]
    assert len(said) == 1 and "use_evidence and add_contribution have no effect" in said[0].getMessage()
    caplog.clear()
    quiet = EngineResolver(reranker=ScoreOnlyFakeReranker())
    with caplog.at_level(logging.INFO, logger="prism_integrations"):
        rerank_items(
            quiet, QUERY, _items(), RerankSettings(use_evidence=False, add_contribution=False), adapter="T"
        )
    assert not [r for r in caplog.records if "only scores" in r.getMessage()]  # nothing asked, nothing said


def test_adapters_configured_alike_share_one_engine(get_engine_spy: list[EngineConfig]) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    torch = pytest.importorskip("torch")
    from prism_integrations.haystack import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor

    a = PrismDocumentCompressor(model="m", backend="prism", dtype=torch.bfloat16, max_new_tokens=8)
    b = PrismNodePostprocessor(model="m", backend="prism", dtype="bfloat16", max_new_tokens=np.int64(8))
    c = PrismRanker(model="m", backend="prism", dtype="bf16", max_new_tokens=8)
    assert get_engine_spy == []  # constructing looks nothing up
    assert a.engine_config == b.engine_config == c.engine_config
    c.warm_up()
    assert a.engine is b.engine is c.engine
    assert get_engine_spy[0] == EngineConfig.create("m", "prism", dtype="bfloat16", max_new_tokens=8)
    assert {cfg.key() for cfg in get_engine_spy} == {get_engine_spy[0].key()}


def test_adapters_copy_and_pickle_with_their_configuration(get_engine_spy: list[EngineConfig]) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    import pickle

    from prism_integrations.haystack import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor

    for cls in (PrismDocumentCompressor, PrismNodePostprocessor, PrismRanker):
        adapter = cls(model="m", backend="prism", max_length=512)
        for clone in (copy.deepcopy(adapter), pickle.loads(pickle.dumps(adapter))):
            assert clone.engine_config == adapter.engine_config
            assert clone.engine is adapter.engine  # the engine is shared, never copied
        fake = FakeReranker()
        with_object = cls(reranker=fake)
        clone = copy.deepcopy(with_object)
        assert clone.engine is clone.reranker  # the copy calls its own copy of the object


# --- copying ---------------------------------------------------------------------------------------


def test_merge_metadata_order_and_overwrite_and_deep_copy() -> None:
    caller = {"relevance_score": 0.1, "a": {"deep": [1]}, "z": 2}
    before = copy.deepcopy(caller)
    merged = merge_metadata(caller, {"relevance_score": 0.9, "contribution": "c"})
    assert list(merged) == ["a", "z", "relevance_score", "contribution"]
    assert merged["relevance_score"] == 0.9
    merged["a"]["deep"].append(2)
    assert caller == before
    assert merge_metadata(None, {"x": 1}) == {"x": 1}


def test_safe_copy_keeps_uncopyable_values_and_copies_every_container(tmp_path: Path) -> None:
    hostile = hostile_metadata(tmp_path)
    with closing(hostile.file):
        with pytest.raises(TypeError):
            copy.deepcopy(hostile.meta)  # what crashed the adapters before
        copied = safe_copy(hostile.meta)
        check_hostile_copy(copied, hostile)
        assert list(hostile.generator) == [0, 1, 2]  # the generator was not consumed by copying


def test_safe_copy_subclasses_models_and_cycles() -> None:
    pydantic = pytest.importorskip("pydantic")
    lock = threading.Lock()

    class Model(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        lock: Any
        items: list[int]

    ordered = collections.OrderedDict(a=[1], lock=lock)
    cyclic: list[Any] = [lock]
    cyclic.append(cyclic)
    value = {"ordered": ordered, "model": Model(lock=lock, items=[1]), "cyclic": cyclic}
    copied = safe_copy(value)
    assert type(copied["ordered"]) is collections.OrderedDict and copied["ordered"] == ordered
    assert copied["model"].lock is lock and copied["model"].items == [1]
    assert copied["cyclic"][1] is copied["cyclic"] and copied["cyclic"][0] is lock
    assert shared_containers(value, copied) == []


def test_copy_object_changes_and_copies() -> None:
    @dataclasses.dataclass
    class Doc:
        content: str | None
        meta: dict[str, Any] = dataclasses.field(default_factory=dict)
        embedding: list[float] | None = None

    lock = threading.Lock()
    doc = Doc("a", {"lock": lock, "tags": ["x"]}, [0.1, 0.2])
    new = copy_object(doc, content="b")
    assert (new.content, new.meta["tags"], new.embedding) == ("b", ["x"], [0.1, 0.2])
    assert new.meta["lock"] is lock
    assert shared_containers(doc, new) == []
    with pytest.raises(TypeError, match="cannot copy a str"):
        copy_object("text")


# --- turning results into kept documents -----------------------------------------------------------


def test_default_rules() -> None:
    ranking = _run(RerankSettings())
    assert [k.index for k in ranking.kept] == ORDER_RELEVANT and ranking.unscored == []
    for k in ranking.kept:
        assert k.content == expected_body(k.index)
        assert k.metadata == expected_metadata(k.index)
        assert list(k.metadata) == list(expected_metadata(k.index))
        assert k.added_keys == tuple(key for key in OUR_METADATA_KEYS if key in k.metadata)
        assert k.evidence_used is (k.index in (1, 4))


def test_keep_original_off() -> None:
    for k in _run(RerankSettings(keep_original=False)).kept:
        assert k.metadata == expected_metadata(k.index, keep_original=False)
        assert ORIGINAL_CONTENT not in k.metadata


def test_use_evidence_off_keeps_bodies_and_contribution() -> None:
    fake = FakeReranker()
    kept = _run(RerankSettings(use_evidence=False), fake).kept
    assert [k.index for k in kept] == ORDER_RELEVANT
    assert fake.calls[0][2]["evidence"] is True  # generated for the contribution
    for k in kept:
        assert k.content == TEXTS[k.index]
        assert k.metadata == expected_metadata(k.index, use_evidence=False)
        assert k.metadata[EVIDENCE_USED] is False


def test_add_contribution_off_swaps_but_leaves_contribution_none() -> None:
    kept = _run(RerankSettings(add_contribution=False)).kept
    for k in kept:
        assert k.content == expected_body(k.index)
        assert k.metadata[CONTRIBUTION] is None
        assert list(k.metadata) == list(expected_metadata(k.index))  # the key stays: one schema


def test_both_off_is_a_scoring_pass() -> None:
    fake = FakeReranker()
    kept = _run(RerankSettings(use_evidence=False, add_contribution=False), fake).kept
    assert fake.calls[0][2] == {"top_n": None, "score_threshold": None, "evidence": False}
    assert [k.index for k in kept] == ORDER_RELEVANT
    for k in kept:
        assert k.content == TEXTS[k.index]
        assert k.metadata == expected_schema_metadata(k.index)


def test_score_only_backend_gives_the_same_schema() -> None:
    fake = ScoreOnlyFakeReranker()
    kept = _run(RerankSettings(), fake).kept
    assert fake.calls[0][2]["evidence"] is False  # never asked to generate
    assert [k.index for k in kept] == ORDER_RELEVANT
    for k in kept:
        assert k.content == TEXTS[k.index]
        assert k.metadata == expected_schema_metadata(k.index)
        assert list(k.metadata) == list(expected_schema_metadata(k.index))


def test_drop_irrelevant_off_keeps_everything_in_score_order() -> None:
    kept = _run(RerankSettings(drop_irrelevant=False)).kept
    assert [k.index for k in kept] == ORDER_ALL
    for k in kept:
        assert k.content == expected_body(k.index)
        assert k.metadata == expected_metadata(k.index)


def test_incomplete_or_missing_evidence_keeps_original() -> None:
    kept = {k.index: k for k in _run(RerankSettings()).kept}
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
    ranking = _run(RerankSettings(top_n=top_n, score_threshold=threshold), fake)
    assert [k.index for k in ranking.kept] == expected
    assert fake.calls[0][2] == {"top_n": top_n, "score_threshold": threshold, "evidence": True}


class _IgnoresLimits(FakeReranker):
    """A protocol reranker that ignores top_n/score_threshold and returns results unsorted."""

    def rerank(self, query: str, documents: Any, **kwargs: Any) -> list[PrismResult]:
        results = super().rerank(query, documents, evidence=kwargs.get("evidence", True))
        return list(reversed(results))


def test_rules_enforced_even_if_reranker_ignores_them() -> None:
    ranking = _run(RerankSettings(top_n=2, score_threshold=0.5), _IgnoresLimits())
    assert [k.index for k in ranking.kept] == [1, 4]


def test_every_document_accounted_for() -> None:
    kept = _run(RerankSettings(drop_irrelevant=False)).kept
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
    items = _items()
    before = copy.deepcopy(items)
    ranking = rerank_items(
        EngineResolver(reranker=FakeReranker()), QUERY, items, RerankSettings(), adapter="T"
    )
    ranking.kept[0].metadata["nested"]["tags"].append("changed")
    assert items == before


def test_empty_input_does_not_touch_engine() -> None:
    fake = FakeReranker()
    assert rerank_items(EngineResolver(reranker=fake), QUERY, [], RerankSettings(), adapter="T") == Ranking()
    assert fake.calls == [] and not fake.loaded


# --- items without text, bad items, bad text ---------------------------------------------------------


def test_items_without_text_pass_through_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeReranker()
    items = _items()
    items.insert(2, Item(None, {"kind": "image"}))
    items.append(Item(None, None))
    with caplog.at_level(logging.WARNING, logger="prism_integrations"):
        ranking = rerank_items(
            EngineResolver(reranker=fake), QUERY, items, RerankSettings(top_n=2), adapter="T"
        )
    assert fake.calls[0][1] == TEXTS  # the engine saw only texts
    assert [k.index for k in ranking.kept] == [1, 5]  # caller positions (TEXTS[4] is at 5 now)
    assert ranking.unscored == [2, 7]  # not cut by top_n, in input order
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "2 of 8 documents have no text (documents[2], documents[7])" in warning


def test_only_items_without_text_touch_nothing() -> None:
    fake = FakeReranker()
    ranking = rerank_items(EngineResolver(reranker=fake), QUERY, [Item(None)], RerankSettings(), adapter="T")
    assert ranking == Ranking([], [0]) and fake.calls == []


def test_bad_text_and_query_are_named() -> None:
    resolver = EngineResolver(reranker=FakeReranker())
    items = [Item(None), Item("fine"), Item("bad \udcff surrogate")]
    with pytest.raises(ValueError, match=r"documents\[2\] holds text that cannot be encoded"):
        rerank_items(resolver, QUERY, items, RerankSettings(), adapter="T")
    with pytest.raises(ValueError, match="query must not be empty"):
        rerank_items(resolver, "  ", [Item("a")], RerankSettings(), adapter="T")
    with pytest.raises(TypeError, match="query must be a str"):
        rerank_items(resolver, None, [Item("a")], RerankSettings(), adapter="T")


def test_check_items_names_type_and_position() -> None:
    assert check_items(("a", "b"), str, "a str") == ["a", "b"]
    with pytest.raises(TypeError, match=r"^documents\[2\] must be a str, got int$"):
        check_items(["a", "b", 3], str, "a str")
    with pytest.raises(TypeError, match=r"^documents must be a list of strs, got str$"):
        check_items("ab", str, "a str")
    with pytest.raises(TypeError, match=r"^nodes must be a list of nodes, got dict$"):
        check_items({"a": 1}, str, "a node", "nodes")


async def test_async_uses_arerank() -> None:
    class Spy(FakeReranker):
        async_calls = 0

        async def arerank(self, *args: Any, **kwargs: Any) -> list[PrismResult]:
            self.async_calls += 1
            return await super().arerank(*args, **kwargs)

    spy = Spy()
    resolver = EngineResolver(reranker=spy)
    ranking = await arerank_items(resolver, QUERY, _items(), RerankSettings(), adapter="T")
    assert [k.index for k in ranking.kept] == ORDER_RELEVANT
    assert spy.async_calls == 1 and len(spy.calls) == 1
    assert await arerank_items(resolver, QUERY, [], RerankSettings(), adapter="T") == Ranking()
    assert spy.async_calls == 1


# --- the same option outcomes everywhere -----------------------------------------------------------


def _outcome(fn: Any) -> BaseException | None:
    try:
        fn()
    except (TypeError, ValueError) as exc:
        return exc
    return None


@pytest.mark.parametrize(("option", "value", "accepted"), OPTION_TABLE)
def test_options_are_accepted_or_refused_alike_everywhere(option: str, value: Any, accepted: bool) -> None:
    """LangChain, LlamaIndex, Haystack (init and run) and the engine agree on every value."""
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    from haystack import Document as HaystackDocument

    from prism_core import PrismReranker
    from prism_integrations.haystack import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor

    engine = PrismReranker("not/loaded")  # an accepted value returns [] for no documents: nothing loads
    engine_option = "evidence" if option == "use_evidence" else option
    haystack_option = "top_k" if option == "top_n" else option
    fake = FakeReranker()
    docs = [HaystackDocument(content=TEXTS[1])]
    outcomes: dict[str, BaseException | None] = {
        "engine": _outcome(lambda: engine.rerank(QUERY, [], **{engine_option: value})),
        "langchain": _outcome(lambda: PrismDocumentCompressor(reranker=fake, **{option: value})),
        "llama_index": _outcome(lambda: PrismNodePostprocessor(reranker=fake, **{option: value})),
        "haystack": _outcome(lambda: PrismRanker(reranker=fake, **{haystack_option: value})),
    }
    if option != "use_evidence":  # run() takes the two ranking limits as per-call overrides
        outcomes["haystack.run"] = _outcome(
            lambda: PrismRanker(reranker=fake).run(query=QUERY, documents=docs, **{haystack_option: value})
        )
    if accepted:
        assert outcomes == dict.fromkeys(outcomes), outcomes
        return
    reference = outcomes["engine"]
    assert reference is not None
    for where, exc in outcomes.items():
        assert isinstance(exc, type(reference)), f"{where}: {exc!r} vs engine {reference!r}"
        name = engine_option if where == "engine" else haystack_option if "haystack" in where else option
        expected = str(reference).replace(engine_option, name, 1)
        assert expected in str(exc), f"{where}: {exc} does not say {expected}"


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
    frameworks = ("langchain_core", "llama_index", "haystack")
    for top in frameworks:
        for name in list(sys.modules):
            if name == top or name.startswith(top + "."):
                monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, top, None)  # any import of the framework now raises ImportError
    for name in list(sys.modules):
        if name.startswith("prism_integrations._common"):
            monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("prism_integrations._common")
    importlib.import_module("prism_integrations._common.quality_annotate")
    assert isinstance(module, types.ModuleType)
    assert callable(module.rerank_items)
    loaded = [n for n in sys.modules if n.split(".")[0] in frameworks and sys.modules[n] is not None]
    assert loaded == [], f"framework modules imported by the framework-free code: {loaded}"


# --- the tiny real models (fixtures from tests/conftest.py and tests/adapters/conftest.py) -----------


def _three_adapters(model: str, options: dict[str, Any], **rules: Any) -> tuple[Any, Any, Any]:
    from prism_integrations.haystack import PrismRanker
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor

    top_k = {"top_k": rules.pop("top_n")} if "top_n" in rules else {}
    return (
        PrismDocumentCompressor(model=model, **options, **rules),
        PrismNodePostprocessor(model=model, **options, **rules),
        PrismRanker(model=model, **options, **rules, **top_k),
    )


def _run_three(adapters: tuple[Any, Any, Any], texts: list[str]) -> list[list[tuple[int, float]]]:
    """Run each adapter on ``texts``; return (input position, score) per returned item."""
    from haystack import Document as HaystackDocument
    from langchain_core.documents import Document as LangChainDocument
    from llama_index.core.schema import NodeWithScore, TextNode

    compressor, postprocessor, ranker = adapters
    lc = compressor.compress_documents(
        [LangChainDocument(page_content=t, id=str(i)) for i, t in enumerate(texts)], QUERY
    )
    li = postprocessor.postprocess_nodes(
        [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(texts)], query_str=QUERY
    )
    ranker.warm_up()
    hs = ranker.run(
        query=QUERY, documents=[HaystackDocument(content=t, id=str(i)) for i, t in enumerate(texts)]
    )
    return [
        [(int(d.id), d.metadata["relevance_score"]) for d in lc],
        [(int(n.node.node_id), n.score) for n in li],
        [(int(d.id), d.score) for d in hs["documents"]],
    ]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_three_adapters_load_weights_once_per_configuration(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """Three adapters of the three frameworks configured alike share one engine: weights load once."""
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    from prism_core.runtime.loading import registry as weights

    case = tiny_backend(request, backend)
    path = linked_copy(case.path, tmp_path / "checkpoint")  # a configuration no other test loaded
    options = {"device": "cpu", **case.options}
    adapters = _three_adapters(path, options, drop_irrelevant=False)
    before = weights.loads
    outputs = _run_three(adapters, TEXTS[:3])
    assert weights.loads - before == 1
    engine = adapters[0].engine
    assert engine is adapters[1].engine is adapters[2].engine
    assert engine is registry.load_reranker(path, **options)  # the process-wide engine
    assert (
        type(engine).__name__
        == {
            "prism": "PrismReranker",
            "qwen3-reranker": "Qwen3Reranker",
            "cross-encoder": "CrossEncoderReranker",
        }[backend]
    )
    assert outputs[0] == outputs[1] == outputs[2]  # one engine, one answer, whatever the framework
    assert sorted(i for i, _ in outputs[0]) == [0, 1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["langchain", "llama_index", "haystack"])
def test_scoring_only_adapters_generate_nothing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, framework: str
) -> None:
    """use_evidence=False and add_contribution=False: not one decode step on the tiny Prism model."""
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    from prism_core.runtime.decode_state import DecodeBatch

    case = tiny_backend(request, "prism")
    options = {"device": "cpu", **case.options}
    scored = registry.load_reranker(case.path, **options).score(QUERY, TEXTS)
    assert any(s > 0.5 for s in scored), (
        f"no relevant document on the tiny model, nothing to decode: {scored}"
    )
    position = {"langchain": 0, "llama_index": 1, "haystack": 2}[framework]
    quiet = _three_adapters(case.path, options, use_evidence=False, add_contribution=False)[position]
    loud = _three_adapters(case.path, options, use_evidence=False, add_contribution=True)[position]
    starts = count_calls(monkeypatch, DecodeBatch, "join")
    stats = quiet.engine.engine_loop.stats
    assert quiet.engine is loud.engine

    def run(adapter: Any) -> None:
        _run_three(_triple(adapter, position), TEXTS)

    steps = stats.decode_steps
    run(quiet)
    assert (len(starts), stats.decode_steps - steps) == (0, 0)
    run(loud)  # the positive control: the contribution needs generation
    assert len(starts) >= 1 and stats.decode_steps > steps


def _triple(adapter: Any, position: int) -> tuple[Any, Any, Any]:
    """Run only ``adapter``: the other two slots get no-op stand-ins."""

    class _Skip:
        def compress_documents(self, *a: Any, **k: Any) -> list[Any]:
            return []

        def postprocess_nodes(self, *a: Any, **k: Any) -> list[Any]:
            return []

        def warm_up(self) -> None:
            pass

        def run(self, *a: Any, **k: Any) -> dict[str, list[Any]]:
            return {"documents": []}

    slots: list[Any] = [_Skip(), _Skip(), _Skip()]
    slots[position] = adapter
    return slots[0], slots[1], slots[2]


def test_adapters_configured_alike_compare_equal() -> None:
    """Equality follows the configuration (issue 17: a fresh engine resolver each time made two
    identically configured adapters, or one and its round trip, compare unequal)."""
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from prism_integrations.langchain import PrismDocumentCompressor
    from prism_integrations.llama_index import PrismNodePostprocessor

    a = PrismDocumentCompressor(model="org/x", backend="prism", top_n=3)
    assert a == PrismDocumentCompressor(model="org/x", backend="prism", top_n=3)
    assert a == PrismDocumentCompressor.model_validate(a.model_dump())
    assert a != PrismDocumentCompressor(model="org/x", backend="prism", top_n=4)
    x = PrismNodePostprocessor(model="org/x", backend="prism", top_n=3)
    assert x == PrismNodePostprocessor(model="org/x", backend="prism", top_n=3)
    assert x != PrismNodePostprocessor(model="org/x", backend="prism", top_n=2)
    assert x != PrismNodePostprocessor(model="org/y", backend="prism", top_n=3)
