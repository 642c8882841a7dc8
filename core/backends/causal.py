"""The front end shared by the yes/no causal-LM backends (Prism, Qwen3-Reranker).

A call validates its input, encodes the prompts (injection-safe, truncating), submits one
:class:`~prism_core.runtime.pipeline.RerankJob` to the engine loop of the loaded weights, waits for
its plain result (verdict logits, generated ids) and turns that into :class:`PrismResult` objects.
The model is never touched from the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
from collections.abc import Hashable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar, TypeVar

from prism_core.backends.driving import Blocking, Work, drive_async, drive_sync
from prism_core.backends.long_documents import best_rows
from prism_core.budgets import assemble_results, check_time_budget, deadline_after
from prism_core.caching.results import CachedPair, Claim, result_cache
from prism_core.config import EngineConfig
from prism_core.protocol import Capabilities
from prism_core.ranking import passes, select, sigmoid
from prism_core.results import PrismResult
from prism_core.runtime.devices import dtype_name, resolve_device, resolve_dtype
from prism_core.runtime.engine_loop import EngineLoop
from prism_core.runtime.loading import LoadedModel, registry
from prism_core.runtime.pipeline import CausalExecutor, RerankJob
from prism_core.runtime.runner import ModelRunner
from prism_core.runtime.tokenization import EncodedPrompt, PromptTemplate, PromptTokenizer, verdict_ids
from prism_core.validation import (
    check_bool,
    check_documents,
    check_long_documents,
    check_query,
    check_rerank_args,
)

logger = logging.getLogger(__name__)

#: How a document longer than its budget is read when the caller does not say: cut (the result
#: says ``truncated``); ``long_documents="chunk"`` reads it in windows.
DEFAULT_LONG_DOCUMENTS = "truncate"


#: Padded prompt tokens per forward pass when ``batch_tokens`` is not given.
DEFAULT_BATCH_TOKENS = {"cuda": 32768, "mps": 8192, "cpu": 16384}

Self = TypeVar("Self", bound="CausalLMReranker")
#: Per call: scored documents' results, results with generation (both by input position), expired.
_Parts = tuple[dict[int, PrismResult], dict[int, PrismResult], bool]
#: How long documents are read: ``(max_tokens_per_doc, long_documents)`` as the caller gave them.
Reading = tuple[int | None, str | None]


class CausalLMReranker:
    """Base of the causal-LM backends: configuration, lazy loading, the engine calls, results.

    Subclasses set the class attributes and :meth:`template`; generating backends override
    :meth:`_result`.
    """

    backend: ClassVar[str]
    display_name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    default_model: ClassVar[str]
    default_max_length: ClassVar[int]
    default_max_new_tokens: ClassVar[int] = 1024
    #: The fixed prompt's length in tokens with the Qwen tokenizers, plus one token each of query and
    #: document: ``max_length`` below it is refused at construction (the exact check runs at load).
    min_length_hint: ClassVar[int]
    stop_strings: ClassVar[tuple[str, ...]] = ()
    #: The model runner class. The supported way to instrument the runtime (the benchmark imposes
    #: verdicts and counts work this way): subclass the reranker and set a ``ModelRunner`` subclass
    #: here; it gets its own engine loop over the same shared weights.
    runner_class: ClassVar[type[ModelRunner]] = ModelRunner

    def __init__(
        self,
        model: Any = None,
        *,
        device: Any = None,
        dtype: Any = None,
        max_length: int | None = None,
        max_new_tokens: int | None = None,
        batch_tokens: int | None = None,
        show_progress: bool | None = None,
        instruction: str | None = None,
    ) -> None:
        self.engine_config = EngineConfig(
            model=self.default_model if model is None else model,
            backend=self.backend,
            device=device,
            dtype=dtype,
            max_length=max_length,
            max_new_tokens=max_new_tokens,
            batch_tokens=batch_tokens,
            instruction=instruction,
        )
        config = self.engine_config
        self.model_name = config.key()[1]
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.max_length = self.default_max_length if config.max_length is None else config.max_length
        if self.max_length < self.min_length_hint:
            raise ValueError(
                f"max_length must be >= {self.min_length_hint} for the {self.backend} prompt (its fixed part "
                f"plus one token of query and one of document), got {self.max_length}"
            )
        self.max_new_tokens = (
            self.default_max_new_tokens if config.max_new_tokens is None else config.max_new_tokens
        )
        default_budget = DEFAULT_BATCH_TOKENS.get(self.device.type, 16384)
        self.batch_tokens = default_budget if config.batch_tokens is None else config.batch_tokens
        if show_progress is not None:
            check_bool(show_progress, "show_progress")
        self.show_progress = show_progress
        self._loaded: LoadedModel | None = None
        self._loop: EngineLoop | None = None
        self._prompts: PromptTokenizer | None = None
        self._load_lock = threading.Lock()
        self._namespace: Hashable | None = None

    # ----------------------------------------------------------------- configuration and loading
    def template(self) -> PromptTemplate:
        """This backend's prompt."""
        raise NotImplementedError

    @property
    def config(self) -> dict[str, Any]:
        """The resolved, JSON-safe configuration of this instance (defaults filled in)."""
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
    def shared(cls: type[Self], model: Any = None, **options: Any) -> Self:
        """The process-wide instance for this configuration (created, not loaded, on first call).

        Two calls whose options resolve to the same configuration (``"cpu"`` and
        ``torch.device("cpu")``, a relative and an absolute path to one directory...) get the same object.
        """
        from prism_core.registry import shared_engine

        return shared_engine(cls, cls(model, **options))

    @property
    def is_loaded(self) -> bool:
        """Whether the model and tokenizer are loaded."""
        return self._loop is not None

    def load(self: Self) -> Self:
        """Load the model and tokenizer now (idempotent; otherwise done on first use).

        Raises:
            ModelLoadError: The model cannot be loaded; the message says how to use a local copy.
            ValueError: ``max_length`` is too small for this prompt with this tokenizer.
        """
        with self._load_lock:
            if self._loop is None:
                loaded = registry.get(self.model_name, self.device, self.dtype)
                self._prompts = PromptTokenizer(loaded.tokenizer, self.template(), self.max_length)
                self._loaded = loaded
                self._loop = loaded.engine_loop(self._make_executor, kind=self.runner_class)
        return self

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loads the model)."""
        self.load()
        assert self._loaded is not None
        return self._loaded.tokenizer

    def _make_executor(self, loaded: LoadedModel) -> CausalExecutor:
        yes, no = verdict_ids(loaded.tokenizer)
        return CausalExecutor(self.runner_class(loaded.model, loaded.tokenizer, yes, no))

    @property
    def runner(self) -> ModelRunner:
        """The model runner behind this engine (loads the model); only the engine loop calls it."""
        executor = self.engine_loop.executor
        assert isinstance(executor, CausalExecutor)
        return executor.runner

    @property
    def prompt_tokenizer(self) -> PromptTokenizer:
        """The prompt builder of this engine (loads the model)."""
        self.load()
        assert self._prompts is not None
        return self._prompts

    @property
    def engine_loop(self) -> EngineLoop:
        """The engine loop serving this model (loads it): its ``stats`` count passes and steps."""
        self.load()
        assert self._loop is not None
        return self._loop

    # ----------------------------------------------------------------- public API
    def score(
        self,
        query: str,
        documents: Sequence[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
    ) -> list[float]:
        """Relevance scores in ``[0, 1]``, in input order; a pure scoring pass, nothing generated.

        Pairs scored before in this process are served from the result cache
        (:mod:`prism_core.caching.results`) without touching the model.

        Args:
            query: The query (non-empty).
            documents: Candidate texts.
            max_tokens_per_doc: Document tokens read per row (the query and the fixed prompt not
                counted); ``None``: what ``max_length`` leaves.
            long_documents: ``"truncate"`` (default: cut, ``truncated=True``) or ``"chunk"``
                (overlapping windows, the best window's score); see
                :mod:`prism_core.backends.long_documents`.

        Example:
            >>> PrismReranker("some/model").score("q", [])  # doctest: +SKIP
            []
        """
        query, docs = check_query(query), check_documents(documents)
        reading = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, _, _ = self._work_sync(query, docs, False, None, None, None, reading)
        return [base[i].score for i in range(len(docs))]

    async def ascore(
        self,
        query: str,
        documents: Sequence[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
    ) -> list[float]:
        """:meth:`score` without blocking the event loop (cancelling it cancels the work)."""
        query, docs = check_query(query), check_documents(documents)
        reading = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, _, _ = await self._work_async(query, docs, False, None, None, None, reading)
        return [base[i].score for i in range(len(docs))]

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        time_budget: float | None = None,
    ) -> list[PrismResult]:
        """Score and sort; for relevant kept documents of a generating backend, generate evidence.

        Generation runs only for documents whose verdict is ``yes`` and that survive
        ``score_threshold`` and ``top_n``; ``evidence=False`` is a pure scoring pass. Pairs finished
        before in this process come from the result cache (:mod:`prism_core.caching.results`).

        Args:
            query: The query (non-empty).
            documents: Candidate texts (untrusted: control tokens in them are encoded as text).
            top_n: Keep the best ``top_n`` results (after the threshold).
            score_threshold: Keep results with ``score >= score_threshold``, in [0, 1].
            evidence: Generate contribution and evidence for relevant kept documents (no-op on a
                score-only backend).
            max_tokens_per_doc: Document tokens read per row (query and fixed prompt not counted);
                ``None``: what ``max_length`` leaves.
            long_documents: ``"truncate"`` (default) or ``"chunk"``. In chunk mode, when any
                document is windowed, every window is scored first (one scoring job), each document
                takes its best window's logit, and evidence is generated in a second, small job
                over only the best windows of the relevant selected documents (those windows are
                prefilled again: at most ``top_n`` extra rows). Only the best window is described,
                even when several are relevant: its evidence stays one grounded passage, and the
                generation cost stays one row per document.
            time_budget: Seconds this call may take (fail-open, :mod:`prism_core.budgets`): it
                returns by then (plus one engine step) with what is done; documents whose
                generation did not finish get ``evidence_skipped="time_budget"``, documents not
                scored come last in input order with ``scored=False``.

        Returns:
            Results sorted by score, best first (ties by input position).

        Raises:
            TypeError: A non-string query or document, or a wrongly typed option.
            ValueError: Empty query, bad ``top_n``/threshold/``time_budget``, un-encodable text
                (names the document), or a query too long for ``max_length``.
            NonFiniteScoreError: The model produced NaN/inf verdict logits (use bf16 or fp32).
        """
        deadline = deadline_after(check_time_budget(time_budget))
        query, docs, top_n, score_threshold, generate = self._check(
            query, documents, top_n, score_threshold, evidence
        )
        reading = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, full, expired = self._work_sync(
            query, docs, generate, top_n, score_threshold, deadline, reading
        )
        return assemble_results(
            len(docs), base, full, top_n=top_n, threshold=score_threshold, generate=generate, expired=expired
        )

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
        max_tokens_per_doc: int | None = None,
        long_documents: str | None = None,
        time_budget: float | None = None,
    ) -> list[PrismResult]:
        """:meth:`rerank` without blocking the event loop; cancelling the task cancels the work."""
        deadline = deadline_after(check_time_budget(time_budget))
        query, docs, top_n, score_threshold, generate = self._check(
            query, documents, top_n, score_threshold, evidence
        )
        reading = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, full, expired = await self._work_async(
            query, docs, generate, top_n, score_threshold, deadline, reading
        )
        return assemble_results(
            len(docs), base, full, top_n=top_n, threshold=score_threshold, generate=generate, expired=expired
        )

    @property
    def cache_namespace(self) -> Hashable:
        """What keys this engine's entries in the result cache: its configuration and classes."""
        if self._namespace is None:
            runner = self.runner_class
            self._namespace = (
                f"{type(self).__module__}.{type(self).__qualname__}",
                f"{runner.__module__}.{runner.__qualname__}#{id(runner)}",
                self.engine_config.key(),
            )
        return self._namespace

    @property
    def cache_stats(self) -> dict[str, int]:
        """This engine's result-cache ``hits`` and ``misses`` (documents), and the shared cache's
        ``evictions``, ``entries`` and ``bytes``."""
        return result_cache().engine_stats(self.cache_namespace)

    # ----------------------------------------------------------------- cache and engine
    def _claim(self, query: str, docs: list[str], reading: Reading) -> Claim:
        # How a long document is read changes its answer: part of the key.
        return result_cache().claim((self.cache_namespace, reading), query, docs)

    def _todo(
        self, claim: Claim, generate: bool, top_n: int | None, threshold: float | None
    ) -> tuple[list[int], dict[int, PrismResult], dict[int, PrismResult]]:
        """What to send to the model: the missing documents, and (generating) the cached ones that
        may be returned with evidence but have none cached (only they can need it: a subset's
        ``top_n`` contains every document of the whole set's ``top_n`` that is in the subset)."""
        base = {i: p.base if p.base.index == i else replace(p.base, index=i) for i, p in claim.found.items()}
        full = {
            i: p.full if p.full.index == i else replace(p.full, index=i)
            for i, p in claim.found.items()
            if p.full is not None
        }
        todo = set(claim.missing)
        if generate:
            for r in select(list(base.values()), top_n, threshold):
                if passes(r.logit, threshold) and r.index not in full:
                    todo.add(r.index)
        return sorted(todo), base, full

    def _absorb(
        self,
        todo: list[int],
        prompts: list[EncodedPrompt],
        logits: list[float],
        generated: dict[int, list[int]],
        base: dict[int, PrismResult],
        full: dict[int, PrismResult],
        docs: list[str],
    ) -> dict[int, CachedPair]:
        """Turn the engine's plain output into results (output processing); return the finished pairs.

        ``prompts[j]`` is the row that gave document ``todo[j]`` its score (its best window in chunk
        mode); ``generated`` is keyed by position in ``todo``.
        """
        computed: dict[int, CachedPair] = {}
        for j, i in enumerate(todo):
            logit = logits[j]
            if math.isnan(logit):  # not scored: the time budget ran out first
                continue
            cached = base.get(i)
            chunk = prompts[j].chunk
            b = cached if cached is not None else self._result(i, prompts[j], logit, None, docs[i])
            if cached is None and chunk is not None:
                b = replace(b, chunk=chunk)
            base[i] = b
            ids = generated.get(j)
            f = None
            if ids is not None:
                f = self._result(i, prompts[j], logit, ids, docs[i])
                if chunk is not None:
                    f = replace(f, chunk=chunk)
                if cached is not None:  # keep the cached score: a cached answer is the first computed
                    f = replace(f, score=b.score, logit=b.logit, relevant=b.relevant)
                full[i] = f
            computed[i] = CachedPair(b, f)
        return computed

    def _work(
        self,
        query: str,
        docs: list[str],
        generate: bool,
        top_n: int | None,
        threshold: float | None,
        deadline: float | None,
        reading: Reading = (None, None),
    ) -> Work[_Parts]:
        """The work of one call, written once for the sync and async entry points (``driving``)."""
        cache = result_cache()
        claim = self._claim(query, docs, reading)
        try:
            if claim.waiting and not claim.owned:  # every missing pair is in flight for another caller
                yield Blocking(partial(cache.wait, claim, deadline))
            todo, base, full = self._todo(claim, generate, top_n, threshold)
            computed: dict[int, CachedPair] = {}
            expired = False
            if todo:
                sub = [docs[i] for i in todo]
                prompts, owners = yield Blocking(partial(self._encode, query, sub, *reading))
                if len(prompts) == len(sub):  # every document read in one row: one job, as always
                    job = self._job(prompts, generate, top_n, threshold, deadline)
                    logits, generated = yield job
                    expired = job.expired
                else:  # windows: score them all, then describe the best window of the kept documents
                    job = self._job(prompts, False, None, None, deadline)
                    window_logits, _ = yield job
                    expired = job.expired
                    prompts, logits, picks = self._best_windows(
                        prompts, owners, window_logits, len(sub), top_n, threshold
                    )
                    generated = {}
                    if generate and picks and not expired:
                        job = self._job([prompts[k] for k in picks], True, None, None, deadline)
                        _, ids = yield job
                        expired = job.expired
                        generated = {picks[k]: v for k, v in ids.items()}
                computed = self._absorb(todo, prompts, logits, generated, base, full, docs)
        except BaseException:
            cache.abandon(claim)
            raise
        cache.finish(claim, self.cache_namespace, computed, len(docs) - len(todo))
        return base, full, expired

    def _work_sync(self, *args: Any) -> _Parts:
        return drive_sync(self._work(*args), run=self._run_sync)

    async def _work_async(self, *args: Any) -> _Parts:
        return await drive_async(self._work(*args), run=self._run_async)

    @staticmethod
    def _best_windows(
        prompts: list[EncodedPrompt],
        owners: list[int],
        logits: list[float],
        n: int,
        top_n: int | None,
        threshold: float | None,
    ) -> tuple[list[EncodedPrompt], list[float], list[int]]:
        """Each document's best window and logit, and the documents to generate for (relevant
        survivors of the threshold and ``top_n``, by the one ranking rule). A document none of whose
        windows was scored (the time budget ran out) keeps a NaN logit."""
        best = best_rows(logits, owners, n)
        chosen = [prompts[r] for r in best]
        doc_logits = [logits[r] for r in best]
        stubs = [
            PrismResult(index=i, score=sigmoid(x), logit=x, relevant=x > 0)
            for i, x in enumerate(doc_logits)
            if not math.isnan(x)
        ]
        picks = sorted(r.index for r in select(stubs, top_n, threshold) if r.relevant)
        return chosen, doc_logits, picks

    # ----------------------------------------------------------------- the work
    def _check(
        self, query: Any, documents: Any, top_n: Any, score_threshold: Any, evidence: Any
    ) -> tuple[str, list[str], int | None, float | None, bool]:
        query, docs, top_n, score_threshold, evidence = check_rerank_args(
            query, documents, top_n, score_threshold, evidence
        )
        return query, docs, top_n, score_threshold, evidence and self.capabilities.evidence

    def _encode(
        self, query: str, docs: list[str], max_tokens_per_doc: int | None = None, mode: str | None = None
    ) -> tuple[list[EncodedPrompt], list[int]]:
        self.load()
        assert self._prompts is not None
        return self._prompts.encode_long(
            query, docs, max_tokens_per_doc=max_tokens_per_doc, long_documents=mode or DEFAULT_LONG_DOCUMENTS
        )

    async def _aencode(
        self, query: str, docs: list[str], max_tokens_per_doc: int | None = None, mode: str | None = None
    ) -> tuple[list[EncodedPrompt], list[int]]:
        return await asyncio.to_thread(self._encode, query, docs, max_tokens_per_doc, mode)

    def _job(
        self,
        prompts: list[EncodedPrompt],
        generate: bool,
        top_n: int | None,
        threshold: float | None,
        deadline: float | None = None,
    ) -> RerankJob:
        job = RerankJob(
            [p.ids for p in prompts],
            generate=generate,
            top_n=top_n,
            threshold=threshold,
            max_new_tokens=self.max_new_tokens,
            batch_tokens=self.batch_tokens,
            stop_strings=self.stop_strings,
            prefix_lens=[p.prefix_len for p in prompts],
        )
        job.deadline = deadline
        return job

    def _run_sync(self, job: RerankJob) -> tuple[list[float], dict[int, list[int]]]:
        assert self._loop is not None
        with self._progress(len(job.prompts)) as bar:
            job.progress = bar.update
            result: tuple[list[float], dict[int, list[int]]] = self._loop.run(job)
        return result

    async def _run_async(self, job: RerankJob) -> tuple[list[float], dict[int, list[int]]]:
        assert self._loop is not None
        result: tuple[list[float], dict[int, list[int]]] = await asyncio.wrap_future(self._loop.submit(job))
        return result

    def _progress(self, total: int) -> Any:
        from tqdm.auto import tqdm

        show = self.show_progress
        if show is None:
            show = total >= 64 and sys.stderr.isatty()
        return tqdm(
            total=total, unit="doc", desc=f"{self.display_name} rerank", disable=not show, leave=False
        )

    def _result(
        self, index: int, prompt: EncodedPrompt, logit: float, generated: list[int] | None, document: str
    ) -> PrismResult:
        """One result; ``document`` is the caller's text (generating backends check evidence against it)."""
        return PrismResult(
            index=index,
            score=sigmoid(logit),
            logit=logit,
            relevant=logit > 0,
            truncated=prompt.truncated,
            document_tokens=prompt.document_tokens,
        )
