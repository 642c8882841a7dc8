"""The CPU greedy head, path by path: the float32 scan against the bfloat16 screen (both exact).

Times :class:`prism_core.runtime.greedy_head.GreedyHead` on a random head of the Qwen3.5 vocabulary
(248,320 tokens) and a given hidden size, for several row counts, best of ``--repeats``, the two
paths alternated call by call so that both meet the machine in the same state, and checks that
both give ``head(hidden).argmax(-1)``. The screen needs bfloat16 dot products (AVX512-BF16 or AMX)
to pay; the script says whether this CPU has them. CPU only; nothing is downloaded.

Usage::

    python benchmarks/greedy_head.py                 # hidden 64 (the tiny test models)
    python benchmarks/greedy_head.py --hidden 1024   # the 0.8B models' hidden size
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from prism_core.runtime.greedy_head import GreedyHead, bfloat16_dot_is_fast

logger = logging.getLogger("prism-bench.greedy_head")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=64, help="hidden size of the head")
    parser.add_argument("--vocab", type=int, default=248_320, help="vocabulary size")
    parser.add_argument("--rows", default="1,10,56,90", help="comma-separated row counts")
    parser.add_argument("--repeats", type=int, default=15, help="calls of each path per row count")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    head = torch.nn.Linear(args.hidden, args.vocab, bias=False)
    paths = {"float32": GreedyHead(head, screen=False), "screen": GreedyHead(head, screen=True)}
    logger.info(
        "CPU with bfloat16 dot products: %s; torch %s, %d threads; vocabulary %d, hidden %d",
        bfloat16_dot_is_fast(), torch.__version__, torch.get_num_threads(), args.vocab, args.hidden,
    )  # fmt: skip
    with torch.inference_mode():
        for rows in (int(x) for x in args.rows.split(",")):
            hidden = torch.randn(rows, args.hidden)
            expected = head(hidden).argmax(-1)
            times: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(args.repeats):
                for name, greedy in paths.items():
                    start = time.perf_counter()
                    tokens = greedy(hidden)
                    times[name].append(time.perf_counter() - start)
                    assert torch.equal(tokens, expected), f"{name} path differs from argmax at {rows} rows"
            plain, screened = min(times["float32"]), min(times["screen"])
            logger.info(
                "%3d rows: float32 %.1f ms, screen %.1f ms (%.1f×), best of %d",
                rows, plain * 1e3, screened * 1e3, plain / screened, args.repeats,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
