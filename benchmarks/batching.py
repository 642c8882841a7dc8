"""Continuous-batching benchmark (CPU, tiny model): one decode pass for every caller, measured.

Two scenarios on a tiny random-weight Prism checkpoint, one engine shared by every caller, with
relevance and evidence length *imposed* as ``benchmarks/run.py`` does (the engine's real work, with
verdicts overwritten after the real prefill and no stop tokens, so every relevant row generates
exactly ``--evidence-tokens`` tokens whatever the random weights say):

- **Concurrency.** 1, 4, 8 and 16 threads each send ``--rounds`` evidence requests of 30 documents
  (10 imposed relevant), every request with its own documents. Each concurrency runs in the same
  process with the shared decode pass (continuous batching) and with per-request decoding
  (``EngineLoop.shared_decode = False``: one decode pass per request per step, what the engine did
  before), ``--repeats`` times each, alternating which goes first (this shared CPU's speed drifts
  by up to 2× over seconds to minutes; one run of each mode says little). Reported: decode forward
  passes per generated token, rows per decode pass, generated tokens/s (median and range),
  documents/s, p50/p90 request latency (medians), and the tokens/s ratio repeat by repeat.
- **A small request beside a bulk one.** A 2-document evidence request alone, then started while a
  ``--bulk``-document score-only request runs: its latency, and the ratio to alone.

Usage::

    python benchmarks/batching.py            # a few minutes on 2 cores; prints a Markdown section
    python benchmarks/batching.py --write    # also replaces "## Continuous batching (CPU)" in RESULTS.md

Raw numbers go to ``benchmarks/results/cpu/batching.json``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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

SECTION = "## Continuous batching (CPU)"
QUERY = "how does rust manage memory?"
WORDS = [
    *("memory", "safety", "ownership", "borrow", "checker", "lifetimes", "compiler", "systems"),
    *("language", "garbage", "collection", "tower", "paris", "iron", "photosynthesis", "light"),
    *("energy", "glucose", "plants", "tokyo", "capital", "city", "relevance", "evidence"),
]
DOCS_PER_REQUEST = 30
RELEVANT_PER_REQUEST = 10

logger = logging.getLogger("prism-bench.batching")


def make_docs(n: int, seed: int, words: int = 30) -> list[str]:
    """``n`` distinct synthetic documents of about ``words`` words."""
    return [
        " ".join(WORDS[(seed * 31 + i * 7 + k * 5) % len(WORDS)] for k in range(words)) + f" (doc {seed}.{i})"
        for i in range(n)
    ]


class Bench:
    """The engine under test with imposed verdicts for every prompt it will see."""

    def __init__(self, path: str, evidence_tokens: int) -> None:  # result cache off (see ``main``)
        from harness import ImposedRunner

        from prism_core import PrismReranker

        class ImposedPrism(PrismReranker):
            runner_class = ImposedRunner
            stop_strings = ()

        self.engine = ImposedPrism(path, device="cpu", max_new_tokens=evidence_tokens, show_progress=False)
        self.engine.load()
        self.runner = self.engine.runner
        self.loop = self.engine.engine_loop
        self._prompts: list[list[int]] = []
        self._logits: list[float] = []

    def impose(self, docs: list[str], relevant: int) -> None:
        """Impose verdicts on these documents' prompts: the first ``relevant`` are relevant."""
        for k, p in enumerate(self.engine.prompt_tokenizer.encode(QUERY, docs)):
            self._prompts.append(p.ids)
            self._logits.append(3.0 if k < relevant else -3.0)
        self.runner.impose(self._prompts, self._logits)


