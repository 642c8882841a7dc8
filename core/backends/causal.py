"""The yes/no causal-LM family (Prism, Qwen3-Reranker) on the engine-backed base.

A call encodes the prompts (injection-safe, truncating), submits one
:class:`~prism_core.runtime.pipeline.RerankJob` to the engine loop of the loaded weights, waits for
its plain result (verdict logits, generated ids) and turns that into :class:`PrismResult` objects.
What is common to every local backend (configuration, loading, the public methods, the result
cache) is :class:`~prism_core.backends.engine_backed.EngineBackedReranker`'s.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

from prism_core.backends.driving import Blocking, Work
from prism_core.backends.engine_backed import Call, EngineBackedReranker, Reading
from prism_core.backends.long_documents import best_rows
from prism_core.caching.pair_cache import CachedPair
from prism_core.config import EngineConfig
from prism_core.ranking import select, sigmoid
from prism_core.results import PrismResult
from prism_core.runtime.loading import LoadedModel, registry
from prism_core.runtime.pipeline import CausalExecutor, RerankJob
from prism_core.runtime.runner import ModelRunner
from prism_core.runtime.tokenization import EncodedPrompt, PromptTemplate, PromptTokenizer, verdict_ids

__all__ = ["DEFAULT_BATCH_TOKENS", "DEFAULT_LONG_DOCUMENTS", "CausalLMReranker", "Reading"]

#: How a document longer than its budget is read when the caller does not say: cut (the result
#: says ``truncated``); ``long_documents="chunk"`` reads it in windows.
DEFAULT_LONG_DOCUMENTS = "truncate"

#: Padded prompt tokens per forward pass when ``batch_tokens`` is not given.
DEFAULT_BATCH_TOKENS = {"cuda": 32768, "mps": 8192, "cpu": 16384}


class CausalLMReranker(EngineBackedReranker):
    """Base of the causal-LM backends: the prompt, the verdict logits, generation and its results.

    Subclasses set the class attributes and :meth:`template`; generating backends override
    :meth:`_generated_fields`.
    """

    default_batch_tokens = DEFAULT_BATCH_TOKENS
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

    max_length: int
    max_new_tokens: int

    # ----------------------------------------------------------------- hooks of the base
    def _configure(self, config: EngineConfig) -> None:
        self.max_length = self.default_max_length if config.max_length is None else config.max_length
        if self.max_length < self.min_length_hint:
            raise ValueError(
                f"max_length must be >= {self.min_length_hint} for the {self.backend} prompt (its fixed part "
                f"plus one token of query and one of document), got {self.max_length}"
            )
        self.max_new_tokens = (
            self.default_max_new_tokens if config.max_new_tokens is None else config.max_new_tokens
        )
        self._prompts: PromptTokenizer | None = None

    def template(self) -> PromptTemplate:
        """This backend's prompt."""
        raise NotImplementedError

    def _load_weights(self) -> LoadedModel:
        return registry.get(self.model_name, self.device, self.dtype)

    def _on_load(self, loaded: LoadedModel) -> None:
        self._prompts = PromptTokenizer(loaded.tokenizer, self.template(), self.max_length)

    @property
    def executor_kind(self) -> Any:
        return self.runner_class

    def _make_executor(self, loaded: LoadedModel) -> CausalExecutor:
        yes, no = verdict_ids(loaded.tokenizer)
        return CausalExecutor(self.runner_class(loaded.model, loaded.tokenizer, yes, no))

    def _namespace_extra(self) -> tuple[Hashable, ...]:
        runner = self.runner_class
        return (f"{runner.__module__}.{runner.__qualname__}#{id(runner)}",)

    @staticmethod
    def _job_rows(job: Any) -> int:
        return len(job.prompts)

    # ----------------------------------------------------------------- loaded parts
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

    # ----------------------------------------------------------------- the work
    def _compute(
        self, call: Call, todo: list[int], base: dict[int, PrismResult], full: dict[int, PrismResult]
    ) -> Work[tuple[dict[int, CachedPair], bool]]:
        sub = [call.docs[i] for i in todo]
        prompts, owners = yield Blocking(partial(self._encode, call.query, sub, *call.reading))
        if len(prompts) == len(sub):  # every document read in one row: one job, as always
            job = self._job(prompts, call.generate, call.top_n, call.threshold, call.deadline)
            logits, generated = yield job
            expired = job.expired
        else:  # windows: score them all, then describe the best window of the kept documents
            job = self._job(prompts, False, None, None, call.deadline)
            window_logits, _ = yield job
            expired = job.expired
            prompts, logits, picks = self._best_windows(
                prompts, owners, window_logits, len(sub), call.top_n, call.threshold
            )
            generated = {}
            if call.generate and picks and not expired:
                job = self._job([prompts[k] for k in picks], True, None, None, call.deadline)
                _, ids = yield job
                expired = job.expired
                generated = {picks[k]: v for k, v in ids.items()}
        return self._absorb(todo, prompts, logits, generated, base, full, call.docs), expired

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

    def _encode(
        self, query: str, docs: list[str], max_tokens_per_doc: int | None = None, mode: str | None = None
    ) -> tuple[list[EncodedPrompt], list[int]]:
        """Load if needed (the one ``load()`` of a call) and encode the prompts."""
        self.load()
        assert self._prompts is not None
        return self._prompts.encode_long(
            query, docs, max_tokens_per_doc=max_tokens_per_doc, long_documents=mode or DEFAULT_LONG_DOCUMENTS
        )

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
            **self._generated_fields(generated, document),
        )

    def _generated_fields(self, generated: list[int] | None, document: str) -> dict[str, Any]:
        """The result's fields read from the generated ids (a generating backend's output processing)."""
        return {}
