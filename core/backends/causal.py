"""The front end shared by the yes/no causal-LM backends (Prism, Qwen3-Reranker).

A call validates its input, encodes the prompts (injection-safe, truncating), submits one
:class:`~prism_core.runtime.pipeline.RerankJob` to the engine loop of the loaded weights, waits for
its plain result (verdict logits, generated ids) and turns that into :class:`PrismResult` objects.
The model is never touched from the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

from prism_core.backends.long_documents import best_rows
from prism_core.config import EngineConfig
from prism_core.protocol import Capabilities
from prism_core.ranking import select, sigmoid
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
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        prompts, owners = self._encode(query, docs, budget, mode)
        logits, _ = self._run_sync(self._job(prompts, False, None, None))
        return [sigmoid(logits[r]) for r in best_rows(logits, owners, len(docs))]

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
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        prompts, owners = await self._aencode(query, docs, budget, mode)
        logits, _ = await self._run_async(self._job(prompts, False, None, None))
        return [sigmoid(logits[r]) for r in best_rows(logits, owners, len(docs))]

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
    ) -> list[PrismResult]:
        """Score and sort; for relevant kept documents of a generating backend, generate evidence.

        Generation runs only for documents whose verdict is ``yes`` and that survive
        ``score_threshold`` and ``top_n``; ``evidence=False`` is a pure scoring pass.

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

        Returns:
            Results sorted by score, best first (ties by input position); ``chunk`` holds the
            best window's character offsets for a windowed document.

        Raises:
            TypeError: A non-string query or document, or a wrongly typed option.
            ValueError: Empty query, bad ``top_n``/threshold, un-encodable text (names the document),
                or a query too long for ``max_length``.
            NonFiniteScoreError: The model produced NaN/inf verdict logits (use bf16 or fp32).
        """
        query, docs, top_n, score_threshold, generate = self._check(
            query, documents, top_n, score_threshold, evidence
        )
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        prompts, owners = self._encode(query, docs, budget, mode)
        if len(prompts) == len(docs):  # every document read in one row: one job, as always
            logits, generated = self._run_sync(self._job(prompts, generate, top_n, score_threshold))
            return self._results(prompts, logits, generated, top_n, score_threshold, docs)
        logits, _ = self._run_sync(self._job(prompts, False, None, None))
        chosen, doc_logits, picks = self._best_windows(
            prompts, owners, logits, len(docs), top_n, score_threshold
        )
        described: dict[int, list[int]] = {}
        if generate and picks:
            _, ids = self._run_sync(self._job([chosen[i] for i in picks], True, None, None))
            described = {picks[k]: v for k, v in ids.items()}
        return self._results(chosen, doc_logits, described, top_n, score_threshold, docs)

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
    ) -> list[PrismResult]:
        """:meth:`rerank` without blocking the event loop; cancelling the task cancels the work."""
        query, docs, top_n, score_threshold, generate = self._check(
            query, documents, top_n, score_threshold, evidence
        )
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        prompts, owners = await self._aencode(query, docs, budget, mode)
        if len(prompts) == len(docs):
            logits, generated = await self._run_async(self._job(prompts, generate, top_n, score_threshold))
            return self._results(prompts, logits, generated, top_n, score_threshold, docs)
        logits, _ = await self._run_async(self._job(prompts, False, None, None))
        chosen, doc_logits, picks = self._best_windows(
            prompts, owners, logits, len(docs), top_n, score_threshold
        )
        generated = {}
        if generate and picks:
            _, ids = await self._run_async(self._job([chosen[i] for i in picks], True, None, None))
            generated = {picks[k]: v for k, v in ids.items()}
        return self._results(chosen, doc_logits, generated, top_n, score_threshold, docs)

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
        survivors of the threshold and ``top_n``, by the one ranking rule)."""
        best = best_rows(logits, owners, n)
        chosen = [prompts[r] for r in best]
        doc_logits = [logits[r] for r in best]
        stubs = [
            PrismResult(index=i, score=sigmoid(x), logit=x, relevant=x > 0) for i, x in enumerate(doc_logits)
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
        self, prompts: list[EncodedPrompt], generate: bool, top_n: int | None, threshold: float | None
    ) -> RerankJob:
        return RerankJob(
            [p.ids for p in prompts],
            generate=generate,
            top_n=top_n,
            threshold=threshold,
            max_new_tokens=self.max_new_tokens,
            batch_tokens=self.batch_tokens,
            stop_strings=self.stop_strings,
        )

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

    def _results(
        self,
        prompts: list[EncodedPrompt],
        logits: list[float],
        generated: dict[int, list[int]],
        top_n: int | None,
        threshold: float | None,
        documents: list[str],
    ) -> list[PrismResult]:
        """Output processing: plain engine output → results, ranked by the one rule."""
        results = [
            self._result(i, p, logit, generated.get(i), documents[i])
            for i, (p, logit) in enumerate(zip(prompts, logits, strict=True))
        ]
        results = [
            r if p.chunk is None else replace(r, chunk=p.chunk) for r, p in zip(results, prompts, strict=True)
        ]
        return select(results, top_n, threshold)

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
