"""PrismRanker: the adapter rules in Haystack, serialisation, and a real Haystack pipeline."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no network from tests
pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.components.builders import PromptBuilder
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.core.errors import SerializationError
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.in_memory import InMemoryDocumentStore

from prism_integrations._common import EngineSpec
from prism_integrations.haystack import PrismRanker
from tests._adapter_cases import (
    BACKEND_NAMES,
    ORDER_ALL,
    ORDER_RELEVANT,
    OUR_KEYS,
    QUERY,
    TEXTS,
    AsyncSpy,
    check_hostile_copy,
    expected_body,
    expected_metadata,
    expected_schema_metadata,
    framework_missing,
    hostile_metadata,
    metadata,
    shared_containers,
    tiny_backend,
    tiny_model_path,
)
from tests.fakes import FakeReranker, ScoreOnlyFakeReranker

#: The repository root: it holds ``haystack_integrations/`` (until the package ships it).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The type string of the component in saved pipelines.
TYPE = "haystack_integrations.components.rankers.prism.ranker.PrismRanker"


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Haystack sends pipeline telemetry when it was imported without the env var set."""
    import haystack.telemetry._telemetry as telemetry

    monkeypatch.setattr(telemetry, "telemetry", None)
    yield


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


def test_hostile_data_is_kept_not_fatal(tmp_path: Path) -> None:
    with ExitStack() as stack:
        hostiles = [hostile_metadata(tmp_path, i) for i in range(len(TEXTS))]
        for h in hostiles:
            stack.enter_context(closing(h.file))
        docs = [
            Document(
                id=f"id-{i}",
                content=t,
                meta=h.meta,
                score=0.5,
                embedding=[0.1, 0.2],
                sparse_embedding=SparseEmbedding(indices=[1, 5], values=[0.5, 0.25]),
                blob=ByteStream(data=b"raw", meta={"tags": ["x"]}),
            )
            for i, (t, h) in enumerate(zip(TEXTS, hostiles, strict=True))
        ]
        out = PrismRanker(reranker=FakeReranker(), drop_irrelevant=False).run(query=QUERY, documents=docs)
        out_docs = out["documents"]
        assert [_index(d) for d in out_docs] == ORDER_ALL
        for d in out_docs:
            check_hostile_copy({k: v for k, v in d.meta.items() if k not in OUR_KEYS}, hostiles[_index(d)])
            assert d.embedding == [0.1, 0.2] and d.blob is not None and d.blob.meta == {"tags": ["x"]}
            assert d.sparse_embedding is not None and d.sparse_embedding.indices == [1, 5]
        assert shared_containers(docs, out_docs) == []


def test_documents_without_content_pass_through_never_as_empty_text(caplog: pytest.LogCaptureFixture) -> None:
    docs = _docs()
    blob = Document(
        id="blob", blob=ByteStream(data=b"\x89PNG", mime_type="image/png"), meta={"k": [1]}, score=0.4
    )
    empty = Document(id="empty", content="", meta={"k": 2})
    docs.insert(2, blob)
    docs.append(empty)
    before = copy.deepcopy(docs)
    fake = FakeReranker()
    with caplog.at_level(logging.WARNING, logger="prism_integrations"):
        out = PrismRanker(reranker=fake, top_k=2).run(query=QUERY, documents=docs)["documents"]
    assert fake.calls[0][1] == [*TEXTS, ""]  # "" is text (judged); None is not
    assert [d.id for d in out] == ["id-1", "id-4", "blob"]
    passed = out[-1]
    assert (
        passed.content is None
        and passed.blob == blob.blob
        and passed.meta == {"k": [1]}
        and passed.score == 0.4
    )
    assert passed is not blob and shared_containers(docs, out) == []
    assert docs == before
    assert "1 of 8 documents have no text (documents[2])" in caplog.text
    only_blobs = PrismRanker(model="not/a-real-model")  # touches no engine: nothing to score
    assert only_blobs.run(query=QUERY, documents=[blob])["documents"] == [blob]
    assert not only_blobs._resolver.resolved


