"""``EngineBackedReranker``: the one front end of the local backends (the loaded model, one engine loop).

Every local backend (Prism, Qwen3-Reranker, cross-encoders) does the same around its model:
resolve its configuration (:class:`~prism_core.config.EngineConfig`), load the weights lazily and
once per ``(model, device, dtype)`` in the process, drive them with one
:class:`~prism_core.runtime.engine_loop.EngineLoop`, check a call's input, serve what the result
cache holds, and write one body of work for the sync and async entry points
(:mod:`prism_core.backends.driving`). This class does all of that once; a model family fills in
small hooks:

- :meth:`~EngineBackedReranker._load_weights` and :meth:`~EngineBackedReranker._on_load`: how its
  weights load and what is checked or built once they are;
- :meth:`~EngineBackedReranker._make_executor` and :attr:`~EngineBackedReranker.executor_kind`:
  what runs the engine loop's passes;
- :meth:`~EngineBackedReranker._compute`: a call's work for the documents not cached (encode, the
  engine jobs, and turning their plain output into :class:`~prism_core.results.PrismResult`).

The options a backend takes are declared once, as data (:attr:`EngineBackedReranker.engine_options`):
the constructor, :func:`prism_core.registry.get_engine`, the adapters and the CLI all read that.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict, TypeVar

from prism_core.backends.driving import Blocking, Work, drive_async, drive_sync
from prism_core.budgets import assemble_results, check_time_budget, deadline_after
from prism_core.caching.pair_cache import CachedPair, Claim, result_cache
from prism_core.config import EngineConfig
from prism_core.protocol import Capabilities, RerankOptions
from prism_core.ranking import passes, select
from prism_core.results import PrismResult
from prism_core.runtime.devices import dtype_name, resolve_device, resolve_dtype
from prism_core.runtime.engine_loop import EngineLoop, Job
from prism_core.runtime.loading import LoadedModel
from prism_core.validation import (
    check_bool,
    check_documents,
    check_long_documents,
    check_query,
    check_rerank_args,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

Self = TypeVar("Self", bound="EngineBackedReranker")
#: How long documents are read: ``(max_tokens_per_doc, long_documents)`` as the caller gave them.
Reading = tuple[int | None, str | None]
#: Per call: scored documents' results, results with generation (both by input position), expired.
Parts = tuple[dict[int, PrismResult], dict[int, PrismResult], bool]

#: The engine options every local backend takes (``instruction`` is Qwen3-Reranker's own).
LOCAL_ENGINE_OPTIONS: tuple[str, ...] = ("device", "dtype", "max_length", "max_new_tokens", "batch_tokens")


class ScoreOptions(TypedDict, total=False):
    """How a local backend reads documents over their budget (:meth:`EngineBackedReranker.score`)."""

    max_tokens_per_doc: int | None
    long_documents: str | None


class LocalRerankOptions(RerankOptions, ScoreOptions, total=False):
    """A local backend's ``rerank`` options: every reranker's (:class:`~prism_core.protocol.RerankOptions`)
    and the long-document ones (:class:`ScoreOptions`)."""


@dataclass(frozen=True)
class Call:
    """One call's checked input and options, as the body of work reads them."""

    query: str
    docs: list[str]
    generate: bool = False
    top_n: int | None = None
    threshold: float | None = None
    deadline: float | None = None
    reading: Reading = (None, None)


