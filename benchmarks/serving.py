"""Serving benchmark (CPU, tiny model): the HTTP service against in-process calls, and Ray Data batch.

Same work for every contender, two workloads: ``--requests`` rerank requests of ``--docs`` synthetic
documents each, and as many requests of one document each (score-only: ``evidence=False``,
``top_n=3``), on the tiny random-weight Qwen3.5 Prism checkpoint.

- **in-process**: ``engine.arerank`` from ``c`` concurrent asyncio tasks in one process.
- **server**: ``prism-rerank serve`` in its own process on 127.0.0.1, called by ``c`` concurrent
  tasks of :class:`prism_core.RemoteReranker` (``httpx.AsyncClient``) in this process.
- **Ray Data batch**: the same requests as a JSONL file through ``prism-rerank batch``'s
  ``run_batch`` with 1 and 2 actors (a local Ray instance, 1 CPU per actor).

For ``c`` in 1, 4 and 16 it reports throughput (requests/s, documents/s), latency p50/p90, CPU time
per request (server + client processes; robust to other load on the machine, unlike wall time) and
the engine's forward passes (how many were shared by several requests). Ray runs report the wall
time of the whole job, the wall time of a 1-line job (start-up: Ray workers, imports, model load)
and the throughput beyond start-up.

Usage::

    python benchmarks/serving.py                  # ~3-5 minutes on 2 cores; prints a Markdown section
    python benchmarks/serving.py --write          # also replaces "## Serving (CPU)" in RESULTS.md
    python benchmarks/serving.py --no-ray         # skip the Ray Data part

Raw numbers go to ``benchmarks/results/cpu/serving.json``.
"""

from __future__ import annotations

import os

# One intra-op thread per model process (this one, the server, each Ray actor): the contenders get the
# same threads, and spinning thread pools do not turn other load on a 2-core machine into noise.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import contextlib
import json
import logging
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sections import replace_section  # noqa: E402  (a sibling module of this script)

REPO = HERE.parent
SECTION = "## Serving (CPU)"
_TEXT = """
memory safety ownership borrow checker lifetimes compiler systems language garbage collection tower paris
fair iron photosynthesis light energy glucose plants bananas berries strawberries tokyo capital city
metropolitan area query document relevance evidence contribution model
"""
WORDS = _TEXT.split()


Work = list[tuple[str, list[str]]]
Workloads = list[tuple[str, Work]]


def make_work(n_requests: int, n_docs: int, seed: int = 0) -> Work:
    rng = random.Random(seed)
    work = []
    for i in range(n_requests):
        docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 60))) for _ in range(n_docs)]
        work.append((f"query {i}: " + " ".join(rng.choice(WORDS) for _ in range(6)), docs))
    return work


def process_cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of this process or of ``pid`` (Linux ``/proc``)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


async def drive(call: Any, work: Work, concurrency: int, server_pid: int | None = None) -> dict[str, Any]:
    """Run ``work`` through ``call(query, docs)`` from ``concurrency`` tasks; latencies, wall and CPU time."""
    queue: asyncio.Queue[tuple[str, list[str]]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    latencies: list[float] = []

    async def worker() -> None:
        while True:
            try:
                query, docs = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            results = await call(query, docs)
            latencies.append(time.perf_counter() - started)
            assert len(results) == min(3, len(docs))

    started, cpu0 = time.perf_counter(), process_cpu()
    server0 = process_cpu(server_pid) if server_pid is not None else 0.0
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    cpu = process_cpu() - cpu0 + (process_cpu(server_pid) - server0 if server_pid is not None else 0.0)
    return {
        "concurrency": concurrency,
        "requests": len(work),
        "wall_s": wall,
        "req_per_s": len(work) / wall,
        "docs_per_s": sum(len(d) for _, d in work) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * percentile(latencies, 0.9),
        "cpu_ms_per_req": 1000 * cpu / len(work),
    }


def metric(url: str, name: str) -> float:
    import httpx

    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def bench_in_process(model: str, workloads: Workloads, levels: list[int]) -> list[dict[str, Any]]:
    from prism_core import PrismReranker

    engine = PrismReranker(model, device="cpu").load()
    stats = engine.engine_loop.stats

    def call(q: str, d: list[str]) -> Any:
        return engine.arerank(q, d, top_n=3, evidence=False)

    asyncio.run(drive(call, workloads[0][1][:4], 2))  # warm-up
    rows = []
    for name, work in workloads:
        for c in levels:
            passes, shared = stats.passes, stats.coalesced_passes
            row = asyncio.run(drive(call, work, c))
            row.update(mode="in-process", workload=name, passes=stats.passes - passes)
            row["coalesced"] = stats.coalesced_passes - shared
            rows.append(row)
            logging.info("in-process %s c=%d: %.1f req/s", name, c, row["req_per_s"])
    return rows


def bench_server(model: str, workloads: Workloads, levels: list[int]) -> list[dict[str, Any]]:
    import socket

    import httpx

    from prism_core.backends.remote import RemoteReranker

    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "prism_core.cli.serve", "--model", model, "--device", "cpu"]
    command += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the server exited")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        client = RemoteReranker(url, timeout=300, max_retries=0)

        async def run(work: Work, c: int, warm: bool) -> dict[str, Any]:
            def call(q: str, d: list[str]) -> Any:
                return client.arerank(q, d, top_n=3, evidence=False)

            try:
                if warm:
                    await drive(call, work[:4], 2)
                return await drive(call, work, c, server_pid=proc.pid)
            finally:
                await client.aclose()

        rows: list[dict[str, Any]] = []
        for name, work in workloads:
            for c in levels:
                passes = metric(url, "prism_engine_forward_passes_total")
                shared = metric(url, "prism_engine_coalesced_passes_total")
                row = asyncio.run(run(work, c, warm=not rows))
                row.update(mode="server", workload=name)
                row["passes"] = int(metric(url, "prism_engine_forward_passes_total") - passes)
                row["coalesced"] = int(metric(url, "prism_engine_coalesced_passes_total") - shared)
                rows.append(row)
                logging.info("server %s c=%d: %.1f req/s", name, c, row["req_per_s"])
        return rows
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class _Arrivals:
    """Polls an output file every 20 ms and notes when its record count grows."""

    def __init__(self, path: Path) -> None:
        import threading

        self.path = path
        self.seen: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        count = 0
        while not self.done.wait(0.02):
            if self.path.exists():
                now = self.path.read_bytes().count(b"\n")
                if now > count:
                    count = now
                    self.seen.append((time.perf_counter(), now))

    def stop(self) -> list[tuple[float, int]]:
        self.done.set()
        self.thread.join(5)
        return self.seen