def test_wrong_item_types_are_named() -> None:
    ranker = PrismRanker(reranker=FakeReranker())
    with pytest.raises(TypeError, match=r"^documents\[2\] must be a Haystack Document, got dict$"):
        ranker.run(query=QUERY, documents=[*_docs()[:2], {"content": "x"}])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"documents\[0\] must be a Haystack Document, got str"):
        ranker.run(query=QUERY, documents=["text"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="documents must be a list of Haystack Documents, got str"):
        ranker.run(query=QUERY, documents="text")  # type: ignore[arg-type]


def test_add_contribution_off_and_scoring_only() -> None:
    out, fake = _run(add_contribution=False)
    assert fake.calls[0][2]["evidence"] is True
    assert all(d.meta["contribution"] is None for d in out)
    assert [d.content for d in out] == [expected_body(_index(d)) for d in out]
    out, fake = _run(use_evidence=False, add_contribution=False)
    assert fake.calls[0][2]["evidence"] is False
    for d in out:
        assert d.content == TEXTS[_index(d)] and d.meta == expected_schema_metadata(_index(d))


def test_score_only_backend_same_schema_said_once(caplog: pytest.LogCaptureFixture) -> None:
    fake = ScoreOnlyFakeReranker()
    ranker = PrismRanker(reranker=fake)
    with caplog.at_level(logging.INFO, logger="prism_integrations"):
        out = ranker.run(query=QUERY, documents=_docs())["documents"]
        ranker.run(query=QUERY, documents=_docs())
    assert [c[2]["evidence"] for c in fake.calls] == [False, False]
    assert [_index(d) for d in out] == ORDER_RELEVANT
    for d in out:
        assert d.content == TEXTS[_index(d)] and d.meta == expected_schema_metadata(_index(d))
    assert caplog.text.count("only scores") == 1


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
    ("kwargs", "error", "message"),
    [
        ({"top_k": 0}, ValueError, "top_k must be >= 1, got 0"),
        ({"score_threshold": 1.01}, ValueError, r"score_threshold must be in \[0, 1\]"),
        ({"model": "m", "reranker": FakeReranker()}, ValueError, "not both"),
        ({"reranker": FakeReranker(), "dtype": "float32"}, ValueError, "apply only with `model`"),
        ({"top_n": 3}, TypeError, "unexpected keyword argument.*top_n"),
        ({"model": "m", "backend": "nope"}, ValueError, "unknown backend 'nope'"),
        ({"top_k": "3"}, TypeError, "top_k must be an int, got str"),
        ({"top_k": True}, TypeError, "top_k must be an int, got bool"),
        ({"drop_irrelevant": 0}, TypeError, "drop_irrelevant must be a bool"),
        ({"reranker": object()}, TypeError, "Reranker protocol"),
    ],
)
def test_validation(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        PrismRanker(**kwargs)


def test_constructing_with_model_loads_nothing() -> None:
    ranker = PrismRanker(model="not/a-real-model", device="cpu")
    assert not ranker._resolver.resolved
    assert (ranker.model, ranker.backend) == ("not/a-real-model", None)
    assert ranker.engine_config == EngineSpec.create("not/a-real-model", device="cpu")


def test_same_class_under_both_names() -> None:
    from haystack_integrations.components.rankers.prism import PrismRanker as Namespaced

    assert Namespaced is PrismRanker
    assert f"{PrismRanker.__module__}.{PrismRanker.__qualname__}" == TYPE


def test_to_dict_from_dict_exact() -> None:
    torch = pytest.importorskip("torch")
    ranker = PrismRanker(
        model="org/prism",
        backend="prism",
        dtype=torch.bfloat16,
        max_new_tokens=64,
        top_k=5,
        drop_irrelevant=False,
        add_contribution=False,
    )
    data = ranker.to_dict()
    assert data == {
        "type": TYPE,
        "init_parameters": {
            "engine_config": {
                "model": "org/prism",
                "backend": "prism",
                "dtype": "bfloat16",
                "max_new_tokens": 64,
            },
            "top_k": 5,
            "score_threshold": None,
            "use_evidence": True,
            "add_contribution": False,
            "keep_original": True,
            "drop_irrelevant": False,
            "grounded_only": True,
        },
    }
    again = PrismRanker.from_dict(data)
    assert again.to_dict() == data and again.engine_config == ranker.engine_config
    assert not again._resolver.resolved


def test_default_to_dict_keeps_defaults_unpinned() -> None:
    assert PrismRanker().to_dict()["init_parameters"]["engine_config"] == {"model": None, "backend": None}


def test_legacy_dict_still_loads() -> None:
    """A pipeline saved before 0.2 (flat engine options, the old module path) rebuilds the same ranker."""
    legacy = {
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
    ranker = PrismRanker.from_dict(legacy)
    assert ranker.engine_config == EngineSpec.create("org/prism", dtype="bfloat16", max_new_tokens=64)
    assert (ranker.top_k, ranker.drop_irrelevant, ranker.add_contribution) == (5, False, True)
    pipe = Pipeline.from_dict(
        {"components": {"ranker": legacy}, "connections": []}, allowed_modules=["prism_integrations.haystack"]
    )
    assert pipe.get_component("ranker").to_dict() == ranker.to_dict()


def test_custom_reranker_is_not_serialisable() -> None:
    with pytest.raises(SerializationError, match="cannot be serialised"):
        PrismRanker(reranker=FakeReranker()).to_dict()


def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    namespaced = [
        "haystack_integrations.components.rankers.prism",
        "haystack_integrations.components.rankers.prism.ranker",
    ]
    with (
        framework_missing(monkeypatch, "haystack", "prism_integrations.haystack", *namespaced),
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
    assert TYPE in yaml_text
    assert "org/prism" in yaml_text
    loaded = Pipeline.loads(yaml_text)  # Haystack's default allowlist: haystack_integrations is trusted
    ranker = loaded.get_component("ranker")
    assert isinstance(ranker, PrismRanker)
    assert ranker.to_dict() == pipe.get_component("ranker").to_dict()
    assert not ranker._resolver.resolved  # loading a pipeline loads no model
    assert loaded.to_dict()["components"] == pipe.to_dict()["components"]


def test_pipeline_with_custom_reranker_cannot_be_dumped() -> None:
    pipe = _pipeline(PrismRanker(reranker=FakeReranker()))
    with pytest.raises(SerializationError):
        pipe.dumps()


_FRESH_LOAD = """
import json, sys
ours = ("prism_integrations", "prism_core", "haystack_integrations")
assert not [m for m in sys.modules if m.startswith(ours)], "the fresh process imported our package"
from haystack import Pipeline
pipe = Pipeline.loads(sys.stdin.read())
ranker = pipe.get_component("ranker")
print(json.dumps({
    "class": f"{type(ranker).__module__}.{type(ranker).__qualname__}",
    "ranker": ranker.to_dict(),
    "components": sorted(pipe.to_dict()["components"]),
    "resolved": ranker._resolver.resolved,
}))
"""


def test_pipeline_loads_in_a_fresh_process_with_default_allowlist() -> None:
    """``Pipeline.loads(pipeline.dumps())`` in a process that never imported our package, no
    ``allowed_modules``, no allowlist environment variable."""
    ranker = PrismRanker(model="org/prism", backend="prism", max_new_tokens=64, top_k=4, score_threshold=0.2)
    yaml_text = _pipeline(ranker).dumps()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAYSTACK_")}
    env["HAYSTACK_TELEMETRY_ENABLED"] = "False"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_LOAD],
        input=yaml_text,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=str(REPO_ROOT.parent),  # not the repository: only PYTHONPATH finds haystack_integrations
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "class": TYPE,
        "ranker": ranker.to_dict(),
        "components": ["prompt", "ranker", "retriever"],
        "resolved": False,  # loading a pipeline loads no model
    }


# --- every backend on a tiny real model, in a real pipeline ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_backend_in_pipeline_and_yaml_round_trip(request: pytest.FixtureRequest, backend: str) -> None:
    """BM25 → PrismRanker → PromptBuilder on each tiny backend, after a YAML round trip."""
    case = tiny_backend(request, backend)
    pipe = _pipeline(PrismRanker(model=case.path, device="cpu", drop_irrelevant=False, **case.options))
    loaded = Pipeline.loads(pipe.dumps())
    out = loaded.run(_inputs(), include_outputs_from={"retriever", "ranker"})
    docs = out["ranker"]["documents"]
    retrieved = out["retriever"]["documents"]
    assert retrieved and sorted(_index(d) for d in docs) == sorted(_index(d) for d in retrieved)
    ranker = loaded.get_component("ranker")
    engine = ranker.engine
    assert engine is pipe.get_component("ranker").engine  # one process-wide engine per configuration
    assert engine.capabilities.evidence is case.generates
    direct = engine.score(QUERY, [TEXTS[_index(d)] for d in retrieved])
    by_index = {_index(d): s for d, s in zip(retrieved, direct, strict=True)}
    assert [d.score for d in docs] == pytest.approx([by_index[_index(d)] for d in docs], abs=1e-4)
    assert [d.score for d in docs] == sorted((d.score for d in docs), reverse=True)
    prompt = out["prompt"]["prompt"]
    for d in docs:
        assert f"[{d.meta['source']}] {d.content}\n" in prompt
        assert d.score == d.meta["relevance_score"]
        assert d.meta["evidence_used"] is (d.content != TEXTS[_index(d)])
        if not case.generates:
            assert d.meta["contribution"] is None and d.content == TEXTS[_index(d)]


# --- the tiny real model (fixture from the lead's tests/conftest.py) -------------------------------


@pytest.mark.slow
def test_tiny_real_model_pipeline_and_round_trip(request: pytest.FixtureRequest) -> None:
    path = tiny_model_path(request)
    pipe = _pipeline(PrismRanker(model=path, drop_irrelevant=False, max_new_tokens=16))
    loaded = Pipeline.loads(pipe.dumps())
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
