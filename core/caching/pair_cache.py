"""The process-wide result cache: no (query, document) pair is scored or rewritten twice.

Every backend front end of the process (``PrismReranker``, ``Qwen3Reranker``,
``CrossEncoderReranker``; so every adapter, the CLI and the server, which all call them) shares one
:class:`ResultCache`. It holds **finished results only**, per pair:

- ``base``: the document's score result (``score``, ``logit``, ``relevant``, ``truncated``,
  ``document_tokens``), stored once the document is scored;
- ``full``: the same with its contribution and evidence, stored once its generation *finished*
  (a row cut by a time budget is never stored; a cancelled or failed call stores nothing it did not
  finish).

**Key.** ``sha256`` of the engine's namespace (``EngineConfig.key()``: backend, model, device,
dtype, ``max_length``, ``max_new_tokens``, ``batch_tokens``, ``instruction``; plus the front end's
class and model runner class, since an instrumented runner answers differently), the query and the
document's text. Evidence on/off needs no key of its own: a score-only call reads ``base``, a
generating call needs ``full`` for the documents it generates for, and computes what is missing.
Another configuration, instruction or query never hits.

**Exact.** A hit returns the stored result object itself (with the caller's ``index``): the same
values the model computed, never recomputed with another batch's padding.

**Bounded.** At most ``max_entries`` pairs and ``max_bytes`` bytes (an estimate: 512 bytes per
entry plus its text's characters: raw output, contribution, evidence, twice when both ``base`` and
``full`` are kept), least recently used evicted first. Defaults: 8,192 entries, 64 MiB; set with
:func:`configure_result_cache` or the environment (``PRISM_RESULT_CACHE_ENTRIES``,
``PRISM_RESULT_CACHE_BYTES``) before first use; ``0`` entries turns it off.

**On by default**, because what it stores is deterministic (greedy decoding, fixed weights: the
model card's loop gives the same answer for the same pair), an agent's loop asks the same pairs
again and again, a hit skips tokenisation and the model entirely (the model is not even loaded for
a call that hits everywhere), and 64 MiB is small next to the weights (1.5 GB for the 0.8B model).

**Concurrency.** A caller registers the pairs it is about to compute as *in flight*. A caller
whose missing pairs are **all** in flight for others waits for them (up to its deadline) instead of
computing them again, then computes only what is still missing (an owner that failed, was
cancelled or ran out of time leaves its pairs to the waiter). A caller with some pairs of its own to
compute does not wait (it computes everything it misses, in one engine job): waiting while owning
would let two callers wait on each other, and one job is cheaper than two anyway; the engine loop
coalesces their passes.

Example:
    >>> cache = ResultCache(max_entries=2, max_bytes=10_000)
    >>> key = cache.key(("prism", "m"), "q", "doc")
    >>> cache.stats.hits, cache.stats.misses
    (0, 0)
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace

from prism_core.results import PrismResult

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "CacheStats",
    "CachedPair",
    "Claim",
    "ResultCache",
    "configure_result_cache",
    "result_cache",
]

DEFAULT_MAX_ENTRIES = 8192
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Fixed cost of one entry in the byte estimate (key, two result objects, bookkeeping).
ENTRY_OVERHEAD = 512
ENTRIES_ENV = "PRISM_RESULT_CACHE_ENTRIES"
BYTES_ENV = "PRISM_RESULT_CACHE_BYTES"


@dataclass(frozen=True)
class CachedPair:
    """One pair's finished results (``index`` as first computed; callers set their own)."""

    base: PrismResult
    full: PrismResult | None = None

    def size(self) -> int:
        """The entry's estimated bytes."""
        return ENTRY_OVERHEAD + _text_size(self.base) + (0 if self.full is None else _text_size(self.full))


def _text_size(r: PrismResult) -> int:
    return sum(len(t) for t in (r.raw_output, r.contribution, r.evidence) if t)


@dataclass
class CacheStats:
    """The cache's counters (plain ints; ``hits``/``misses`` count documents, not calls).

    Attributes:
        hits: Documents served without model work.
        misses: Documents that went to the model.
        evictions: Entries evicted to stay within the bounds.
        waits: Documents a caller waited for while another caller computed them.
        entries: Entries held now.
        bytes: Estimated bytes held now.
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    waits: int = 0
    entries: int = 0
    bytes: int = 0
    by_engine: dict[Hashable, list[int]] = field(default_factory=dict)  # namespace -> [hits, misses]

    def for_engine(self, namespace: Hashable) -> dict[str, int]:
        """``{"hits", "misses"}`` of one engine namespace."""
        hits, misses = self.by_engine.get(namespace, [0, 0])
        return {"hits": hits, "misses": misses}


@dataclass
class Claim:
    """One caller's view of its pairs: what is cached, what it computes, what it waits for."""

    keys: list[bytes]
    found: dict[int, CachedPair] = field(default_factory=dict)
    owned: list[int] = field(default_factory=list)  # positions this caller registered in flight
    waiting: dict[int, threading.Event] = field(default_factory=dict)  # in flight for others

    @property
    def missing(self) -> list[int]:
        """Positions with nothing cached, in order."""
        return [i for i in range(len(self.keys)) if i not in self.found]


