"""How much a document's score moves with what else is in its batch, per backend (CPU, tiny models).

Each backend scores the same 4 documents three ways: one by one, together, and together with other
documents of other lengths (other padded widths). It prints the largest score difference from the
one-by-one scores. The bar (issue 16) is 1e-6 in float32 on CPU. It also shows the cause on Qwen3.5:
the same row padded to the batch's width gives exactly the batch's logit.

Usage::

    python benchmarks/batch_invariance.py

Nothing is downloaded; the result cache is off (the engine's own passes are compared).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

QUERY = "how does rust manage memory?"
DOCS = ["Rust uses ownership and borrowing.", "Paris is in France.", "memory safety " * 40, "ok"]
OTHERS = ["noise " * 300, "x", "the borrow checker " * 12]


def spread(engine: object) -> tuple[float, float]:
    alone = [engine.score(QUERY, [d])[0] for d in DOCS]  # type: ignore[attr-defined]
    together = engine.score(QUERY, DOCS)  # type: ignore[attr-defined]
    mixed = engine.score(QUERY, OTHERS[:1] + DOCS + OTHERS[1:])[1 : 1 + len(DOCS)]  # type: ignore[attr-defined]
    return (
        max(abs(a - b) for a, b in zip(alone, together, strict=True)),
        max(abs(a - b) for a, b in zip(alone, mixed, strict=True)),
    )


def main() -> int:
    os.environ["PRISM_RESULT_CACHE_ENTRIES"] = "0"
    from prism_core import CrossEncoderReranker, PrismReranker, Qwen3Reranker
    from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder
    from prism_core.testing.tiny_models import build_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        engines = {
            "prism (Qwen3.5)": PrismReranker(
                str(build_tiny_checkpoint(Path(tmp) / "q35", "qwen3_5")), device="cpu", show_progress=False
            ),
            "qwen3-reranker (Qwen3)": Qwen3Reranker(
                str(build_tiny_checkpoint(Path(tmp) / "q3", "qwen3")), device="cpu", show_progress=False
            ),
            "cross-encoder (BERT)": CrossEncoderReranker(
                str(build_tiny_cross_encoder(Path(tmp) / "ce")), device="cpu", show_progress=False
            ),
        }
        lines = [
            "| backend | max score diff, together | max score diff, with other widths | within 1e-6 |",
            "| --- | ---: | ---: | --- |",
        ]
        for name, engine in engines.items():
            a, b = spread(engine)
            lines.append(f"| {name} | {a:.2e} | {b:.2e} | {'yes' if max(a, b) <= 1e-6 else 'NO'} |")
        prism = engines["prism (Qwen3.5)"]
        runner, prompts = prism.runner, prism.prompt_tokenizer
        ids = [p.ids for p in prompts.encode(QUERY, DOCS)]
        widest = max(range(len(ids)), key=lambda i: len(ids[i]))

        def logits(rows: list[list[int]]) -> list[float]:
            st = runner.prefill(rows, keep_cache=False)
            return (st.verdict_logits[:, 0] - st.verdict_logits[:, 1]).tolist()

        batch = logits(ids)
        same_width = [logits([i, ids[widest]])[0] for i in ids]
        cause = max(abs(a - b) for a, b in zip(same_width, batch, strict=True))
        lines.append("")
        lines.append(
            f"Qwen3.5, each row scored beside the widest row (same padded width, other rows): max logit diff "
            f"from the batch {cause:.2e}: the padded width, not the other rows, moves a score."
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
