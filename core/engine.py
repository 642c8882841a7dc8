"""``PrismReranker``: the one engine every adapter stands on."""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from prism_core.batching import plan_batches
from prism_core.devices import dtype_name, resolve_device, resolve_dtype
from prism_core.inference import ModelRunner, PrefillState
from prism_core.loading import LoadedModel, canonical_model, registry
from prism_core.parsing import parse_output
from prism_core.results import PrismResult
from prism_core.scheduling import PrefillScheduler, merge_states
from prism_core.tokenization import PromptTokenizer
from prism_core.validation import (
    check_documents,
    check_positive_int,
    check_query,
    check_threshold,
    check_top_n,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "infgrad/Prism-Qwen3.5-Reranker-0.8B"

#: Rows decoded together at most (kept scoring caches of several batches are merged up to this).
DECODE_ROWS = 64

#: Padded prompt tokens per forward pass when ``batch_tokens`` is not given.
DEFAULT_BATCH_TOKENS = {"cuda": 32768, "mps": 8192, "cpu": 16384}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class PrismReranker:
    """Prism-Reranker: relevance scores, and for relevant documents a contribution and evidence.

    Constructing is cheap and loads nothing; the model loads on first use (or :meth:`load`).
    Loaded weights are shared by every instance asking for the same ``(model, device, dtype)``.
    Safe to call from several threads and asyncio tasks at once.

    Args:
        model: Hub id or local checkpoint directory.
        device: ``None`` (CUDA, else MPS, else CPU), or ``"cpu"``, ``"cuda:1"``, ...
        dtype: ``None`` (bf16 on CUDA, fp32 elsewhere), a torch dtype or ``"float32"``/``"bfloat16"``.
        max_length: Cap on prompt tokens; longer documents are cut (only the document).
        max_new_tokens: Generation budget for verdict, contribution and evidence.
        batch_tokens: Padded prompt tokens per forward pass (default by device type).
        show_progress: Progress bar on stderr: ``True``, ``False`` or ``None`` (only for long jobs
            when stderr is a terminal).

    Example:
        >>> from prism_core import PrismReranker
        >>> reranker = PrismReranker("infgrad/Prism-Qwen3.5-Reranker-0.8B")  # loads nothing yet
        >>> results = reranker.rerank("what is rust?", ["Rust is a language.", "Paris."])  # doctest: +SKIP
        >>> results[0].evidence  # doctest: +SKIP
    """

    _shared: ClassVar[dict[tuple[Any, ...], PrismReranker]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int = 10240,
        max_new_tokens: int = 1024,
        batch_tokens: int | None = None,
        show_progress: bool | None = None,
    ) -> None:
        if not isinstance(model, (str, os.PathLike)) or not os.fspath(model):
            raise TypeError(f"model must be a hub id or a local directory, got {model!r}")
        self.model_name = canonical_model(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_length = check_positive_int(max_length, "max_length", minimum=16)
        self.max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens")
        self.batch_tokens = check_positive_int(
            DEFAULT_BATCH_TOKENS.get(self.device.type, 16384) if batch_tokens is None else batch_tokens,
            "batch_tokens",
        )
        if show_progress is not None and not isinstance(show_progress, bool):
            raise TypeError(f"show_progress must be a bool or None, got {show_progress!r}")
        self.show_progress = show_progress
        self._loaded: LoadedModel | None = None
        self._runner: ModelRunner | None = None
        self._prompts: PromptTokenizer | None = None
        self._load_lock = threading.Lock()

    # ----------------------------------------------------------------- configuration and loading
    @property
    def config(self) -> dict[str, Any]:
        """The canonical, JSON-safe configuration of this instance."""
        return {
            "model": self.model_name,
            "device": str(self.device),
            "dtype": dtype_name(self.dtype),
            "max_length": self.max_length,
            "max_new_tokens": self.max_new_tokens,
            "batch_tokens": self.batch_tokens,
        }

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({options}, loaded={self.is_loaded})"

    @classmethod
    def shared(cls, model: str | os.PathLike[str] = DEFAULT_MODEL, **options: Any) -> PrismReranker:
        """Return the process-wide instance for this configuration (created, not loaded, on first call).

        Two calls whose options resolve to the same configuration (``"cpu"`` and ``torch.device("cpu")``,
        a relative and an absolute path to the same directory...) get the same object.

        Example:
            >>> a = PrismReranker.shared("infgrad/Prism-Qwen3.5-Reranker-0.8B", device="cpu")
            >>> a is PrismReranker.shared("infgrad/Prism-Qwen3.5-Reranker-0.8B", device="cpu")
            True
        """
        candidate = cls(model, **options)
        key = (cls, *sorted(candidate.config.items()), ("show_progress", candidate.show_progress))
        with cls._shared_lock:
            return cls._shared.setdefault(key, candidate)

    @property
    def is_loaded(self) -> bool:
        """Whether the model and tokenizer are loaded."""
        return self._runner is not None

    def load(self) -> PrismReranker:
        """Load the model and tokenizer now (idempotent; otherwise done on first use).

        Raises:
            ModelLoadError: The model cannot be loaded; the message says how to use a local copy.
        """
        with self._load_lock:
            if self._runner is None:
                loaded = registry.get(self.model_name, self.device, self.dtype)
                prompts = PromptTokenizer(loaded.tokenizer, self.max_length)
                with loaded.lock:
                    if loaded.scheduler is None:
                        runner = ModelRunner(loaded.model, loaded.tokenizer, prompts.yes_id, prompts.no_id)
                        loaded.scheduler = PrefillScheduler(runner, loaded.lock)
                self._loaded, self._prompts = loaded, prompts
                self._runner = loaded.scheduler.runner
        return self

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loads the model)."""
        self.load()
        assert self._loaded is not None
        return self._loaded.tokenizer

    # ----------------------------------------------------------------- public API
    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance scores in input order; a pure scoring pass, nothing generated.

        Example:
            >>> PrismReranker("some/model").score("q", [])
            []
        """
        results = self.rerank(query, documents, evidence=False)
        by_index = sorted(results, key=lambda r: r.index)
        return [r.score for r in by_index]

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        """Score, sort and (for relevant kept documents) generate contribution and evidence.

        Generation runs only for documents whose verdict is ``yes`` and that survive
        ``score_threshold`` and ``top_n``; ``evidence=False`` is a pure scoring pass.

        Args:
            query: The query (non-empty).
            documents: Candidate texts (untrusted: control tokens in them are encoded as text).
            top_n: Keep the best ``top_n`` results (after the threshold).
            score_threshold: Keep results with ``score >= score_threshold``, in [0, 1].
            evidence: Generate contribution and evidence for relevant kept documents.

        Returns:
            Results sorted by score, best first (ties by input position).

        Raises:
            TypeError: A non-string query or document.
            ValueError: Empty query, bad ``top_n``/threshold, or a query too long for ``max_length``.
        """
        query = check_query(query)
        docs = check_documents(documents)
        top_n = check_top_n(top_n)
        score_threshold = check_threshold(score_threshold)
        if not isinstance(evidence, bool):
            raise TypeError(f"evidence must be a bool, got {evidence!r}")
        if not docs:
            return []
        self.load()
        assert self._prompts is not None
        prompts = self._prompts.encode(query, docs)
        logits, generated = self._run(prompts, top_n, score_threshold, evidence)
        results = []
        for i, (prompt, logit) in enumerate(zip(prompts, logits, strict=True)):
            gen = generated.get(i)
            raw = self.tokenizer.decode(gen, skip_special_tokens=True) if gen is not None else None
            parsed = parse_output(raw)
            results.append(
                PrismResult(
                    index=i,
                    score=_sigmoid(logit),
                    logit=logit,
                    relevant=logit > 0,
                    contribution=parsed.contribution,
                    evidence=parsed.evidence,
                    evidence_complete=parsed.complete,
                    truncated=prompt.truncated,
                    raw_output=raw,
                )
            )
        return _select(results, top_n, score_threshold)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        """:meth:`rerank` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(
            self.rerank, query, documents, top_n=top_n, score_threshold=score_threshold, evidence=evidence
        )

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """:meth:`score` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.score, query, documents)

    # ----------------------------------------------------------------- the work
    def _progress(self, total: int) -> Any:
        from tqdm.auto import tqdm

        show = self.show_progress
        if show is None:
            show = total >= 64 and sys.stderr.isatty()
        return tqdm(total=total, unit="doc", desc="Prism rerank", disable=not show, leave=False)

    def _run(
        self,
        prompts: Sequence[Any],
        top_n: int | None,
        threshold: float | None,
        evidence: bool,
    ) -> tuple[list[float], dict[int, list[int]]]:
        """Score every prompt; generate for relevant ones that survive ``threshold`` and ``top_n``.

        Rows that will generate keep their scoring cache and are decoded together across batches
        (up to ``DECODE_ROWS`` rows, and no more kept cache than one batch's ``batch_tokens``): one
        decode step serves many documents. With ``top_n``, a batch's cache is kept only for rows still
        among the best ``top_n`` seen so far, and pruned as better rows arrive. Memory stays within
        about two batches (plus ``top_n`` rows), whatever the number of documents.
        """
        assert self._runner is not None and self._loaded is not None and self._loaded.scheduler is not None
        runner, lock, scheduler = self._runner, self._loaded.lock, self._loaded.scheduler
        prefix_len = 0 if evidence else _shared_prefix_len(prompts)
        if prefix_len:
            # A pure scoring pass: the system prompt, instruction and query run once, not per document.
            with lock:
                prefix = runner.prefix_cache(prompts[0].ids[:prefix_len])

            def prefill(ids: list[list[int]]) -> PrefillState:
                with lock:
                    return runner.score_after_prefix(prefix, prefix_len, [p[prefix_len:] for p in ids])
        else:

            def prefill(ids: list[list[int]]) -> PrefillState:
                return scheduler.prefill(ids, keep_cache=evidence, budget=self.batch_tokens)

        lengths = [len(p.ids) - prefix_len for p in prompts]
        queue = deque(plan_batches(lengths, self.batch_tokens))
        logits: list[float] = [0.0] * len(prompts)
        generated: dict[int, list[int]] = {}
        best: list[tuple[float, int]] = []  # min-heap of (score key, -index) over kept candidates
        pending: dict[int, tuple[PrefillState, list[int]]] = {}  # batch id → state and its doc indices
        owner: dict[int, int] = {}  # doc index → batch id, for kept candidates
        with self._progress(len(prompts)) as bar:
            batch_id = 0
            while queue:
                batch = queue.popleft()
                try:
                    state = prefill([prompts[i].ids for i in batch])
                except torch.OutOfMemoryError:
                    if len(batch) == 1:
                        raise
                    half = len(batch) // 2
                    logger.warning("out of memory on a batch of %d prompts; splitting it in two", len(batch))
                    _empty_cache(self.device)
                    queue.appendleft(batch[half:])
                    queue.appendleft(batch[:half])
                    continue
                diffs = (state.verdict_logits[:, 0] - state.verdict_logits[:, 1]).tolist()
                candidates = []
                for row, i in enumerate(batch):
                    logits[i] = diffs[row]
                    if diffs[row] > 0 and (threshold is None or _sigmoid(diffs[row]) >= threshold):
                        candidates.append(row)
                bar.update(len(batch))
                if not evidence or not candidates:
                    continue
                batch_id += 1
                pending[batch_id] = (state, [batch[row] for row in candidates])
                state.select(candidates)
                if top_n is None:
                    rows = sum(len(docs) for _, docs in pending.values())
                    tokens = sum(len(docs) * st.attention_mask.shape[1] for st, docs in pending.values())
                    if rows >= DECODE_ROWS or tokens >= self.batch_tokens:
                        self._decode(list(pending.values()), generated)
                        pending.clear()
                    continue
                for i in pending[batch_id][1]:
                    heapq.heappush(best, (logits[i], -i))
                    owner[i] = batch_id
                    if len(best) > top_n:
                        _, neg = heapq.heappop(best)
                        owner.pop(-neg)
                self._prune(pending, owner)
            self._decode(list(pending.values()), generated)
        return logits, generated

    def _decode(self, kept: list[tuple[PrefillState, list[int]]], generated: dict[int, list[int]]) -> None:
        """Decode the kept rows of several batches together, up to ``DECODE_ROWS`` rows at a time."""
        assert self._runner is not None and self._loaded is not None
        group: list[PrefillState] = []
        docs: list[int] = []
        for n, (state, indices) in enumerate(kept):
            group.append(state)
            docs.extend(indices)
            if len(docs) >= DECODE_ROWS or n == len(kept) - 1:
                merged = merge_states(group)
                if len(group) > 1:  # the merged copy holds the rows now: free the originals
                    for part in group:
                        part.cache = None
                with self._loaded.lock:
                    outs = self._runner.generate(merged, self.max_new_tokens)
                generated.update(zip(docs, outs, strict=True))
                group, docs = [], []

    @staticmethod
    def _prune(pending: dict[int, tuple[PrefillState, list[int]]], owner: dict[int, int]) -> None:
        """Drop evicted rows from kept states, and states left with no row."""
        for bid in list(pending):
            state, docs = pending[bid]
            keep = [row for row, i in enumerate(docs) if owner.get(i) == bid]
            if not keep:
                del pending[bid]
            elif len(keep) < len(docs):
                state.select(keep)
                pending[bid] = (state, [docs[row] for row in keep])


