"""Agent-loop benchmark (CPU, tiny model): the three budgets an agent sets, measured.

An agent asks the same 20 queries 5 times; each round a query's 10 candidates are a window sliding by
one over its pool of 14 documents, so consecutive rounds share 9 of 10 candidates. Every call goes
through the LangChain adapter (``PrismDocumentCompressor``) on one tiny random-weight Qwen3.5 Prism
checkpoint (``max_new_tokens=32``, evidence on), as an agent's retriever would call it.

- **Result cache.** The loop with the cache off, then with it on (empty at the start): wall time per
  round, engine forward passes and decode steps, cache hits and misses, and whether every call's
  answer (documents, order, bodies, metadata) equals the uncached one.
- **Token budget.** Context tokens returned per call (the model's tokenizer; the evidence where
  swapped in, else the body) without a budget and with ``max_context_tokens``; documents returned
  and left out.
- **Time budget.** The loop with the cache off and ``time_budget`` set: how far past its budget a
  call returned (worst and median overshoot), documents scored, evidence cut. One engine step on this
  model (the bound the engine promises beyond the deadline) is reported beside it.

Random weights: scores and texts mean nothing; only the work and the accounting are measured.

Usage::

    python benchmarks/agent_loop.py           # ~2 minutes on 2 cores; prints a Markdown section
    python benchmarks/agent_loop.py --write   # also replaces "## Agent loop (CPU)" in RESULTS.md

Raw numbers go to ``benchmarks/results/cpu/agent_loop.json``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sections import replace_section  # noqa: E402  (a sibling module of this script)

SECTION = "## Agent loop (CPU)"
TOPICS = [
    "rust memory safety", "paris landmarks", "photosynthesis", "tokyo transport", "python typing",
    "volcanoes", "jazz history", "coral reefs", "bread baking", "chess openings",
    "solar panels", "roman roads", "honey bees", "glaciers", "violin making",
    "tea ceremonies", "deep sea fish", "bridges", "comets", "olive oil",
]  # fmt: skip
WORDS = [
    "memory",
    "safety",
    "ownership",
    "borrow",
    "checker",
    "compiler",
    "tower",
    "iron",
    "light",
    "energy",
    "glucose",
    "plants",
    "city",
    "capital",
    "train",
    "station",
    "typing",
    "annotation",
    "lava",
    "magma",
    "rhythm",
    "swing",
    "reef",
    "algae",
    "dough",
    "yeast",
    "opening",
    "gambit",
    "panel",
    "silicon",
    "road",
    "stone",
    "bee",
    "hive",
    "ice",
    "valley",
    "wood",
    "string",
    "leaf",
    "water",
    "fish",
    "pressure",
    "arch",
    "steel",
    "tail",
    "orbit",
    "olive",
    "press",
]
POOL, WINDOW, ROUNDS = 14, 10, 5

logger = logging.getLogger("prism-bench.agent-loop")


def pool(q: int) -> list[str]:
    """Query ``q``'s 14 candidate documents (30-70 words each, varied)."""
    out = []
    for i in range(POOL):
        n = 30 + (q * 7 + i * 11) % 41
        body = " ".join(WORDS[(q * 5 + i * 3 + k * 7) % len(WORDS)] for k in range(n))
        out.append(f"{TOPICS[q]}: {body} (note {q}.{i})")
    return out


def workload() -> list[tuple[str, list[str]]]:
    """Round by round, each query with its window of candidates (sliding by one per round)."""
    pools = [pool(q) for q in range(len(TOPICS))]
    return [
        (f"what should I know about {TOPICS[q]}?", pools[q][r : r + WINDOW])
        for r in range(ROUNDS)
        for q in range(len(TOPICS))
    ]


def answer(docs: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(d.page_content, dict(d.metadata)) for d in docs]


def run_loop(compressor: Any, calls: list[tuple[str, list[Any]]]) -> tuple[list[Any], list[float]]:
    outs, times = [], []
    for query, docs in calls:
        start = time.perf_counter()
        outs.append(answer(compressor.compress_documents(docs, query)))
        times.append(time.perf_counter() - start)
    return outs, times


def same_answer(
    a: list[tuple[str, dict[str, Any]]], b: list[tuple[str, dict[str, Any]]]
) -> tuple[bool, float]:
    """Same documents, order, bodies and metadata (scores within 1e-5); and the largest score gap."""
    if [t for t, _ in a] != [t for t, _ in b]:
        return False, float("inf")
    gap = 0.0
    for (_, x), (_, y) in zip(a, b, strict=True):
        if {k: v for k, v in x.items() if k != "relevance_score"} != {
            k: v for k, v in y.items() if k != "relevance_score"
        }:
            return False, float("inf")
        gap = max(gap, abs(x["relevance_score"] - y["relevance_score"]))
    return gap <= 1e-5, gap


def per_round(times: list[float]) -> list[float]:
    n = len(TOPICS)
    return [sum(times[r * n : (r + 1) * n]) for r in range(ROUNDS)]


