"""The cross-encoder's part of the engine loop: the executor (one padded forward pass) and the job
(token-budget batches of one width, one pass offered at a time)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from prism_core.cross_encoder.loading import _to_device
from prism_core.cross_encoder.rows import Row
from prism_core.errors import check_finite
from prism_core.runtime.batching import plan_bucketed_batches
from prism_core.runtime.engine_loop import Job, Pass, is_bulk


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
        check_finite(batch, values)
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
