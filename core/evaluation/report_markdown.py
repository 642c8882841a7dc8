"""The evaluation report rendered as Markdown (``report.md``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _saved(tokens: dict[str, Any]) -> str:
    total = tokens.get("tokens_saved_share")
    if total is None:
        return "–"
    return (
        f"{_pct(total)} ({_pct(tokens.get('saved_by_evidence_share'))} + "
        f"{_pct(tokens.get('saved_by_dropping_share'))})"
    )


def _grounding_markdown(systems: dict[str, dict[str, Any]], grounded_only: bool) -> list[str]:
    header = [
        "System",
        "Evidence passages",
        "Fully grounded",
        "Mean support",
        "Unsupported / 100",
        "Not swapped",
    ]
    lines = [
        "",
        "## Grounding of the evidence",
        "",
        "Each generated evidence passage checked against its document (`prism_core.check_grounding`): "
        "fully grounded = every number, date, URL, e-mail address, code span, term and name in it is in "
        "the document; support = share of its content found in the document. "
        + (
            "Not swapped: complete evidence kept out by `grounded_only` (the original text is used)."
            if grounded_only
            else "grounded_only is off: ungrounded evidence was counted as swapped in."
        ),
        "",
        _row(header),
        _rule(len(header)),
    ]
    for name, s in systems.items():
        g = s["grounding"]
        lines.append(
            _row(
                [
                    name,
                    g["evidence_generated"],
                    f"{g['fully_grounded']} ({_pct(g['fully_grounded_share'])})",
                    _f(g["mean_support"]),
                    _f(g["unsupported_per_100_passages"], 1),
                    g["rejected_ungrounded"],
                ]
            )
        )
    judged = {n: s["judge"] for n, s in systems.items() if s.get("judge")}
    if judged:
        header = [
            "System",
            "Judged",
            "Judge: faithful",
            "Mean faithfulness",
            "Mean completeness",
            "Agreement with check",
            "Judge errors",
        ]
        lines += _table_head(
            "LLM judge (rubric in `prism_core.evaluation.judge`); agreement: share of judged passages where "
            "the judge's faithful/unfaithful verdict equals the check's grounded/ungrounded.",
            header,
        )
        for name, j in judged.items():
            lines.append(
                _row(
                    [
                        name,
                        j["judged"],
                        f"{j['faithful']} ({_pct(j['faithful_share'])})",
                        _f(j["mean_faithfulness"], 2),
                        _f(j["mean_completeness"], 2),
                        _pct(j["agreement"]),
                        j["errors"],
                    ]
                )
            )
    return lines


def _metric_label(name: str) -> str:
    kind, _, cut = name.partition("@")
    return {"ndcg": "nDCG", "mrr": "MRR", "recall": "R"}[kind] + "@" + cut


def banner_lines(report: dict[str, Any]) -> list[str]:
    """The loud warning lines for a report that ran random-weight models (empty otherwise)."""
    if not report.get("meaningless"):
        return []
    return [w for w in report["warnings"] if w.startswith("TINY RANDOM-WEIGHT")]


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table_head(intro: str, header: Sequence[object]) -> list[str]:
    """A table's opening lines: a blank line, its introduction, a blank line, header and rule."""
    return ["", intro, "", _row(header), _rule(len(header))]


