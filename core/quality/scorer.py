"""The query-free quality prior: JQL-Edu regression heads on document embeddings.

:class:`QualityScorer` embeds each document with an encoder (by default
``Snowflake/snowflake-arctic-embed-m-v2.0``, the JQL-Edu heads' embedder) the way the JQL pipeline
does — tokenised with ``max_length=8192`` and truncation, no prefix, the CLS vector of the last
hidden state, L2-normalised — and runs one or several heads on it (``Linear → ReLU → Linear``),
returning the mean over heads: the raw educational-value score on the heads' 0–5 scale, unclipped.

The encoder is loaded once per process (``prism_core.runtime.loading.registry``): every scorer with
the same ``(embedder, device, dtype, trust_remote_code)`` shares it. Documents are batched by a token
budget (``rows × longest row <= batch_tokens``), longest first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from prism_core.errors import ModelLoadError, NonFiniteScoreError
from prism_core.quality.heads import HeadFileError, HeadSource, QualityHead, load_head, parse_head_spec
from prism_core.runtime.batching import plan_batches
from prism_core.runtime.devices import dtype_name, resolve_device, resolve_dtype
from prism_core.runtime.loading import LoadedModel, check_local, load_error, registry
from prism_core.validation import check_bool, check_documents, check_int, check_optional_int, check_text

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BATCH_TOKENS",
    "DEFAULT_EMBEDDER",
    "DEFAULT_MAX_LENGTH",
    "QualityScorer",
    "as_quality_scorer",
    "load_embedder",
    "load_embedder_trusting_remote_code",
]

#: The JQL-Edu heads' embedding model.
DEFAULT_EMBEDDER = "Snowflake/snowflake-arctic-embed-m-v2.0"
#: The JQL pipeline's tokenisation limit (longer documents are truncated).
DEFAULT_MAX_LENGTH = 8192
#: Padded tokens per encoder pass when ``batch_tokens`` is not given.
DEFAULT_BATCH_TOKENS = {"cuda": 65536, "mps": 16384, "cpu": 8192}

_UNBOUNDED = 10**9  # tokenizers without a limit report a huge model_max_length


def _load(model: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    check_local(model, "embedding model")
    extra: dict[str, Any] = {"trust_remote_code": True} if trust_remote_code else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, **extra)
        try:  # as the JQL pipeline loads its embedder: no pooler, only the last hidden state is used
            encoder = AutoModel.from_pretrained(model, dtype=dtype, add_pooling_layer=False, **extra)
        except TypeError as exc:  # an architecture without a pooler option
            if "add_pooling_layer" not in str(exc):
                raise
            encoder = AutoModel.from_pretrained(model, dtype=dtype, **extra)
    except Exception as exc:  # transformers raises OSError, ValueError, hub errors...
        error = load_error(model, exc, what="embedding model")
        if not trust_remote_code and "trust_remote_code" in str(exc):
            error = ModelLoadError(
                f"{error}\nThis model ships its own code: pass trust_remote_code=True to QualityScorer "
                "if you trust it (the Snowflake embedder of the JQL heads needs it)."
            )
        raise error from exc
    tokenizer.padding_side = "right"  # the CLS vector must stay at position 0
    encoder.to(device)
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder, tokenizer


def load_embedder(model: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """Registry loader: an encoder (``AutoModel``) and its tokenizer, no remote code.

    Raises:
        ModelLoadError: With the model's name and how to use a local copy instead.
    """
    return _load(model, device, dtype, trust_remote_code=False)


def load_embedder_trusting_remote_code(
    model: str, device: torch.device, dtype: torch.dtype
) -> tuple[Any, Any]:
    """Registry loader: as :func:`load_embedder` with ``trust_remote_code=True`` (a separate cache entry)."""
    return _load(model, device, dtype, trust_remote_code=True)


def _as_specs(heads: Any) -> list[str | os.PathLike[str]]:
    if isinstance(heads, (str, os.PathLike)):
        return [heads]
    if isinstance(heads, Sequence) and not isinstance(heads, (bytes, bytearray)):
        if not heads:
            raise ValueError("heads must name at least one quality head")
        return list(heads)
    raise TypeError(
        f"heads must be a head spec (str or path) or a sequence of them, got {type(heads).__name__}"
    )


class QualityScorer:
    """Score documents' quality with JQL-Edu heads on an embedding model (query-free).

    Args:
        heads: One head spec or several (their scores are averaged, as the paper's ensemble
            does): a local ``.ckpt`` path, or ``"repo_id[@revision]:path/in/repo.ckpt"`` for a file
            in a Hugging Face Hub repository; :data:`prism_core.quality.JQL_EDU_HEADS` names the
            paper's three.
        embedder: Hub id or local directory of the encoder the heads were trained on.
        device: ``None`` (CUDA, then MPS, then CPU) or a device string.
        dtype: Encoder dtype: ``None`` (bf16 on CUDA, fp32 elsewhere), a name or a ``torch.dtype``.
            The heads always run in float32 on bfloat16-rounded weights.
        trust_remote_code: Let transformers run the model repository's own code; off unless set
            (the Snowflake embedder needs it).
        max_length: Token limit per document (longer ones are truncated); also capped by the
            tokenizer's own limit.
        batch_tokens: Padded tokens per encoder pass (``None``: 65,536 on CUDA, 8,192 on CPU).

    Nothing is loaded until :meth:`load` or the first :meth:`score`; a local head file that does
    not exist is refused at construction.

    Raises:
        HeadFileError: A local head file that does not exist (naming it).
        ValueError, TypeError: A bad option (naming it) or a hub repository named without a file.

    Example:
        >>> from prism_core.quality import JQL_EDU_HEADS, QualityScorer
        >>> scorer = QualityScorer(JQL_EDU_HEADS, trust_remote_code=True)  # loads nothing yet
        >>> scorer.score(["Photosynthesis turns light into chemical energy.", "BUY NOW!!!"])  # doctest: +SKIP
        [2.71, 0.18]
    """

    def __init__(
        self,
        heads: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        embedder: str = DEFAULT_EMBEDDER,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_tokens: int | None = None,
    ) -> None:
        self._sources: tuple[HeadSource, ...] = tuple(parse_head_spec(h) for h in _as_specs(heads))
        self.embedder = check_text(embedder, "embedder")
        if not self.embedder.strip():
            raise ValueError(f"embedder must not be empty, got {embedder!r}")
        self._device_option = None if device is None else str(device)
        self._dtype_option = (
            None if dtype is None else (dtype if isinstance(dtype, str) else dtype_name(dtype))
        )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.trust_remote_code = check_bool(trust_remote_code, "trust_remote_code")
        self.max_length = check_int(max_length, "max_length", minimum=1)
        self._batch_tokens_option = check_optional_int(batch_tokens, "batch_tokens", minimum=1)
        self.batch_tokens = (
            DEFAULT_BATCH_TOKENS.get(self.device.type, 8192)
            if self._batch_tokens_option is None
            else self._batch_tokens_option
        )
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._heads: tuple[QualityHead, ...] | None = None

    # --- description ---------------------------------------------------------------------------

    @property
    def heads(self) -> tuple[str, ...]:
        """The head specs, as given."""
        return tuple(source.spec for source in self._sources)

    @property
    def loaded(self) -> bool:
        """Whether the encoder and the heads are loaded."""
        return self._heads is not None

    def to_dict(self) -> dict[str, Any]:
        """The scorer's options, JSON-safe (what :meth:`from_dict` rebuilds it from).

        Example:
            >>> QualityScorer("JQL-AI/JQL-Edu-Heads:checkpoints/x.ckpt").to_dict()["heads"]
            ['JQL-AI/JQL-Edu-Heads:checkpoints/x.ckpt']
        """
        return {
            "heads": list(self.heads),
            "embedder": self.embedder,
            "device": self._device_option,
            "dtype": self._dtype_option,
            "trust_remote_code": self.trust_remote_code,
            "max_length": self.max_length,
            "batch_tokens": self._batch_tokens_option,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityScorer:
        """Rebuild a scorer from :meth:`to_dict`'s output.

        Raises:
            ValueError: On a key that is not an option, or a missing ``heads``.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a QualityScorer description must be a mapping, got {type(data).__name__}")
        options = dict(data)
        known = {"heads", "embedder", "device", "dtype", "trust_remote_code", "max_length", "batch_tokens"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown QualityScorer option(s) {unknown}; known: {sorted(known)}")
        if "heads" not in options:
            raise ValueError("a QualityScorer description needs 'heads'")
        heads = options.pop("heads")
        return cls(heads, **options)

    def __reduce__(self) -> tuple[Any, ...]:
        """Copies and pickles rebuild the scorer from its configuration (:meth:`to_dict`): it holds a
        lock and loaded weights, and the copy shares the process's loaded encoder through the
        model registry anyway."""
        return (_rebuild, (type(self), self.to_dict()))

    def __repr__(self) -> str:
        return (
            f"QualityScorer(heads={list(self.heads)!r}, embedder={self.embedder!r}, device='{self.device}', "
            f"dtype={dtype_name(self.dtype)!r}, trust_remote_code={self.trust_remote_code})"
        )

    # --- loading ---------------------------------------------------------------------------------

    def load(self) -> QualityScorer:
        """Load the encoder (shared per process) and the heads; idempotent and thread-safe.

        Returns:
            ``self``.

        Raises:
            ModelLoadError: The encoder cannot be loaded (hub unreachable, bad path, remote code
                needed but not allowed), with how to use a local copy.
            HeadFileError: A head file cannot be found, fetched or read, or its ``input_dim`` is
                not the encoder's hidden size (naming the file).
        """
        if self._heads is not None:
            return self
        with self._lock:
            if self._heads is None:
                loader = load_embedder_trusting_remote_code if self.trust_remote_code else load_embedder
                loaded = registry.get(self.embedder, self.device, self.dtype, loader=loader)
                heads = tuple(load_head(source).to(self.device) for source in self._sources)
                hidden = getattr(getattr(loaded.model, "config", None), "hidden_size", None)
                if isinstance(hidden, int):
                    self._check_dims(heads, hidden)
                self._loaded = loaded
                self._heads = heads
                logger.debug("quality scorer ready: %r", self)
        return self

    def _check_dims(self, heads: Sequence[QualityHead], width: int) -> None:
        for head in heads:
            if head.input_dim != width:
                raise HeadFileError(
                    f"quality head {head.source.spec!r} expects {head.input_dim}-dimensional embeddings, "
                    f"but embedder {self.embedder!r} gives {width}-dimensional ones; pass the embedder "
                    "the head was trained on"
                )

    def _ready(self) -> tuple[LoadedModel, tuple[QualityHead, ...]]:
        self.load()
        assert self._loaded is not None and self._heads is not None
        return self._loaded, self._heads

    # --- scoring ---------------------------------------------------------------------------------

    def _token_limit(self, tokenizer: Any) -> int:
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < _UNBOUNDED:
            return min(self.max_length, limit)
        return self.max_length

    def _embed(self, texts: list[str], loaded: LoadedModel) -> torch.Tensor:
        """L2-normalised CLS vectors, float32, on the device, in input order."""
        tokenizer = loaded.tokenizer
        with loaded.lock:  # a fast tokenizer may not be used by two threads at once
            encoded = tokenizer(
                texts, truncation=True, max_length=self._token_limit(tokenizer), padding=False
            )
        names = list(encoded.keys())
        lengths = [len(ids) for ids in encoded["input_ids"]]
        out: torch.Tensor | None = None
        for batch in plan_batches(lengths, self.batch_tokens):
            features = [{name: encoded[name][i] for name in names} for i in batch]
            with loaded.lock, torch.inference_mode():
                padded = tokenizer.pad(features, padding=True, return_tensors="pt")
                inputs = {name: tensor.to(self.device) for name, tensor in padded.items()}
                output = loaded.model(**inputs)
                hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
                cls = torch.nn.functional.normalize(hidden[:, 0].float(), p=2, dim=1)
            if out is None:
                out = torch.empty((len(texts), cls.shape[1]), dtype=torch.float32, device=cls.device)
            out[torch.tensor(batch, device=cls.device)] = cls
        assert out is not None
        return out

    def embed(self, documents: Sequence[str]) -> torch.Tensor:
        """The heads' input: L2-normalised CLS embeddings, ``(len(documents), hidden)`` float32 on the CPU.

        Example:
            >>> scorer.embed(["some text"]).shape  # doctest: +SKIP
            torch.Size([1, 768])
        """
        texts = check_documents(documents)
        loaded, _ = self._ready()
        if not texts:
            return torch.empty((0, 0))
        return self._embed(texts, loaded).cpu()

    def head_scores(self, documents: Sequence[str]) -> list[list[float]]:
        """Raw scores per document and per head, ``[document][head]`` in input and head order.

        Example:
            >>> scorer.head_scores(["some text"])  # doctest: +SKIP
            [[2.1, 2.4, 1.9]]
        """
        texts = check_documents(documents)
        if not texts:
            return []
        loaded, heads = self._ready()
        embeddings = self._embed(texts, loaded)
        self._check_dims(heads, int(embeddings.shape[1]))
        with torch.inference_mode():
            table = torch.stack([head(embeddings) for head in heads], dim=1).cpu()
        rows = table.tolist()
        for i, row in enumerate(rows):
            if not all(math.isfinite(x) for x in row):
                raise NonFiniteScoreError(f"quality heads gave a non-finite score for documents[{i}]: {row}")
        return rows

    def score(self, documents: Sequence[str]) -> list[float]:
        """Raw quality per document: the mean over heads, in input order (unclipped, 0–5 scale).

        Args:
            documents: The texts (each a ``str``; empty strings are scored too).

        Returns:
            One float per document.

        Raises:
            TypeError, ValueError: A document that is not an encodable string (naming its position).
            ModelLoadError, HeadFileError: On first use, if loading fails (see :meth:`load`).

        Example:
            >>> scorer.score(["Photosynthesis turns light into chemical energy."])  # doctest: +SKIP
            [2.71]
        """
        return [sum(row) / len(row) for row in self.head_scores(documents)]

    async def ascore(self, documents: Sequence[str]) -> list[float]:
        """:meth:`score` in a worker thread, so the event loop is not blocked.

        Example:
            >>> await scorer.ascore(["some text"])  # doctest: +SKIP
        """
        texts = check_documents(documents)
        if not texts:
            return []
        return await asyncio.to_thread(self.score, texts)


def as_quality_scorer(value: Any, name: str = "quality") -> QualityScorer:
    """A :class:`QualityScorer` as is, or one rebuilt from its :meth:`~QualityScorer.to_dict` mapping.

    Components accept either, so that their serialised form (which holds the mapping) rebuilds them.

    Raises:
        TypeError: If ``value`` is neither (naming ``name``).

    Example:
        >>> as_quality_scorer({"heads": ["JQL-AI/JQL-Edu-Heads:checkpoints/x.ckpt"]}).heads
        ('JQL-AI/JQL-Edu-Heads:checkpoints/x.ckpt',)
    """
    if isinstance(value, QualityScorer):
        return value
    if isinstance(value, Mapping):
        return QualityScorer.from_dict(value)
    raise TypeError(
        f"{name} must be a prism_core.quality.QualityScorer (or its to_dict() mapping), "
        f"got {type(value).__name__}: {value!r:.80}"
    )


def _rebuild(cls: type[QualityScorer], data: Mapping[str, Any]) -> QualityScorer:
    """Unpickling and copying: ``cls.from_dict(data)`` (subclasses come back as themselves)."""
    return cls.from_dict(data)
