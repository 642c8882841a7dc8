"""The score → select → decode pipeline of one request on a causal-LM reranker, as an engine-loop job.

:class:`RerankJob` plans its prompts into token-budget batches, offers them to the engine loop one
pass at a time, checks every verdict logit, and hands relevant survivors to :class:`KeepSet`; kept
rows go to the engine loop as plain :class:`DecodeGroup` data, and the loop decodes them in the one
shared :class:`~prism_core.runtime.decode_state.DecodeBatch` with every other request's rows. The job
never touches the model. :class:`CausalExecutor` runs the passes the loop builds (several jobs'
batches coalesced into one) and owns the decode batch. The result is plain data, the verdict logits
and generated ids; turning them into results (detokenising, parsing) is the backend's output
processing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from prism_core.errors import check_finite
from prism_core.runtime.batching import bucket_width, plan_bucketed_batches
from prism_core.runtime.cache import PrefillState, merge_states, split_state
from prism_core.runtime.decode_state import DecodeBatch
from prism_core.runtime.engine_loop import DecodeGroup, Job, Pass, is_bulk
from prism_core.runtime.runner import ModelRunner
from prism_core.runtime.selection import KeepSet

#: Kept rows handed to decoding together at most (kept scoring caches of several batches merged).
DECODE_ROWS = 64

#: Below this many query-prefix tokens, running the prefix separately does not pay.
MIN_SHARED_PREFIX = 32

#: A prompt longer than this (a continuation, for a row that forks from the query prefix) runs in
#: chunks of this many tokens, one private pass each, its cache carried from chunk to chunk, as
#: vLLM's chunked prefill does: a request decoding beside it waits at most one chunk per token. The
#: chunk boundaries are a rule on the row alone (whatever the load), so a long document's score does
#: not depend on what runs beside it either.
LONG_PROMPT_CHUNK = 2048


@dataclass(frozen=True)
class ScoreKind:
    """Full prompts padded to ``width``, coalescable across requests (only rows of one width share
    a pass); ``keep_cache`` when rows go on to decode."""

    keep_cache: bool
    width: int = 0


class PrefixKind:
    """One request's shared prompt prefix (private to it: equal only to itself)."""


@dataclass(frozen=True)
class AfterPrefixKind:
    """Continuations after a query prefix, right-padded to ``width`` when scoring; ``keep_cache``
    when they decode (then all of one length, unpadded).

    Requests with the same prefix ids (the same template and query) may share such a pass: each ran
    its own prefix pass, of one shape, so the pass may read any one's ``handle``.
    """

    handle: PrefixHandle = field(compare=False)
    keep_cache: bool = False
    width: int = 0
    prefix: PrefixIds | None = None


@dataclass(frozen=True, eq=False)
class ChunkKind:
    """The next chunk of one long prompt (private to its job), after the cache of the first
    ``handle.length`` tokens (``handle`` ``None``: the first chunk of a whole prompt). The ``last``
    chunk gives the verdict, and the row's cache when ``keep_cache``."""

    handle: PrefixHandle | None
    last: bool
    keep_cache: bool


class PrefixIds(tuple[int, ...]):
    """A prefix's token ids, hashed once (pass kinds are compared at every engine step)."""

    _hash: int

    def __new__(cls, ids: Sequence[int]) -> PrefixIds:
        self = super().__new__(cls, ids)
        self._hash = tuple.__hash__(self)
        return self

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or tuple.__eq__(self, other)


class PrefixHandle:
    """A query prefix run once (its cache), owned by one job."""

    def __init__(self, cache: Any, length: int) -> None:
        self.cache = cache
        self.length = length


class CausalExecutor:
    """Runs the engine loop's passes on a :class:`ModelRunner`, and owns the shared decode batch.

    Pass kinds: :class:`ScoreKind` (whole prompts of one width), :class:`PrefixKind` (one job's
    query prefix), :class:`AfterPrefixKind` (continuations after a query prefix); all but prefix
    passes coalesce across jobs when their kinds are equal.
    """

    #: Prefill tokens per engine step while rows decode, by device type (see ``engine_loop``): a CPU
    #: pass costs in proportion to its tokens; a GPU pass of a few thousand tokens costs about what a
    #: small one does.
    STEP_TOKENS_BY_DEVICE: ClassVar[dict[str, int]] = {"cpu": 1024, "cuda": 8192, "mps": 2048}

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self._decoder: DecodeBatch | None = None
        self.step_tokens = self.STEP_TOKENS_BY_DEVICE.get(runner.device.type, 2048)

    @property
    def decoder(self) -> DecodeBatch:
        """The persistent batch every request's generating rows decode in (created on first use)."""
        if self._decoder is None:
            self._decoder = self.runner.new_decode_batch()
        return self._decoder

    def run(self, key: Hashable, rows: Sequence[Any]) -> Any:
        """Run one pass."""
        if isinstance(key, ScoreKind):
            return self.runner.prefill(rows, keep_cache=key.keep_cache, width=key.width or None)
        if isinstance(key, PrefixKind):
            return self.runner.prefix_cache(rows[0])
        if isinstance(key, ChunkKind):
            if key.handle is None:
                return self.runner.prefix_cache(rows[0])
            if key.keep_cache or not key.last:
                return self.runner.prefill_after_prefix(key.handle.cache, key.handle.length, rows)
            return self.runner.score_after_prefix(key.handle.cache, key.handle.length, rows)
        if isinstance(key, AfterPrefixKind):
            handle = key.handle
            if key.keep_cache:
                return self.runner.prefill_after_prefix(handle.cache, handle.length, rows)
            return self.runner.score_after_prefix(handle.cache, handle.length, rows, width=key.width or None)
        raise ValueError(f"unknown pass kind {key!r}")

    def split(self, key: Hashable, output: Any, sizes: Sequence[int]) -> list[Any]:
        """Each job's rows of a coalesced pass (whole prompts of one width, or continuations of one
        width after one prefix: prefix passes are never coalesced)."""
        return split_state(output, sizes)


def runs_after_prefix(prefix_len: int, length: int, *, generate: bool) -> bool:
    """Whether a prompt of ``length`` tokens, whose first ``prefix_len`` are its query's prefix, runs
    after that prefix (read once per request) instead of whole: a function of the row alone.

    A row's floating-point result depends on the path it takes (whole or after the prefix), so the
    choice must not depend on the request's other documents, or a document's score would move with
    them. Rows that go on to decode always fork from the prefix (no padding, nothing to lose). A
    scoring row runs after the prefix when its document part is at most twice the prefix: its
    right-padded continuation needs an explicit attention mask, which costs more than the prefix
    saves once documents are long (measured on CPU: ~2,000-token documents scored slower this way).

    Example:
        >>> runs_after_prefix(200, 400, generate=False), runs_after_prefix(200, 2400, generate=False)
        (True, False)
        >>> runs_after_prefix(200, 2400, generate=True), runs_after_prefix(8, 40, generate=True)
        (True, False)
    """
    if prefix_len < MIN_SHARED_PREFIX or length <= prefix_len:
        return False
    return generate or 2 * prefix_len >= length - prefix_len


@dataclass(frozen=True)
class PlannedBatch:
    """Rows (input indices) that run as one pass: all whole or all after the prefix, one width;
    ``chunked``: one long row, run in chunks of ``LONG_PROMPT_CHUNK`` tokens."""

    rows: list[int]
    forked: bool
    width: int
    chunked: bool = False


class RerankJob(Job):
    """One request's prompts: score all, generate for the relevant survivors of threshold and top-n.

    Every row runs in a shape set by its own length alone, so a document's score does not depend
    on what else is in its request or its pass: whole prompts are padded to their own bucket width
    (:func:`~prism_core.runtime.batching.bucket_width`) and share a pass only with rows of that
    width, other requests' included; rows that fork from the query prefix
    (:func:`runs_after_prefix`) do likewise, or, when they go on to decode, share a pass only with
    continuations of their exact length.

    Args:
        prompts: Prompt ids per document, in input order.
        generate: Generate for relevant survivors (``False``: a pure scoring pass).
        top_n: Only the best ``top_n`` can be returned: generate for no other.
        threshold: Only documents scoring at least this can be returned.
        max_new_tokens: Generation budget per document.
        batch_tokens: Padded tokens per pass.
        stop_strings: Generated text that ends a row early (besides end-of-turn tokens).
        prefix_lens: Per prompt, how many leading ids are its query's prefix (template, instruction
            and query: :attr:`~prism_core.runtime.tokenization.EncodedPrompt.prefix_len`), 0 where
            unknown. ``None``: every prompt runs whole.
    """

    def __init__(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        generate: bool,
        top_n: int | None,
        threshold: float | None,
        max_new_tokens: int,
        batch_tokens: int,
        stop_strings: Sequence[str] = (),
        prefix_lens: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if prefix_lens is not None and len(prefix_lens) != len(prompts):
            raise ValueError(f"prefix_lens has {len(prefix_lens)} entries for {len(prompts)} prompts")
        self.prompts = prompts
        self.generate = generate
        self.max_new_tokens = max_new_tokens
        self.batch_tokens = batch_tokens
        self.stop_strings = tuple(stop_strings)
        self.logits: list[float] = [math.nan] * len(prompts)
        self.generated: dict[int, list[int]] = {}
        # The query's prefix (system + instruction + query) runs once; each row forks from it or
        # runs whole by a rule on the row alone.
        lens = list(prefix_lens) if prefix_lens is not None else [0] * len(prompts)
        self.prefix_len = max(lens, default=0)
        forked = [
            n == self.prefix_len and runs_after_prefix(n, len(p), generate=generate)
            for n, p in zip(lens, prompts, strict=True)
        ]
        self.prefix: PrefixHandle | None = None
        self._prefix_kind = PrefixKind()
        first = next((i for i, f in enumerate(forked) if f), None)
        self._prefix_ids = PrefixIds(prompts[first][: self.prefix_len]) if first is not None else None
        # What each row runs: its whole prompt, or its continuation after the prefix. A row's width
        # is its own bucket of that (whole prompts, scored continuations) or its exact length
        # (continuations that decode run unpadded). Batches are planned on what a pass holds: rows
        # that decode keep the prefix in their own state too.
        own = [len(p) - (self.prefix_len if f else 0) for p, f in zip(prompts, forked, strict=True)]
        exact = [f and generate for f in forked]
        widths = [n if e else bucket_width(n) for n, e in zip(own, exact, strict=True)]
        held = [w + (self.prefix_len if e else 0) for w, e in zip(widths, exact, strict=True)]
        long = [n > LONG_PROMPT_CHUNK for n in own]
        planned = [
            PlannedBatch(
                sorted((members[k] for k in b), key=lambda i: -len(prompts[i])), fork, widths[members[b[0]]]
            )
            for fork in (True, False)
            for members in [[i for i in range(len(prompts)) if forked[i] == fork and not long[i]]]
            for b in plan_bucketed_batches([held[i] for i in members], batch_tokens)
        ]
        planned += [
            PlannedBatch([i], forked[i], len(prompts[i]), chunked=True)
            for i in range(len(prompts))
            if long[i]
        ]
        self._chunks: dict[int, PrefixHandle] = {}  # long row -> the cache of its chunks run so far
        planned.sort(key=lambda b: -held[b.rows[0]])  # longest first: out of memory shows at once
        self.batches: deque[PlannedBatch] = deque(planned)
        self._held = held
        self.total_tokens = sum(own)
        self.keep = KeepSet(top_n, threshold, DECODE_ROWS, batch_tokens) if generate else None
        self.waiting: deque[DecodeGroup] = deque()  # kept rows, ready to join the decode batch
        self.in_flight = 0  # rows handed to the decode batch and not finished yet
        self.progress: Callable[[int], Any] | None = None  # called with each scored batch's size
        self.expired = False  # :meth:`expire` ran (the deadline passed before the work was done)

    # ------------------------------------------------------------------ passes
    def next_pass(self, max_tokens: int | None = None) -> Pass | None:
        if not self.batches:
            return None
        if self.batches[0].forked and self.prefix is None:
            prefix = self.prompts[self.batches[0].rows[0]][: self.prefix_len]
            return Pass(self._prefix_kind, [prefix], len(prefix), self.batch_tokens, shareable=False)
        if self.in_flight and (self.waiting or (self.keep is not None and self.keep.pending_rows)):
            # While rows decode, score on only until one batch has kept rows: at most the decoding
            # rows and one batch's kept caches are alive, whatever the number of documents.
            return None
        if is_bulk(self.total_tokens, max_tokens):
            assert max_tokens is not None
            self._fit_head(max_tokens)
        batch = self.batches[0]
        if batch.chunked:
            return self._next_chunk(batch.rows[0], batch.forked)
        kind = self._kind_of(batch)
        if batch.forked:
            rows = [self.prompts[i][self.prefix_len :] for i in batch.rows]
            return Pass(kind, rows, self._held[batch.rows[0]], self.batch_tokens, cost=batch.width)
        rows = [self.prompts[i] for i in batch.rows]
        return Pass(kind, rows, batch.width, self.batch_tokens)

    def next_pass_like(self, key: Hashable, max_tokens: int | None = None) -> Pass | None:
        """:meth:`next_pass`, with a planned batch of ``key`` moved to the front when there is one.

        Every row runs in a shape set by its own length, so the order of a request's batches changes
        no score; it lets rows of one continuation length from several requests share a pass
        (without it, requests whose next batches differ in length by a token never do). A long
        prompt's chunks in progress stay first.
        """
        if self.batches and not self.batches[0].chunked and self._kind_of(self.batches[0]) != key:
            for k, batch in enumerate(self.batches):
                if not batch.chunked and self._kind_of(batch) == key:
                    del self.batches[k]
                    self.batches.appendleft(batch)
                    break
        return self.next_pass(max_tokens)

    def _kind_of(self, batch: PlannedBatch) -> Hashable | None:
        """The kind of the pass ``batch`` will run as (``None`` while its prefix has not run)."""
        if batch.forked:
            if self.prefix is None:
                return None
            return AfterPrefixKind(self.prefix, self.generate, batch.width, self._prefix_ids)
        return ScoreKind(self.generate, batch.width)

    def _next_chunk(self, row: int, forked: bool) -> Pass:
        ids = self.prompts[row]
        handle = self._chunks.get(row, self.prefix if forked else None)
        start = handle.length if handle is not None else 0
        end = min(start + LONG_PROMPT_CHUNK, len(ids))
        kind = ChunkKind(handle, last=end == len(ids), keep_cache=self.generate)
        return Pass(kind, [ids[start:end]], end - start, self.batch_tokens, shareable=False)

    def _split_head(self, rows: int) -> None:
        head = self.batches.popleft()
        self.batches.appendleft(replace(head, rows=head.rows[rows:]))
        self.batches.appendleft(replace(head, rows=head.rows[:rows]))

    def _fit_head(self, max_tokens: int) -> None:
        """Cut the next batch so that it fits a step's token budget (a single row always fits)."""
        head = self.batches[0]
        rows = max(1, max_tokens // max(1, head.width))
        if rows < len(head.rows):
            self._split_head(rows)

    def on_pass(self, p: Pass, output: Any) -> None:
        if isinstance(p.key, PrefixKind):
            self.prefix = PrefixHandle(output, self.prefix_len)
            return
        if isinstance(p.key, ChunkKind):
            row = self.batches[0].rows[0]
            if not p.key.last:  # carry the cache to the next chunk
                done = (p.key.handle.length if p.key.handle is not None else 0) + len(p.rows[0])
                self._chunks[row] = PrefixHandle(output if p.key.handle is None else output.cache, done)
                return
            self._chunks.pop(row, None)
        batch = self.batches.popleft().rows
        state: PrefillState = output
        diffs = (state.verdict_logits[:, 0] - state.verdict_logits[:, 1]).tolist()
        check_finite(batch, diffs, "verdict logits")
        for i, d in zip(batch, diffs, strict=True):
            self.logits[i] = d
        if self.progress is not None:
            self.progress(len(batch))
        if self.keep is not None:
            self.keep.offer(state, batch, diffs)
            self._queue_groups(self.keep.ready(final=not self.batches))
        if self.prefix is not None and not any(b.forked for b in self.batches):
            self.prefix = None  # free the prefix cache once its last batch is scored

    def retry_smaller(self, p: Pass) -> bool:
        if isinstance(p.key, PrefixKind) or len(self.batches[0].rows) < 2:
            return False
        self._split_head(len(self.batches[0].rows) // 2)
        return True

    # ------------------------------------------------------------------ decoding (plain data out)
    def _queue_groups(self, groups: list[tuple[PrefillState, list[int]]]) -> None:
        """Merge kept groups into decode groups of up to ``DECODE_ROWS`` rows."""
        chunk: list[PrefillState] = []
        docs: list[int] = []
        for n, (state, indices) in enumerate(groups):
            chunk.append(state)
            docs.extend(indices)
            if len(docs) >= DECODE_ROWS or n == len(groups) - 1:
                merged = merge_states(chunk)
                if len(chunk) > 1:  # the merged copy holds the rows now: free the originals
                    for part in chunk:
                        part.cache = None
                self.waiting.append(DecodeGroup(merged, docs, self.max_new_tokens, self.stop_strings))
                chunk, docs = [], []

    def peek_decode(self) -> DecodeGroup | None:
        return self.waiting[0] if self.waiting else None

    def pop_decode(self) -> DecodeGroup:
        group = self.waiting.popleft()
        self.in_flight += len(group.docs)
        return group

    def on_generated(self, doc: int, ids: list[int]) -> None:
        self.generated[doc] = ids
        self.in_flight -= 1

    # ------------------------------------------------------------------ the end
    def finished(self) -> bool:
        return (
            not self.batches
            and not self.waiting
            and not self.in_flight
            and (self.keep is None or self.keep.pending_rows == 0)
        )

    def result(self) -> tuple[list[float], dict[int, list[int]]]:
        return self.logits, self.generated

    def expire(self) -> None:
        """Deadline passed: keep the rows whose generation finished, drop all the rest of the work.

        Rows still decoding leave the shared decode batch when the loop finishes the job (they get
        no entry in ``generated``), as do kept and waiting rows; documents not scored yet keep a NaN
        logit. ``expired`` tells the front end to flag them.
        """
        self.expired = True
        self.in_flight = 0
        self.release()

    def release(self) -> None:
        self.batches.clear()
        self.waiting.clear()
        self._chunks.clear()
        self.prefix = None
        if self.keep is not None:
            self.keep.clear()