def concurrency(bench: Bench, threads: int, rounds: int, shared: bool, seed: int) -> dict[str, Any]:
    work = [
        [make_docs(DOCS_PER_REQUEST, seed + t * rounds + r) for r in range(rounds)] for t in range(threads)
    ]
    for per_thread in work:
        for d in per_thread:
            bench.impose(d, RELEVANT_PER_REQUEST)
    bench.loop.shared_decode = shared
    stats = bench.loop.stats
    before = (stats.decode_steps, stats.decode_rows, stats.tokens_generated)
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def caller(t: int) -> None:
        barrier.wait(60)
        for d in work[t]:
            t0 = time.perf_counter()
            results = bench.engine.rerank(QUERY, d)
            dt = time.perf_counter() - t0
            assert sum(r.raw_output is not None for r in results) == RELEVANT_PER_REQUEST
            with lock:
                latencies.append(dt)

    pool = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join(1800)
    wall = time.perf_counter() - t0
    bench.loop.shared_decode = True
    steps = stats.decode_steps - before[0]
    rows = stats.decode_rows - before[1]
    tokens = stats.tokens_generated - before[2]
    latencies.sort()
    return {
        "threads": threads,
        "requests": threads * rounds,
        "shared_decode": shared,
        "wall_s": wall,
        "decode_passes": steps,
        "decode_rows": rows,
        "tokens_generated": tokens,
        "passes_per_token": steps / tokens if tokens else None,
        "rows_per_pass": rows / steps if steps else None,
        "tokens_per_s": tokens / wall,
        "docs_per_s": threads * rounds * DOCS_PER_REQUEST / wall,
        "p50_s": statistics.median(latencies),
        "p90_s": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))],
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for repeated runs of one mode: medians of the rates and latencies, the range of tokens/s.

    Pass counts and rows are summed over the runs (the same work each time), so the ratios are exact.
    """
    first = runs[0]
    steps = sum(r["decode_passes"] for r in runs)
    rows = sum(r["decode_rows"] for r in runs)
    tokens = sum(r["tokens_generated"] for r in runs)
    return {
        "threads": first["threads"],
        "requests": first["requests"],
        "shared_decode": first["shared_decode"],
        "repeats": len(runs),
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "decode_passes": steps,
        "decode_rows": rows,
        "tokens_generated": tokens,
        "passes_per_token": steps / tokens if tokens else None,
        "rows_per_pass": rows / steps if steps else None,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
        "tokens_per_s_range": [min(r["tokens_per_s"] for r in runs), max(r["tokens_per_s"] for r in runs)],
        "docs_per_s": statistics.median(r["docs_per_s"] for r in runs),
        "p50_s": statistics.median(r["p50_s"] for r in runs),
        "p90_s": statistics.median(r["p90_s"] for r in runs),
        "runs": runs,
    }


def beside_bulk(bench: Bench, bulk: int) -> dict[str, Any]:
    small = make_docs(2, 9001)
    bench.impose(small, 2)
    big = make_docs(bulk, 9002, words=40)
    bench.impose(big, 0)
    alone = []
    for _ in range(5):
        t0 = time.perf_counter()
        bench.engine.rerank(QUERY, small)
        alone.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    bench.engine.score(QUERY, big[: max(1, bulk // 20)])
    bulk_probe = (time.perf_counter() - t0) * 20
    done = threading.Event()

    def run_bulk() -> None:
        bench.engine.score(QUERY, big)
        done.set()

    th = threading.Thread(target=run_bulk)
    th.start()
    time.sleep(min(2.0, bulk_probe / 4))
    beside = []
    for _ in range(3):
        if done.is_set():
            break
        t0 = time.perf_counter()
        bench.engine.rerank(QUERY, small)
        beside.append(time.perf_counter() - t0)
    bulk_running = not done.is_set()
    th.join(1800)
    return {
        "bulk_docs": bulk,
        "small_alone_s": statistics.median(alone),
        "small_beside_bulk_s": statistics.median(beside) if beside else None,
        "ratio": statistics.median(beside) / statistics.median(alone) if beside else None,
        "bulk_still_running_after": bulk_running,
        "bulk_estimated_s": bulk_probe,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        SECTION,
        "",
        f"Measured {result['when']} on this CPU ({result['cpu']}, torch {result['torch']}, "
        f"{result['threads']} threads), tiny random-weight Qwen3.5 Prism checkpoint, imposed verdicts "
        f"({RELEVANT_PER_REQUEST} of {DOCS_PER_REQUEST} documents relevant per request, "
        f"{result['evidence_tokens']} evidence tokens each), each mode run {result['repeats']} times per "
        f"concurrency, alternating which goes first. Command: `{command}`. Not a GPU figure.",
        "",
        "| concurrent requests | decoding | decode passes / generated token | rows / decode pass "
        "| generated tokens/s (median; range) | documents/s | p50 latency | p90 latency |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["concurrency"]:
        mode = "shared (continuous batching)" if r["shared_decode"] else "per request"
        low, high = r["tokens_per_s_range"]
        lines.append(
            f"| {r['threads']} | {mode} | {r['passes_per_token']:.3f} | {r['rows_per_pass']:.1f} "
            f"| {r['tokens_per_s']:.0f} ({low:.0f}-{high:.0f}) | {r['docs_per_s']:.1f} "
            f"| {r['p50_s']:.2f} s | {r['p90_s']:.2f} s |"
        )
    lines.append("")
    for t in sorted({r["threads"] for r in result["concurrency"]}):
        pair = {r["shared_decode"]: r for r in result["concurrency"] if r["threads"] == t}
        if True in pair and False in pair:
            s, p = pair[True], pair[False]
            ratio = s["rows_per_pass"] / p["rows_per_pass"]
            runs = zip(s["runs"], p["runs"], strict=True)
            paired = sorted(one["tokens_per_s"] / other["tokens_per_s"] for one, other in runs)
            lines.append(
                f"- {t} concurrent: shared decoding runs {ratio:.1f}× the rows "
                f"per decode pass and {s['tokens_per_s'] / p['tokens_per_s']:.2f}× the generated tokens/s of "
                f"per-request decoding (medians; repeat by repeat: "
                f"{', '.join(f'{x:.2f}×' for x in paired)})."
            )
    b = result["beside_bulk"]
    if b["ratio"] is not None:
        lines.append(
            f"- A 2-document evidence request took {b['small_alone_s']:.3f} s alone and "
            f"{b['small_beside_bulk_s']:.3f} s while a {b['bulk_docs']:,}-document score-only request ran "
            f"({b['ratio']:.1f}× alone; the bulk request was still running afterwards: "
            f"{b['bulk_still_running_after']})."
        )
    lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="1,4,8,16", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=2, help="requests per thread")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each mode per concurrency (alternating); medians"
    )
    parser.add_argument(
        "--evidence-tokens",
        type=int,
        default=64,
        help="tokens generated per relevant row (64: benchmarks/run.py's CPU plan)",
    )
    parser.add_argument("--bulk", type=int, default=6000, help="documents of the bulk score-only request")
    parser.add_argument("--write", action="store_true", help=f"replace {SECTION!r} in RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from prism_core.caching.pair_cache import configure_result_cache
    from prism_core.testing.tiny_models import build_tiny_checkpoint

    configure_result_cache(max_entries=0)  # the engine's work is measured: no pair served from the cache

    with tempfile.TemporaryDirectory() as tmp:
        path = str(build_tiny_checkpoint(Path(tmp) / "tiny-qwen3_5", "qwen3_5"))
        bench = Bench(path, args.evidence_tokens)
        warm = make_docs(DOCS_PER_REQUEST, 10_000)
        bench.impose(warm, RELEVANT_PER_REQUEST)
        bench.engine.rerank(QUERY, warm)
        rows = []
        seed = 0
        for threads in (int(x) for x in args.concurrency.split(",")):
            runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
            for repeat in range(args.repeats):
                # alternate which mode goes first, so neither always meets the machine in one state
                for shared in (True, False) if repeat % 2 == 0 else (False, True):
                    mode = "shared" if shared else "per-request"
                    logger.info("%d concurrent, %s decoding, repeat %d", threads, mode, repeat + 1)
                    runs[shared].append(concurrency(bench, threads, args.rounds, shared, seed))
                    seed += threads * args.rounds
            rows.extend([summarise(runs[True]), summarise(runs[False])])
        logger.info("a small request beside a %d-document bulk request", args.bulk)
        bulk = beside_bulk(bench, args.bulk)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "evidence_tokens": args.evidence_tokens,
        "repeats": args.repeats,
        "concurrency": rows,
        "beside_bulk": bulk,
    }
    out = HERE / "results" / "cpu" / "batching.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    command = " ".join(["python benchmarks/batching.py", *sys.argv[1:]])
    text = markdown(result, command)
    sys.stdout.write(text)
    if args.write:
        replace_section(HERE / "RESULTS.md", SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
