"""``CrossEncoderReranker``: sequence-classification cross-encoders through sentence-transformers.

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

import asyncio
import logging
import math
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar, TypeVar, cast

import torch

from prism_core.backends.driving import Blocking, Work, drive_async, drive_sync
from prism_core.backends.long_documents import best_rows, windows
from prism_core.budgets import assemble_results, check_time_budget, deadline_after
from prism_core.caching.results import CachedPair, Claim, result_cache
from prism_core.config import EngineConfig
from prism_core.errors import ModelLoadError, NonFiniteScoreError
from prism_core.extras import missing_extra
from prism_core.protocol import SCORE_ONLY
from prism_core.ranking import sigmoid
from prism_core.results import PrismResult
from prism_core.runtime.batching import bucket_width, plan_bucketed_batches
from prism_core.runtime.devices import dtype_name, resolve_device, resolve_dtype
from prism_core.runtime.engine_loop import EngineLoop, Job, Pass, is_bulk
from prism_core.runtime.loading import LoadedModel, check_local, load_error, registry
from prism_core.validation import (
    check_bool,
    check_documents,
    check_long_documents,
    check_query,
    check_rerank_args,
)

logger = logging.getLogger(__name__)

#: Padded tokens per forward pass when ``batch_tokens`` is not given (``rows × longest pair``). On
#: CPU, smaller batches than a causal LM's run faster (a MiniLM-L6-sized BERT on 2 cores: 4096 ran
#: 300 short or 30 long pairs ~10 % faster than 16384, and mixed lengths as fast).
DEFAULT_BATCH_TOKENS = {"cuda": 32768, "mps": 8192, "cpu": 4096}

#: Pairs tokenised per ``preprocess`` call (each chunk is padded to its own longest pair).
TOKENIZE_CHUNK = 64

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

Self = TypeVar("Self", bound="CrossEncoderReranker")
Pair = tuple[str, str]


# ----------------------------------------------------------------------------- loading
def _offline() -> bool:
    """Whether the Hub is off limits, read from the environment at call time."""
    import huggingface_hub.constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or env.strip().lower() in {"1", "true", "yes", "on"}


def load_cross_encoder(model: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load ``model`` as a sentence-transformers ``CrossEncoder``; return it and its tokenizer.

    ``HF_HUB_OFFLINE=1`` set at any time before the call means local files only (no retries).

    Raises:
        ImportError: sentence-transformers is missing (the message names the extra to install).
        ModelLoadError: The checkpoint cannot be loaded (with the model's name and how to use a
            local copy), or it is not a one-label sequence-classification model.
    """
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:
        raise missing_extra("cross-encoder", needs="sentence-transformers", by="the cross-encoder") from exc

    from transformers import AutoConfig

    check_local(model)
    offline = _offline()
    try:
        config = AutoConfig.from_pretrained(model, local_files_only=offline)
    except Exception as exc:  # transformers and the hub raise OSError, ValueError, HTTP errors...
        raise load_error(model, exc, "cross-encoder") from exc
    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForCausalLM") for a in archs):  # refused before any weight is read
        raise _not_a_cross_encoder(model, f"architectures {archs!r}")
    try:
        cross_encoder = CrossEncoder(
            model, device=str(device), model_kwargs={"dtype": dtype}, local_files_only=offline
        )
    except Exception as exc:
        raise load_error(model, exc, "cross-encoder") from exc
    modules = list(cross_encoder)
    task = getattr(modules[0], "transformer_task", None) if len(modules) == 1 else None
    if task != "sequence-classification" or cross_encoder.num_labels != 1:
        raise _not_a_cross_encoder(
            model,
            f"architectures {archs!r}, {cross_encoder.num_labels} label(s), "
            f"modules {[type(m).__name__ for m in modules]}",
        )
    cross_encoder.eval()
    check_features(cross_encoder, model)
    return cross_encoder, cross_encoder.tokenizer


def _not_a_cross_encoder(model: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"{model!r} is not a one-label sequence-classification cross-encoder ({what}); for a Qwen3 "
        "causal-LM reranker use backend='qwen3-reranker' (or backend='prism' for Prism checkpoints)"
    )


# ----------------------------------------------------------------------------- tokenising
#: One document's model input: ``input_ids``, ``attention_mask``... as 1-D tensors without padding,
#: plus the non-tensor entries of sentence-transformers' features (``modality``).
Row = dict[str, Any]


