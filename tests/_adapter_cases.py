"""One scripted corpus and its expected outcomes, shared by the three adapter test modules.

Markers are read by :class:`fakes.FakeReranker` (see tests/fakes.py). Also here: hostile metadata
and a walker that finds mutable containers an output shares with its input, the option table every
adapter and the engine must accept or refuse alike, and the tiny real backends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from prism_core.results import PrismResult
from tests.fakes import FakeReranker

TEXTS: list[str] = [
    "alpha: Mars has two moons. [no:0.2]",  # 0 irrelevant
    "bravo: Paris is the capital of France. [yes:0.9]",  # 1 relevant, complete evidence
    "charlie: Lyon is in France. [partial:0.7]",  # 2 relevant, evidence cut (incomplete)
    "delta: France borders Spain. [notags:0.6]",  # 3 relevant, no tags (evidence None)
    "echo: The Eiffel Tower is in Paris. [yes:0.8]",  # 4 relevant, complete evidence
    "foxtrot: Bananas are yellow. [no:0.4]",  # 5 irrelevant
]
QUERY = "What is the capital of France?"

#: Input indices in score order (all six).
ORDER_ALL = [1, 4, 2, 3, 5, 0]
#: Input indices returned with the defaults (irrelevant dropped).
ORDER_RELEVANT = [1, 4, 2, 3]
#: Input indices whose evidence is complete (body swapped by default).
SWAPPED = {1, 4}
#: Input indices for which evidence is generated (complete or not): grounding keys in the metadata.
EVIDENCE_GENERATED = {1, 2, 4}

OUR_KEYS = [
    "relevance_score",
    "contribution",
    "evidence_used",
    "original_content",
    "grounding",
    "unsupported",
    "evidence_spans",
    "evidence_rejected",
]

#: ``(options, expected input indices)`` for the ``top_n`` and ``score_threshold`` rules.
TOP_N_AND_THRESHOLD_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"top_n": 2}, [1, 4]),
    ({"score_threshold": 0.65}, [1, 4, 2]),
    ({"top_n": 3, "score_threshold": 0.75}, [1, 4]),
]


def metadata(i: int) -> dict[str, Any]:
    """Caller metadata for document ``i``: nested values, and a stale ``relevance_score`` on even ones."""
    meta: dict[str, Any] = {"source": f"doc{i}"}
    if i % 2 == 0:
        meta["relevance_score"] = 0.123  # stale, from an upstream reranker
    meta["nested"] = {"tags": [f"t{i}"]}
    return meta


def score_of(i: int) -> float:
    return [0.2, 0.9, 0.7, 0.6, 0.8, 0.4][i]


def expected_body(i: int, *, use_evidence: bool = True) -> str:
    return f"EVIDENCE({TEXTS[i]})" if use_evidence and i in SWAPPED else TEXTS[i]


def expected_metadata(i: int, *, use_evidence: bool = True, keep_original: bool = True) -> dict[str, Any]:
    """The full metadata an adapter should return for document ``i``, in the right key order."""
    meta = metadata(i)
    meta.pop("relevance_score", None)
    relevant = i not in (0, 5)
    swapped = use_evidence and i in SWAPPED
    meta["relevance_score"] = score_of(i)
    meta["contribution"] = f"CONTRIBUTION({i})" if relevant and i != 3 else None
    meta["evidence_used"] = swapped
    if swapped and keep_original:
        meta["original_content"] = TEXTS[i]
    if i in EVIDENCE_GENERATED:  # the fake reports these grounded, with one span over the document
        meta["grounding"] = 1.0
        meta["unsupported"] = []
        meta["evidence_spans"] = [[0, len(TEXTS[i])]]
    return meta


class AsyncSpy(FakeReranker):
    """A :class:`fakes.FakeReranker` that counts its ``arerank`` calls (and yields to the loop once)."""

    def __init__(self) -> None:
        super().__init__()
        self.async_calls = 0

    async def arerank(self, *args: Any, **kwargs: Any) -> list[PrismResult]:
        self.async_calls += 1
        await asyncio.sleep(0)
        return await super().arerank(*args, **kwargs)


@contextmanager
def framework_missing(
    monkeypatch: pytest.MonkeyPatch, top: str, adapter_module: str, *also_forget: str
) -> Iterator[None]:
    """Make ``import <top>`` fail and forget the adapter module (and ``also_forget``), so
    re-importing it fails."""
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, top, None)
    for module in (adapter_module, *also_forget):
        monkeypatch.delitem(sys.modules, module, raising=False)
    yield


def tiny_model_path(request: pytest.FixtureRequest) -> str:
    """The lead's ``tiny_qwen35_path`` session fixture (tests/conftest.py), or skip until it exists."""
    try:
        return str(request.getfixturevalue("tiny_qwen35_path"))
    except pytest.FixtureLookupError:
        pytest.skip("fixture tiny_qwen35_path (tiny real model) is not provided yet")


