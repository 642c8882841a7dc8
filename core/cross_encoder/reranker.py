"""``CrossEncoderReranker``: sequence-classification cross-encoders through sentence-transformers.

The cross-encoder family in one place (:mod:`prism_core.cross_encoder`): this backend, its loading
(:mod:`.loading`), its tokenisation into rows (:mod:`.rows`) and its engine executor and job
(:mod:`.executor`).

The checkpoints this serves (``BAAI/bge-reranker-v2-m3``, ARA-Reranker-V1,
``cross-encoder/ms-marco-MiniLM-L6-v2`` and the like) are loaded and run by sentence-transformers'
``CrossEncoder``: its tokenisation, truncation (``longest_first``) and forward pass are used as they
are. What this module adds is the core's serving runtime around them:

- **One owner per loaded model.** The weights are loaded once per ``(model, device, dtype)`` and
  driven by one :class:`~prism_core.runtime.engine_loop.EngineLoop`; every caller (threads, asyncio
  tasks, server handlers) submits a :class:`CrossEncoderJob` and waits on its future. Concurrent
  callers' batches are coalesced into one forward pass when they fit the token budget; cancelling a
  request stops its work at the next pass; a failing batch fails only its own request.
- **Tokenised once, in the caller's thread.** A request's pairs go through ``CrossEncoder.preprocess``
  (the model's tokenizer, its truncation, its prompt, exactly what ``predict`` feeds the model) in the
  calling thread, so the engine loop only runs forward passes (``CrossEncoder.forward`` on
  re-padded rows), and the token counts come for free.
- **Token-budget batches of one width.** Each pair runs padded to a width set by its own length
  (:func:`~prism_core.runtime.batching.bucket_width`: at most 12.5 % padding), and pairs of one width
  are cut into batches of at most ``batch_tokens`` padded tokens. ``CrossEncoder.predict`` sorts by
  characters and pads fixed ``batch_size`` groups: on a few dozen mixed-length documents most of its
  work is padding.
- **A score does not depend on the batch.** Plans depend only on the request's token lengths and
  the configuration, never on timings or the machine's load; and since a row's padded width is a
  function of its own length and only rows of one width share a pass (other callers' included), what
  else is in the pass changes only the number of rows, which moves float32 scores by at most a few
  1e-7 (tested: ≤ 1e-6).

Scores are ``sigmoid(logit)`` in ``[0, 1]``, as these models' cards compute them (``CrossEncoder``'s
default activation for one-label models); ``relevant`` is ``logit > 0`` (``score > 0.5``).
"""

from __future__ import annotations

import logging
import math
import threading
from functools import partial
from typing import Any

from prism_core.backends.driving import Blocking, Work
from prism_core.backends.engine_backed import Call, EngineBackedReranker
from prism_core.backends.long_documents import best_rows
from prism_core.caching.pair_cache import CachedPair
from prism_core.config import EngineConfig
from prism_core.cross_encoder.executor import CrossEncoderExecutor, CrossEncoderJob
from prism_core.cross_encoder.loading import load_cross_encoder
from prism_core.cross_encoder.rows import DocumentRows, document_rows, encode_pairs, untruncated_lengths
from prism_core.protocol import SCORE_ONLY
from prism_core.ranking import sigmoid
from prism_core.results import PrismResult
from prism_core.runtime.batching import bucket_width
from prism_core.runtime.loading import LoadedModel, registry

#: Named as before the family moved here, so logging configured by that name keeps working.
logger = logging.getLogger("prism_core.backends.cross_encoder")

#: Padded tokens per forward pass when ``batch_tokens`` is not given (``rows × longest pair``). On
#: CPU, smaller batches than a causal LM's run faster (a MiniLM-L6-sized BERT on 2 cores: 4096 ran
#: 300 short or 30 long pairs ~10 % faster than 16384, and mixed lengths as fast).
DEFAULT_BATCH_TOKENS = {"cuda": 32768, "mps": 8192, "cpu": 4096}

#: With the default ``batch_tokens``, the budget grows to hold one ``predict`` batch of a request's
#: longest rows, up to ``MAX_BUDGET_GROWTH`` times the default (a function of the input alone).
MAX_BUDGET_GROWTH = 4