def default_prompt(cross_encoder: Any) -> str | None:
    """The prompt ``CrossEncoder.predict`` applies when called without one (usually ``None``)."""
    name = getattr(cross_encoder, "default_prompt_name", None)
    return None if name is None else (getattr(cross_encoder, "prompts", None) or {}).get(name)


def encode_pairs(
    cross_encoder: Any, pairs: Sequence[Pair], max_length: int, *, chunk: int = TOKENIZE_CHUNK
) -> tuple[list[Row], list[int]]:
    """Tokenise ``pairs`` as ``CrossEncoder.predict`` would (``preprocess``: tokenizer, truncation to
    ``max_length``, default prompt) and cut the padded features into one unpadded row per pair.

    Not thread-safe on one tokenizer (transformers changes the fast tokenizer's truncation and
    padding settings per call): callers hold the loaded model's lock.

    Returns:
        The rows, and each row's length in tokens (at most ``max_length``).
    """
    prompt = default_prompt(cross_encoder)
    left = getattr(cross_encoder.tokenizer, "padding_side", "right") == "left"
    rows: list[Row | None] = [None] * len(pairs)
    lengths = [0] * len(pairs)
    # Chunks of pairs of similar length (by characters, as ``predict`` sorts): ``preprocess`` pads
    # each chunk to its longest pair before making tensors, and that padding is most of its cost.
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for start in range(0, len(order), chunk):
        positions = order[start : start + chunk]
        features = cross_encoder.preprocess(
            [pairs[i] for i in positions],
            prompt=prompt,
            processing_kwargs={"text": {"max_length": max_length}},
        )
        counts = features["attention_mask"].sum(dim=1).tolist()
        tensors = {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}
        extras = {k: v for k, v in features.items() if not isinstance(v, torch.Tensor)}
        for j, (i, n) in enumerate(zip(positions, counts, strict=True)):
            cut = slice(-n, None) if left else slice(0, n)
            rows[i] = {**{k: v[j, cut] for k, v in tensors.items()}, **extras}
            lengths[i] = int(n)
    return cast("list[Row]", rows), lengths


@dataclass(frozen=True)
class DocumentRows:
    """What a request's documents become: the texts of its rows (a document, a cut document, or one
    window of it), each row's document, its window's character span, and whether it was cut."""

    texts: list[str]
    owners: list[int]
    chunks: list[tuple[int, int] | None]
    cut: list[bool]


