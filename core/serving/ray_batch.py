"""Offline reranking on Ray Data: an actor pool, one loaded model per actor, resumable JSONL output.

Input is JSON Lines (one ``{"query": str, "documents": [str, ...]}`` per line, as the main
``prism-rerank`` command reads) or Parquet (columns ``query`` and ``documents``; row ``N`` is
"line" ``N``, 1-based). Output is JSON Lines, one record per input line:
``{"line": N, "query": ..., "results": [{"rank": 1, ...PrismResult fields}, ...]}``, or
``{"line": N, "error": "..."}`` for a line that cannot be processed (not UTF-8, not JSON, a missing
or mistyped field, text the model cannot take); blank lines are skipped, as the main command does.

- **One model per actor**: ``map_batches`` with a callable class and ``concurrency=N``; each actor
  loads the engine once, and runs every line of a batch concurrently, so its engine loop coalesces
  them into shared forward passes.
- **Written as it goes**: records are appended (and flushed) as batches finish, in completion order;
  each carries its line number.
- **Resumable**: a rerun with the same output reads the records already there, skips their lines
  and appends the rest (a record cut short by a crash is dropped and redone). Every input line ends
  up in the output exactly once.

The driver reads the input (lines as bytes) and hands them to Ray Data; for corpora larger than the
driver's memory, split the input and run one job per part.

Example:
    >>> from prism_core.config import EngineConfig
    >>> from prism_core.serving.ray_batch import run_batch
    >>> config = EngineConfig(model="m", backend="prism")
    >>> summary = run_batch("in.jsonl", "out.jsonl", config, actors=2)  # doctest: +SKIP
    >>> summary.failed  # doctest: +SKIP
    0
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prism_core.cli.lines import is_blank_bytes, parse_bytes, split_lines
from prism_core.config import EngineConfig
from prism_core.extras import require_extra

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did.

    Attributes:
        total: Input lines (non-blank JSONL lines, or Parquet rows).
        skipped: Lines already in the output from an earlier run (not redone).
        processed: Lines processed by this run.
        failed: Error records in the whole output (this run's and earlier ones).
    """

    total: int
    skipped: int
    processed: int
    failed: int


# ------------------------------------------------------------------------------- line handling
def parse_request(raw: bytes) -> tuple[str, list[str]]:
    """One input line (bytes, without its line ending) → ``(query, documents)``, or ``ValueError``
    (a :class:`~prism_core.cli.lines.LineError`) saying why: the main command's line rules.

    Example:
        >>> parse_request(b'\\xef\\xbb\\xbf{"query": "q", "documents": ["a"]}')
        ('q', ['a'])
    """
    return parse_bytes(raw)


def _dump(record: Mapping[str, Any]) -> str:
    text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate somewhere: keep it, escaped
        text = json.dumps(record, ensure_ascii=True, allow_nan=False)
    return text


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class RerankActor:
    """A Ray Data actor: loads the engine once, then reranks batches of input lines.

    Args:
        config: :meth:`EngineConfig.to_dict` of the engine.
        top_n: Keep the best ``top_n`` results per line.
        score_threshold: Keep results scoring at least this.
        evidence: Generate contribution and evidence for relevant kept documents.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> None:
        from prism_core.registry import get_engine

        self.engine: Any = get_engine(EngineConfig.from_dict(config))
        load = getattr(self.engine, "load", None)
        if callable(load):
            load()
        self.top_n = top_n
        self.score_threshold = score_threshold
        self.evidence = evidence

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        """``{"line": [...], "raw": [...], "error": [...]}`` → ``{"line": [...], "record": [...]}``."""
        lines = [int(n) for n in batch["line"]]
        raws = [bytes(r) if r is not None else b"" for r in batch["raw"]]
        errors = [str(e) if e is not None else "" for e in batch["error"]]
        records = asyncio.run(self._all(lines, raws, errors))
        return {"line": lines, "record": records}

    async def _all(self, lines: list[int], raws: list[bytes], errors: list[str]) -> list[str]:
        return list(
            await asyncio.gather(*(self._one(n, r, e) for n, r, e in zip(lines, raws, errors, strict=True)))
        )

    async def _one(self, line: int, raw: bytes, error: str) -> str:
        if error:
            return _dump({"line": line, "error": error})
        try:
            query, documents = parse_request(raw)
            results = (
                await self.engine.arerank(
                    query,
                    documents,
                    top_n=self.top_n,
                    score_threshold=self.score_threshold,
                    evidence=self.evidence,
                )
                if documents
                else []
            )
        except Exception as exc:  # every line is accounted for: a failure is its error record
            return _dump({"line": line, "error": _one_line(exc)})
        ranked = [{"rank": rank, **r.to_dict()} for rank, r in enumerate(results, 1)]
        return _dump({"line": line, "query": query, "results": ranked})


# ------------------------------------------------------------------------------- input and output
def input_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``"jsonl"`` or ``"parquet"``: ``fmt`` if given, else from the file name (``.parquet``/``.pq``)."""
    if fmt is not None:
        if fmt not in ("jsonl", "parquet"):
            raise ValueError(f"format must be 'jsonl' or 'parquet', got {fmt!r}")
        return fmt
    return "parquet" if str(path).lower().endswith((".parquet", ".pq")) else "jsonl"


