"""Benchmark worker: one contender on one model over a list of workloads, in a process of its own.

Started by ``run.py`` as ``python benchmarks/harness.py SPEC.json OUT.json``; not meant to be run by
hand. Every contender runs in a fresh process so that its memory high-water mark is its own.

Random weights neither decide relevance nor stop like the real model, so every contender is made
to do the work the real model would do for the *imposed* verdicts of the workload:

* ``loop`` (the model card's per-document ``generate`` loop,
  :class:`prism_core.testing.reference.ReferenceLoop`):
  a relevant document generates exactly ``evidence_tokens`` tokens, an irrelevant one exactly 2
  (verdict + end of turn, as the real model does). End-of-turn detection is switched off
  (``generation_config.eos_token_id = None``) so that random text cannot stop it early; no logits
  processor is added (``min_new_tokens`` would add a full-vocabulary ``isin`` per step, work the real
  loop never does).
* ``loop_score``: the same loop with ``max_new_tokens=1`` (the card's loop used for scores only).
* ``cross_encoder``: sentence-transformers ``CrossEncoder`` on the same checkpoint directory, with a
  chat template that renders the exact Prism prompt (score only).
* ``prism_score`` / ``prism_rerank``: :class:`prism_core.PrismReranker` with its model runner
  replaced by :class:`ImposedRunner`: the real prefill runs, then the verdict logits are overwritten
  with the imposed ones; relevant rows decode exactly ``evidence_tokens`` tokens (no stop ids, no
  ``</evidence>`` check).

Generated-token counts per document are recorded so that ``run.py`` can assert that contenders
did the same work.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import json
import logging
import os
import re
import statistics
import sys
import threading
import time
import weakref
from typing import Any

import torch

from prism_core.runtime.cache import PrefillState
from prism_core.runtime.decode_state import DecodeBatch
from prism_core.runtime.pipeline import DECODE_ROWS
from prism_core.runtime.runner import ModelRunner

logger = logging.getLogger("prism-bench.worker")


# ----------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak resident memory (and CUDA allocations) over a block of work.

    On Linux the kernel's own high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs``
    and read back afterwards; elsewhere a sampling thread polls RSS every 2 ms.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kernel_hwm = self._try_reset_hwm()
        self._stop = threading.Event()
        self._sampled = 0
        self._thread: threading.Thread | None = None

    @staticmethod
    def _status_kb(field_name: str) -> int | None:
        try:
            with open("/proc/self/status") as f:
                match = re.search(rf"{field_name}:\s+(\d+)", f.read())
        except OSError:
            return None
        return int(match.group(1)) if match else None

    def _try_reset_hwm(self) -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return False
        return self._status_kb("VmHWM") is not None

    @staticmethod
    def _rss() -> int:
        import psutil

        return int(psutil.Process().memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._sampled = max(self._sampled, self._rss())

    def __enter__(self) -> PeakMemory:
        gc.collect()
        with contextlib.suppress(OSError):  # hand freed heap back to the OS: an honest baseline
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.cuda_before = torch.cuda.memory_allocated(self.device)
        self.rss_before = self._rss()
        self.kernel_hwm = self._try_reset_hwm()
        if not self.kernel_hwm:
            self._sampled = self.rss_before
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_rss = max(self._sampled, self._rss())
        else:
            self.peak_rss = (self._status_kb("VmHWM") or 0) * 1024
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda_peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.cuda_before = self.cuda_peak = 0

    def report(self) -> dict[str, Any]:
        mib = 1024 * 1024
        return {
            "rss_before_mib": self.rss_before / mib,
            "peak_rss_mib": self.peak_rss / mib,
            "rss_growth_mib": (self.peak_rss - self.rss_before) / mib,
            "rss_method": "VmHWM (kernel high-water mark, reset per workload)"
            if self.kernel_hwm
            else "sampled",
            "cuda_before_mib": self.cuda_before / mib,
            "cuda_peak_mib": self.cuda_peak / mib,
        }


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cache_nbytes(cache: Any) -> int:
    """Bytes of the tensors held by a transformers cache (KV and linear-attention states)."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for value in vars(layer).values():
            values = value.values() if isinstance(value, dict) else [value]
            total += sum(v.nbytes for v in values if isinstance(v, torch.Tensor))
    return total


def cache_rows(cache: Any) -> int:
    """Batch rows of a transformers cache (0 when it holds nothing yet)."""
    for layer in getattr(cache, "layers", []):
        for value in vars(layer).values():
            for v in value.values() if isinstance(value, dict) else [value]:
                if isinstance(v, torch.Tensor) and v.dim() >= 2:
                    return int(v.shape[0])
    return 0


