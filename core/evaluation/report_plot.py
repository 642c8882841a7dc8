"""The evaluation report's plot: quality against context tokens per system (``matplotlib`` extra)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prism_core.evaluation.report_markdown import _metric_label
from prism_core.extras import missing_extra


def write_plot(report: dict[str, Any], path: str | os.PathLike[str], metric: str = "ndcg@10") -> Path:
    """Plot ``metric`` against context tokens per query, one point per system, as a PNG.

    Raises:
        ImportError: matplotlib is missing (the message says what to install).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise missing_extra("bench", needs="matplotlib", by="the plot", alternative="matplotlib") from exc
    file = Path(path)
    figure, axes = plt.subplots(figsize=(8, 4.8), dpi=120)
    xs = [s["tokens"].get("context_tokens_per_query") for s in report["systems"].values()]
    right = max([x for x in xs if x is not None], default=1.0) or 1.0
    try:
        for name, s in report["systems"].items():
            x = s["tokens"].get("context_tokens_per_query")
            if x is None:
                continue
            marker = "s" if s["kind"] == "first-stage" else ("o" if s["evidence"] else "^")
            axes.scatter([x], [s[metric]], marker=marker, s=60)
            axes.annotate(name, (x, s[metric]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        axes.set_xlabel(f"context tokens per query (top {report['settings']['top_n']} returned)")
        axes.set_ylabel(_metric_label(metric))
        title = f"{report['dataset']['name']}: quality against tokens kept"
        if report.get("meaningless"):
            title += "\nRANDOM-WEIGHT MODEL: MEANINGLESS NUMBERS"
        axes.set_title(title, fontsize=10, color="red" if report.get("meaningless") else "black")
        axes.set_xlim(0, right * 1.45)
        axes.text(
            0.01,
            0.02,
            "■ first stage   ● evidence swap   ▲ rerank only",
            transform=axes.transAxes,
            fontsize=7,
        )
        axes.set_ylim(0, 1.02)
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(file)
    finally:
        plt.close(figure)
    return file