def _rule(columns: int, left: int = 1) -> str:
    """A Markdown header rule: the first ``left`` columns left-aligned, the rest (numbers) right-aligned."""
    return "|" + "|".join(["---"] * left + ["---:"] * (columns - left)) + "|"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary table, evidence and token accounting, tests and counts.

    Example:
        >>> print(render_markdown(report).splitlines()[0])  # doctest: +SKIP
        # Reranking evaluation: builtin
    """
    ds, fs, st = report["dataset"], report["first_stage"], report["settings"]
    metrics = st["metrics"]
    lines = [f"# Reranking evaluation: {ds['name']}", ""]
    for warning in banner_lines(report):
        lines += [f"> **WARNING — {warning}**", ""]
    split = f", split `{ds['split']}`" if ds["split"] else ""
    lines += [
        f"Data: `{ds['source']}` ({ds['format']}{split}): {ds['queries_evaluated']} queries evaluated, "
        f"{ds['documents']:,} documents. First stage: **{fs['name']}**, "
        f"{fs['candidates_per_query']} candidates per query; {fs['relevant_retrieved']} of "
        f"{fs['relevant_judged']} relevant judgments retrieved. "
        f"Tokens: the {st['top_n']} documents returned per query.",
        "",
    ]
    header = ["System", *map(_metric_label, metrics), "Tokens/query", "Saved", "Latency p50/p90 ms", "Docs/s"]
    lines += [_row(header), _rule(len(header))]
    for name, s in report["systems"].items():
        label = f"{name} (first stage)" if s["kind"] == "first-stage" else name
        if s["meaningless"]:
            label += " ⚠ random weights"
        latency = s.get("latency")
        tokens = s["tokens"]
        lines.append(
            _row(
                [
                    label,
                    *[_f(s[m]) for m in metrics],
                    _n(tokens.get("context_tokens_per_query")),
                    _saved(tokens) if s["evidence"] else "–",
                    f"{latency['median_ms']:.0f} / {latency['p90_ms']:.0f}" if latency else "–",
                    _n(s.get("documents_per_second")),
                ]
            )
        )
    lines += [
        "",
        "Tokens/query: tokens of the returned documents that reach the LLM (after the evidence swap for "
        "evidence-generating systems). Saved: total (by evidence + by dropping documents judged "
        "irrelevant). Latency: per query, ranking pass plus evidence pass. "
        "Docs/s: documents scored per second in the ranking pass.",
    ]
    evidence_systems = {n: s for n, s in report["systems"].items() if s["evidence"]}
    if evidence_systems:
        header = [
            "System",
            "Returned",
            "Original tokens",
            "Evidence tokens",
            "Evidence/original",
            "Context tokens",
            "Saved by evidence",
            "Saved by dropping",
            "Relevant with complete evidence",
            "Relevant dropped (returned; candidates)",
        ]
        lines += ["", "## Evidence and tokens"]
        lines += _table_head(
            "Returned documents judged relevant with complete evidence are replaced by their evidence; "
            "relevant ones without complete evidence keep their text; those judged irrelevant are dropped "
            "(the adapters' defaults). Relevant means labelled relevant (label > 0).",
            header,
        )
        for name, s in evidence_systems.items():
            t, e = s["tokens"], s["evidence_stats"]
            complete = e["labelled_relevant_with_complete_evidence"]
            returned_relevant = e["labelled_relevant_returned"]
            lines.append(
                _row(
                    [
                        name,
                        e["returned_documents"],
                        _n(t["original_tokens"]),
                        f"{_n(t['evidence_tokens'])} ({e['with_complete_evidence']} docs)",
                        _pct(t["evidence_to_original"]),
                        _n(t["context_tokens"]),
                        _pct(t["saved_by_evidence_share"]),
                        _pct(t["saved_by_dropping_share"]),
                        f"{complete}/{returned_relevant} ({_pct(e['labelled_relevant_complete_share'])})",
                        f"{e['labelled_relevant_dropped']}/{returned_relevant}; "
                        f"{e['labelled_relevant_candidates_judged_irrelevant']}/{e['labelled_relevant_candidates']}",
                    ]
                )
            )
    if evidence_systems:
        lines += _grounding_markdown(evidence_systems, report["settings"].get("grounded_only", True))
    if report["significance"]:
        header = ["A", "B", "Metric", "Mean A", "Mean B", "A − B", "p (t-test)", "p (randomization)"]
        lines += [
            "",
            "## Paired significance tests (two-sided, per query)",
            "",
            _row(header),
            _rule(len(header), left=3),
        ]
        for t in report["significance"]:
            lines.append(
                _row(
                    [
                        t["a"],
                        t["b"],
                        _metric_label(t["metric"]),
                        _f(t["mean_a"]),
                        _f(t["mean_b"]),
                        _f(t["difference"]),
                        _f(t["p_t_test"], 4),
                        _f(t["p_randomization"], 4),
                    ]
                )
            )
        lines += ["", f"n = {ds['queries_evaluated']} queries; no correction for multiple comparisons."]
    lines += ["", "## Accounting", ""]
    lines.append(
        f"- Queries: {ds['queries_in_split']} in the split, {ds['queries_evaluated']} evaluated, "
        f"{len(ds['queries_without_relevant_judgments'])} without a relevant judgment (not evaluated), "
        f"{ds['queries_left_out_by_limit']} left out by --max-queries."
    )
    lines.append(
        f"- First stage: {fs['candidates_total']:,} candidates; "
        f"{fs['queries_with_fewer_candidates']} queries with fewer than {fs['candidates_per_query']}, "
        f"{len(fs['queries_without_candidates'])} with none; {fs['documents_retrieved']:,} distinct "
        f"documents retrieved, {fs['documents_never_retrieved']:,} never."
    )
    for name, s in report["systems"].items():
        q, d = s["queries"], s["documents"]
        lines.append(
            f"- {name}: {q['ranked']} queries ranked, {q['failed']} failed, "
            f"{q['without_candidates']} without candidates; {d['ranked']:,} documents ranked, "
            f"{d['in_failed_queries']} in failed queries, {d['returned']:,} returned, "
            f"{d['truncated']} truncated."
        )
        for failure in s["failures"][:5]:
            lines.append(f"  - failed {failure['query_id']}: {failure['error']}")
        if len(s["failures"]) > 5:
            lines.append(f"  - and {len(s['failures']) - 5} more failures (see report.json)")
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`render_markdown` to ``path``."""
    file = Path(path)
    file.write_text(render_markdown(report), encoding="utf-8")
    return file