def expected_schema_metadata(i: int) -> dict[str, Any]:
    """The metadata a score-only backend (or both generation options off) gives document ``i``."""
    meta = metadata(i)
    meta.pop("relevance_score", None)
    meta["relevance_score"] = score_of(i)
    meta["contribution"] = None
    meta["evidence_used"] = False
    return meta


# --- hostile metadata ------------------------------------------------------------------------------


class Hostile(NamedTuple):
    """Metadata holding values that cannot be deep-copied, and the uncopyable objects themselves."""

    meta: dict[str, Any]
    lock: Any
    file: io.TextIOWrapper
    generator: Iterator[int]


@dataclasses.dataclass
class _Box:
    """A dataclass holding a lock and a list: rebuilt around the lock, its list copied."""

    lock: Any
    items: list[int]


def hostile_metadata(tmp_path: Path, i: int = 0) -> Hostile:
    """Metadata with a lock, an open file, a generator, and nested containers around them.

    The caller closes ``file`` (tests use ``with closing(...)`` or a finaliser).
    """
    lock = threading.Lock()
    file = open(tmp_path / f"hostile-{i}.txt", "w")  # noqa: SIM115 - closed by the test
    generator = (x for x in range(3))
    shared_list = [1, [2, 3]]
    meta: dict[str, Any] = {
        "source": f"doc{i}",
        "lock": lock,
        "file": file,
        "generator": generator,
        "nested": {"tags": ["a", {"deep": [1, 2]}], "lock": lock, "set": {1, 2}},
        "tuple": ([1, 2], lock),
        "twice": [shared_list, shared_list],
        "box": _Box(lock, [7]),
    }
    return Hostile(meta, lock, file, generator)


def check_hostile_copy(copied: dict[str, Any], hostile: Hostile) -> None:
    """The copy equals the input where it can, holds the uncopyable objects themselves, and shares
    no container with the input."""
    meta = hostile.meta
    assert copied["lock"] is hostile.lock and copied["file"] is hostile.file
    assert copied["generator"] is hostile.generator
    assert copied["nested"]["lock"] is hostile.lock and copied["tuple"][1] is hostile.lock
    assert copied["nested"]["tags"] == meta["nested"]["tags"]
    assert copied["nested"]["set"] == {1, 2}
    assert copied["tuple"][0] == [1, 2]
    assert copied["twice"][0] is copied["twice"][1]  # identity inside the input is kept
    assert copied["box"].lock is hostile.lock and copied["box"].items == [7]
    assert shared_containers(meta, copied) == []


_CONTAINERS = (dict, list, set, bytearray)