def read_rows(path: str | os.PathLike[str], fmt: str) -> Iterator[dict[str, Any]]:
    """The input's rows ``{"line", "raw", "error"}``: raw request bytes, or an error found reading it."""
    if fmt == "jsonl":
        with open(path, "rb") as f:
            for n, _, raw in split_lines(f):  # a binary file iterates by lines
                if not is_blank_bytes(raw):
                    yield {"line": n, "raw": raw, "error": ""}
        return
    require_extra("pyarrow", "ray")
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    names = set(table.schema_arrow.names)
    missing = [c for c in ("query", "documents") if c not in names]
    if missing:
        raise ValueError(f"{path}: Parquet input needs columns 'query' and 'documents'; missing {missing}")
    n = 0
    for batch in table.iter_batches(columns=["query", "documents"], batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            try:
                raw = json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass")
            except (TypeError, ValueError) as exc:
                yield {"line": n, "raw": b"", "error": f"row cannot be read: {_one_line(exc)}"}
                continue
            yield {"line": n, "raw": raw, "error": ""}


def read_done(output: Path) -> tuple[set[int], int]:
    """Line numbers already in ``output`` and how many of them are errors; drops a cut-off last record."""
    done: set[int] = set()
    failed = 0
    if not output.exists():
        return done, failed
    with open(output, "rb+") as f:
        good_end = 0
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # a record cut short: dropped below, redone
            try:
                record = json.loads(raw)
                line = record["line"]
            except (ValueError, KeyError, TypeError):
                raise ValueError(
                    f"{output} holds a line that is not a batch record at byte {good_end}; "
                    "not resuming into it (choose another output)"
                ) from None
            if not isinstance(line, int) or isinstance(line, bool):
                raise ValueError(f"{output}: record at byte {good_end} has no integer 'line'")
            if line not in done:
                failed += "error" in record
            done.add(line)
            good_end += len(raw)
        f.truncate(good_end)
    return done, failed


def run_batch(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    config: EngineConfig,
    *,
    actors: int = 1,
    gpus_per_actor: float = 0.0,
    cpus_per_actor: float = 1.0,
    batch_size: int = 16,
    top_n: int | None = None,
    score_threshold: float | None = None,
    evidence: bool = True,
    fmt: str | None = None,
    progress: bool | None = None,
    address: str | None = None,
    log: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Rerank every line of ``input_path`` into ``output_path`` on a Ray Data actor pool (resumable).

    Args:
        input_path: JSONL or Parquet input.
        output_path: JSONL output; records already there are kept and their lines skipped.
        config: The engine each actor loads.
        actors: Actors in the pool (one loaded model each).
        gpus_per_actor: GPUs reserved per actor.
        cpus_per_actor: CPUs reserved per actor.
        batch_size: Lines per batch handed to an actor (run concurrently, so coalesced).
        top_n: Keep the best ``top_n`` results per line.
        score_threshold: Keep results scoring at least this.
        evidence: Generate contribution and evidence.
        fmt: ``"jsonl"`` or ``"parquet"`` (default: from the file name).
        progress: Progress bar on stderr (``None``: when stderr is a terminal).
        address: Ray cluster to join (``None``: ``$RAY_ADDRESS``, else a local instance).
        log: Where messages go (default: the module's logger).

    Returns:
        The run's :class:`BatchSummary`.

    Raises:
        ValueError: The output is the input, or holds something other than batch records.
        OSError: The input cannot be read or the output written.
    """
    require_extra("ray.data", "ray")
    import ray
    from tqdm.auto import tqdm

    say = log or logger.info
    source, sink = Path(input_path), Path(output_path)
    if sink.exists() and source.exists() and os.path.samefile(source, sink):
        raise ValueError(f"the output {sink} is the input: refusing to overwrite it")
    fmt = input_format(source, fmt)
    done, failed_before = read_done(sink)
    rows = [row for row in read_rows(source, fmt)]
    total = len(rows)
    todo = [row for row in rows if row["line"] not in done]
    skipped = total - len(todo)
    if skipped:
        say(f"resuming: {skipped} of {total} line(s) already in {sink}")
    if not todo:
        return BatchSummary(total=total, skipped=skipped, processed=0, failed=failed_before)

    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts lines
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # One block per batch: an actor's output leaves with its task, so small blocks stream the output.
    blocks = max(actors, min(4096, -(-len(todo) // batch_size)))
    dataset = ray.data.from_items(todo, override_num_blocks=min(blocks, len(todo)))
    results = dataset.map_batches(
        RerankActor,
        fn_constructor_kwargs={
            "config": config.to_dict(),
            "top_n": top_n,
            "score_threshold": score_threshold,
            "evidence": evidence,
        },
        compute=ray.data.ActorPoolStrategy(size=actors),  # ``concurrency=actors`` before Ray 2.51
        num_gpus=gpus_per_actor,
        num_cpus=cpus_per_actor,
        batch_size=batch_size,
        batch_format="numpy",
    )
    show = progress if progress is not None else _stderr_is_tty()
    failed = 0
    processed = 0
    with (
        open(sink, "a", encoding="utf-8") as out,
        tqdm(
            total=len(todo), unit=" lines", desc="prism-rerank batch", disable=not show, dynamic_ncols=True
        ) as bar,
    ):
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for record in batch["record"]:
                text = str(record)
                out.write(text + "\n")
                failed += "error" in json.loads(text)
                processed += 1
            out.flush()
            bar.update(len(batch["record"]))
        os.fsync(out.fileno())
    return BatchSummary(total=total, skipped=skipped, processed=processed, failed=failed_before + failed)


def _stderr_is_tty() -> bool:
    import sys

    return sys.stderr.isatty()
