"""How much a document's score moves with what else is in its batch, per backend (CPU, tiny models).

Each backend scores the same 4 documents three ways: one by one, together, and together with other
documents of other lengths (other padded widths); Prism also with evidence on (rows that decode).
It prints the largest score difference from the one-by-one scores. The bar (issue 16) is 1e-6 in
float32 on CPU. It also shows why rows run at widths set by their own length: on Qwen3.5 the same
row padded to another row's width moves, padded to the same width beside other rows it does not.

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


def spread(engine: object, evidence: bool = False) -> tuple[float, float]:
    def scores(docs: list[str]) -> list[float]:
        if not evidence:
            return list(engine.score(QUERY, docs))  # type: ignore[attr-defined]
        return [r.score for r in sorted(engine.rerank(QUERY, docs), key=lambda r: r.index)]  # type: ignore[attr-defined]

    alone = [scores([d])[0] for d in DOCS]
    together = scores(DOCS)
    mixed = scores(OTHERS[:1] + DOCS + OTHERS[1:])[1 : 1 + len(DOCS)]
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
                str(build_tiny_checkpoint(Path(tmp) / "q35", "qwen3_5")),
                device="cpu",
                show_progress=False,
                max_new_tokens=8,
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
        a, b = spread(prism, evidence=True)
        lines.append(
            f"| prism (Qwen3.5), evidence on | {a:.2e} | {b:.2e} | {'yes' if max(a, b) <= 1e-6 else 'NO'} |"
        )
        runner, prompts = prism.runner, prism.prompt_tokenizer
        ids = [p.ids for p in prompts.encode(QUERY, DOCS)]
        widest = max(range(len(ids)), key=lambda i: len(ids[i]))

        def logits(rows: list[list[int]]) -> list[float]:
            st = runner.prefill(rows, keep_cache=False)
            return (st.verdict_logits[:, 0] - st.verdict_logits[:, 1]).tolist()

        width = len(ids[widest])
        alone = [logits([i]) for i in ids]
        padded = [runner.prefill([i], keep_cache=False, width=width) for i in ids]
        padded_logits = [(st.verdict_logits[:, 0] - st.verdict_logits[:, 1]).item() for st in padded]
        beside = [logits([i, ids[widest]])[0] for i in ids]
        moved = max(abs(a[0] - b) for a, b in zip(alone, padded_logits, strict=True))
        same = max(abs(a - b) for a, b in zip(padded_logits, beside, strict=True))
        lines.append("")
        lines.append(
            f"Qwen3.5, raw runner: a row padded to the widest row's width moves its logit by up to "
            f"{moved:.2e} from the row alone; at that same width beside the widest row it moves by "
            f"{same:.2e}: the padded width, not the other rows, moves a score, so the engine pads each "
            "row to a width set by its own length."
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
