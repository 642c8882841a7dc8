"""Micro-batching: concurrent callers' prompts share forward passes.

Threads, asyncio tasks and pipelines that call one engine at the same time each bring a few
prompts. Run one after another, a GPU sees many small batches; here they are coalesced. Each
caller posts its batch and waits; whichever caller finds the model free becomes the *leader*: it
takes the queued batches (its own and the others', up to the token budget), runs them as one
left-padded forward pass, hands every caller its own rows (and cache), and goes on until the queue
is empty. No background thread: nothing to start or stop.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from prism_core.inference import ModelRunner, PrefillState


@dataclass
class _Request:
    prompts: Sequence[Sequence[int]]
    keep_cache: bool
    budget: int
    done: threading.Event = field(default_factory=threading.Event)
    result: PrefillState | None = None
    error: BaseException | None = None


def split_cache(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache holding only ``rows`` of ``cache`` (which is left untouched)."""
    clone = copy.copy(cache)
    clone.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        for name, value in vars(layer).items():
            if isinstance(value, dict):  # linear-attention states live in dicts: do not share them
                setattr(new, name, dict(value))
        clone.layers.append(new)
    clone.reorder_cache(rows)
    return clone


def split_state(state: PrefillState, sizes: Sequence[int]) -> list[PrefillState]:
    """Cut a merged batch's state into consecutive parts of ``sizes`` rows."""
    if len(sizes) == 1:
        return [state]
    parts = []
    start = 0
    for n in sizes:
        rows = torch.arange(start, start + n, device=state.attention_mask.device)
        mask = state.attention_mask[rows]
        # Drop the columns that are padding for every row of this part.
        first = int((mask.sum(0) > 0).nonzero()[0]) if n else 0
        cache = split_cache(state.cache, rows) if state.cache is not None else None
        if cache is not None and first:
            for layer in cache.layers:
                if getattr(layer, "keys", None) is not None and layer.keys.numel():
                    layer.keys = layer.keys[..., first:, :]
                    layer.values = layer.values[..., first:, :]
        parts.append(
            PrefillState(state.verdict_logits[rows], state.last_hidden[rows], mask[:, first:], cache)
        )
        start += n
    return parts


def merge_states(states: Sequence[PrefillState]) -> PrefillState:
    """Join several batches' states (rows kept for decoding) into one, so their rows decode together.

    Shorter batches are left-padded up to the longest: zero key/value columns that the attention
    mask hides, exactly like the left padding of a prompt batch. Linear-attention states have no
    length and are simply stacked. The inputs are left untouched.
    """
    if len(states) == 1:
        return states[0]
    width = max(s.attention_mask.shape[1] for s in states)
    pads = [width - s.attention_mask.shape[1] for s in states]
    mask = torch.cat([F.pad(s.attention_mask, (pad, 0)) for s, pad in zip(states, pads, strict=True)])
    logits = torch.cat([s.verdict_logits for s in states])
    hidden = torch.cat([s.last_hidden for s in states])
    if states[0].cache is None:
        return PrefillState(logits, hidden, mask, None)
    merged = copy.copy(states[0].cache)
    merged.layers = []
    for i, layer in enumerate(states[0].cache.layers):
        parts = [s.cache.layers[i] for s in states]
        new = copy.copy(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            padded = list(zip(parts, pads, strict=True))
            new.keys = torch.cat([F.pad(p.keys, (0, 0, pad, 0)) for p, pad in padded])
            new.values = torch.cat([F.pad(p.values, (0, 0, pad, 0)) for p, pad in padded])
        for name, value in vars(layer).items():
            if isinstance(value, dict):  # linear-attention conv and recurrent states, by state index
                setattr(new, name, {
                    k: torch.cat([getattr(p, name)[k] for p in parts]) if isinstance(v, torch.Tensor) else v
                    for k, v in value.items()
                })  # fmt: skip
        merged.layers.append(new)
    return PrefillState(logits, hidden, mask, merged)


class PrefillScheduler:
    """Coalesces concurrent prefill requests on one model into shared forward passes.

    Args:
        runner: The model runner.
        lock: The model's lock (generation takes it too).
    """

    def __init__(self, runner: ModelRunner, lock: threading.RLock) -> None:
        self.runner = runner
        self.lock = lock
        self._queue: deque[_Request] = deque()
        self._queue_lock = threading.Lock()
        self.passes = 0  # forward passes run (for tests and stats)

    def prefill(self, prompts: Sequence[Sequence[int]], *, keep_cache: bool, budget: int) -> PrefillState:
        """Run ``prompts`` (maybe together with other callers'), return this caller's state.

        ``budget`` caps ``rows × longest row`` of a merged pass; this caller's own prompts are
        never split (the engine plans them within budget).
        """
        request = _Request(prompts, keep_cache, budget)
        with self._queue_lock:
            self._queue.append(request)
        while not request.done.is_set():
            if self.lock.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self.lock.release()
            else:
                request.done.wait(0.002)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _take(self) -> list[_Request]:
        """The next group: the oldest request, plus followers with the same cache mode within budget."""
        with self._queue_lock:
            if not self._queue:
                return []
            group = [self._queue.popleft()]
            width = max(len(p) for p in group[0].prompts)
            rows = len(group[0].prompts)
            for req in list(self._queue):
                if req.keep_cache != group[0].keep_cache:
                    continue
                new_width = max(width, max(len(p) for p in req.prompts))
                if (rows + len(req.prompts)) * new_width > group[0].budget:
                    continue
                self._queue.remove(req)
                group.append(req)
                width, rows = new_width, rows + len(req.prompts)
            return group

    def _drain(self) -> None:
        while group := self._take():
            try:
                prompts = [p for req in group for p in req.prompts]
                state = self.runner.prefill(prompts, keep_cache=group[0].keep_cache)
                self.passes += 1
                for req, part in zip(group, split_state(state, [len(r.prompts) for r in group]), strict=True):
                    req.result = part
            except BaseException as exc:  # hand the failure to every caller in the group
                for req in group:
                    req.error = exc
            finally:
                for req in group:
                    req.done.set()