def document_rows(
    tokenizer: Any,
    query: str,
    docs: Sequence[str],
    max_length: int,
    max_tokens_per_doc: int | None,
    long_documents: str,
) -> DocumentRows:
    """The rows for ``docs`` (callers hold the tokenizer's lock).

    A document's budget is what ``max_length`` leaves after the query and the pair's special tokens,
    capped by ``max_tokens_per_doc``. ``"truncate"`` cuts a document over ``max_tokens_per_doc`` to
    it (a pair over ``max_length`` is still cut by the tokenizer, as before); ``"chunk"`` turns a
    document over its budget into overlapping windows (:mod:`prism_core.backends.long_documents`).
    Nothing changes for a call with neither option.
    """
    n = len(docs)
    plain = DocumentRows(list(docs), list(range(n)), [None] * n, [False] * n)
    if max_tokens_per_doc is None and long_documents != "chunk":
        return plain
    specials = int(tokenizer.num_special_tokens_to_add(pair=True))
    query_tokens = len(tokenizer(query, add_special_tokens=False, verbose=False)["input_ids"])
    room = max(1, max_length - specials - query_tokens)
    budget = room if max_tokens_per_doc is None else max(1, min(room, max_tokens_per_doc))
    encoded = tokenizer(list(docs), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    rows = DocumentRows([], [], [], [])
    for index, (doc, ids, offsets) in enumerate(
        zip(docs, encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ):
        spans: list[tuple[int, int] | None] = [None]
        text, cut = doc, False
        if len(ids) > budget:
            if long_documents == "chunk":
                spans = list(windows([tuple(o) for o in offsets], len(doc), budget))
            else:
                text, cut = doc[: offsets[budget - 1][1]], True
        for span in spans:
            rows.texts.append(text if span is None else doc[span[0] : span[1]])
            rows.owners.append(index)
            rows.chunks.append(span)
            rows.cut.append(cut)
    return rows


def untruncated_lengths(cross_encoder: Any, pairs: Sequence[Pair]) -> list[int]:
    """Tokens of each pair with truncation off (the same ``preprocess``; callers hold the lock)."""
    features = cross_encoder.preprocess(
        list(pairs),
        prompt=default_prompt(cross_encoder),
        processing_kwargs={"text": {"truncation": False, "verbose": False}},
    )
    return [int(n) for n in features["attention_mask"].sum(dim=1).tolist()]


def check_features(cross_encoder: Any, model: str) -> None:
    """Refuse a model whose ``preprocess`` output is not one row of 2-D tensors per pair, or whose
    forward gives no one-per-pair ``scores``: the runtime re-pads rows of exactly that shape."""
    features = cross_encoder.preprocess([("query", "document"), ("q", "d")])
    shapes = {k: tuple(v.shape) for k, v in features.items() if isinstance(v, torch.Tensor)}
    if "attention_mask" not in shapes or any(len(s) != 2 or s[0] != 2 for s in shapes.values()):
        raise ModelLoadError(f"{model!r}: unsupported sentence-transformers input features {shapes}")
    with torch.inference_mode():
        scores = cross_encoder(_to_device(features, cross_encoder.device)).get("scores")
    if not isinstance(scores, torch.Tensor) or scores.numel() != 2:
        raise ModelLoadError(f"{model!r}: the cross-encoder's forward gives no one-per-pair 'scores'")


def _to_device(features: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


# ----------------------------------------------------------------------------- the engine's part
class CrossEncoderExecutor:
    """Runs the engine loop's passes: rows (:data:`Row`) padded to one width, one forward.

    Key: ``("cross-encoder", width)``: rows are already tokenised and truncated, so any requests'
    rows of one bucket width coalesce. The output is the raw logits, one float per row, in row order.
    """

    def __init__(self, cross_encoder: Any) -> None:
        self.cross_encoder = cross_encoder
        tokenizer = cross_encoder.tokenizer
        self.padding_side = getattr(tokenizer, "padding_side", "right")
        pad_id = tokenizer.pad_token_id
        self.pad_values = {
            "input_ids": 0 if pad_id is None else int(pad_id),
            "token_type_ids": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        }  # attention_mask and anything else pad with 0

    def run(self, key: Hashable, rows: Sequence[Any]) -> list[float]:
        """One forward pass over all ``rows`` (``CrossEncoder.forward``) padded to the key's width."""
        assert isinstance(key, tuple)
        width = int(key[1])
        features: dict[str, Any] = {}
        for name, value in rows[0].items():
            if isinstance(value, torch.Tensor):
                padded = value.new_full((len(rows), width), self.pad_values.get(name, 0))
                for r, row in enumerate(rows):
                    n = len(row[name])
                    if self.padding_side == "left":
                        padded[r, width - n :] = row[name]
                    else:
                        padded[r, :n] = row[name]
                features[name] = padded
            else:
                features[name] = value
        with torch.inference_mode():
            scores = self.cross_encoder(_to_device(features, self.cross_encoder.device))["scores"]
        logits: list[float] = scores.float().reshape(len(rows)).tolist()
        return logits

    def split(self, key: Hashable, output: Any, sizes: Sequence[int]) -> list[Any]:
        """Consecutive slices of a coalesced pass's logits."""
        parts, start = [], 0
        for n in sizes:
            parts.append(output[start : start + n])
            start += n
        return parts


class CrossEncoderJob(Job):
    """One request: score every row in token-budget batches, one pass offered at a time.

    Args:
        rows: One tokenised pair per document, in input order (:func:`encode_pairs`).
        widths: The padded width of each row (:func:`~prism_core.runtime.batching.bucket_width`).
        batch_tokens: Cap on ``rows × width`` per pass.
    """

    def __init__(self, rows: Sequence[Row], widths: Sequence[int], *, batch_tokens: int) -> None:
        super().__init__()
        self.rows = rows
        self.widths = widths
        self.batch_tokens = batch_tokens
        self.batches: deque[list[int]] = deque(plan_bucketed_batches(widths, batch_tokens))
        self.logits: list[float] = [math.nan] * len(rows)
        self.progress: Callable[[int], Any] | None = None  # called with each scored batch's size

    def next_pass(self, max_tokens: int | None = None) -> Pass | None:
        if not self.batches:
            return None
        batch = self.batches[0]
        bulk = is_bulk(sum(self.widths), max_tokens)
        if bulk and max_tokens is not None and len(batch) * self.widths[batch[0]] > max_tokens:
            rows = max(1, max_tokens // self.widths[batch[0]])
            self.batches[0] = batch[rows:]
            self.batches.appendleft(batch[:rows])
            batch = self.batches[0]
        width = self.widths[batch[0]]
        return Pass(("cross-encoder", width), [self.rows[i] for i in batch], width, self.batch_tokens)

    def on_pass(self, p: Pass, output: Any) -> None:
        batch = self.batches.popleft()
        values = list(output)
        bad = [i for i, x in zip(batch, values, strict=True) if not math.isfinite(x)]
        if bad:
            raise NonFiniteScoreError(
                f"the model produced non-finite logits for {len(bad)} of {len(batch)} documents "
                f"(first: documents[{min(bad)}]); this is typically a float16 overflow: load the model "
                "with dtype='bfloat16' or dtype='float32'"
            )
        for i, x in zip(batch, values, strict=True):
            self.logits[i] = x
        if self.progress is not None:
            self.progress(len(batch))

    def retry_smaller(self, p: Pass) -> bool:
        if len(self.batches[0]) < 2:
            return False
        batch = self.batches.popleft()
        half = len(batch) // 2
        self.batches.appendleft(batch[half:])
        self.batches.appendleft(batch[:half])
        return True

    def finished(self) -> bool:
        return not self.batches

    def expire(self) -> None:
        """Deadline passed: drop the batches not run yet (their documents keep a NaN logit)."""
        self.batches.clear()

    def result(self) -> list[float]:
        return self.logits

    def release(self) -> None:
        self.batches.clear()


# ----------------------------------------------------------------------------- the backend
class CrossEncoderReranker:
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

    backend: ClassVar[str] = "cross-encoder"
    capabilities = SCORE_ONLY

    def __init__(
        self,
        model: Any,
        *,
        device: Any = None,
        dtype: Any = None,
        max_length: int | None = None,
        max_new_tokens: int | None = None,
        batch_tokens: int | None = None,
        show_progress: bool | None = None,
    ) -> None:
        self.engine_config = EngineConfig(
            model=model,
            backend=self.backend,
            device=device,
            dtype=dtype,
            max_length=max_length,
            max_new_tokens=max_new_tokens,
            batch_tokens=batch_tokens,
        )
        config = self.engine_config
        self.model_name: str = config.key()[1]
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        if config.max_length is not None and config.max_length < MIN_LENGTH_HINT:
            raise ValueError(
                f"max_length must be >= {MIN_LENGTH_HINT} for a cross-encoder (a pair's special tokens "
                f"plus one token of query and one of document), got {config.max_length}"
            )
        #: The truncation length: the option, else (once loaded) the model's maximum.
        self.max_length: int | None = config.max_length
        self.max_new_tokens = config.max_new_tokens
        default_budget = DEFAULT_BATCH_TOKENS.get(self.device.type, 16384)
        self.batch_tokens: int = default_budget if config.batch_tokens is None else config.batch_tokens
        if show_progress is not None:
            check_bool(show_progress, "show_progress")
        self.show_progress = show_progress
        self._loaded: LoadedModel | None = None
        self._loop: EngineLoop | None = None
        self._load_lock = threading.Lock()
        self._namespace: Hashable | None = None
        self._said: set[str] = set()
        self._said_lock = threading.Lock()
        if self.max_new_tokens is not None:
            self._say_once(
                "max_new_tokens",
                "%s: max_new_tokens=%d is ignored: a cross-encoder only scores, it generates nothing",
                self.model_name,
                self.max_new_tokens,
            )

    # ----------------------------------------------------------------- configuration and loading
    @property
    def config(self) -> dict[str, Any]:
        """The resolved, JSON-safe configuration of this instance (``max_length`` is the model's
        maximum once loaded when not set; ``max_new_tokens`` is unused)."""
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
    def shared(cls: type[Self], model: Any, **options: Any) -> Self:
        """The process-wide instance for this configuration (created, not loaded, on first call).

        Two calls whose options resolve to the same configuration (``"cpu"`` and
        ``torch.device("cpu")``, a relative and an absolute path to one directory...) get the same object.

        Example:
            >>> a = CrossEncoderReranker.shared("some/cross-encoder", device="cpu")
            >>> a is CrossEncoderReranker.shared("some/cross-encoder", device=torch.device("cpu"))
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
            ImportError: sentence-transformers is not installed.
            ModelLoadError: The model cannot be loaded; the message says how to use a local copy.
            ValueError: ``max_length`` is outside what this model's tokenizer and positions allow.
        """
        with self._load_lock:
            if self._loop is None:
                loaded = registry.get(self.model_name, self.device, self.dtype, loader=load_cross_encoder)
                self.max_length = self._check_max_length(loaded)
                self._loaded = loaded
                self._loop = loaded.engine_loop(_make_executor, kind=CrossEncoderExecutor)
        return self

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
        self.load()
        assert self._loaded is not None
        return self._loaded.model

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loads the model)."""
        self.load()
        assert self._loaded is not None
        return self._loaded.tokenizer

    @property
    def engine_loop(self) -> EngineLoop:
        """The engine loop serving this model (loads it): its ``stats`` count passes."""
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
        """Relevance scores ``sigmoid(logit)`` in ``[0, 1]``, in input order.

        ``max_tokens_per_doc`` and ``long_documents`` as in :meth:`rerank`.
        Pairs scored before in this process come from the result cache
        (:mod:`prism_core.caching.results`) without touching the model.

        Example:
            >>> CrossEncoderReranker("some/model").score("q", [])  # doctest: +SKIP
            []
        """
        query, docs = check_query(query), check_documents(documents)
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, _ = self._work_sync(query, docs, None, (budget, mode))
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
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, _ = await self._work_async(query, docs, None, (budget, mode))
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
        """Score and sort; nothing is generated.

        Args:
            query: The query (non-empty).
            documents: Candidate texts.
            top_n: Keep the best ``top_n`` results (after the threshold).
            score_threshold: Keep results with ``score >= score_threshold``, in [0, 1].
            evidence: Accepted for a uniform surface: a no-op here (logged once per instance).
            max_tokens_per_doc: Document tokens per row (the query and special tokens not counted).
            long_documents: ``"truncate"`` (default: a pair over ``max_length``, or a document over
                ``max_tokens_per_doc``, is cut and flagged ``truncated``) or ``"chunk"`` (a longer
                document is read as overlapping windows, scored by its best one, ``chunk`` set).
            time_budget: Seconds this call may take (fail-open, :mod:`prism_core.budgets`):
                documents whose batch did not run by then come last, in input order, ``scored=False``.

        Returns:
            Results sorted by score, best first (ties by input position); ``truncated`` is set for
            pairs longer than ``max_length``.

        Raises:
            TypeError: A non-string query or document, or a wrongly typed option.
            ValueError: Empty query, bad ``top_n``/threshold/``time_budget``, un-encodable text
                (names the document).
            NonFiniteScoreError: The model produced NaN/inf logits (use bf16 or fp32).

        Example:
            >>> reranker.rerank("what is rust?", ["Paris.", "Rust is a language."], top_n=1)  # doctest: +SKIP
            [PrismResult(index=1, score=0.98..., ...)]
        """
        deadline = deadline_after(check_time_budget(time_budget))
        query, docs, top_n, score_threshold = self._check(query, documents, top_n, score_threshold, evidence)
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, expired = self._work_sync(query, docs, deadline, (budget, mode))
        return assemble_results(
            len(docs), base, {}, top_n=top_n, threshold=score_threshold, generate=False, expired=expired
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
        query, docs, top_n, score_threshold = self._check(query, documents, top_n, score_threshold, evidence)
        budget, mode = check_long_documents(max_tokens_per_doc, long_documents)
        if not docs:
            return []
        base, expired = await self._work_async(query, docs, deadline, (budget, mode))
        return assemble_results(
            len(docs), base, {}, top_n=top_n, threshold=score_threshold, generate=False, expired=expired
        )

    @property
    def cache_namespace(self) -> Hashable:
        """What keys this engine's entries in the result cache: its configuration and class."""
        if self._namespace is None:
            self._namespace = (f"{type(self).__module__}.{type(self).__qualname__}", self.engine_config.key())
        return self._namespace

    @property
    def cache_stats(self) -> dict[str, int]:
        """This engine's result-cache ``hits`` and ``misses`` (documents), and the shared cache's
        ``evictions``, ``entries`` and ``bytes``."""
        return result_cache().engine_stats(self.cache_namespace)

    # ----------------------------------------------------------------- cache and engine
    def _claim(self, query: str, docs: list[str], reading: tuple[int | None, str | None]) -> Claim:
        # How a long document is read changes its score: part of the key.
        return result_cache().claim((self.cache_namespace, reading), query, docs)

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

    def _work(
        self, query: str, docs: list[str], deadline: float | None, reading: tuple[int | None, str | None]
    ) -> Work[tuple[dict[int, PrismResult], bool]]:
        """The work of one call, written once for the sync and async entry points (``driving``)."""
        cache = result_cache()
        claim = self._claim(query, docs, reading)
        try:
            if claim.waiting and not claim.owned:  # every missing pair is in flight for another caller
                yield Blocking(partial(cache.wait, claim, deadline))
            base = {i: replace(p.base, index=i) for i, p in claim.found.items()}
            todo = claim.missing
            computed: dict[int, CachedPair] = {}
            expired = False
            if todo:
                job, rows = yield Blocking(partial(self._prepare, query, [docs[i] for i in todo], *reading))
                job.deadline = deadline
                computed = self._absorb(todo, (yield job), rows, base)
                expired = len(computed) < len(todo)
        except BaseException:
            cache.abandon(claim)
            raise
        cache.finish(claim, self.cache_namespace, computed, len(docs) - len(todo))
        return base, expired

    def _work_sync(self, *args: Any) -> tuple[dict[int, PrismResult], bool]:
        return drive_sync(self._work(*args), run=self._run_sync)

    async def _work_async(self, *args: Any) -> tuple[dict[int, PrismResult], bool]:
        return await drive_async(self._work(*args), run=self._run_async)

    # ----------------------------------------------------------------- the work
    def _say_once(self, key: str, message: str, *args: Any) -> None:
        with self._said_lock:
            if key in self._said:
                return
            self._said.add(key)
        logger.info(message, *args)

    def _check(
        self, query: Any, documents: Any, top_n: Any, score_threshold: Any, evidence: Any
    ) -> tuple[str, list[str], int | None, float | None]:
        query, docs, top_n, score_threshold, evidence = check_rerank_args(
            query, documents, top_n, score_threshold, evidence
        )
        if evidence:
            self._say_once(
                "evidence",
                "%s: evidence=True is a no-op: a cross-encoder only scores "
                "(contribution and evidence stay None)",
                self.model_name,
            )
        return query, docs, top_n, score_threshold

    def _prepare(
        self, query: str, docs: list[str], max_tokens_per_doc: int | None = None, mode: str | None = None
    ) -> tuple[CrossEncoderJob, DocumentRows]:
        """Load if needed, tokenise, plan the job (in the caller's thread, not the loop's).

        Returns the job and its rows (:func:`document_rows`), each row's ``cut`` also set when its
        pair was cut to ``max_length`` (only pairs that reach ``max_length`` are tokenised again,
        untruncated, to tell).
        """
        self.load()
        loaded, max_length = self._loaded, self.max_length
        assert loaded is not None and max_length is not None
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

    def _run_sync(self, job: CrossEncoderJob) -> list[float]:
        assert self._loop is not None
        with self._progress(len(job.rows)) as bar:
            job.progress = bar.update
            result: list[float] = self._loop.run(job)
        return result

    async def _run_async(self, job: CrossEncoderJob) -> list[float]:
        assert self._loop is not None
        result: list[float] = await asyncio.wrap_future(self._loop.submit(job))
        return result

    def _progress(self, total: int) -> Any:
        from tqdm.auto import tqdm

        show = self.show_progress
        if show is None:
            show = total >= 64 and sys.stderr.isatty()
        return tqdm(total=total, unit="doc", desc=f"{self.backend} rerank", disable=not show, leave=False)


def _make_executor(loaded: LoadedModel) -> CrossEncoderExecutor:
    return CrossEncoderExecutor(loaded.model)