class ResultCache:
    """A bounded, thread-safe LRU of finished per-pair results (see the module docstring).

    Args:
        max_entries: Entries held at most (``0``: the cache is off).
        max_bytes: Estimated bytes held at most.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError(
                f"cache bounds must be >= 0, got max_entries={max_entries}, max_bytes={max_bytes}"
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._data: OrderedDict[bytes, CachedPair] = OrderedDict()
        self._inflight: dict[bytes, threading.Event] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether anything can be stored."""
        return self.max_entries > 0 and self.max_bytes > 0

    @staticmethod
    def key(namespace: Hashable, query: str, document: str) -> bytes:
        """The pair's key: a digest of the engine namespace, the query and the document."""
        h = hashlib.sha256()
        for part in (repr(namespace), query, document):
            data = part.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return h.digest()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._data.clear()
            self.stats.entries = self.stats.bytes = 0

    # ------------------------------------------------------------------ a caller's claim
    def claim(self, namespace: Hashable, query: str, documents: Sequence[str]) -> Claim:
        """:meth:`begin` for one call's ``(query, document)`` pairs of an engine's ``namespace``
        (no hashing at all when the cache is off)."""
        if not self.enabled:
            return self.begin([b""] * len(documents))
        return self.begin([self.key(namespace, query, d) for d in documents])

    def engine_stats(self, namespace: Hashable) -> dict[str, int]:
        """One engine's ``hits`` and ``misses`` (documents), and this cache's ``evictions``,
        ``entries`` and ``bytes``: what a backend's ``cache_stats`` reports."""
        stats = self.stats
        return {
            **stats.for_engine(namespace),
            "evictions": stats.evictions,
            "entries": stats.entries,
            "bytes": stats.bytes,
        }

    def begin(self, keys: Sequence[bytes]) -> Claim:
        """Look ``keys`` up; register the missing ones not in flight as this caller's."""
        claim = Claim(list(keys))
        if not self.enabled:
            return claim
        seen: set[bytes] = set()
        with self._lock:
            for i, key in enumerate(claim.keys):
                entry = self._data.get(key)
                if entry is not None:
                    self._data.move_to_end(key)
                    claim.found[i] = entry
                elif key in self._inflight:
                    claim.waiting[i] = self._inflight[key]
                elif key not in seen:  # a document repeated in one call is claimed once
                    self._inflight[key] = threading.Event()
                    claim.owned.append(i)
                seen.add(key)
        return claim

    def wait(self, claim: Claim, deadline: float | None) -> None:
        """When every missing pair is in flight for others, wait for them (until ``deadline``)."""
        if not claim.waiting or claim.owned:
            return
        for event in claim.waiting.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not event.wait(left):
                break
        with self._lock:
            self.stats.waits += len(claim.waiting)
            for i in list(claim.waiting):
                entry = self._data.get(claim.keys[i])
                if entry is not None:
                    claim.found[i] = entry
            claim.waiting.clear()

    def finish(
        self,
        claim: Claim,
        namespace: Hashable,
        computed: dict[int, CachedPair],
        served: int,
    ) -> None:
        """Store what the caller finished, release its in-flight pairs, count hits and misses.

        Args:
            claim: The caller's claim.
            namespace: The engine's namespace (for per-engine counters).
            computed: Finished entries by position (merged with what is stored: a ``full`` is
                never replaced by nothing).
            served: Documents the caller served without model work.
        """
        n = len(claim.keys)
        with self._lock:
            if self.enabled:
                for i, pair in computed.items():
                    self._store(claim.keys[i], pair)
            for i in claim.owned:
                event = self._inflight.pop(claim.keys[i], None)
                if event is not None:
                    event.set()
            claim.owned.clear()
            self.stats.hits += served
            self.stats.misses += n - served
            counts = self.stats.by_engine.setdefault(namespace, [0, 0])
            counts[0] += served
            counts[1] += n - served

    def abandon(self, claim: Claim) -> None:
        """Release the caller's in-flight pairs without storing anything (failure, cancellation)."""
        with self._lock:
            for i in claim.owned:
                event = self._inflight.pop(claim.keys[i], None)
                if event is not None:
                    event.set()
            claim.owned.clear()

    def _store(self, key: bytes, pair: CachedPair) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self.stats.bytes -= old.size()
            if pair.full is None and old.full is not None:
                pair = replace(pair, full=old.full)
        size = pair.size()
        if size > self.max_bytes:
            self.stats.entries = len(self._data)
            return
        self._data[key] = pair
        self.stats.bytes += size
        while len(self._data) > self.max_entries or self.stats.bytes > self.max_bytes:
            _, evicted = self._data.popitem(last=False)
            self.stats.bytes -= evicted.size()
            self.stats.evictions += 1
        self.stats.entries = len(self._data)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        logger.warning("%s=%r is not an integer; using %d", name, text, default)
        return default
    return max(0, value)


_CACHE: ResultCache | None = None
_CACHE_LOCK = threading.Lock()


def result_cache() -> ResultCache:
    """The process-wide cache (created on first use from the environment's bounds)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = ResultCache(
                _env_int(ENTRIES_ENV, DEFAULT_MAX_ENTRIES), _env_int(BYTES_ENV, DEFAULT_MAX_BYTES)
            )
        return _CACHE


def configure_result_cache(
    max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
) -> ResultCache:
    """Replace the process-wide cache by an empty one with these bounds (``max_entries=0``: off).

    Example:
        >>> configure_result_cache(max_entries=0).enabled
        False
        >>> configure_result_cache().enabled
        True
    """
    global _CACHE
    with _CACHE_LOCK:
        _CACHE = ResultCache(max_entries, max_bytes)
        return _CACHE