def measure(budget_tokens: int, time_budgets: list[float]) -> dict[str, Any]:
    import torch
    from langchain_core.documents import Document

    from prism_core import PrismReranker
    from prism_core.caching.pair_cache import configure_result_cache
    from prism_core.testing.tiny_models import build_tiny_checkpoint
    from prism_integrations.langchain import PrismDocumentCompressor

    calls = [(q, [Document(page_content=t) for t in texts]) for q, texts in workload()]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(build_tiny_checkpoint(Path(tmp) / "tiny-qwen3_5", "qwen3_5"))
        engine = PrismReranker(path, device="cpu", max_new_tokens=32).load()
        count = engine.prompt_tokenizer.count_tokens
        stats = engine.engine_loop.stats
        plain = PrismDocumentCompressor(reranker=engine)
        configure_result_cache(max_entries=0)
        engine.rerank("warm up", ["a document"])  # first-call overheads out of the timings

        # --- the cache
        before = (stats.passes, stats.decode_steps)
        cpu = time.process_time()
        cold, cold_times = run_loop(plain, calls)
        cold_cpu = time.process_time() - cpu
        cold_work = (stats.passes - before[0], stats.decode_steps - before[1])
        cache = configure_result_cache()
        before = (stats.passes, stats.decode_steps)
        cpu = time.process_time()
        warm, warm_times = run_loop(plain, calls)
        warm_cpu = time.process_time() - cpu
        warm_work = (stats.passes - before[0], stats.decode_steps - before[1])
        checks = [same_answer(a, b) for a, b in zip(cold, warm, strict=True)]
        same = sum(ok for ok, _ in checks)
        gap = max(g for _, g in checks)
        cache_stats = {
            k: getattr(cache.stats, k) for k in ("hits", "misses", "evictions", "entries", "bytes")
        }

        # --- the token budget (cache on: the same answers, counted); every document ranked
        every = PrismDocumentCompressor(reranker=engine, drop_irrelevant=False)
        without_budget, _ = run_loop(every, calls)
        budgeted = PrismDocumentCompressor(
            reranker=engine, drop_irrelevant=False, max_context_tokens=budget_tokens
        )
        with_budget, _ = run_loop(budgeted, calls)
        tokens_plain = [sum(count(text) for text, _ in out) for out in without_budget]
        tokens_budget = [sum(m["context_tokens"] for _, m in out) for out in with_budget]
        docs_plain = [len(out) for out in without_budget]
        docs_budget = [len(out) for out in with_budget]
        assert all(t <= budget_tokens for t in tokens_budget)

        # --- the time budget (cache off: every call does its work)
        configure_result_cache(max_entries=0)
        step_times: list[float] = []
        hook = engine.runner.body.register_forward_pre_hook(lambda *_: step_times.append(time.perf_counter()))
        engine.rerank(calls[0][0], [d.page_content for d in calls[0][1]])
        hook.remove()
        steps = [b - a for a, b in itertools.pairwise(step_times)]
        deadlines = []
        timed_calls = calls[: 2 * len(TOPICS)]  # rounds 1-2: every call does its full work
        forwards: list[float] = []  # start time of every forward pass (prefill or decode step)
        ends: list[float] = []
        hook = engine.runner.body.register_forward_pre_hook(lambda *_: forwards.append(time.perf_counter()))
        post = engine.runner.body.register_forward_hook(lambda *_: ends.append(time.perf_counter()))
        for seconds in time_budgets:
            timed = PrismDocumentCompressor(reranker=engine, time_budget=seconds, drop_irrelevant=False)
            over, late, metas, times, longest = [], [], [], [], []
            for query, docs in timed_calls:
                forwards.clear()
                ends.clear()
                start = time.perf_counter()
                out = answer(timed.compress_documents(docs, query))
                end = time.perf_counter()
                times.append(end - start)
                over.append(end - start - seconds)
                late.append(sum(t > start + seconds for t in forwards))  # passes begun past the deadline
                longest.append(max((b - a for a, b in zip(forwards, ends, strict=False)), default=0.0))
                metas.extend(m for _, m in out)
            deadlines.append(
                {
                    "time_budget_s": seconds,
                    "calls": len(timed_calls),
                    "worst_overshoot_s": max(over),
                    "longest_pass_in_worst_call_s": longest[over.index(max(over))],
                    "median_overshoot_s": statistics.median(over),
                    "calls_over": sum(o > 0 for o in over),
                    "max_passes_after_deadline": max(late),
                    "documents": len(metas),
                    "scored": sum(m["scored"] for m in metas),
                    "evidence_cut": sum(m.get("evidence_skipped") == "time_budget" for m in metas),
                    "median_call_s": statistics.median(times),
                }
            )
        hook.remove()
        post.remove()
        configure_result_cache()
    return {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "machine": (
            f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} torch threads"
        ),
        "calls": len(calls),
        "cache": {
            "cold_rounds_s": per_round(cold_times),
            "warm_rounds_s": per_round(warm_times),
            "cold_total_s": sum(cold_times),
            "warm_total_s": sum(warm_times),
            "cold_cpu_s": cold_cpu,
            "warm_cpu_s": warm_cpu,
            "cold_work": cold_work,
            "warm_work": warm_work,
            "identical_answers": same,
            "max_score_gap": gap,
            "stats": cache_stats,
        },
        "tokens": {
            "budget": budget_tokens,
            "plain_mean": statistics.mean(tokens_plain),
            "plain_max": max(tokens_plain),
            "budget_mean": statistics.mean(tokens_budget),
            "budget_max": max(tokens_budget),
            "docs_plain_mean": statistics.mean(docs_plain),
            "docs_budget_mean": statistics.mean(docs_budget),
        },
        "deadline": deadlines,
        "engine_step_s": {"median": statistics.median(steps), "max": max(steps)} if steps else None,
    }


