"""The decode state of the engine: one persistent batch of generating rows, from every request.

Continuous batching (as vLLM's persistent batch does): every row that is generating, whatever its
request and its prompt length, lives in a *slot* of preallocated tensors, and one decode forward
pass per engine step advances all of them. Rows join as soon as their prefill has run (their state
is copied into a free slot) and leave at end of turn, a stop string or their budget (the last
active slot moves into the freed one): the batch is never rebuilt or re-concatenated.

Layout, per layer of the model:

- **Full-attention keys/values**: ``[slots, heads, columns, dim]``. All live rows end at the same
  column (``hi``, where the next token is written), each starting at its own column (``starts``):
  the columns before a row's start are masked, exactly like the left padding of a prompt batch, so
  a row decodes as if it were alone. The column range grows by doubling (to the right as tokens are
  generated, to the left when a longer prompt joins): amortised, never per step.
- **Linear-attention conv and recurrent states** (Qwen3.5's Gated DeltaNet): ``[slots, ...]``, two
  buffers each. A step reads the current buffer and writes the next one, so a step that fails
  leaves the state as it was (it can be retried, or the rows of one request run apart).

Exactness: a row's greedy text and verdict are those of the model card's loop run alone (the
engine's equivalence tests), whatever else decodes beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from prism_core.runtime.cache import PrefillState

logger = logging.getLogger(__name__)

#: Initial slot capacity; doubled as needed.
MIN_SLOTS = 8
#: Initial column capacity headroom beyond the first prompt (tokens); doubled as needed.
MIN_COLUMNS = 64


@dataclass
class DecodeRow:
    """One generating row: whose it is, what it has emitted, and its stopping rules."""

    owner: Hashable
    doc: int
    max_new_tokens: int
    stop_strings: tuple[str, ...]
    outputs: list[int] = field(default_factory=list)


@dataclass
class Finished:
    """A row that left the batch: its owner, document and generated ids (stop token included)."""

    owner: Hashable
    doc: int
    ids: list[int]


def _cache_class() -> type:
    from transformers import DynamicCache

    class SlotCache(DynamicCache):
        """A transformers cache whose tensors are views of a :class:`DecodeBatch`'s slots."""

        batch: DecodeBatch
        rows: Any  # slice or index tensor of the rows in this forward

        def update(
            self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any
        ) -> Any:
            return self.batch._kv_update(self, layer_idx, key_states, value_states)

        def get_seq_length(self, layer_idx: int = 0) -> int:
            return self.batch._width

        def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
            return self.batch._width + query_length, 0

        def get_conv_state(self, layer_idx: int, state_idx: int = 0) -> Any:
            return self.batch._conv_state(self, layer_idx, state_idx)

        def get_recurrent_state(self, layer_idx: int, state_idx: int = 0) -> Any:
            return self.batch._recurrent_state(self, layer_idx, state_idx)

        def update_recurrent_state(
            self, recurrent_states: Any, layer_idx: int, state_idx: int = 0, **kw: Any
        ) -> Any:
            return self.batch._recurrent_update(self, layer_idx, state_idx, recurrent_states)

        def update_conv_state(self, conv_states: Any, layer_idx: int, state_idx: int = 0, **kw: Any) -> Any:
            raise RuntimeError("a decode step runs one token per row: no conv prefill")

        def is_recording_past(self, layer_idx: int) -> bool:
            return False

        def increase_count(self, layer_idx: int, state_idx: int) -> None:
            return None

        def has_previous_state(self, layer_idx: int | None = None, state_idx: int | None = None) -> bool:
            return True

    return SlotCache


_SLOT_CACHE: type | None = None