def bench_ray(model: str, work: Work, actor_counts: list[int]) -> list[dict[str, Any]]:
    import ray

    from prism_core.config import EngineConfig
    from prism_core.serving.ray_batch import run_batch

    ray.init(
        num_cpus=os.cpu_count() or 2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    config = EngineConfig(model=model, backend="prism", device="cpu")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "in.jsonl"
            source.write_text("".join(json.dumps({"query": q, "documents": d}) + "\n" for q, d in work))
            for actors in actor_counts:
                sink = Path(tmp) / f"out-{actors}.jsonl"
                arrivals = _Arrivals(sink)
                started = time.perf_counter()
                summary = run_batch(
                    source, sink, config, actors=actors, cpus_per_actor=1.0, batch_size=2, top_n=3,
                    evidence=False, progress=False, log=lambda _: None,
                )  # fmt: skip
                wall = time.perf_counter() - started
                seen = arrivals.stop()
                assert summary.failed == 0 and summary.processed == len(work)
                # Records stream out as actors finish batches: the first arrival ends the start-up
                # (Ray workers, imports, model load); the rate after it is the actors' throughput.
                first_t, first_n = seen[0] if seen else (started + wall, 0)
                last_t, last_n = seen[-1] if seen else (started + wall, len(work))
                rate = (last_n - first_n) / (last_t - first_t) if last_t > first_t else float("nan")
                rows.append(
                    {
                        "actors": actors,
                        "lines": len(work),
                        "wall_s": wall,
                        "startup_s": first_t - started,
                        "lines_per_s": len(work) / wall,
                        "steady_lines_per_s": rate,
                        "arrivals": len(seen),
                    }
                )
                logging.info("ray batch %d actor(s): %.1f s, first record after %.1f s", actors, wall,
                             first_t - started)  # fmt: skip
    finally:
        ray.shutdown()
    return rows


def markdown(rows: list[dict[str, Any]], ray_rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `python benchmarks/serving.py{' --write' if args.write else ''}`. Workloads: "
        f"{args.requests} requests × {args.docs} documents of 30–60 words, and {args.requests} requests × "
        "1 document; "
        "score-only rerank with `top_n=3`; tiny random-weight Qwen3.5 Prism checkpoint; "
        f"CPU, {os.cpu_count()} cores, `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}` (one "
        f"intra-op thread per model process); Python {platform.python_version()}. *CPU/request* adds "
        "the server's and the client's CPU time (in-process: the one process's); *passes* are the "
        "engine's forward passes for the whole workload, *shared* those that served several requests "
        "at once.",
        "",
        "| workload | mode | clients | req/s | docs/s | p50 | p90 | CPU/request | passes | shared |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['mode']} | {r['concurrency']} | {r['req_per_s']:.1f} | "
            f"{r['docs_per_s']:.0f} | {r['p50_ms']:.0f} ms | {r['p90_ms']:.0f} ms | "
            f"{r['cpu_ms_per_req']:.0f} ms | {r['passes']} | {r['coalesced']} |"
        )
    if ray_rows:
        lines += [
            "",
            f"Ray Data batch, the {args.docs}-document workload as JSONL (1 CPU per actor, batches of "
            "2 lines; start-up = until the first record is written: Ray workers, imports, model load):",
            "",
            "| actors | lines | wall | start-up | lines/s overall | lines/s after start-up |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in ray_rows:
            lines.append(
                f"| {r['actors']} | {r['lines']} | {r['wall_s']:.1f} s | {r['startup_s']:.1f} s | "
                f"{r['lines_per_s']:.2f} | {r['steady_lines_per_s']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it)."""
    replace_section(HERE / "RESULTS.md", SECTION, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=32, help="requests per workload (default 32)")
    parser.add_argument("--docs", type=int, default=8, help="documents per request (default 8)")
    parser.add_argument("--levels", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data part")
    parser.add_argument("--write", action="store_true", help="replace the Serving (CPU) tables in RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from prism_core.testing.tiny_models import tiny_checkpoint

    model = str(tiny_checkpoint("qwen3_5"))
    work = make_work(args.requests, args.docs)
    workloads = [(f"{args.docs} docs", work), ("1 doc", make_work(args.requests, 1, seed=1))]
    levels = [int(x) for x in args.levels.split(",")]
    rows = bench_in_process(model, workloads, levels) + bench_server(model, workloads, levels)
    ray_rows = [] if args.no_ray else bench_ray(model, work, [1, 2])
    out = HERE / "results" / "cpu" / "serving.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"rows": rows, "ray": ray_rows, "requests": args.requests, "docs": args.docs}, indent=1)
    )
    text = markdown(rows, ray_rows, args)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
