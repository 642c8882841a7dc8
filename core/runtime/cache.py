"""Model states between passes: the scoring pass's kept state, and splitting and merging caches.

transformers' ``DynamicCache`` for hybrid models has no ``batch_select_indices``: selecting,
splitting and merging rows means handling the attention keys/values and the linear-attention conv
and recurrent states (kept in dicts) ourselves. Nothing here runs the model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class PrefillState:
    """The scoring pass of one batch, kept so that selected rows can go on to generate."""

    verdict_logits: torch.Tensor  # (B, 2) float32: yes, no
    last_hidden: torch.Tensor  # (B, H)
    attention_mask: torch.Tensor  # (B, L)
    cache: Any  # transformers Cache, or None for a score-only pass

    def select(self, rows: Sequence[int]) -> None:
        """Keep only ``rows`` (positions in this batch), freeing the others' cache."""
        idx = torch.tensor(list(rows), dtype=torch.long, device=self.attention_mask.device)
        self.verdict_logits = self.verdict_logits[idx]
        self.last_hidden = self.last_hidden[idx]
        self.attention_mask = self.attention_mask[idx]
        if self.cache is not None:
            self.cache.reorder_cache(idx)


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
