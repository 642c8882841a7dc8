"""The selection policy: which scored rows keep their cache and go on to generate.

A row is worth generating for when its verdict is ``yes`` and it survives ``score_threshold`` and
``top_n``, the same rule :func:`prism_core.ranking.select` applies to the final results, so
generation is never spent on a document nobody will read. Scoring runs batch by batch, so the
``top_n`` survivors are only known at the end: a batch's kept cache is held for rows still among the
best ``top_n`` seen so far and pruned as better rows arrive. Without ``top_n``, kept rows are handed
to decoding as soon as enough have gathered (``decode_rows`` rows or ``token_budget`` cached tokens),
so memory stays within about two batches whatever the number of documents.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from prism_core.ranking import passes
from prism_core.runtime.cache import PrefillState

#: A batch's kept state and the input indices of its rows.
KeptGroup = tuple[PrefillState, list[int]]


class KeepSet:
    """Scored batches' kept rows, waiting to be decoded.

    Args:
        top_n: Keep at most the best ``top_n`` rows (``None``: no limit).
        threshold: Keep only rows scoring at least this (``None``: any relevant row).
        decode_rows: Without ``top_n``: hand rows over once this many are kept.
        token_budget: Without ``top_n``: hand rows over once their caches hold this many tokens.

    Example:
        >>> keep = KeepSet(top_n=1, threshold=None, decode_rows=64, token_budget=4096)
        >>> keep.ready(final=False)
        []
    """

    def __init__(
        self, top_n: int | None, threshold: float | None, decode_rows: int, token_budget: int
    ) -> None:
        self.top_n = top_n
        self.threshold = threshold
        self.decode_rows = decode_rows
        self.token_budget = token_budget
        self._groups: dict[int, KeptGroup] = {}
        self._owner: dict[int, int] = {}  # input index -> group id, for rows among the best top_n
        self._best: list[tuple[float, int]] = []  # min-heap of (logit, -index)
        self._next_id = 0

    def offer(self, state: PrefillState, indices: Sequence[int], logits: Sequence[float]) -> None:
        """Keep the rows of a scored batch that may be returned and are relevant; free the others."""
        rows = [row for row, logit in enumerate(logits) if passes(logit, self.threshold)]
        if not rows:
            return
        state.select(rows)
        gid = self._next_id
        self._next_id += 1
        docs = [indices[row] for row in rows]
        self._groups[gid] = (state, docs)
        if self.top_n is None:
            return
        for row, i in zip(rows, docs, strict=True):
            heapq.heappush(self._best, (logits[row], -i))
            self._owner[i] = gid
            if len(self._best) > self.top_n:
                _, neg = heapq.heappop(self._best)
                self._owner.pop(-neg)
        self._prune()

    @property
    def pending_rows(self) -> int:
        """Rows kept and not yet handed over."""
        return sum(len(docs) for _, docs in self._groups.values())

    def full(self) -> bool:
        """Enough rows are kept to hand over now (never before the end with ``top_n``)."""
        if self.top_n is not None or not self._groups:
            return False
        tokens = sum(len(docs) * state.attention_mask.shape[1] for state, docs in self._groups.values())
        return self.pending_rows >= self.decode_rows or tokens >= self.token_budget

    def ready(self, *, final: bool) -> list[KeptGroup]:
        """Hand over the kept groups when :meth:`full`, or all of them when ``final`` (scoring is over)."""
        if not (final or self.full()):
            return []
        groups = list(self._groups.values())
        self._groups.clear()
        self._owner.clear()
        self._best.clear()
        return groups

    def clear(self) -> None:
        """Drop everything kept (frees the caches)."""
        self.ready(final=True)

    def _prune(self) -> None:
        """Drop evicted rows from kept states, and states left with no row."""
        for gid in list(self._groups):
            state, docs = self._groups[gid]
            keep = [row for row, i in enumerate(docs) if self._owner.get(i) == gid]
            if not keep:
                del self._groups[gid]
            elif len(keep) < len(docs):
                state.select(keep)
                self._groups[gid] = (state, [docs[row] for row in keep])