def ids_digest(ids: list[int]) -> str:
    return hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- Prism with imposed verdicts
class ImposedRunner(ModelRunner):
    """The engine's runner doing the real work, with verdicts and output length imposed.

    Installed the supported way: :class:`ImposedPrism` sets it as its ``runner_class`` (it gets its
    own engine loop over the same shared weights). After the real prefill, ``verdict_logits`` are
    overwritten with the imposed logit (``yes`` = imposed, ``no`` = 0) of each prompt; the real ones
    are kept for the equivalence check. Decoding has no stop ids and no stop strings, so every
    relevant row decodes exactly ``max_new_tokens`` tokens. Timings of prefill passes and decode
    steps are recorded (synchronised on CUDA).
    """

    imposed: dict[str, tuple[int, float]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_ids = torch.empty(0, dtype=torch.long, device=self.device)
        self.imposed = {}
        self.reset_stats()

    def reset_stats(self) -> None:
        self.real_logits: dict[int, float] = {}
        self.generated: dict[int, int] = {}
        self.prefill_s = 0.0
        self.generate_s = 0.0
        self.prefill_rows: list[int] = []
        self.prefill_tokens = 0
        self.decode_calls: list[dict[str, Any]] = []
        self.max_rows_held = 0
        self.max_cache_bytes = 0
        self.max_cache_rows = 0
        self._rows: dict[bytes, int] = {}  # digest of a row's last hidden state → document index
        self._live: weakref.WeakSet[Any] = weakref.WeakSet()  # every cache handed out or decoded

    def _census(self) -> None:
        """Caches alive right now (whatever the engine still references): rows and bytes."""
        caches = list(self._live)
        self.max_cache_rows = max(self.max_cache_rows, sum(cache_rows(c) for c in caches))
        self.max_cache_bytes = max(self.max_cache_bytes, sum(cache_nbytes(c) for c in caches))

    def _row_digests(self, hidden: torch.Tensor) -> list[bytes]:
        """Identify rows by their last hidden state: it follows a row through select, merge and split."""
        host = hidden.detach().float().cpu().contiguous()
        return [hashlib.sha1(row.numpy().tobytes()).digest() for row in host]

    def impose(self, prompts: list[list[int]], logits: list[float]) -> None:
        pairs = zip(prompts, logits, strict=True)
        self.imposed = {ids_digest(p): (i, lg) for i, (p, lg) in enumerate(pairs)}

    def _account(
        self, prompts: list[list[int]], st: PrefillState, t0: float, tokens_run: int
    ) -> PrefillState:
        """Record real logits and timing of a scoring pass over full ``prompts``; impose the verdicts."""
        keys, imposed = [], []
        for p in prompts:
            hit = self.imposed.get(ids_digest(p))
            if hit is None:
                raise KeyError("a prompt the harness did not impose a verdict on reached the model runner")
            keys.append(hit[0])
            imposed.append(hit[1])
        real = (st.verdict_logits[:, 0] - st.verdict_logits[:, 1]).tolist()
        _sync(self.device)
        self.prefill_s += time.perf_counter() - t0
        self.prefill_rows.append(len(prompts))
        self.prefill_tokens += tokens_run
        for k, r in zip(keys, real, strict=True):
            self.real_logits[k] = r
        forced = torch.zeros_like(st.verdict_logits)
        forced[:, 0] = torch.tensor(imposed, dtype=forced.dtype, device=forced.device)
        self._rows.update(zip(self._row_digests(st.last_hidden), keys, strict=True))
        if st.cache is not None:
            self._live.add(st.cache)
        self._census()
        return PrefillState(forced, st.last_hidden, st.attention_mask, st.cache)

    def prefill(self, prompts: Any, *, keep_cache: bool, **kw: Any) -> PrefillState:
        _sync(self.device)
        t0 = time.perf_counter()
        st = super().prefill(prompts, keep_cache=keep_cache, **kw)
        full = [list(p) for p in prompts]
        return self._account(full, st, t0, sum(len(p) for p in full))

    # The engine's shared-prefix scoring path (score only), where this version of core has one.
    def prefix_cache(self, prefix: Any) -> Any:
        _sync(self.device)
        t0 = time.perf_counter()
        cache = super().prefix_cache(prefix)  # type: ignore[misc]
        _sync(self.device)
        self.prefill_s += time.perf_counter() - t0
        self.prefill_tokens += len(prefix)
        self._prefix = list(prefix)
        return cache

    def score_after_prefix(
        self, prefix_cache: Any, prefix_len: int, continuations: Any, **kw: Any
    ) -> PrefillState:
        _sync(self.device)
        t0 = time.perf_counter()
        st = super().score_after_prefix(prefix_cache, prefix_len, continuations, **kw)  # type: ignore[misc]
        full = [self._prefix[:prefix_len] + list(c) for c in continuations]
        return self._account(full, st, t0, sum(len(c) for c in continuations))

    def prefill_after_prefix(self, prefix_cache: Any, prefix_len: int, continuations: Any) -> PrefillState:
        _sync(self.device)
        t0 = time.perf_counter()
        st = super().prefill_after_prefix(prefix_cache, prefix_len, continuations)
        full = [self._prefix[:prefix_len] + list(c) for c in continuations]
        return self._account(full, st, t0, sum(len(c) for c in continuations))

    def new_decode_batch(self) -> Any:
        """The engine's shared decode batch, instrumented: rows joined, forward time, tokens per row."""
        return TimedDecodeBatch(
            self, self.body, self.model.config, self.greedy, self.stop_mask, self.cache_kw
        )


class TimedDecodeBatch(DecodeBatch):
    """The engine's decode batch with the harness's accounting around joins, passes and finished rows."""

    def __init__(self, runner: ImposedRunner, *args: Any) -> None:
        super().__init__(*args)
        self.runner = runner
        self.keys: dict[tuple[int, int], int] = {}  # (owner id, doc) -> document index of the workload

    def join(self, owner: Any, state: PrefillState, docs: Any, max_new_tokens: int, stop_strings: Any) -> Any:
        r = self.runner
        keys = [r._rows[d] for d in r._row_digests(state.last_hidden)]
        for doc, key in zip(docs, keys, strict=True):
            self.keys[(id(owner), int(doc))] = key
        if state.cache is not None:
            r._live.add(state.cache)
        r._census()
        r.max_rows_held = max(r.max_rows_held, self.n + len(keys))
        lengths = state.attention_mask.sum(-1).tolist()
        r.decode_calls.append(
            {"rows": len(keys), "steps": max_new_tokens, "prompt_lengths": lengths, "seconds": 0.0}
        )
        _sync(r.device)
        t0 = time.perf_counter()
        out = super().join(owner, state, docs, max_new_tokens, ())
        self._account(out, t0)
        return out

    def emit(self) -> Any:
        t0 = time.perf_counter()
        out = super().emit()
        self._account(out[1], t0)
        return out

    def forward(self) -> None:
        _sync(self.runner.device)
        t0 = time.perf_counter()
        super().forward()
        self._account([], t0)

    def forward_apart(self, groups: Any, split: Any) -> Any:
        _sync(self.runner.device)
        t0 = time.perf_counter()
        out = super().forward_apart(groups, split)
        self._account([], t0)
        return out

    def _account(self, finished: Any, t0: float) -> None:
        _sync(self.runner.device)
        self.runner.generate_s += time.perf_counter() - t0
        for fin in finished:
            key = self.keys.pop((id(fin.owner), fin.doc), None)
            if key is not None:
                self.runner.generated[key] = len(fin.ids)


# ----------------------------------------------------------------------------- contenders
def prism_template() -> str:
    """A chat template that renders exactly the Prism prompt from a (query, document) pair."""
    from prism_core.prism.prompt import format_prompt

    probe = format_prompt("\x00Q\x00", "\x00D\x00")
    head, rest = probe.split("\x00Q\x00")
    mid, tail = rest.split("\x00D\x00")
    return (
        '{%- set q = (messages | selectattr("role", "eq", "query") | first).content -%}'
        '{%- set d = (messages | selectattr("role", "eq", "document") | first).content -%}'
        "{{ " + json.dumps(head) + " + q + " + json.dumps(mid) + " + d + " + json.dumps(tail) + " }}"
    )


class Contender:
    """One way of serving a query: ``run(query, docs, relevant, logits)`` → per-document records."""

    def __init__(self, spec: dict[str, Any], device: torch.device, dtype: torch.dtype) -> None:
        self.spec, self.device, self.dtype = spec, device, dtype
        self.evidence_tokens = int(spec["evidence_tokens"])

    def prepare(self, query: str, docs: list[str], logits: list[float]) -> None:
        """Untimed set-up before a query (only the Prism contenders need it)."""

    def run(self, query: str, docs: list[str], relevant: list[bool]) -> None:
        raise NotImplementedError

    def records(self) -> dict[str, list[Any]]:
        """Per document of the last query: generated tokens, real verdict logit, prompt digest/length."""
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        return {}


class LoopContender(Contender):
    def __init__(
        self, spec: dict[str, Any], device: torch.device, dtype: torch.dtype, *, score_only: bool
    ) -> None:
        super().__init__(spec, device, dtype)
        from prism_core.testing.reference import ReferenceLoop

        self.score_only = score_only
        self.loop = ReferenceLoop(spec["model_path"], device=str(device), dtype=dtype)
        # Random weights do not stop like the real model: no early stop, lengths set per document.
        self.loop.model.generation_config.eos_token_id = None
        self._last: list[Any] = []

    def run(self, query: str, docs: list[str], relevant: list[bool]) -> None:
        outs = []
        for doc, rel in zip(docs, relevant, strict=False):
            if self.score_only:
                outs.append(self.loop.run_one(query, doc, generate=False))
            else:
                self.loop.max_new_tokens = self.evidence_tokens if rel else 2
                outs.append(self.loop.run_one(query, doc))
        self._last = outs

    def records(self) -> dict[str, list[Any]]:
        return {
            "generated": [len(o.generated_ids) for o in self._last],
            "real_logit": [o.logit for o in self._last],
            "prompt_digest": [ids_digest(o.prompt_ids) for o in self._last],
            "prompt_tokens": [len(o.prompt_ids) for o in self._last],
        }


class CrossEncoderContender(Contender):
    def __init__(self, spec: dict[str, Any], device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(spec, device, dtype)
        from sentence_transformers import CrossEncoder

        self.batch_size = int(spec.get("cross_encoder_batch_size", 32))
        self.ce = CrossEncoder(
            spec["model_path"],
            device=str(device),
            model_kwargs={"dtype": dtype},
            processor_kwargs={"chat_template": prism_template()},
            activation_fn=torch.nn.Identity(),  # raw yes-no logit; sigmoid of it is the card's score
        )
        self._last: list[float] = []

    def describe(self) -> str:
        return " → ".join(type(m).__name__ for m in self.ce)

    def run(self, query: str, docs: list[str], relevant: list[bool]) -> None:
        scores = self.ce.predict(
            [(query, d) for d in docs],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        _sync(self.device)
        self._last = [float(s) for s in scores]

    def records(self) -> dict[str, list[Any]]:
        n = len(self._last)
        return {
            "generated": [0] * n,
            "real_logit": self._last,
            "prompt_digest": [None] * n,
            "prompt_tokens": [None] * n,
        }

    def extra(self) -> dict[str, Any]:
        return {"modules": self.describe(), "batch_size": self.batch_size}


class PrismContender(Contender):
    def __init__(
        self, spec: dict[str, Any], device: torch.device, dtype: torch.dtype, *, evidence: bool
    ) -> None:
        super().__init__(spec, device, dtype)
        from prism_core import PrismReranker

        self.evidence = evidence
        kwargs: dict[str, Any] = {
            "device": str(device),
            "dtype": dtype,
            "max_new_tokens": self.evidence_tokens,
        }
        if spec.get("batch_tokens"):
            kwargs["batch_tokens"] = int(spec["batch_tokens"])

        class ImposedPrism(PrismReranker):
            runner_class = ImposedRunner
            stop_strings = ()

        self.reranker = ImposedPrism(spec["model_path"], show_progress=False, **kwargs).load()
        runner = self.reranker.runner
        assert isinstance(runner, ImposedRunner)
        self.runner = runner
        self._prompts: list[Any] = []
        self._results: list[Any] = []
        self._n = 0

    def prepare(self, query: str, docs: list[str], logits: list[float]) -> None:
        self._prompts = self.reranker.prompt_tokenizer.encode(query, docs)
        self.runner.impose([p.ids for p in self._prompts], logits)
        self.runner.reset_stats()
        self._n = len(docs)

    def run(self, query: str, docs: list[str], relevant: list[bool]) -> None:
        if self.evidence:
            self._results = self.reranker.rerank(query, docs)
        else:
            self._results = self.reranker.score(query, docs)
        _sync(self.device)

    def records(self) -> dict[str, list[Any]]:
        n = self._n
        if self.evidence:
            verdicts = {r.index: r.relevant for r in self._results}
            relevant = [verdicts[i] for i in range(n)]
        else:
            relevant = [None] * n
        return {
            "generated": [self.runner.generated.get(i, 0) for i in range(n)],
            "real_logit": [self.runner.real_logits[i] for i in range(n)],
            "prompt_digest": [ids_digest(p.ids) for p in self._prompts],
            "prompt_tokens": [len(p.ids) for p in self._prompts],
            "engine_relevant": relevant,
        }

    def extra(self) -> dict[str, Any]:
        r = self.runner
        return {
            "prefill_s": r.prefill_s,
            "generate_s": r.generate_s,
            "prefill_batches": r.prefill_rows,
            "prefill_tokens": r.prefill_tokens,
            "decode_calls": r.decode_calls,
            "max_rows_decoding": r.max_rows_held,
            "max_cache_rows_alive": r.max_cache_rows,
            "max_cache_mib_alive": r.max_cache_bytes / 2**20,
            "batch_tokens": self.reranker.batch_tokens,
            "decode_rows_cap": DECODE_ROWS,
        }


def make_contender(spec: dict[str, Any], device: torch.device, dtype: torch.dtype) -> Contender:
    name = spec["contender"]
    if name == "loop":
        return LoopContender(spec, device, dtype, score_only=False)
    if name == "loop_score":
        return LoopContender(spec, device, dtype, score_only=True)
    if name == "cross_encoder":
        return CrossEncoderContender(spec, device, dtype)
    if name == "prism_score":
        return PrismContender(spec, device, dtype, evidence=False)
    if name.startswith("prism_rerank"):  # variants differ in spec options (batch_tokens)
        return PrismContender(spec, device, dtype, evidence=True)
    raise ValueError(f"unknown contender {name!r}")


# ----------------------------------------------------------------------------- the run
def run_workload(contender: Contender, wl: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    min_time, max_reps = float(spec["min_time_s"]), int(spec["max_reps"])
    latencies: list[float] = []
    per_query: list[dict[str, Any]] = []
    extras: list[dict[str, Any]] = []
    reps = 0
    cpu0 = _cpu_seconds()
    with PeakMemory(contender.device) as mem:
        while True:
            for q in wl["queries"]:
                contender.prepare(q["query"], q["docs"], q["logits"])
                _sync(contender.device)
                t0 = time.perf_counter()
                contender.run(q["query"], q["docs"], q["relevant"])
                _sync(contender.device)
                latencies.append(time.perf_counter() - t0)
                if reps == 0:
                    per_query.append(contender.records())
                    extras.append(contender.extra())
            reps += 1
            if reps >= max_reps or sum(latencies) >= min_time:
                break
    cpu_s = _cpu_seconds() - cpu0
    n_docs = sum(len(q["docs"]) for q in wl["queries"]) * reps
    lat_sorted = sorted(latencies)
    p90 = lat_sorted[min(len(lat_sorted) - 1, round(0.9 * (len(lat_sorted) - 1)))]
    return {
        "workload": wl["name"],
        "reps": reps,
        "latencies_s": latencies,
        "latency_median_s": statistics.median(latencies),
        "latency_p90_s": p90,
        "docs": n_docs,
        "seconds": sum(latencies),
        "docs_per_s": n_docs / sum(latencies),
        "cpu_s_per_doc": cpu_s / n_docs,
        "load_avg_after": os.getloadavg()[0],
        "per_query": per_query,
        "extra": extras,
        "memory": mem.report(),
    }


def main() -> None:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("transformers", "sentence_transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    with open(spec_path) as f:
        spec = json.load(f)
    with open(spec["workloads_path"]) as f:
        all_workloads = json.load(f)
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    dtype = getattr(torch, spec["dtype"])
    t_load = time.perf_counter()
    contender = make_contender(spec, device, dtype)
    load_s = time.perf_counter() - t_load
    # warm-up: once, untimed, on a small workload of its own (every code path: relevant and not)
    warm = all_workloads["warmup"]
    for q in warm["queries"]:
        contender.prepare(q["query"], q["docs"], q["logits"])
        contender.run(q["query"], q["docs"], q["relevant"])
    _sync(device)
    results = []
    for name in spec["workloads"]:
        wl = all_workloads[name]
        logger.info("%s / %s / %s", spec["model_name"], spec["contender"], name)
        results.append(run_workload(contender, wl, spec))
    out = {
        "model": spec["model_name"],
        "contender": spec["contender"],
        "device": str(device),
        "dtype": spec["dtype"],
        "load_s": load_s,
        "threads": torch.get_num_threads(),
        "results": results,
        "info": contender.extra() if spec["contender"] == "cross_encoder" else {},
    }
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