def render(result: dict[str, Any], command: str) -> str:
    c, t = result["cache"], result["tokens"]
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [
        SECTION,
        "",
        f"Command: `{command}` · {result['when']} · tiny random-weight Qwen3.5 Prism checkpoint "
        f"(`max_new_tokens=32`, evidence on), CPU ({result['machine']}; load average at the end "
        + " / ".join(str(x) for x in result["load_average"])
        + " on 2 cores: "
        f"the machine was shared, so wall times are noisy; process CPU and counts are not). "
        f"{result['calls']} calls: "
        f"{len(TOPICS)} queries × {ROUNDS} rounds, {WINDOW} candidates each, a window sliding by one "
        f"over a pool of {POOL} (consecutive rounds share {WINDOW - 1} of {WINDOW}); every call through "
        "`PrismDocumentCompressor` (method in the script's docstring).",
        "",
        "**Result cache** (wall time per round of 20 calls):",
        "",
        "| | round 1 | round 2 | round 3 | round 4 | round 5 | total wall | process CPU "
        "| forward passes | decode steps |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| cache off | "
        + " | ".join(ms(x) for x in c["cold_rounds_s"])
        + f" | {ms(c['cold_total_s'])} | {c['cold_cpu_s']:.1f} s"
        + f" | {c['cold_work'][0]} | {c['cold_work'][1]} |",
        "| cache on | "
        + " | ".join(ms(x) for x in c["warm_rounds_s"])
        + f" | {ms(c['warm_total_s'])} | {c['warm_cpu_s']:.1f} s"
        + f" | {c['warm_work'][0]} | {c['warm_work'][1]} |",
        "",
        f"Cache: {c['stats']['hits']} hits, {c['stats']['misses']} misses, {c['stats']['evictions']} "
        f"evictions, {c['stats']['entries']} entries, {c['stats']['bytes'] / 1024:.0f} KiB. Answers "
        f"equal to the uncached ones (documents, order, bodies, metadata; scores within 1e-5): "
        f"{c['identical_answers']} of {result['calls']} calls (largest score gap {c['max_score_gap']:.1e}).",
        "",
        f"**Token budget** (`max_context_tokens={t['budget']}`, counted with the model's tokenizer; "
        "`drop_irrelevant=False`, so all 10 candidates are ranked and returned without a budget):",
        "",
        "| | context tokens per call (mean) | worst call | documents per call (mean) |",
        "| --- | ---: | ---: | ---: |",
        f"| no budget | {t['plain_mean']:.0f} | {t['plain_max']} | {t['docs_plain_mean']:.1f} |",
        f"| budget {t['budget']} | {t['budget_mean']:.0f} | {t['budget_max']} "
        f"| {t['docs_budget_mean']:.1f} |",
        "",
        "**Time budget** (cache off, rounds 1–2; overshoot = call time − budget; `drop_irrelevant=False` "
        "so every document is returned and counted; *passes after the deadline*: forward passes, prefill "
        "or decode step, the engine began after the call's deadline, worst call):",
        "",
        "| `time_budget` | worst overshoot | its longest pass | median overshoot | calls over "
        "| passes after the deadline | median call | documents scored | evidence cut |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d in result["deadline"]:
        lines.append(
            f"| {ms(d['time_budget_s'])} | {ms(d['worst_overshoot_s'])} | "
            f"{ms(d['longest_pass_in_worst_call_s'])} | {ms(d['median_overshoot_s'])} | "
            f"{d['calls_over']} of {d['calls']} | {d['max_passes_after_deadline']} | "
            f"{ms(d['median_call_s'])} | "
            f"{d['scored']} of {d['documents']} | {d['evidence_cut']} |"
        )
    step = result["engine_step_s"]
    if step:
        lines += [
            "",
            f"One engine step on this model (time between forward passes of one call): median "
            f"{ms(step['median'])}, worst {ms(step['max'])}: the bound the engine promises past a deadline.",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget-tokens", type=int, default=400, help="max_context_tokens (default 400)")
    parser.add_argument(
        "--time-budgets", type=float, nargs="+", default=[0.1, 0.5], help="seconds (default 0.1 0.5)"
    )
    parser.add_argument("--write", action="store_true", help=f"replace {SECTION!r} in RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.budget_tokens, args.time_budgets)
    out = HERE / "results" / "cpu" / "agent_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    command = "python benchmarks/agent_loop.py" + (" --write" if args.write else "")
    text = render(result, command)
    print(text)
    if args.write:
        replace_section(HERE / "RESULTS.md", SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