#: Rows per batch of ``CrossEncoder.predict`` (its default ``batch_size``): with the default
#: ``batch_tokens``, a batch may hold this many of a request's longest rows (up to the growth cap).
PREDICT_BATCH_SIZE = 32

#: The smallest ``max_length`` accepted at construction: ``[CLS] q [SEP] d [SEP]`` with one token
#: of query and one of document (BERT-style pair encoding). The exact minimum for the model's
#: tokenizer (its special tokens plus two) is checked when the model loads.
MIN_LENGTH_HINT = 5


class CrossEncoderReranker(EngineBackedReranker):
    """A sequence-classification cross-encoder (bge-reranker-v2-m3, ARA-Reranker-V1, ms-marco MiniLM...).

    Loaded and run by sentence-transformers ``CrossEncoder``, served by the core's engine loop
    (token-budget batches, coalesced concurrent callers, cancellation, failure isolation). Score-only:
    ``score = sigmoid(logit)``, ``relevant = logit > 0``; ``contribution``, ``evidence`` and
    ``raw_output`` stay ``None``, and ``evidence=True`` is a no-op (said once per instance in an
    INFO log line).

    Constructing is cheap and loads nothing; the model loads on first use (or :meth:`load`), once per
    ``(model, device, dtype)`` in the process whatever the other options.

    Args:
        model: Hub id or local checkpoint directory (a ``*ForSequenceClassification`` with one label).
        device: ``None`` (CUDA, else MPS, else CPU), or ``"cpu"``, ``"cuda:1"``, ...
        dtype: ``None`` (bf16 on CUDA, fp32 elsewhere), a torch dtype or ``"float32"``/``"bfloat16"``.
        max_length: Cap on tokens per (query, document) pair (default: the model's own maximum, e.g.
            512 for MiniLM, 8192 for bge-reranker-v2-m3); longer pairs are cut by the tokenizer
            (``longest_first``) and flagged ``truncated``.
        max_new_tokens: Accepted for a uniform surface and ignored (nothing is generated).
        batch_tokens: Padded tokens per forward pass, a hard cap when given. Default by device type
            (CPU 4096, CUDA 32768, MPS 8192), grown (up to 4×) to hold one ``predict`` batch of 32
            of the request's longest pairs. Plans depend on the input alone, never on timings.
        show_progress: Progress bar on stderr: ``True``, ``False`` or ``None`` (only for long jobs
            when stderr is a terminal).

    Raises:
        ValueError: ``max_length`` below the smallest pair (checked exactly at load, where a value
            above the model's maximum is refused too).

    Example:
        >>> from prism_core import CrossEncoderReranker
        >>> reranker = CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L6-v2", device="cpu")
        >>> reranker.score("what is rust?", ["Rust is a language.", "Paris."])  # doctest: +SKIP
        [0.98..., 0.01...]
    """

    backend = "cross-encoder"
    display_name = "cross-encoder"
    capabilities = SCORE_ONLY
    default_batch_tokens = DEFAULT_BATCH_TOKENS
    executor_kind = CrossEncoderExecutor

    # ----------------------------------------------------------------- hooks of the base
    def _configure(self, config: EngineConfig) -> None:
        if config.max_length is not None and config.max_length < MIN_LENGTH_HINT:
            raise ValueError(
                f"max_length must be >= {MIN_LENGTH_HINT} for a cross-encoder (a pair's special tokens "
                f"plus one token of query and one of document), got {config.max_length}"
            )
        #: The truncation length: the option, else (once loaded) the model's maximum.
        self.max_length = config.max_length
        self.max_new_tokens = config.max_new_tokens
        self._said: set[str] = set()
        self._said_lock = threading.Lock()
        if self.max_new_tokens is not None:
            self._say_once(
                "max_new_tokens",
                "%s: max_new_tokens=%d is ignored: a cross-encoder only scores, it generates nothing",
                self.model_name,
                self.max_new_tokens,
            )

    def _load_weights(self) -> LoadedModel:
        return registry.get(self.model_name, self.device, self.dtype, loader=load_cross_encoder)

    def _on_load(self, loaded: LoadedModel) -> None:
        self.max_length = self._check_max_length(loaded)

    def _make_executor(self, loaded: LoadedModel) -> CrossEncoderExecutor:
        return CrossEncoderExecutor(loaded.model)

    @staticmethod
    def _job_rows(job: Any) -> int:
        return len(job.rows)

    def _evidence_is_noop(self) -> None:
        self._say_once(
            "evidence",
            "%s: evidence=True is a no-op: a cross-encoder only scores (contribution and evidence stay None)",
            self.model_name,
        )

    def _check_max_length(self, loaded: LoadedModel) -> int:
        limit = int(loaded.model.max_seq_length)
        minimum = int(loaded.tokenizer.num_special_tokens_to_add(pair=True)) + 2
        wanted = self.engine_config.max_length
        if wanted is None:
            return limit
        if not minimum <= wanted <= limit:
            raise ValueError(
                f"max_length must be in [{minimum}, {limit}] for {self.model_name!r} (its pair's special "
                f"tokens plus one token each of query and document; its maximum input length), got {wanted}"
            )
        return wanted

    @property
    def cross_encoder(self) -> Any:
        """The sentence-transformers ``CrossEncoder`` (loads it; shared: only the engine loop runs it)."""
        return self.load()._model().model

    def _say_once(self, key: str, message: str, *args: Any) -> None:
        with self._said_lock:
            if key in self._said:
                return
            self._said.add(key)
        logger.info(message, *args)

    # ----------------------------------------------------------------- the work
    def _compute(
        self, call: Call, todo: list[int], base: dict[int, PrismResult], full: dict[int, PrismResult]
    ) -> Work[tuple[dict[int, CachedPair], bool]]:
        job, rows = yield Blocking(
            partial(self._prepare, call.query, [call.docs[i] for i in todo], *call.reading)
        )
        job.deadline = call.deadline
        computed = self._absorb(todo, (yield job), rows, base)
        return computed, len(computed) < len(todo)

    @staticmethod
    def _absorb(
        todo: list[int], logits: list[float], rows: DocumentRows, base: dict[int, PrismResult]
    ) -> dict[int, CachedPair]:
        """Each document by its best row (its only row unless it was read in windows)."""
        computed: dict[int, CachedPair] = {}
        for j, r in enumerate(best_rows(logits, rows.owners, len(todo))):
            i, x = todo[j], logits[r]
            if math.isnan(x):  # not scored: the time budget ran out first
                continue
            base[i] = PrismResult(
                index=i,
                score=sigmoid(x),
                logit=x,
                relevant=x > 0,
                truncated=rows.cut[r],
                chunk=rows.chunks[r],
            )
            computed[i] = CachedPair(base[i])
        return computed

    def _prepare(
        self, query: str, docs: list[str], max_tokens_per_doc: int | None = None, mode: str | None = None
    ) -> tuple[CrossEncoderJob, DocumentRows]:
        """Load if needed (the one ``load()`` of a call), tokenise, plan the job (in the caller's
        thread, not the loop's).

        Returns the job and its rows (:func:`document_rows`), each row's ``cut`` also set when its
        pair was cut to ``max_length`` (only pairs that reach ``max_length`` are tokenised again,
        untruncated, to tell).
        """
        loaded = self.load()._model()
        max_length = self.max_length
        assert max_length is not None
        with loaded.lock:  # one tokenizer, shared by every engine on these weights
            layout = document_rows(
                loaded.model.tokenizer, query, docs, max_length, max_tokens_per_doc, mode or "truncate"
            )
            pairs = [(query, text) for text in layout.texts]
            rows, lengths = encode_pairs(loaded.model, pairs, max_length)
            full = [i for i, n in enumerate(lengths) if n >= max_length]
            if full:
                for i, n in zip(
                    full, untruncated_lengths(loaded.model, [pairs[i] for i in full]), strict=True
                ):
                    layout.cut[i] = layout.cut[i] or n > max_length
        widths = [bucket_width(n, cap=max_length) for n in lengths]
        budget = self.batch_tokens
        if self.engine_config.batch_tokens is None and widths:
            # The default holds the rows one ``predict`` batch holds (never more passes than the
            # library), up to a cap: a function of the request's lengths alone.
            budget = min(MAX_BUDGET_GROWTH * budget, max(budget, PREDICT_BATCH_SIZE * max(widths)))
        job = CrossEncoderJob(rows, widths, batch_tokens=budget)
        return job, layout