def _select(results: list[PrismResult], top_n: int | None, threshold: float | None) -> list[PrismResult]:
    """Sort best first (ties by input position), apply the threshold, then ``top_n``."""
    results.sort(key=lambda r: (-r.logit, r.index))
    if threshold is not None:
        results = [r for r in results if r.score >= threshold]
    if top_n is not None:
        results = results[:top_n]
    return results


#: Below this many shared tokens, running the prefix separately does not pay.
MIN_SHARED_PREFIX = 32


def _shared_prefix_len(prompts: Sequence[Any]) -> int:
    """Length of the token prefix all prompts share, leaving each at least one token of its own.

    Returns 0 (run full prompts) unless the prefix is worth running separately: at least
    ``MIN_SHARED_PREFIX`` tokens and at least half the median document part. Right-padded
    continuations need an explicit attention mask, which costs more than the prefix saves once
    documents are long (measured on CPU: ~2,000-token documents scored slower this way).
    """
    first = prompts[0].ids
    n = min(len(p.ids) for p in prompts) - 1
    for p in prompts[1:]:
        ids = p.ids
        k = 0
        while k < n and ids[k] == first[k]:
            k += 1
        n = k
    if n < MIN_SHARED_PREFIX:
        return 0
    rest = sorted(len(p.ids) - n for p in prompts)
    return n if 2 * n >= rest[len(rest) // 2] else 0


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
