"""The score → select → decode pipeline of one request on a causal-LM reranker, as an engine-loop job.

:class:`RerankJob` plans its prompts into token-budget batches, offers them to the engine loop one
pass at a time, checks every verdict logit, hands relevant survivors to :class:`KeepSet` and decodes
them in :class:`~prism_core.runtime.runner.DecodeStream` groups. :class:`CausalExecutor` runs the
passes the loop builds (several jobs' batches coalesced into one). The result is plain data, the
verdict logits and generated ids; turning them into results (detokenising, parsing) is the
backend's output processing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from prism_core.errors import NonFiniteScoreError
from prism_core.runtime.batching import plan_batches
from prism_core.runtime.cache import PrefillState, merge_states, split_state
from prism_core.runtime.engine_loop import Job, Pass
from prism_core.runtime.runner import DecodeStream, ModelRunner
from prism_core.runtime.selection import KeepSet

#: Rows decoded together at most (kept scoring caches of several batches are merged up to this).
DECODE_ROWS = 64

#: Below this many shared tokens, running the prefix separately does not pay.
MIN_SHARED_PREFIX = 32


class PrefixHandle:
    """A shared prompt prefix run once (its cache), private to one job; hashable by identity."""

    def __init__(self, cache: Any, length: int) -> None:
        self.cache = cache
        self.length = length


class CausalExecutor:
    """Runs the engine loop's passes on a :class:`ModelRunner`.

    Keys: ``("score", keep_cache)`` (coalescable prompt batches), ``("prefix", job)`` (one shared
    prefix), ``("after_prefix", handle)`` (continuations after a job's prefix).
    """

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner

    def run(self, key: Hashable, rows: Sequence[Any]) -> Any:
        """Run one pass."""
        assert isinstance(key, tuple)
        kind = key[0]
        if kind == "score":
            return self.runner.prefill(rows, keep_cache=bool(key[1]))
        if kind == "prefix":
            return self.runner.prefix_cache(rows[0])
        if kind == "after_prefix":
            handle: PrefixHandle = key[1]
            return self.runner.score_after_prefix(handle.cache, handle.length, rows)
        raise ValueError(f"unknown pass kind {kind!r}")

    def split(self, key: Hashable, output: Any, sizes: Sequence[int]) -> list[Any]:
        """Each job's rows of a coalesced pass (only ``score`` passes are ever coalesced)."""
        return split_state(output, sizes)


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all prompts share, leaving each at least one token of its own.

    Returns 0 (run full prompts) unless the prefix is worth running separately: at least
    ``MIN_SHARED_PREFIX`` tokens and at least half the median document part. Right-padded
    continuations need an explicit attention mask, which costs more than the prefix saves once
    documents are long (measured on CPU: ~2,000-token documents scored slower this way).
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
    rest = sorted(len(p) - n for p in prompts)
    return n if 2 * n >= rest[len(rest) // 2] else 0


class RerankJob(Job):
    """One request's prompts: score all, generate for the relevant survivors of threshold and top-n.

    Args:
        runner: The model runner (for decoding; passes go through the loop's executor).
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
        runner: ModelRunner,
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
        self.runner = runner
        self.prompts = prompts
        self.generate = generate
        self.max_new_tokens = max_new_tokens
        self.batch_tokens = batch_tokens
        self.stop_strings = tuple(stop_strings)
        self.logits: list[float] = [math.nan] * len(prompts)
        self.generated: dict[int, list[int]] = {}
        self.prefix_len = 0 if generate or len(prompts) < 2 else shared_prefix_len(prompts)
        self.prefix: PrefixHandle | None = None
        lengths = [len(p) - self.prefix_len for p in prompts]
        self.batches: deque[list[int]] = deque(plan_batches(lengths, batch_tokens))
        self.keep = KeepSet(top_n, threshold, DECODE_ROWS, batch_tokens) if generate else None
        self.waiting: deque[tuple[PrefillState, list[int]]] = deque()  # merged groups to decode
        self.streams: list[tuple[DecodeStream, list[int]]] = []
        self.progress: Callable[[int], Any] | None = None  # called with each scored batch's size
        self.expired = False  # :meth:`expire` ran (the deadline passed before the work was done)

    # ------------------------------------------------------------------ passes
    def next_pass(self) -> Pass | None:
        if self.prefix_len and self.prefix is None:
            prefix = self.prompts[0][: self.prefix_len]
            return Pass(("prefix", self), [prefix], len(prefix), self.batch_tokens, shareable=False)
        if not self.batches:
            return None
        if self.streams and (self.waiting or (self.keep is not None and self.keep.pending_rows)):
            # While a group decodes, score on only until one batch has kept rows: at most the
            # decoding group and one batch's kept caches are alive, whatever the number of documents.
            return None
        batch = self.batches[0]
        if self.prefix is not None:
            rows = [self.prompts[i][self.prefix_len :] for i in batch]
            return Pass(("after_prefix", self.prefix), rows, max(map(len, rows)), self.batch_tokens, False)
        rows = [self.prompts[i] for i in batch]
        return Pass(("score", self.generate), rows, max(map(len, rows)), self.batch_tokens)

    def on_pass(self, p: Pass, output: Any) -> None:
        assert isinstance(p.key, tuple)
        if p.key[0] == "prefix":
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
        assert isinstance(p.key, tuple)
        if p.key[0] == "prefix" or len(self.batches[0]) < 2:
            return False
        batch = self.batches.popleft()
        half = len(batch) // 2
        self.batches.appendleft(batch[half:])
        self.batches.appendleft(batch[:half])
        return True

    # ------------------------------------------------------------------ decoding
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
                self.waiting.append((merged, docs))
                chunk, docs = [], []

    def decoding(self) -> bool:
        return bool(self.streams or self.waiting)

    def decode_step(self) -> int:
        if not self.streams and self.waiting:
            state, docs = self.waiting.popleft()
            stream = self.runner.start_decode(state, self.max_new_tokens, self.stop_strings)
            self.streams.append((stream, docs))
        emitted = 0
        for stream, docs in list(self.streams):
            emitted += self.runner.decode_step(stream)
            if stream.finished:
                self.generated.update(zip(docs, stream.outputs, strict=True))
                self.streams.remove((stream, docs))
        return emitted

    def split_decode(self) -> bool:
        for n, (stream, docs) in enumerate(self.streams):
            if len(stream.active) > 1:
                parts = self.runner.split_stream(stream)
                self.streams[n : n + 1] = [(part, docs) for part in parts]
                return True
        return False

    # ------------------------------------------------------------------ the end
    def finished(self) -> bool:
        return (
            not self.batches
            and not self.waiting
            and not self.streams
            and (self.keep is None or self.keep.pending_rows == 0)
        )

    def result(self) -> tuple[list[float], dict[int, list[int]]]:
        return self.logits, self.generated

    def expire(self) -> None:
        """Deadline passed: keep the rows whose generation finished, drop all the rest of the work.

        Rows still decoding (and kept or waiting rows) get no entry in ``generated``; documents not
        scored yet keep a NaN logit. ``expired`` tells the front end to flag them.
        """
        self.expired = True
        live: dict[int, set[int]] = {}  # parts of a split stream share ``outputs``: live in any part
        for stream, _ in self.streams:
            live.setdefault(id(stream.outputs), set()).update(stream.active)
        for stream, docs in self.streams:
            busy = live[id(stream.outputs)]
            self.generated.update((docs[n], stream.outputs[n]) for n in range(len(docs)) if n not in busy)
        self.release()

    def release(self) -> None:
        self.batches.clear()
        self.waiting.clear()
        self.streams.clear()
        self.prefix = None
        if self.keep is not None:
            self.keep.clear()