class EngineBackedReranker:
    """Base of the local backends: configuration, lazy loading, the engine calls, the result cache.

    Constructing is cheap and loads nothing; the model loads on first use (or :meth:`load`), once per
    ``(model, device, dtype)`` in the process whatever the other options.

    Subclasses set the class attributes and the hooks named in the module docstring.

    Example:
        >>> from prism_core import PrismReranker
        >>> PrismReranker.engine_options
        ('device', 'dtype', 'max_length', 'max_new_tokens', 'batch_tokens')
    """

    backend: ClassVar[str]
    #: The name in progress bars and messages.
    display_name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: The model when none is given (``None``: a model must be given).
    default_model: ClassVar[str | None] = None
    #: The engine options this backend takes, declared once (see the module docstring).
    engine_options: ClassVar[tuple[str, ...]] = LOCAL_ENGINE_OPTIONS
    #: Padded tokens per forward pass when ``batch_tokens`` is not given, by device type.
    default_batch_tokens: ClassVar[Mapping[str, int]] = {"cuda": 32768, "mps": 8192, "cpu": 16384}

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
        given = {
            "device": device,
            "dtype": dtype,
            "max_length": max_length,
            "max_new_tokens": max_new_tokens,
            "batch_tokens": batch_tokens,
            "instruction": instruction,
        }
        refused = [
            name for name, value in given.items() if value is not None and name not in self.engine_options
        ]
        if refused:
            raise TypeError(
                f"backend {self.backend!r} does not take option(s) {', '.join(refused)}; "
                f"it takes: {', '.join(self.engine_options)}"
            )
        if model is None:
            if self.default_model is None:
                raise TypeError(
                    f"{type(self).__name__} needs a model: a hub id or a local checkpoint directory"
                )
            model = self.default_model
        self.engine_config = config = EngineConfig(model=model, backend=self.backend, **given)
        self.model_name: str = config.key()[1]
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        default_budget = self.default_batch_tokens.get(self.device.type, 16384)
        self.batch_tokens: int = default_budget if config.batch_tokens is None else config.batch_tokens
        if show_progress is not None:
            check_bool(show_progress, "show_progress")
        self.show_progress = show_progress
        self.max_length: int | None
        self.max_new_tokens: int | None
        self._configure(config)
        self._loaded: LoadedModel | None = None
        self._loop: EngineLoop | None = None
        self._load_lock = threading.Lock()
        self._namespace: Hashable | None = None

    # ----------------------------------------------------------------- the family's hooks
    def _configure(self, config: EngineConfig) -> None:
        """Set ``max_length`` and ``max_new_tokens`` from ``config`` (checking what can be checked
        before loading)."""
        raise NotImplementedError

    def _load_weights(self) -> LoadedModel:
        """The shared loaded weights (:data:`prism_core.runtime.loading.registry`)."""
        raise NotImplementedError

    def _on_load(self, loaded: LoadedModel) -> None:
        """Checks and per-instance state once the weights are loaded (under the load lock)."""

    @property
    def executor_kind(self) -> Any:
        """What tells this engine's loop apart from others over the same weights."""
        raise NotImplementedError

    def _make_executor(self, loaded: LoadedModel) -> Any:
        """The executor that runs the engine loop's passes over ``loaded``."""
        raise NotImplementedError

    def _namespace_extra(self) -> tuple[Hashable, ...]:
        """Whatever else changes this engine's answers (part of its result-cache namespace)."""
        return ()

    def _compute(
        self, call: Call, todo: list[int], base: dict[int, PrismResult], full: dict[int, PrismResult]
    ) -> Work[tuple[dict[int, CachedPair], bool]]:
        """The work for documents ``todo`` (positions in ``call.docs``): fills ``base`` (and
        ``full`` when generating) and returns the finished pairs and whether the deadline cut it."""
        raise NotImplementedError

    @staticmethod
    def _job_rows(job: Any) -> int:
        """Rows of an engine job (the progress bar's total)."""
        raise NotImplementedError

    def _evidence_is_noop(self) -> None:
        """Called when a caller asks for evidence from a score-only backend."""

    # ----------------------------------------------------------------- configuration and loading
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

        Example:
            >>> from prism_core import CrossEncoderReranker
            >>> a = CrossEncoderReranker.shared("some/cross-encoder", device="cpu")
            >>> a is CrossEncoderReranker.shared("some/cross-encoder", device="cpu")
            True
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
            ImportError: The backend's extra is not installed (the message names it).
            ModelLoadError: The model cannot be loaded; the message says how to use a local copy.
            ValueError: ``max_length`` is outside what this model's tokenizer and prompt allow.
        """
        with self._load_lock:
            if self._loop is None:
                loaded = self._load_weights()
                self._on_load(loaded)
                self._loaded = loaded
                self._loop = loaded.engine_loop(self._make_executor, kind=self.executor_kind)
        return self

    def _model(self) -> LoadedModel:
        """The loaded weights of an engine already loaded in this call (loads nothing)."""
        assert self._loaded is not None, "load() first"
        return self._loaded

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loads the model)."""
        return self.load()._model().tokenizer

    @property
    def engine_loop(self) -> EngineLoop:
        """The engine loop serving this model (loads it): its ``stats`` count passes and steps."""
        self.load()
        assert self._loop is not None
        return self._loop

    @property
    def cache_namespace(self) -> Hashable:
        """What keys this engine's entries in the result cache: its configuration and classes."""
        if self._namespace is None:
            qualname = f"{type(self).__module__}.{type(self).__qualname__}"
            self._namespace = (qualname, *self._namespace_extra(), self.engine_config.key())
        return self._namespace

    @property
    def cache_stats(self) -> dict[str, int]:
        """This engine's result-cache ``hits`` and ``misses`` (documents), and the shared cache's
        ``evictions``, ``entries`` and ``bytes``."""
        return result_cache().engine_stats(self.cache_namespace)

    # ----------------------------------------------------------------- public API
    def score(self, query: str, documents: Sequence[str], **options: Unpack[ScoreOptions]) -> list[float]:
        """Relevance scores in ``[0, 1]``, in input order; a pure scoring pass, nothing generated.

        Pairs scored before in this process are served from the result cache
        (:mod:`prism_core.caching.pair_cache`) without touching the model.

        Args:
            query: The query (non-empty).
            documents: Candidate texts.
            **options: :class:`ScoreOptions`: ``max_tokens_per_doc`` (document tokens read per row,
                the query and the fixed prompt or the pair's special tokens not counted; ``None``:
                what ``max_length`` leaves) and ``long_documents`` (``"truncate"``, the default:
                cut, ``truncated=True``; or ``"chunk"``: overlapping windows, the best window's
                score; see :mod:`prism_core.backends.long_documents`).

        Raises:
            TypeError: A non-string query or document, an unknown or wrongly typed option.

        Example:
            >>> PrismReranker("some/model").score("q", [])  # doctest: +SKIP
            []
        """
        call = self._score_call(query, documents, **options)
        if not call.docs:
            return []
        base, _, _ = drive_sync(self._work(call), run=self._run_sync)
        return [base[i].score for i in range(len(call.docs))]

    async def ascore(
        self, query: str, documents: Sequence[str], **options: Unpack[ScoreOptions]
    ) -> list[float]:
        """:meth:`score` without blocking the event loop (cancelling it cancels the work)."""
        call = self._score_call(query, documents, **options)
        if not call.docs:
            return []
        base, _, _ = await drive_async(self._work(call), run=self._run_async)
        return [base[i].score for i in range(len(call.docs))]

    def rerank(
        self, query: str, documents: Sequence[str], **options: Unpack[LocalRerankOptions]
    ) -> list[PrismResult]:
        """Score and sort; for relevant kept documents of a generating backend, generate evidence.

        Generation runs only for documents whose verdict is ``yes`` and that survive
        ``score_threshold`` and ``top_n``; ``evidence=False`` is a pure scoring pass (and so is any
        call to a score-only backend). Pairs finished before in this process come from the result
        cache (:mod:`prism_core.caching.pair_cache`).

        Args:
            query: The query (non-empty).
            documents: Candidate texts (untrusted: control tokens in them are encoded as text).
            **options: :class:`LocalRerankOptions`, each keyword-only and optional:

                - ``top_n``: keep the best ``top_n`` results (after the threshold);
                - ``score_threshold``: keep results with ``score >= score_threshold``, in [0, 1];
                - ``evidence`` (default ``True``): generate contribution and evidence for relevant
                  kept documents (no-op on a score-only backend);
                - ``max_tokens_per_doc``: document tokens read per row; ``None``: what
                  ``max_length`` leaves;
                - ``long_documents``: ``"truncate"`` (default) or ``"chunk"``: a longer document
                  is read as overlapping windows and scored by its best one (``chunk`` set). A
                  generating backend scores every window first, then generates evidence in a second,
                  small job over only the best windows of the relevant selected documents (at most
                  ``top_n`` extra rows): only the best window is described, so its evidence stays
                  one grounded passage;
                - ``time_budget``: seconds this call may take (fail-open, :mod:`prism_core.budgets`):
                  it returns by then (plus one engine step) with what is done; documents whose
                  generation did not finish get ``evidence_skipped="time_budget"``, documents not
                  scored come last in input order with ``scored=False``.

        Returns:
            Results sorted by score, best first (ties by input position).

        Raises:
            TypeError: A non-string query or document, an unknown or wrongly typed option.
            ValueError: Empty query, bad ``top_n``/threshold/``time_budget``, un-encodable text
                (names the document), or a query too long for ``max_length``.
            NonFiniteScoreError: The model produced NaN/inf logits (use bf16 or fp32).

        Example:
            >>> reranker.rerank("what is rust?", ["Paris.", "Rust is a language."], top_n=1)  # doctest: +SKIP
            [PrismResult(index=1, score=0.98..., ...)]
        """
        call = self._rerank_call(query, documents, **options)
        if not call.docs:
            return []
        return self._assemble(call, drive_sync(self._work(call), run=self._run_sync))

    async def arerank(
        self, query: str, documents: Sequence[str], **options: Unpack[LocalRerankOptions]
    ) -> list[PrismResult]:
        """:meth:`rerank` without blocking the event loop; cancelling the task cancels the work."""
        call = self._rerank_call(query, documents, **options)
        if not call.docs:
            return []
        return self._assemble(call, await drive_async(self._work(call), run=self._run_async))

    # ----------------------------------------------------------------- checking a call
    @staticmethod
    def _score_call(
        query: Any, documents: Any, *, max_tokens_per_doc: Any = None, long_documents: Any = None
    ) -> Call:
        query, docs = check_query(query), check_documents(documents)
        return Call(query, docs, reading=check_long_documents(max_tokens_per_doc, long_documents))

    def _rerank_call(
        self,
        query: Any,
        documents: Any,
        *,
        top_n: Any = None,
        score_threshold: Any = None,
        evidence: Any = True,
        max_tokens_per_doc: Any = None,
        long_documents: Any = None,
        time_budget: Any = None,
    ) -> Call:
        """The options checked (their names too: an unknown one is a ``TypeError`` here)."""
        deadline = deadline_after(check_time_budget(time_budget))
        query, docs, top_n, score_threshold, evidence = check_rerank_args(
            query, documents, top_n, score_threshold, evidence
        )
        if evidence and not self.capabilities.evidence:
            self._evidence_is_noop()
        reading = check_long_documents(max_tokens_per_doc, long_documents)
        generate = evidence and self.capabilities.evidence
        return Call(query, docs, generate, top_n, score_threshold, deadline, reading)

    @staticmethod
    def _assemble(call: Call, parts: Parts) -> list[PrismResult]:
        base, full, expired = parts
        return assemble_results(
            len(call.docs),
            base,
            full,
            top_n=call.top_n,
            threshold=call.threshold,
            generate=call.generate,
            expired=expired,
        )

    # ----------------------------------------------------------------- cache and engine
    def _work(self, call: Call) -> Work[Parts]:
        """The work of one call, written once for the sync and async entry points (``driving``)."""
        cache = result_cache()
        # How a long document is read changes its answer: part of the key.
        claim = cache.claim((self.cache_namespace, call.reading), call.query, call.docs)
        try:
            if claim.waiting and not claim.owned:  # every missing pair is in flight for another caller
                yield Blocking(partial(cache.wait, claim, call.deadline))
            todo, base, full = self._todo(claim, call)
            computed: dict[int, CachedPair] = {}
            expired = False
            if todo:
                computed, expired = yield from self._compute(call, todo, base, full)
        except BaseException:
            cache.abandon(claim)
            raise
        cache.finish(claim, self.cache_namespace, computed, len(call.docs) - len(todo))
        return base, full, expired

    @staticmethod
    def _todo(claim: Claim, call: Call) -> tuple[list[int], dict[int, PrismResult], dict[int, PrismResult]]:
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
        if call.generate:
            for r in select(list(base.values()), call.top_n, call.threshold):
                if passes(r.logit, call.threshold) and r.index not in full:
                    todo.add(r.index)
        return sorted(todo), base, full

    def _run_sync(self, job: Job) -> Any:
        assert self._loop is not None
        with self._progress(self._job_rows(job)) as bar:
            job.progress = bar.update  # type: ignore[attr-defined]
            return self._loop.run(job)

    async def _run_async(self, job: Job) -> Any:
        assert self._loop is not None
        return await asyncio.wrap_future(self._loop.submit(job))

    def _progress(self, total: int) -> Any:
        from tqdm.auto import tqdm

        show = self.show_progress
        if show is None:
            show = total >= 64 and sys.stderr.isatty()
        return tqdm(
            total=total, unit="doc", desc=f"{self.display_name} rerank", disable=not show, leave=False
        )