class DecodeBatch:
    """Every generating row of every request, in slots; one forward pass advances them all.

    Args:
        body: The decoder body (``model.get_decoder()``) run on one token per row.
        config: The model config (to build the cache object the body expects).
        greedy: Hidden states → next token ids (the runner's argmax over the vocabulary).
        stop: ``(token ids (n,), rows) -> bool mask (n,)`` of rows whose latest token ends them
            (end of turn, stop strings); budgets are checked here.
        cache_kw: The keyword the body takes its cache as (``cache`` or ``past_key_values``).
    """

    def __init__(
        self,
        body: Any,
        config: Any,
        greedy: Callable[[torch.Tensor], torch.Tensor],
        stop: Callable[[torch.Tensor, list[DecodeRow]], torch.Tensor],
        cache_kw: str,
    ) -> None:
        self.body = body
        self.config = config
        self.greedy = greedy
        self.stop = stop
        self.cache_kw = cache_kw
        self.rows: list[DecodeRow] = []  # slot i holds rows[i]; the live slots are [0, n)
        self.kv: dict[int, list[torch.Tensor]] = {}  # layer -> [keys, values] (slots, H, C, D)
        self.conv: dict[tuple[int, int], list[torch.Tensor]] = {}  # (layer, state) -> [cur, next]
        self.rec: dict[tuple[int, int], list[torch.Tensor]] = {}
        self.n_layers = 0
        self.capacity = 0
        self.columns = 0
        self.hi = 0  # the column the next token is written at (the same for every row)
        self.starts = torch.zeros(0, dtype=torch.long)
        self.positions = torch.zeros(0, dtype=torch.long)
        self.tokens = torch.zeros(0, dtype=torch.long)  # next token per slot, not yet emitted
        self.emitted = False  # ``tokens`` were emitted; the forward step on them is still to run
        self._starts: list[int] = []  # host copy of ``starts`` for the live slots
        self._staged: list[tuple[slice | torch.Tensor, torch.Tensor]] = []
        self._pending_state: dict[tuple[str, int, int], torch.Tensor] = {}
        self._lo = 0
        self._width = 0
        self._device: torch.device | None = None

    # ------------------------------------------------------------------ inspection
    @property
    def n(self) -> int:
        """Live rows."""
        return len(self.rows)

    def owners(self) -> list[Hashable]:
        """The distinct owners with live rows, in slot order."""
        return list(dict.fromkeys(r.owner for r in self.rows))

    # ------------------------------------------------------------------ joining and leaving
    def join(
        self,
        owner: Hashable,
        state: PrefillState,
        docs: Sequence[int],
        max_new_tokens: int,
        stop_strings: Sequence[str],
    ) -> list[Finished]:
        """Copy each row of a prefill ``state`` into a free slot; the first token is chosen now.

        Returns rows that end at once (``max_new_tokens < 1``): nothing to decode for them.
        """
        if max_new_tokens < 1 or not docs:
            return [Finished(owner, d, []) for d in docs]
        assert state.cache is not None, "a state that goes on to decode keeps its cache"
        if self.emitted:  # rows joining now emit with the others at the next step
            raise RuntimeError("join() between an emit and its forward step")
        first = self.greedy(state.last_hidden)
        lengths = state.attention_mask.sum(-1).tolist()
        width0 = state.attention_mask.shape[1]
        self._ensure(state, len(docs), max(lengths))
        for r, doc in enumerate(docs):
            slot = self.n
            length = int(lengths[r])
            start = self.hi - length
            for layer, (keys, values) in self.kv.items():
                src = state.cache.layers[layer]
                keys[slot, :, : self.hi].zero_()
                values[slot, :, : self.hi].zero_()
                keys[slot, :, start : self.hi] = src.keys[r, :, width0 - length :]
                values[slot, :, start : self.hi] = src.values[r, :, width0 - length :]
            for (layer, idx), bufs in self.conv.items():
                bufs[0][slot] = state.cache.layers[layer].conv_states[idx][r]
            for (layer, idx), bufs in self.rec.items():
                bufs[0][slot] = state.cache.layers[layer].recurrent_states[idx][r]
            self.starts[slot] = start
            self._starts.append(start)
            self.positions[slot] = length
            self.tokens[slot] = first[r]
            self.rows.append(DecodeRow(owner, int(doc), max_new_tokens, tuple(stop_strings)))
        return []

    def drop(self, owner: Hashable) -> int:
        """Free every slot of ``owner`` (cancelled or failed); returns how many."""
        slots = [i for i, r in enumerate(self.rows) if r.owner == owner]
        for slot in reversed(slots):
            self._remove(slot)
        return len(slots)

    def _remove(self, slot: int) -> None:
        """Swap-remove: the last live slot moves into ``slot`` (one row copied, nothing rebuilt)."""
        last = self.n - 1
        if slot != last:
            for keys, values in self.kv.values():
                keys[slot, :, : self.hi] = keys[last, :, : self.hi]
                values[slot, :, : self.hi] = values[last, :, : self.hi]
            for bufs in (*self.conv.values(), *self.rec.values()):
                bufs[0][slot] = bufs[0][last]
            for t in (self.starts, self.positions, self.tokens):
                t[slot] = t[last]
            self.rows[slot] = self.rows[last]
            self._starts[slot] = self._starts[last]
        self.rows.pop()
        self._starts.pop()
        if not self.rows:
            self.hi = 0

    # ------------------------------------------------------------------ capacity
    def _ensure(self, state: PrefillState, more: int, longest: int) -> None:
        """Room for ``more`` rows and for a prompt of ``longest`` tokens ending at ``hi``."""
        if self._device is None:
            self._allocate(state, max(MIN_SLOTS, more), longest + MIN_COLUMNS)
        if self.n == 0:
            self.hi = 0  # nothing live: no column to keep
            if self.columns <= longest:
                self._grow_columns(right=longest + MIN_COLUMNS - self.columns)
            self.hi = longest
        elif longest > self.hi:
            self._grow_columns(left=max(longest - self.hi, self.columns // 2))
        if self.n + more > self.capacity:
            self._grow_slots(max(self.n + more, 2 * self.capacity))

    def _allocate(self, state: PrefillState, slots: int, columns: int) -> None:
        cache = state.cache
        self._device = state.attention_mask.device
        self.n_layers = len(cache.layers)
        for i, layer in enumerate(cache.layers):
            keys = getattr(layer, "keys", None)
            if isinstance(keys, torch.Tensor) and keys.numel():
                shape = (slots, keys.shape[1], columns, keys.shape[3])
                vshape = (slots, layer.values.shape[1], columns, layer.values.shape[3])
                self.kv[i] = [keys.new_zeros(shape), layer.values.new_zeros(vshape)]
            for name, store in (("conv_states", self.conv), ("recurrent_states", self.rec)):
                states = getattr(layer, name, None)
                if isinstance(states, dict):
                    for idx, t in states.items():
                        if isinstance(t, torch.Tensor):
                            shape = (slots, *t.shape[1:])
                            store[(i, idx)] = [t.new_zeros(shape), t.new_zeros(shape)]
        self.capacity, self.columns = slots, columns
        self.starts = torch.zeros(slots, dtype=torch.long, device=self._device)
        self.positions = torch.zeros(slots, dtype=torch.long, device=self._device)
        self.tokens = torch.zeros(slots, dtype=torch.long, device=self._device)

    def _grow_slots(self, slots: int) -> None:
        def grow(t: torch.Tensor) -> torch.Tensor:
            new = t.new_zeros((slots, *t.shape[1:]))
            new[: self.n] = t[: self.n]
            return new

        for bufs in (*self.kv.values(), *self.conv.values(), *self.rec.values()):
            bufs[:] = [grow(t) for t in bufs]
        self.starts, self.positions, self.tokens = (
            grow(t) for t in (self.starts, self.positions, self.tokens)
        )
        self.capacity = slots

    def _grow_columns(self, left: int = 0, right: int = 0) -> None:
        right = max(right, 0)
        columns = self.columns + left + right
        for bufs in self.kv.values():
            for k, t in enumerate(bufs):
                new = t.new_zeros((t.shape[0], t.shape[1], columns, t.shape[3]))
                new[:, :, left : left + self.hi] = t[:, :, : self.hi]
                bufs[k] = new
        self.starts[: self.n] += left
        self._starts = [x + left for x in self._starts]
        self.hi += left
        self.columns = columns

    # ------------------------------------------------------------------ the decode step
    def emit(self) -> tuple[int, list[Finished]]:
        """Emit every live row's current token and free the rows that finish with it.

        Call :meth:`forward` next (after letting new rows :meth:`join` is not allowed in between).

        Returns:
            Tokens emitted, and the rows that finished.
        """
        if self.emitted or not self.rows:
            return 0, []
        self.emitted = True
        emitted, done = self._emit()
        if not self.rows:
            self.emitted = False
        return emitted, done

    def forward(self) -> None:
        """One forward pass over every live row (after :meth:`emit`).

        When it raises, the state is as it was before: call it again, or :meth:`forward_apart`.
        """
        if not self.emitted:
            return
        self._staged = []
        self._forward(slice(0, self.n))
        self._advance(slice(0, self.n))
        self.emitted = False

    def step(self) -> tuple[int, list[Finished]]:
        """:meth:`emit` then :meth:`forward`."""
        out = self.emit()
        self.forward()
        return out

    def forward_apart(
        self, groups: Sequence[Sequence[int]], split: Callable[[BaseException], bool]
    ) -> list[tuple[list[int], BaseException]]:
        """Run the pending forward pass for each group of slots alone (after a shared pass failed).

        A group whose pass raises an error for which ``split`` is true (out of memory) is run again in
        two halves, down to single rows. Every row that ran has advanced; returns the groups that
        failed with their errors: drop their rows before the next step.
        """
        assert self.emitted, "forward_apart() retries the forward pass of a step that failed"
        self._staged = []
        failed: list[tuple[list[int], BaseException]] = []
        todo = [list(g) for g in groups if g]
        while todo:
            group = todo.pop(0)
            idx = torch.tensor(group, dtype=torch.long, device=self._device)
            try:
                self._forward(idx)
            except BaseException as exc:  # reported to the caller per group
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                if len(group) > 1 and split(exc):
                    half = len(group) // 2
                    todo[:0] = [group[:half], group[half:]]
                else:
                    failed.append((group, exc))
        self._advance(slice(0, self.n))
        self.emitted = False
        return failed

    def _emit(self) -> tuple[int, list[Finished]]:
        n = self.n
        tokens = self.tokens[:n]
        token_list = tokens.tolist()
        for row, t in zip(self.rows, token_list, strict=True):
            row.outputs.append(t)
        done = self.stop(tokens, self.rows)
        for s, row in enumerate(self.rows):
            if len(row.outputs) >= row.max_new_tokens:
                done[s] = True
        finished = []
        for slot in reversed(done.nonzero().flatten().tolist()):
            row = self.rows[slot]
            finished.append(Finished(row.owner, row.doc, row.outputs))
            self._remove(slot)
        finished.reverse()
        return n, finished

    def _forward(self, rows: slice | torch.Tensor) -> None:
        """One token per row of ``rows`` through the body; results kept in the slots' next buffers."""
        global _SLOT_CACHE
        if _SLOT_CACHE is None:
            _SLOT_CACHE = _cache_class()
        if self.hi >= self.columns:
            self._grow_columns(right=self.columns)
        lo = min(self._starts)
        self._lo, self._width = lo, self.hi - lo
        starts = self.starts[rows]
        cols = torch.arange(lo, self.hi + 1, device=self._device)
        mask = (cols[None, :] >= starts[:, None]).long()
        cache = _SLOT_CACHE(config=self.config)
        cache.batch, cache.rows = self, rows
        self._pending_state = {}
        out = self.body(
            input_ids=self.tokens[rows][:, None],
            attention_mask=mask,
            position_ids=self.positions[rows][:, None],
            use_cache=True,
            **{self.cache_kw: cache},
        )
        nxt = self.greedy(out.last_hidden_state[:, -1])
        # The pass succeeded: its rows' next states go to the next buffers (the current ones are intact).
        for kind, store in (("conv", self.conv), ("rec", self.rec)):
            for (layer, idx), bufs in store.items():
                bufs[1][rows] = self._pending_state.pop((kind, layer, idx))
        self._staged.append((rows, nxt))

    def _advance(self, rows: slice) -> None:
        """Every live row ran its forward pass: swap state buffers, move on one column/position."""
        for bufs in (*self.conv.values(), *self.rec.values()):
            bufs.reverse()
        for idx, nxt in self._staged:
            self.tokens[idx] = nxt
        self._staged = []
        self.positions[rows] += 1
        self.hi += 1

    # ------------------------------------------------------------------ what the cache calls
    def _kv_update(self, cache: Any, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[Any, Any]:
        # Column ``hi`` lies past every row's data: writing it is idempotent (a retried pass rewrites it).
        keys, values = self.kv[layer]
        rows = cache.rows
        keys[rows, :, self.hi] = k[:, :, 0]
        values[rows, :, self.hi] = v[:, :, 0]
        return keys[rows, :, self._lo : self.hi + 1], values[rows, :, self._lo : self.hi + 1]

    def _conv_state(self, cache: Any, layer: int, idx: int) -> torch.Tensor:
        # The single-token conv update writes its state in place: hand it a copy (small: channels × kernel).
        state = self.conv[(layer, idx)][0][cache.rows].clone()
        self._pending_state[("conv", layer, idx)] = state
        return state

    def _recurrent_state(self, cache: Any, layer: int, idx: int) -> torch.Tensor:
        return self.rec[(layer, idx)][0][cache.rows]

    def _recurrent_update(self, cache: Any, layer: int, idx: int, new: Any) -> torch.Tensor:
        last = new if isinstance(new, torch.Tensor) else new[-1]
        self._pending_state[("rec", layer, idx)] = last
        return last
