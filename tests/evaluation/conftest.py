"""Fixtures of the evaluation tests; they skip without the ``eval`` extra."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation._eval_cases import write_beir

pytest.importorskip("ir_measures", reason='needs pip install "prism-integrations[eval]"')
pytest.importorskip("scipy", reason='needs pip install "prism-integrations[eval]"')
pytest.importorskip("bm25s", reason='needs pip install "prism-integrations[eval]"')


@pytest.fixture
def small_beir(tmp_path: Path) -> Path:
    """A valid three-query BEIR directory."""
    corpus = [
        {"_id": "d1", "title": "Bees", "text": "Honeybees dance to show where flowers are."},
        {"_id": "d2", "title": "", "text": "Bumblebees do not dance."},
        {"_id": "d3", "text": "The Eiffel Tower was completed in 1889."},
        {"_id": "d4", "text": "Paris is the capital of France."},
    ]
    queries = [
        {"_id": "q1", "text": "how do honeybees show where flowers are"},
        {"_id": "q2", "text": "when was the eiffel tower completed"},
        {"_id": "q3", "text": "an unjudged query"},
    ]
    qrels = ["q1\td1\t2", "q1\td2\t0", "q2\td3\t2", "q2\td4\t1"]
    return write_beir(tmp_path / "beir", corpus, queries, qrels)
