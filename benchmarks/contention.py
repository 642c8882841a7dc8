"""Contention benchmark (CPU, tiny model): the scenarios of the shared-core reliability issue, measured.

Two scenarios on the tiny random-weight Qwen3.5 Prism checkpoint, one engine shared by every caller:

- **Fairness.** ``--threads`` threads (6) each call ``engine.rerank`` in a loop for ``--seconds``
  (10), every call the same work (``--docs`` synthetic documents, evidence on, ``top_n=4``). Before
  the engine loop, five callers got answers in ~0.14 s while one waited 11-15 s for every call.
  Reported per thread: calls made, median and worst latency; and the latency of the same call alone,
  the forward passes run and how many served several callers at once.
- **Abandoned work.** 8 ``arerank`` calls of 200 documents are cancelled by ``asyncio.wait_for``
  after 10 ms (four while their prompts are encoded, four once the engine holds them), then one
  2-document call is timed; before the engine loop it took ~6 s instead of ~0.04 s and the event loop
  took ~7 s to close. Reported: the 2-document call alone and after the cancellations, the time to
  close the event loop, and the jobs the engine dropped.

Usage::

    python benchmarks/contention.py           # ~1 minute on 2 cores; prints a Markdown section
    python benchmarks/contention.py --write   # also replaces "## Contention (CPU)" in RESULTS.md

Raw numbers go to ``benchmarks/results/cpu/contention.json``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sections import replace_section  # noqa: E402  (a sibling module of this script)

SECTION = "## Contention (CPU)"
QUERY = "how does rust manage memory?"
WORDS = [
    "memory",
    "safety",
    "ownership",
    "borrow",
    "checker",
    "lifetimes",
    "compiler",
    "systems",
    "language",
    "garbage",
    "collection",
    "tower",
    "paris",
    "iron",
    "photosynthesis",
    "light",
    "energy",
    "glucose",
    "plants",
    "tokyo",
    "capital",
    "city",
    "relevance",
    "evidence",
]

logger = logging.getLogger("prism-bench.contention")


def docs(n: int, seed: int, words: int = 40) -> list[str]:
    """``n`` synthetic documents of about ``words`` words."""
    return [
        " ".join(WORDS[(seed + i + k * 7) % len(WORDS)] for k in range(words)) + f" (document {i})"
        for i in range(n)
    ]


def fairness(engine: Any, n_threads: int, n_docs: int, seconds: float) -> dict[str, Any]:
    work = docs(n_docs, 1)
    engine.rerank(QUERY, work, top_n=4)  # warm
    alone = []
    for _ in range(5):
        t0 = time.perf_counter()
        engine.rerank(QUERY, work, top_n=4)
        alone.append(time.perf_counter() - t0)
    stats = engine.engine_loop.stats
    passes, shared = stats.passes, stats.coalesced_passes
    latencies: list[list[float]] = [[] for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)
    deadline = [0.0]

    def caller(k: int) -> None:
        barrier.wait(30)
        if k == 0:
            deadline[0] = time.monotonic() + seconds
        while not deadline[0]:
            time.sleep(0.001)
        while time.monotonic() < deadline[0]:
            t0 = time.perf_counter()
            engine.rerank(QUERY, work, top_n=4)
            latencies[k].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    return {
        "threads": n_threads,
        "docs": n_docs,
        "seconds": seconds,
        "alone_median_s": statistics.median(alone),
        "per_thread": [
            {"calls": len(x), "median_s": statistics.median(x), "worst_s": max(x)} for x in latencies
        ],
        "passes": stats.passes - passes,
        "shared_passes": stats.coalesced_passes - shared,
    }


def abandoned(engine: Any) -> dict[str, Any]:
    small, big = docs(2, 99), docs(200, 5)
    engine.rerank(QUERY, small)
    alone = []
    for _ in range(5):
        t0 = time.perf_counter()
        engine.rerank(QUERY, small)
        alone.append(time.perf_counter() - t0)
    loop = engine.engine_loop
    dropped_before = loop.stats.jobs_cancelled
    passes_before = loop.stats.passes

    async def scenario() -> float:
        async def cancelled_after(seconds: float) -> None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(engine.arerank(QUERY, big), timeout=seconds)

        await asyncio.gather(*(cancelled_after(0.01) for _ in range(4)))  # while encoding
        tasks = [asyncio.create_task(engine.arerank(QUERY, big)) for _ in range(4)]
        deadline = time.monotonic() + 60
        while loop.queue_depth < 4 and time.monotonic() < deadline:  # once the engine holds them
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        t0 = time.perf_counter()
        await engine.arerank(QUERY, small)
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    event_loop = asyncio.new_event_loop()
    after = event_loop.run_until_complete(scenario())
    t_close = time.perf_counter()
    event_loop.run_until_complete(event_loop.shutdown_default_executor())
    event_loop.close()
    closed = time.perf_counter()
    return {
        "small_alone_s": statistics.median(alone),
        "small_after_cancel_s": after,
        "close_s": closed - t_close,
        "scenario_s": closed - t0,
        "jobs_dropped": loop.stats.jobs_cancelled - dropped_before,
        "passes_during": loop.stats.passes - passes_before,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    f, a = result["fairness"], result["abandoned"]
    lines = [
        SECTION,
        "",
        f"Command: `{command}` · {result['when']} · tiny random-weight Qwen3.5 Prism checkpoint, CPU "
        f"({result['cpu']}), torch {result['torch']}, {result['threads']} torch threads. The scenarios "
        "of the shared-core reliability issue, on the engine loop (method in the script's docstring).",
        "",
        f"**Fairness**: {f['threads']} threads call one engine in a loop for {f['seconds']:.0f} s, "
        f"each call {f['docs']} documents with evidence, `top_n=4`. The same call alone: "
        f"{1000 * f['alone_median_s']:.0f} ms (median). Before the engine loop, five callers got answers "
        "in ~0.14 s and one waited 11–15 s for every call.",
        "",
        "| thread | calls | median latency | worst latency |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for k, t in enumerate(f["per_thread"]):
        lines.append(f"| {k} | {t['calls']} | {1000 * t['median_s']:.0f} ms | {1000 * t['worst_s']:.0f} ms |")
    worst = max(t["worst_s"] for t in f["per_thread"])
    calls = [t["calls"] for t in f["per_thread"]]
    lines += [
        "",
        f"Every thread was served: {min(calls)}–{max(calls)} calls each; the worst single call took "
        f"{worst / f['alone_median_s']:.1f}× the call alone with {f['threads']} callers sharing the "
        f"model. Forward passes: {f['passes']}, of which {f['shared_passes']} served several callers.",
        "",
        "**Abandoned work**: 8 `arerank` calls of 200 documents cancelled (`asyncio.wait_for`, 10 ms; "
        "4 while encoding, 4 once queued in the engine), then a 2-document call. Before the engine "
        "loop: ~6 s instead of ~0.04 s, and ~7 s to close the event loop.",
        "",
        "| 2-document call alone | after the cancellations | closing the event loop "
        "| jobs dropped by the engine | forward passes meanwhile |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {1000 * a['small_alone_s']:.0f} ms | {1000 * a['small_after_cancel_s']:.0f} ms | "
        f"{1000 * a['close_s']:.0f} ms | {a['jobs_dropped']} | {a['passes_during']} |",
        "",
        "The four requests cancelled while encoding never reached the engine; the four it held were "
        "dropped at the next step boundary, so the next call pays at most the pass that was running.",
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it)."""
    replace_section(HERE / "RESULTS.md", SECTION, text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=6, help="callers in the fairness scenario")
    parser.add_argument("--docs", type=int, default=8, help="documents per call in the fairness scenario")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the fairness scenario")
    parser.add_argument("--write", action="store_true", help=f"replace {SECTION!r} in RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from prism_core import PrismReranker
    from prism_core.testing.tiny_models import build_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = str(build_tiny_checkpoint(Path(tmp) / "tiny-qwen3_5", "qwen3_5"))
        engine = PrismReranker(path, device="cpu", max_new_tokens=32).load()
        logger.info("fairness: %d threads x %.0f s", args.threads, args.seconds)
        fair = fairness(engine, args.threads, args.docs, args.seconds)
        logger.info("abandoned work")
        gone = abandoned(engine)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fairness": fair,
        "abandoned": gone,
    }
    out = HERE / "results" / "cpu" / "contention.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    command = "python benchmarks/contention.py" + (" --write" if args.write else "")
    text = markdown(result, command)
    sys.stdout.write(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
