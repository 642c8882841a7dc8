"""PrismRanker: the adapter rules in Haystack, serialisation, and a real Haystack pipeline."""

from __future__ import annotations

import copy
import importlib
import inspect
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network from tests
pytest.importorskip("haystack")

from _adapter_cases import (
    ORDER_ALL,
    ORDER_RELEVANT,
    QUERY,
    TEXTS,
    AsyncSpy,
    expected_body,
    expected_metadata,
    framework_missing,
    metadata,
    tiny_model_path,
)
from fakes import FakeReranker
from haystack import Document, Pipeline
from haystack.components.builders import PromptBuilder
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.core.errors import SerializationError
from haystack.document_stores.in_memory import InMemoryDocumentStore

from prism_integrations.haystack import PrismRanker


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Haystack sends pipeline telemetry when it was imported without the env var set."""
    import haystack.telemetry._telemetry as telemetry

    monkeypatch.setattr(telemetry, "telemetry", None)
    yield


def _loads(text: str) -> Pipeline:
    """``Pipeline.loads`` trusting our module (recent Haystack has a deserialisation allowlist)."""
    if "allowed_modules" in inspect.signature(Pipeline.loads).parameters:
        return Pipeline.loads(text, allowed_modules=["prism_integrations.haystack"])
    return Pipeline.loads(text)


def _docs() -> list[Document]:
    return [Document(id=f"id-{i}", content=t, meta=metadata(i), score=0.5) for i, t in enumerate(TEXTS)]


def _index(doc: Document) -> int:
    return int(doc.id.removeprefix("id-"))


def _run(run_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> tuple[list[Document], FakeReranker]:
    fake = FakeReranker()
    out = PrismRanker(reranker=fake, **kwargs).run(query=QUERY, documents=_docs(), **(run_kwargs or {}))
    return out["documents"], fake


# --- rules -----------------------------------------------------------------------------------------


def test_reorder_swap_metadata_and_score() -> None:
    out, fake = _run()
    assert [_index(d) for d in out] == ORDER_RELEVANT
    for d in out:
        i = _index(d)
        assert d.content == expected_body(i)
        assert d.meta == expected_metadata(i)
        assert list(d.meta) == list(expected_metadata(i))
        assert d.score == d.meta["relevance_score"]
    assert fake.calls[0][:2] == (QUERY, TEXTS)


def test_keep_original_off() -> None:
    out, _ = _run(keep_original=False)
    for d in out:
        assert d.meta == expected_metadata(_index(d), keep_original=False)


def test_use_evidence_off() -> None:
    out, _ = _run(use_evidence=False)
    assert [_index(d) for d in out] == ORDER_RELEVANT
    for d in out:
        assert d.content == TEXTS[_index(d)]
        assert d.meta == expected_metadata(_index(d), use_evidence=False)


def test_drop_irrelevant_off() -> None:
    out, _ = _run(drop_irrelevant=False)
    assert [_index(d) for d in out] == ORDER_ALL
    for d in out:
        assert d.content == expected_body(_index(d))


def test_incomplete_or_missing_evidence_keeps_original() -> None:
    by_index = {_index(d): d for d in _run()[0]}
    for i in (2, 3):
        assert by_index[i].content == TEXTS[i]
        assert by_index[i].meta["evidence_used"] is False


@pytest.mark.parametrize(
    ("init", "run", "expected", "sent"),
    [
        ({"top_k": 2}, {}, [1, 4], (2, None)),
        ({"score_threshold": 0.65}, {}, [1, 4, 2], (None, 0.65)),
        ({"top_k": 3, "score_threshold": 0.75}, {}, [1, 4], (3, 0.75)),
        ({"top_k": 3}, {"top_k": 1}, [1], (1, None)),  # run-time overrides init
        ({"score_threshold": 0.85}, {"score_threshold": 0.65}, [1, 4, 2], (None, 0.65)),
        ({"top_k": 1, "score_threshold": 0.1}, {"top_k": 2}, [1, 4], (2, 0.1)),
    ],
)
def test_top_k_and_threshold(
    init: dict[str, Any], run: dict[str, Any], expected: list[int], sent: tuple[Any, Any]
) -> None:
    out, fake = _run(run, **init)
    assert [_index(d) for d in out] == expected
    assert (fake.calls[0][2]["top_n"], fake.calls[0][2]["score_threshold"]) == sent


def test_run_time_validation() -> None:
    ranker = PrismRanker(reranker=FakeReranker())
    with pytest.raises(ValueError, match="top_k must be >= 1, got 0"):
        ranker.run(query=QUERY, documents=_docs(), top_k=0)
    with pytest.raises(ValueError, match="score_threshold"):
        ranker.run(query=QUERY, documents=_docs(), score_threshold=3.0)


def test_no_mutation_and_ids_kept() -> None:
    docs = _docs()
    before = copy.deepcopy(docs)
    out = PrismRanker(reranker=FakeReranker()).run(query=QUERY, documents=docs)["documents"]
    out[0].meta["nested"]["tags"].append("x")
    assert docs == before
    assert [d.score for d in docs] == [0.5] * len(TEXTS)
    assert all(d.id == f"id-{_index(d)}" for d in out)
    assert all(o is not d for o in out for d in docs)


def test_ids_kept_for_content_hashed_ids() -> None:
    docs = [Document(content=t) for t in TEXTS]  # id derived from content
    out = PrismRanker(reranker=FakeReranker()).run(query=QUERY, documents=docs)["documents"]
    assert {d.id for d in out} <= {d.id for d in docs}
    assert out[0].id == docs[1].id and out[0].content == expected_body(1)


def test_empty_input_touches_nothing() -> None:
    fake = FakeReranker()
    assert PrismRanker(reranker=fake).run(query=QUERY, documents=[]) == {"documents": []}
    assert fake.calls == [] and not fake.loaded
    ranker = PrismRanker(model="not/a-real-model")
    assert ranker.run(query=QUERY, documents=[]) == {"documents": []}
    assert not ranker._resolver.resolved


def test_warm_up_is_idempotent_and_loads() -> None:
    class Counting(FakeReranker):
        loads = 0

        def load(self) -> Counting:
            self.loads += 1
            return super().load()  # type: ignore[return-value]

    fake = Counting()
    ranker = PrismRanker(reranker=fake)
    assert fake.loads == 0  # constructing loads nothing
    ranker.warm_up()
    ranker.warm_up()
    ranker.run(query=QUERY, documents=_docs())
    assert fake.loads == 1


def test_run_warms_up_when_needed() -> None:
    fake = FakeReranker()
    PrismRanker(reranker=fake).run(query=QUERY, documents=_docs())
    assert fake.loaded


async def test_run_async_uses_arerank() -> None:
    spy = AsyncSpy()
    ranker = PrismRanker(reranker=spy, top_k=3)
    out = (await ranker.run_async(query=QUERY, documents=_docs()))["documents"]
    assert [_index(d) for d in out] == [1, 4, 2]
    assert [d.content for d in out] == [expected_body(i) for i in (1, 4, 2)]
    assert spy.async_calls == 1 and spy.loaded
    out = (await ranker.run_async(query=QUERY, documents=_docs(), top_k=1, score_threshold=0.5))["documents"]
    assert [_index(d) for d in out] == [1]
    assert spy.calls[-1][2] == {"top_n": 1, "score_threshold": 0.5, "evidence": True}
    assert await ranker.run_async(query=QUERY, documents=[]) == {"documents": []}
    assert spy.async_calls == 2
    ranker.run(query=QUERY, documents=_docs())
    assert spy.async_calls == 2


def test_run_and_run_async_have_the_same_signature() -> None:
    assert inspect.signature(PrismRanker.run) == inspect.signature(PrismRanker.run_async)


# --- construction and serialisation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top_k must be >= 1, got 0"),
        ({"score_threshold": 1.01}, r"score_threshold must be in \[0, 1\]"),
        ({"model": "m", "reranker": FakeReranker()}, "not both"),
        ({"reranker": FakeReranker(), "dtype": "float32"}, "apply only with `model`"),
    ],
)
def test_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrismRanker(**kwargs)


def test_constructing_with_model_loads_nothing() -> None:
    ranker = PrismRanker(model="not/a-real-model", device="cpu")
    assert not ranker._resolver.resolved


def test_to_dict_from_dict() -> None:
    torch = pytest.importorskip("torch")
    ranker = PrismRanker(
        model="org/prism", dtype=torch.bfloat16, max_new_tokens=64, top_k=5, drop_irrelevant=False
    )
    data = ranker.to_dict()
    assert data == {
        "type": "prism_integrations.haystack.PrismRanker",
        "init_parameters": {
            "model": "org/prism",
            "device": None,
            "dtype": "bfloat16",
            "max_length": None,
            "max_new_tokens": 64,
            "batch_tokens": None,
            "top_k": 5,
            "score_threshold": None,
            "use_evidence": True,
            "keep_original": True,
            "drop_irrelevant": False,
        },
    }
    again = PrismRanker.from_dict(data)
    assert again.to_dict() == data
    assert not again._resolver.resolved


def test_custom_reranker_is_not_serialisable() -> None:
    with pytest.raises(SerializationError, match="cannot be serialised"):
        PrismRanker(reranker=FakeReranker()).to_dict()


def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        framework_missing(monkeypatch, "haystack", "prism_integrations.haystack"),
        pytest.raises(ImportError, match=r'pip install "prism-integrations\[haystack\]"'),
    ):
        importlib.import_module("prism_integrations.haystack")


# --- real pipeline: BM25 -> PrismRanker -> PromptBuilder -------------------------------------------

TEMPLATE = (
    "{% for d in documents %}[{{ d.meta['source'] }}] {{ d.content }}\n{% endfor %}Question: {{ query }}"
)


def _store() -> InMemoryDocumentStore:
    store = InMemoryDocumentStore()
    store.write_documents(_docs())
    return store


def _pipeline(ranker: PrismRanker, store: InMemoryDocumentStore | None = None) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(document_store=store or _store(), top_k=6))
    pipe.add_component("ranker", ranker)
    pipe.add_component("prompt", PromptBuilder(template=TEMPLATE, required_variables=["documents", "query"]))
    pipe.connect("retriever.documents", "ranker.documents")
    pipe.connect("ranker.documents", "prompt.documents")
    return pipe


def _inputs(**ranker: Any) -> dict[str, Any]:
    return {"retriever": {"query": QUERY}, "ranker": {"query": QUERY, **ranker}, "prompt": {"query": QUERY}}


def test_pipeline_with_bm25_and_prompt_builder() -> None:
    pipe = _pipeline(PrismRanker(reranker=FakeReranker(), top_k=3))
    out = pipe.run(_inputs(), include_outputs_from={"ranker"})
    assert [_index(d) for d in out["ranker"]["documents"]] == [1, 4, 2]
    prompt = out["prompt"]["prompt"]
    lines = prompt.splitlines()
    assert lines[0] == f"[doc1] {expected_body(1)}"
    assert lines[1] == f"[doc4] {expected_body(4)}"
    assert lines[2] == f"[doc2] {TEXTS[2]}"
    assert lines[3] == f"Question: {QUERY}"


def test_pipeline_run_time_override() -> None:
    pipe = _pipeline(PrismRanker(reranker=FakeReranker(), top_k=3))
    out = pipe.run(_inputs(top_k=1), include_outputs_from={"ranker"})
    assert [_index(d) for d in out["ranker"]["documents"]] == [1]


async def test_pipeline_run_async() -> None:
    spy = AsyncSpy()
    pipe = _pipeline(PrismRanker(reranker=spy))
    out = await pipe.run_async(_inputs(), include_outputs_from={"ranker"})
    assert [_index(d) for d in out["ranker"]["documents"]] == ORDER_RELEVANT
    assert spy.async_calls == 1


def test_pipeline_yaml_round_trip() -> None:
    pipe = _pipeline(
        PrismRanker(model="org/prism", device="cpu", dtype="float32", top_k=4, score_threshold=0.2)
    )
    yaml_text = pipe.dumps()
    assert "prism_integrations.haystack.PrismRanker" in yaml_text
    assert "org/prism" in yaml_text
    loaded = _loads(yaml_text)
    ranker = loaded.get_component("ranker")
    assert isinstance(ranker, PrismRanker)
    assert ranker.to_dict() == pipe.get_component("ranker").to_dict()
    assert not ranker._resolver.resolved  # loading a pipeline loads no model
    assert loaded.to_dict()["components"] == pipe.to_dict()["components"]


def test_pipeline_with_custom_reranker_cannot_be_dumped() -> None:
    pipe = _pipeline(PrismRanker(reranker=FakeReranker()))
    with pytest.raises(SerializationError):
        pipe.dumps()


# --- the tiny real model (fixture from the lead's tests/conftest.py) -------------------------------


@pytest.mark.slow
def test_tiny_real_model_pipeline_and_round_trip(request: pytest.FixtureRequest) -> None:
    path = tiny_model_path(request)
    pipe = _pipeline(PrismRanker(model=path, drop_irrelevant=False, max_new_tokens=16))
    loaded = _loads(pipe.dumps())
    out = loaded.run(_inputs(), include_outputs_from={"retriever", "ranker"})
    docs = out["ranker"]["documents"]
    retrieved = out["retriever"]["documents"]
    assert retrieved
    assert sorted(_index(d) for d in docs) == sorted(_index(d) for d in retrieved)  # nothing lost
    scores = [d.score for d in docs]
    assert scores == sorted(scores, reverse=True)
    for d in docs:
        assert d.score == d.meta["relevance_score"]
        if not d.meta["evidence_used"]:
            assert d.content == TEXTS[_index(d)]
    assert loaded.get_component("ranker").engine.is_loaded  # type: ignore[attr-defined]
