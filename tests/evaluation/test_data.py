"""Loading evaluation data: the built-in set, and clear errors (file and line) on bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from prism_core.evaluation.datasets import (
    EvalDataError,
    builtin_path,
    load_beir,
    load_dataset,
    load_jsonl,
    load_qrels,
    load_run,
)
from tests.evaluation._eval_cases import write_beir, write_jsonl


# ------------------------------------------------------------------------------------- built-in set
def test_builtin_set_shape() -> None:
    data = load_dataset()
    assert data.name == "builtin" and data.format == "beir" and data.split == "test"
    assert len(data.queries) == 40
    assert len(data.documents) == 280
    assert data.evaluated_query_ids() == list(data.queries)
    labels = Counter(label for judged in data.qrels.values() for label in judged.values())
    assert set(labels) == {0, 1, 2}
    for query_id, judged in data.qrels.items():
        grades = Counter(judged.values())
        assert grades[2] >= 1, f"{query_id} has no highly relevant passage"
        assert grades[0] >= 3, f"{query_id} has fewer than 3 near-miss distractors"
        assert set(judged) <= set(data.documents)
    # Passages are short factual paragraphs, each with a title, and no two alike.
    texts = [d.text for d in data.documents.values()]
    assert len(set(texts)) == len(texts)
    assert all(d.title and 40 <= len(d.text) <= 600 for d in data.documents.values())


def test_builtin_is_package_data_in_beir_layout() -> None:
    root = builtin_path()
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (root / name).is_file(), name
    assert load_dataset("builtin").qrels == load_beir(root).qrels


def test_document_content_joins_title_and_text(small_beir: Path) -> None:
    data = load_beir(small_beir)
    assert data.documents["d1"].content == "Bees\nHoneybees dance to show where flowers are."
    assert data.documents["d2"].content == "Bumblebees do not dance."  # empty title
    assert list(data.queries) == ["q1", "q2"]  # q3 is not in the split
    assert data.queries_in_file == 3 and data.judgments == 4


# ------------------------------------------------------------------------------------- bad input
def _error(excinfo: pytest.ExceptionInfo[EvalDataError], file: Path, line: int | None) -> str:
    message = str(excinfo.value)
    expected = f"{file}:{line}:" if line is not None else f"{file}:"
    assert message.startswith(expected), message
    assert excinfo.value.line == line
    return message


def test_missing_paths(tmp_path: Path, small_beir: Path) -> None:
    with pytest.raises(EvalDataError, match="not found") as e:
        load_dataset(tmp_path / "nope")
    _error(e, tmp_path / "nope", None)
    (small_beir / "corpus.jsonl").unlink()
    with pytest.raises(EvalDataError, match="file not found") as e:
        load_beir(small_beir)
    _error(e, small_beir / "corpus.jsonl", None)


def test_missing_split_lists_available(small_beir: Path) -> None:
    with pytest.raises(EvalDataError, match="split 'dev' not found; available splits: test"):
        load_beir(small_beir, split="dev")


def test_qrels_for_unknown_ids(small_beir: Path) -> None:
    qrels = small_beir / "qrels" / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\tnope\t1\n")
    with pytest.raises(EvalDataError, match="document id 'nope' is not in the corpus") as e:
        load_beir(small_beir)
    _error(e, qrels, 3)
    qrels.write_text("q1\td1\t2\nq404\td1\t1\n")
    with pytest.raises(EvalDataError, match="query id 'q404' is not in the queries file") as e:
        load_beir(small_beir)
    _error(e, qrels, 2)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q1\td1", "expected 3 columns"),
        ("q1\td1\tx", "relevance score must be an integer >= 0, got 'x'"),
        ("q1\td1\t-1", "relevance score must be an integer >= 0"),
        ("q1\td1\t1\nq1\td1\t2", "duplicate judgment for ('q1', 'd1')"),
    ],
)
def test_bad_qrels_lines(tmp_path: Path, line: str, message: str) -> None:
    file = tmp_path / "qrels.tsv"
    file.write_text("query-id\tcorpus-id\tscore\n" + line + "\n")
    with pytest.raises(EvalDataError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load_qrels(file)
    _error(e, file, 2 if "duplicate" not in message else 3)


def test_trec_qrels_are_read(tmp_path: Path) -> None:
    file = tmp_path / "qrels.txt"
    file.write_text("q1 0 d1 2\nq1 0 d2 0\n")
    assert load_qrels(file) == {"q1": {"d1": 2, "d2": 0}}


def test_empty_query_in_beir(small_beir: Path) -> None:
    queries = small_beir / "queries.jsonl"
    write_jsonl(queries, [{"_id": "q1", "text": "fine"}, {"_id": "q2", "text": "   "}])
    with pytest.raises(EvalDataError, match="query 'q2' is empty") as e:
        load_beir(small_beir)
    _error(e, queries, 2)


def test_malformed_corpus_lines(small_beir: Path) -> None:
    corpus = small_beir / "corpus.jsonl"
    write_jsonl(corpus, [{"_id": "d1", "text": "ok"}, "", '{"_id": "d2", "text": "unterminated'])
    with pytest.raises(EvalDataError, match="invalid JSON") as e:
        load_beir(small_beir)
    _error(e, corpus, 3)  # the blank line 2 is skipped but still counted
    write_jsonl(corpus, [{"_id": "d1", "text": "ok"}, {"_id": "d1", "text": "again"}])
    with pytest.raises(EvalDataError, match="duplicate document id 'd1'") as e:
        load_beir(small_beir)
    _error(e, corpus, 2)
    write_jsonl(corpus, [{"_id": "d1", "text": 5}])
    with pytest.raises(EvalDataError, match="'text' must be a string, got int") as e:
        load_beir(small_beir)
    _error(e, corpus, 1)
    write_jsonl(corpus, ["[1, 2]"])
    with pytest.raises(EvalDataError, match="expected a JSON object, got list"):
        load_beir(small_beir)


# ------------------------------------------------------------------------------------- JSONL
def test_jsonl_loads_given_candidates(tmp_path: Path) -> None:
    file = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"query": "q one", "documents": ["a", "b"], "labels": [0, 2]},
            {"id": "x", "query": "q two", "documents": ["c"], "labels": [1], "doc_ids": ["D"]},
        ],
    )
    data = load_jsonl(file)
    assert data.format == "jsonl" and data.name == "data"
    assert data.candidates == {"line1": ["line1/0", "line1/1"], "x": ["D"]}
    assert data.qrels == {"line1": {"line1/0": 0, "line1/1": 2}, "x": {"D": 1}}
    assert data.documents["D"].content == "c"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"query": "q", "documents": ["a"], "labels": [1]', "invalid JSON"),
        ({"query": "", "documents": ["a"], "labels": [1]}, "empty query"),
        ({"query": "  ", "documents": ["a"], "labels": [1]}, "empty query"),
        ({"documents": ["a"], "labels": [1]}, "missing 'query'"),
        ({"query": "q", "labels": [1]}, "missing 'documents'"),
        ({"query": "q", "documents": [], "labels": []}, "'documents' must be a non-empty list"),
        ({"query": "q", "documents": ["a", 3], "labels": [1, 0]}, r"documents\[1\] must be a string"),
        ({"query": "q", "documents": ["a"]}, "missing 'labels'"),
        ({"query": "q", "documents": ["a", "b"], "labels": [1]}, "as long as 'documents' \\(2\\), got 1"),
        ({"query": "q", "documents": ["a"], "labels": [-1]}, r"labels\[0\] must be an integer >= 0"),
        ({"query": "q", "documents": ["a"], "labels": [True]}, r"labels\[0\] must be an integer >= 0"),
        ({"query": "q", "documents": ["a"], "labels": [1.5]}, r"labels\[0\] must be an integer >= 0"),
    ],
)
def test_jsonl_bad_lines_name_file_and_line(tmp_path: Path, row: object, message: str) -> None:
    good = {"query": "fine", "documents": ["x"], "labels": [1]}
    file = write_jsonl(tmp_path / "data.jsonl", [good, "", row if isinstance(row, str) else json.dumps(row)])
    with pytest.raises(EvalDataError, match=message) as e:
        load_jsonl(file)
    _error(e, file, 3)


def test_jsonl_duplicate_ids(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "query": "q", "documents": ["x"], "labels": [1], "doc_ids": ["d"]},
        {"id": "b", "query": "q", "documents": ["other text"], "labels": [1], "doc_ids": ["d"]},
    ]
    file = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(EvalDataError, match="'d' was given earlier with a different text") as e:
        load_jsonl(file)
    _error(e, file, 2)
    rows[1] = {"id": "a", "query": "q", "documents": ["x"], "labels": [1]}
    with pytest.raises(EvalDataError, match="duplicate query id 'a'"):
        load_jsonl(write_jsonl(tmp_path / "data.jsonl", rows))


def test_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "empty.jsonl"
    file.write_text("\n\n")
    with pytest.raises(EvalDataError, match="no queries"):
        load_dataset(file)


# ------------------------------------------------------------------------------------- run files
def test_run_file(tmp_path: Path, small_beir: Path) -> None:
    data = load_beir(small_beir)
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d2 1 3.0 sys\nq1 Q0 d1 2 5.0 sys\nq9 Q0 d3 1 1.0 sys\nq2 Q0 d3 1 1.0 sys\n")
    assert load_run(run, data) == {"q1": [("d1", 5.0), ("d2", 3.0)], "q2": [("d3", 1.0)]}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q1 Q0 d1 1 5.0", "expected 6 columns"),
        ("q1 Q0 nope 1 5.0 sys", "document id 'nope' is not in the corpus"),
        ("q1 Q0 d1 one 5.0 sys", "rank must be an integer"),
        ("q1 Q0 d1 1 high sys", "score must be a number"),
        ("q1 Q0 d1 1 nan sys", "score must be finite"),
        ("q1 Q0 d2 2 4.0 sys", "listed twice"),
    ],
)
def test_bad_run_lines(tmp_path: Path, small_beir: Path, line: str, message: str) -> None:
    data = load_beir(small_beir)
    run = tmp_path / "run.trec"
    first = "q1 Q0 d2 1 5.0 sys"
    run.write_text(first + "\n" + line + "\n")
    with pytest.raises(EvalDataError, match=message) as e:
        load_run(run, data)
    _error(e, run, 2)


def test_write_beir_helper_roundtrip(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "b", [{"_id": "d", "text": "t"}], [{"_id": "q", "text": "x"}], ["q\td\t1"])
    assert load_beir(root).qrels == {"q": {"d": 1}}