def _children(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [(f"[{k!r}]", v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"[{i}]", v) for i, v in enumerate(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [(f".{f.name}", getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    if hasattr(type(obj), "model_fields") and hasattr(obj, "__dict__"):
        return [(f".{k}", v) for k, v in vars(obj).items()]
    return []


def _is_shared_kind(obj: Any) -> bool:
    """Mutable containers and the objects that hold fields (models, dataclasses) must not be shared."""
    return isinstance(obj, _CONTAINERS) or (bool(_children(obj)) and not isinstance(obj, (tuple, frozenset)))


def _walk(obj: Any, path: str, seen: set[int], out: dict[int, str]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if _is_shared_kind(obj):
        out.setdefault(id(obj), path)
    for name, child in _children(obj):
        _walk(child, path + name, seen, out)


def shared_containers(inputs: Any, outputs: Any) -> list[str]:
    """Paths (in ``outputs``) of mutable containers, models or dataclass objects that are also
    reachable from ``inputs``: what a caller mutating the output would change in its input."""
    found_in: dict[int, str] = {}
    _walk(inputs, "in", set(), found_in)
    found_out: dict[int, str] = {}
    _walk(outputs, "out", set(), found_out)
    return sorted(path for key, path in found_out.items() if key in found_in)


# --- the option table ------------------------------------------------------------------------------


#: ``(option, value, accepted)``: the same outcome is expected from the three adapters and the engine.
OPTION_TABLE: list[Any] = [
    ("top_n", None, True),
    ("top_n", 1, True),
    ("top_n", 3, True),
    ("top_n", np.int64(2), True),
    ("top_n", np.int32(1), True),
    ("top_n", 0, False),
    ("top_n", -1, False),
    ("top_n", True, False),
    ("top_n", False, False),
    ("top_n", np.bool_(True), False),
    ("top_n", "3", False),
    ("top_n", 2.0, False),
    ("top_n", np.float64(2.0), False),
    ("top_n", [3], False),
    ("score_threshold", None, True),
    ("score_threshold", 0, True),
    ("score_threshold", 0.5, True),
    ("score_threshold", 1, True),
    ("score_threshold", np.float32(0.25), True),
    ("score_threshold", np.float64(0.75), True),
    ("score_threshold", np.int64(1), True),
    ("score_threshold", -0.01, False),
    ("score_threshold", 1.01, False),
    ("score_threshold", math.nan, False),
    ("score_threshold", math.inf, False),
    ("score_threshold", "0.5", False),
    ("score_threshold", True, False),
    ("use_evidence", True, True),
    ("use_evidence", False, True),
    pytest.param("use_evidence", np.bool_(False), True),
    ("use_evidence", 1, False),
    ("use_evidence", 0, False),
    ("use_evidence", "yes", False),
    ("use_evidence", None, False),
]


# --- tiny real backends ----------------------------------------------------------------------------


class Backend(NamedTuple):
    """One real backend on a tiny local checkpoint."""

    name: str  # the backend name
    path: str  # the checkpoint directory
    options: dict[str, Any]  # what an adapter gets besides model= (backend=, engine options)
    generates: bool  # whether it can generate contribution and evidence


BACKEND_NAMES = ["prism", "qwen3-reranker", "cross-encoder"]


def tiny_backend(request: pytest.FixtureRequest, name: str) -> Backend:
    """The tiny checkpoint of backend ``name`` (session fixtures), with the adapter options to use it."""
    if name == "prism":  # told from the checkpoint (a Qwen3.5 causal LM is Prism)
        return Backend(name, str(request.getfixturevalue("tiny_qwen35_path")), {"max_new_tokens": 8}, True)
    if name == "qwen3-reranker":  # a plain Qwen3 causal LM: the name decides, so say it
        return Backend(name, str(request.getfixturevalue("tiny_qwen3_path")), {"backend": name}, False)
    if name == "cross-encoder":  # told from the checkpoint (*ForSequenceClassification)
        return Backend(name, str(request.getfixturevalue("tiny_cross_encoder_path")), {}, False)
    raise ValueError(name)


def linked_copy(src: str, dst: Path) -> str:
    """A copy of a checkpoint directory made of hard links (no disk cost): a new path, hence a new
    configuration whose weights are not loaded yet in this process."""
    shutil.copytree(src, dst, copy_function=os.link)
    return str(dst)


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    """Count calls of ``owner.name`` (patched on the class: every instance, every thread)."""
    calls: list[int] = []
    original: Callable[..., Any] = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls
