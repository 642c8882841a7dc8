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
from dataclasses import dataclass
from typing import Any, ClassVar

from prism_core.errors import NonFiniteScoreError
from prism_core.runtime.batching import plan_batches
from prism_core.runtime.cache import PrefillState, merge_states, split_state
from prism_core.runtime.decode_state import DecodeBatch
from prism_core.runtime.engine_loop import DecodeGroup, Job, Pass, is_bulk
from prism_core.runtime.runner import ModelRunner
from prism_core.runtime.selection import KeepSet

#: Kept rows handed to decoding together at most (kept scoring caches of several batches merged).
DECODE_ROWS = 64

#: Below this many shared tokens, running the prefix separately does not pay.
MIN_SHARED_PREFIX = 32

#: A generating request of fewer documents runs full prompts: its passes coalesce with other
#: requests' (a request's prefix is private to it), which pays more for small requests than reading
#: a prefix once; from this many documents on, the prefix runs once and each document forks from it.
MIN_PREFIX_ROWS_GENERATING = 8


@dataclass(frozen=True)
class ScoreKind:
    """Full prompts, coalescable across requests; ``keep_cache`` when rows go on to decode."""

    keep_cache: bool


class PrefixKind:
    """One request's shared prompt prefix (private to it: equal only to itself)."""


@dataclass(frozen=True, eq=False)
class AfterPrefixKind:
    """Continuations after one request's prefix (private to it); ``keep_cache`` when they decode."""

    handle: PrefixHandle
    keep_cache: bool = False


class PrefixHandle:
    """A shared prompt prefix run once (its cache), private to one job; hashable by identity."""

    def __init__(self, cache: Any, length: int) -> None:
        self.cache = cache
        self.length = length


class CausalExecutor:
    """Runs the engine loop's passes on a :class:`ModelRunner`, and owns the shared decode batch.

    Pass kinds: :class:`ScoreKind` (coalescable prompt batches), :class:`PrefixKind` (one shared
    prefix), :class:`AfterPrefixKind` (continuations after a job's prefix).
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
            return self.runner.prefill(rows, keep_cache=key.keep_cache)
        if isinstance(key, PrefixKind):
            return self.runner.prefix_cache(rows[0])
        if isinstance(key, AfterPrefixKind):
            handle = key.handle
            if key.keep_cache:
                return self.runner.prefill_after_prefix(handle.cache, handle.length, rows)
            return self.runner.score_after_prefix(handle.cache, handle.length, rows)
        raise ValueError(f"unknown pass kind {key!r}")

    def split(self, key: Hashable, output: Any, sizes: Sequence[int]) -> list[Any]:
        """Each job's rows of a coalesced pass (only ``score`` passes are ever coalesced)."""
        return split_state(output, sizes)


def shared_prefix_len(prompts: Sequence[Sequence[int]], *, unpadded: bool = False) -> int:
    """Length of the token prefix all prompts share, leaving each at least one token of its own.

    Returns 0 (run full prompts) unless the prefix is worth running separately: at least
    ``MIN_SHARED_PREFIX`` tokens and, for a scoring pass (right-padded continuations), at least
    half the median document part: right-padded continuations need an explicit attention mask,
    which costs more than the prefix saves once documents are long (measured on CPU: ~2,000-token
    documents scored slower this way). Continuations that go on to decode run ``unpadded`` (no mask):
    the prefix is then always worth sharing.
    """
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for ids in prompts[1:]:
        k = 0
        while k < n and ids[k] == first[k]:
            k += 1
        n = k
    if n < MIN_SHARED_PREFIX:
        return 0
    if unpadded:
        return n
    rest = sorted(len(p) - n for p in prompts)
    return n if 2 * n >= rest[len(rest) // 2] else 0


class RerankJob(Job):
    """One request's prompts: score all, generate for the relevant survivors of threshold and top-n.

    Args:
        prompts: Prompt ids per document, in input order.
        generate: Generate for relevant survivors (``False``: a pure scoring pass).
        top_n: Only the best ``top_n`` can be returned: generate for no other.
        threshold: Only documents scoring at least this can be returned.
        max_new_tokens: Generation budget per document.
        batch_tokens: Padded tokens per pass.
        stop_strings: Generated text that ends a row early (besides end-of-turn tokens).
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
    ) -> None:
        super().__init__()
        self.prompts = prompts
        self.generate = generate
        self.max_new_tokens = max_new_tokens
        self.batch_tokens = batch_tokens
        self.stop_strings = tuple(stop_strings)
        self.logits: list[float] = [math.nan] * len(prompts)
        self.generated: dict[int, list[int]] = {}
        # The shared system + instruction + query prefix runs once, for scoring and generating alike.
        few = len(prompts) < (MIN_PREFIX_ROWS_GENERATING if generate else 2)
        self.prefix_len = 0 if few else shared_prefix_len(prompts, unpadded=generate)
        self.prefix: PrefixHandle | None = None
        self._prefix_kind = PrefixKind()
        # Batches are planned on what a pass keeps: the continuations of a scoring pass, the whole
        # cached prompts of rows that go on to decode (the prefix is copied into each row's state).
        self._charged = 0 if generate else self.prefix_len
        lengths = [len(p) - self._charged for p in prompts]
        self.total_tokens = sum(lengths)
        self.batches: deque[list[int]] = deque(plan_batches(lengths, batch_tokens))
        self.keep = KeepSet(top_n, threshold, DECODE_ROWS, batch_tokens) if generate else None
        self.waiting: deque[DecodeGroup] = deque()  # kept rows, ready to join the decode batch
        self.in_flight = 0  # rows handed to the decode batch and not finished yet
        self.progress: Callable[[int], Any] | None = None  # called with each scored batch's size
        self.expired = False  # :meth:`expire` ran (the deadline passed before the work was done)

    # ------------------------------------------------------------------ passes
    def next_pass(self, max_tokens: int | None = None) -> Pass | None:
        if self.prefix_len and self.prefix is None and self.batches:
            prefix = self.prompts[0][: self.prefix_len]
            return Pass(self._prefix_kind, [prefix], len(prefix), self.batch_tokens, shareable=False)
        if not self.batches:
            return None
        if self.in_flight and (self.waiting or (self.keep is not None and self.keep.pending_rows)):
            # While rows decode, score on only until one batch has kept rows: at most the decoding
            # rows and one batch's kept caches are alive, whatever the number of documents.
            return None
        if is_bulk(self.total_tokens, max_tokens):
            assert max_tokens is not None
            self._fit_head(max_tokens)
        batch = self.batches[0]
        if self.prefix is not None:
            rows = [self.prompts[i][self.prefix_len :] for i in batch]
            kind = AfterPrefixKind(self.prefix, keep_cache=self.generate)
            return Pass(kind, rows, max(map(len, rows)), self.batch_tokens, False)
        rows = [self.prompts[i] for i in batch]
        return Pass(ScoreKind(self.generate), rows, max(map(len, rows)), self.batch_tokens)

    def _fit_head(self, max_tokens: int) -> None:
        """Cut the next batch so that it fits a step's token budget (a single row always fits)."""
        batch = self.batches[0]
        width = max(len(self.prompts[i]) - self._charged for i in batch)
        rows = max(1, max_tokens // max(1, width))
        if rows < len(batch):
            self.batches[0] = batch[rows:]
            self.batches.appendleft(batch[:rows])

    def on_pass(self, p: Pass, output: Any) -> None:
        if isinstance(p.key, PrefixKind):
            self.prefix = PrefixHandle(output, self.prefix_len)
            return
        batch = self.batches.popleft()
        state: PrefillState = output
        diffs = (state.verdict_logits[:, 0] - state.verdict_logits[:, 1]).tolist()
        bad = [i for i, d in zip(batch, diffs, strict=True) if not math.isfinite(d)]
        if bad:
            raise NonFiniteScoreError(
                f"the model produced non-finite verdict logits for {len(bad)} of {len(batch)} documents "
                f"(first: documents[{min(bad)}]); this is typically a float16 overflow: load the model "
                "with dtype='bfloat16' or dtype='float32'"
            )
        for i, d in zip(batch, diffs, strict=True):
            self.logits[i] = d
        if self.progress is not None:
            self.progress(len(batch))
        if self.keep is not None:
            self.keep.offer(state, batch, diffs)
            self._queue_groups(self.keep.ready(final=not self.batches))
        if not self.batches and self.prefix is not None:
            self.prefix = None  # free the prefix cache once the last batch is scored

    def retry_smaller(self, p: Pass) -> bool:
        if isinstance(p.key, PrefixKind) or len(self.batches[0]) < 2:
            return False
        batch = self.batches.popleft()
        half = len(batch) // 2
        self.batches.appendleft(batch[half:])
        self.batches.appendleft(batch[:half])
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
        self.prefix = None
        if self.keep is not None:
            self.keep.clear()
