"""Ray, on a local CPU instance started and shut down here: Ray Serve with 2 replicas of the tiny
model behind one URL, and a Ray Data batch job with 2 actors end to end, then resumed with 1."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from prism_core.backends.remote import RemoteReranker
from prism_core.config import EngineConfig
from tests.serving.serving_helpers import API_KEY, free_port

pytestmark = pytest.mark.slow

QUERY = "what is rust?"
DOCS = [
    "Rust is a systems programming language focused on memory safety without garbage collection.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def add(a, b):\n    return a + b\n",
    "Bananas are berries, botanically speaking, while strawberries are not.",
]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    pytest.importorskip("ray.data")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 * 1024 * 1024,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def test_ray_serve_two_replicas(ray_local: Any, tiny_config: EngineConfig, tiny_engine: Any) -> None:
    from ray import serve

    from prism_core.serving.app import ServerSettings
    from prism_core.serving.ray_serve import APP_NAME, build_deployment

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_deployment(tiny_config, ServerSettings(api_key=API_KEY), num_replicas=2, cpus_per_replica=0.5)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)  # returns once both replicas are up
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        client = RemoteReranker(url, api_key=API_KEY, timeout=120, max_retries=2)
        remote = client.rerank(QUERY, DOCS, top_n=3, evidence=False)
        local = tiny_engine.rerank(QUERY, DOCS, top_n=3, evidence=False)
        assert [r.index for r in remote] == [r.index for r in local]
        assert [r.score for r in remote] == pytest.approx([r.score for r in local], abs=1e-4)

        def worker(_: int) -> str:
            info = httpx.get(f"{url}/v1/info", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
            return str(info.json()["worker"])

        with ThreadPoolExecutor(8) as pool:
            workers = set(pool.map(worker, range(48)))
        assert len(workers) == 2, f"requests did not spread across the 2 replicas: {workers}"
    finally:
        serve.delete(APP_NAME)


def _write_input(path: Path) -> dict[int, tuple[str, list[str]]]:
    good: dict[int, tuple[str, list[str]]] = {}
    lines: list[bytes] = []
    for n in range(1, 12):
        if n == 3:
            lines.append(b'{"query": "broken", "documents": [')
        elif n == 5:
            lines.append(b"")
        elif n == 7:
            lines.append(b'{"query": "q", "documents": ["caf\xe9"]}')
        elif n == 9:
            lines.append(b'{"query": "q", "documents": ["ok", 4]}')
        else:
            docs = [DOCS[(n + i) % len(DOCS)] for i in range(1 + n % 4)]
            good[n] = (f"{QUERY} ({n})", docs)
            lines.append(json.dumps({"query": good[n][0], "documents": docs}).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return good


def _records(path: Path) -> dict[int, dict[str, Any]]:
    records: dict[int, dict[str, Any]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        assert record["line"] not in records, f"line {record['line']} written twice"
        records[record["line"]] = record
    return records


def test_ray_data_batch_end_to_end_then_resumed(
    ray_local: Any, tiny_config: EngineConfig, tiny_engine: Any, tmp_path: Path
) -> None:
    from prism_core.cli import batch
    from prism_core.serving.ray_batch import run_batch

    source, sink = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = _write_input(source)
    summary = run_batch(
        source, sink, tiny_config, actors=2, cpus_per_actor=0.5, batch_size=3, evidence=False, progress=False
    )
    assert (summary.total, summary.processed, summary.skipped, summary.failed) == (10, 10, 0, 3)
    first = _records(sink)
    assert sorted(first) == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]  # every non-blank line, once
    assert "invalid JSON" in first[3]["error"]
    assert "not valid UTF-8" in first[7]["error"]
    assert '"documents"[1] must be a string' in first[9]["error"]
    for n, (query, docs) in good.items():
        local = tiny_engine.rerank(query, docs, evidence=False)
        assert first[n]["query"] == query
        assert [r["index"] for r in first[n]["results"]] == [r.index for r in local]
        assert [r["score"] for r in first[n]["results"]] == pytest.approx([r.score for r in local], abs=1e-4)
        assert [r["rank"] for r in first[n]["results"]] == list(range(1, len(local) + 1))

    # An interrupted run: 4 records written, the 5th cut off mid-line. The rerun (CLI, 1 actor)
    # keeps those 4 as they are and redoes the rest.
    kept = sink.read_text(encoding="utf-8").splitlines()[:4]
    sink.write_text("\n".join(kept) + "\n" + kept[0][:17], encoding="utf-8")
    status = batch.main(
        [
            str(source),
            "-o",
            str(sink),
            "--model",
            tiny_config.model,
            "--max-new-tokens",
            "16",
            "--actors",
            "1",
            "--cpus-per-actor",
            "0.5",
            "--batch-size",
            "4",
            "--no-evidence",
            "--no-progress",
        ]
    )
    assert status == 1  # three lines failed (their error records are in the output)
    lines = sink.read_text(encoding="utf-8").splitlines()
    assert lines[:4] == kept
    second = _records(sink)
    assert sorted(second) == sorted(first)
    for n, record in first.items():
        if "error" in record:
            assert second[n] == record
        else:
            assert [r["index"] for r in second[n]["results"]] == [r["index"] for r in record["results"]]
            assert [r["score"] for r in second[n]["results"]] == pytest.approx(
                [r["score"] for r in record["results"]], abs=1e-4
            )
    # A third run finds everything done and runs nothing.
    again = run_batch(source, sink, tiny_config, actors=1, progress=False)
    assert (again.processed, again.skipped, again.failed) == (0, 10, 3)
