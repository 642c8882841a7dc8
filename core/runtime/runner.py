"""The model-level work: batched verdict scoring and greedy evidence decoding.

Nothing here knows about queries, thresholds or results: it turns prompt ids into verdict
logits and generated ids, as cheaply as the model allows.

- Scoring runs the decoder body only and multiplies the last position's hidden state by the two
  rows of the output embedding that matter (``yes``, ``no``): never full-vocabulary logits over
  the prompt.
- A pure scoring pass is right-padded and runs with no attention mask: pads after a row's last
  token cannot reach it, so the plain causal kernel is exact (and the fastest one).
- A pass whose cache goes on to decode is left-padded (exact for Qwen3.5's linear attention: pads
  before the prompt leave the recurrent state at zero) with explicit position ids; on CPU, long
  prompts run unpadded instead, a dense padding mask there costing more than the layer itself.
- The scoring pass's cache is kept for the rows that will generate, so their prompts are never run
  twice; rows leave the batch as soon as they finish (end of turn or ``</evidence>``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from itertools import groupby
from typing import Any

import torch

from prism_core.runtime.cache import PrefillState, merge_states, split_cache
from prism_core.runtime.decode_state import DecodeBatch, DecodeRow
from prism_core.runtime.greedy_head import GreedyHead

logger = logging.getLogger(__name__)

#: On CPU, cache-keeping prefills of prompts at least this long run without padding (see ``prefill``).
CPU_UNPADDED_MIN_WIDTH = 1024


class ModelRunner:
    """Runs a loaded causal LM for yes/no rerankers: verdict logits and greedy continuation.

    Tensors in, logits and token ids out: nothing here knows about queries, thresholds or results.
    Only the engine loop's thread calls it.

    Args:
        model: A transformers causal LM (Qwen3.5 hybrid or Qwen3 dense).
        tokenizer: Its tokenizer (for stop strings and the pad id).
        yes_id: Token id of ``yes``.
        no_id: Token id of ``no``.
    """

    def __init__(self, model: Any, tokenizer: Any, yes_id: int, no_id: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.body = model.get_decoder() if hasattr(model, "get_decoder") else model.model
        head = model.get_output_embeddings()
        self.head = head
        self.greedy = GreedyHead(head)
        self.device = head.weight.device
        ids = torch.tensor([yes_id, no_id], device=self.device)
        self.verdict_weight = head.weight[ids].detach()  # (2, H)
        self.head_bias = getattr(head, "bias", None)
        self.verdict_bias = self.head_bias[ids].detach() if self.head_bias is not None else None
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else tokenizer.eos_token_id)
        self.stop_ids = torch.tensor(sorted(self._eos_ids(model, tokenizer)), device=self.device)
        self._vocab: list[str | None] | None = None
        self._may_close: dict[str, torch.Tensor] = {}
        # transformers >= 5.25 names the cache argument ``cache`` (``past_key_values`` is deprecated).
        params = inspect.signature(self.body.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"

    def new_decode_batch(self) -> DecodeBatch:
        """The persistent batch every generating row of every request decodes in (see ``decode_state``)."""
        return DecodeBatch(self.body, self.model.config, self.greedy, self.stop_mask, self.cache_kw)

    def stop_mask(self, tokens: torch.Tensor, rows: Sequence[DecodeRow]) -> torch.Tensor:
        """Which rows end with their latest token (already appended to ``rows[i].outputs``): an
        end-of-turn token, or the end of one of the row's stop strings."""
        done = torch.isin(tokens, self.stop_ids)
        stops = {s for row in rows for s in row.stop_strings}
        for stop in stops:
            closing = (self._closing_mask(stop[-1])[tokens] & ~done).nonzero().flatten().tolist()
            for live in closing:
                row = rows[live]
                if stop in row.stop_strings and stop in self.tokenizer.decode(row.outputs[-8:]):
                    done[live] = True
        return done

    def _closing_mask(self, last_char: str) -> torch.Tensor:
        """Tokens whose text holds ``last_char``: only after one of them can a stop string end."""
        mask = self._may_close.get(last_char)
        if mask is None:
            if self._vocab is None:
                self._vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
            vocab = self._vocab
            full = torch.zeros(max(len(vocab), self.head.weight.shape[0]), dtype=torch.bool)
            full[: len(vocab)] = torch.tensor([t is not None and last_char in t for t in vocab])
            mask = self._may_close[last_char] = full.to(self.device)
        return mask

    @staticmethod
    def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
        ids: set[int] = set()
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        if eos is not None:
            ids.update([eos] if isinstance(eos, int) else eos)
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            ids.add(im_end)
        return ids

    def _pad(
        self, prompts: Sequence[Sequence[int]], width: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        width = max([width or 0, *map(len, prompts)])
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p) :] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def prefill(
        self, prompts: Sequence[Sequence[int]], *, keep_cache: bool, width: int | None = None
    ) -> PrefillState:
        """Verdict logits of ``prompts``; with ``keep_cache``, the cache for decoding too.

        A pass that keeps its cache is left-padded with explicit positions, so that every row's
        next token goes at the same column. A pure scoring pass is right-padded and runs with no
        attention mask at all: causal attention cannot see pads placed after a row's last token,
        nor can the linear-attention recurrence, so the plain causal kernel (the fast one) is exact.

        Args:
            prompts: Prompt ids per row.
            keep_cache: Keep the cache (rows go on to decode).
            width: Pad every row to this width (at least the longest row; ``None``: the longest).
                The engine passes a width set by the rows' own lengths, so that a row's result does
                not depend on the other rows of its pass (the padded width changes float rounding).
        """
        if not keep_cache:
            return self._score_right_padded(prompts, width)
        lengths = {len(p) for p in prompts}
        width = max([width or 0, *lengths])
        if self.device.type == "cpu" and lengths != {width} and width >= CPU_UNPADDED_MIN_WIDTH:
            # On CPU a padding mask is materialised as a dense (rows, width, width) float tensor per
            # attention layer; for long prompts building and reading it costs more than the whole
            # rest of the layer (measured: 2,000-token prompts ran 1.7-3.3x slower padded than one
            # by one). Rows of equal length need no mask; the states are then joined for decoding.
            runs = [list(same) for _, same in groupby(prompts, key=len)]  # consecutive, in order
            return merge_states([self._prefill_kept(run) for run in runs])
        return self._prefill_kept(prompts, width)

    def _prefill_kept(self, prompts: Sequence[Sequence[int]], width: int | None = None) -> PrefillState:
        """Left-padded pass (no padding when all prompts have ``width`` tokens) that keeps its cache."""
        from transformers import DynamicCache

        input_ids, mask = self._pad(prompts, width)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.body(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            **{self.cache_kw: cache},
            use_cache=True,
        )
        last = out.last_hidden_state[:, -1]
        return PrefillState(self._verdict(last), last, mask, cache)

    def _verdict(self, last: torch.Tensor) -> torch.Tensor:
        """``(yes, no)`` logits from last-position hidden states: two rows of the output layer, not all."""
        logits = last @ self.verdict_weight.T
        if self.verdict_bias is not None:
            logits = logits + self.verdict_bias
        return logits.float()

    def _right_pad(
        self, rows: Sequence[Sequence[int]], width: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids, the index of each row's last real token, and the mask of real tokens."""
        width = max([width or 0, *map(len, rows)])
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long, device=self.device)
        mask = (torch.arange(width, device=self.device) <= last[:, None]).long()
        return ids.to(self.device), last, mask

    def _score_right_padded(self, prompts: Sequence[Sequence[int]], width: int | None = None) -> PrefillState:
        ids, last_index, mask = self._right_pad(prompts, width)
        out = self.body(input_ids=ids, use_cache=False)
        last = out.last_hidden_state[torch.arange(len(prompts), device=self.device), last_index]
        return PrefillState(self._verdict(last), last, mask, None)

    @torch.inference_mode()
    def prefix_cache(self, prefix: Sequence[int]) -> Any:
        """Run a prompt prefix shared by many prompts once; return its cache (one row)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.device)
        self.body(input_ids=ids, **{self.cache_kw: cache}, use_cache=True)
        return cache

    @torch.inference_mode()
    def score_after_prefix(
        self,
        prefix_cache: Any,
        prefix_len: int,
        continuations: Sequence[Sequence[int]],
        width: int | None = None,
    ) -> PrefillState:
        """Verdict logits of ``prefix + continuation`` for each continuation, running the prefix 0 times
        (continuations padded to ``width`` at least, as :meth:`prefill` pads).

        The continuations are RIGHT-padded after the shared prefix: left padding between the
        prefix and a continuation would decay the linear-attention state (wrong), while pads after
        a row's last token cannot reach it. The states past each row's end are wrong for further
        decoding, so no cache is returned: this is a pure scoring pass.
        """
        n = len(continuations)
        ids, last_index, cont_mask = self._right_pad(continuations, width)
        width = ids.shape[1]
        mask = torch.cat([cont_mask.new_ones((n, prefix_len)), cont_mask], dim=-1)
        positions = (prefix_len + torch.arange(width, device=self.device)).expand(n, width)
        cache = split_cache(prefix_cache, torch.zeros(n, dtype=torch.long, device=self.device))
        out = self.body(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            **{self.cache_kw: cache},
            use_cache=True,
        )
        last = out.last_hidden_state[torch.arange(n, device=self.device), last_index]
        return PrefillState(self._verdict(last), last, mask, None)

    @torch.inference_mode()
    def prefill_after_prefix(
        self, prefix_cache: Any, prefix_len: int, continuations: Sequence[Sequence[int]]
    ) -> PrefillState:
        """Verdict logits **and** the cache of ``prefix + continuation`` for each continuation, the
        prefix run 0 times: what a request that goes on to generate needs, its prefix read once.

        No padding at all, so every row's state is exact (pads after a row would decay its
        linear-attention state, pads before it would sit between the prefix and the row): the rows
        advance together through segments of the length every live row still has (one pass per
        distinct continuation length, fewer rows each time); a row's state is set aside when its
        continuation ends. The rows' states are then joined left-padded, like a prompt batch.
        """
        n = len(continuations)
        cache = split_cache(prefix_cache, torch.zeros(n, dtype=torch.long, device=self.device))
        finished: dict[int, tuple[Any, torch.Tensor]] = {}
        live = list(range(n))
        done = 0  # continuation tokens every live row has run
        while live:
            step = min(len(continuations[i]) for i in live) - done
            ids = torch.tensor(
                [list(continuations[i][done : done + step]) for i in live],
                dtype=torch.long,
                device=self.device,
            )
            positions = (prefix_len + done + torch.arange(step, device=self.device)).expand(len(live), step)
            out = self.body(input_ids=ids, position_ids=positions, use_cache=True, **{self.cache_kw: cache})
            last = out.last_hidden_state[:, -1]
            done += step
            ends = [k for k, i in enumerate(live) if len(continuations[i]) == done]
            for k in ends:
                row = torch.tensor([k], dtype=torch.long, device=self.device)
                finished[live[k]] = (split_cache(cache, row), last[k : k + 1])
            rest = [k for k, i in enumerate(live) if len(continuations[i]) > done]
            if rest and ends:
                cache.reorder_cache(torch.tensor(rest, dtype=torch.long, device=self.device))
            live = [live[k] for k in rest]
        states = []
        for i in range(n):
            row_cache, hidden = finished[i]
            mask = torch.ones((1, prefix_len + len(continuations[i])), dtype=torch.long, device=self.device)
            states.append(PrefillState(self._verdict(hidden), hidden, mask, row_cache))
        return merge_states(states)

    @torch.inference_mode()
    def generate(
        self, state: PrefillState, max_new_tokens: int, stop_strings: Sequence[str] = ()
    ) -> list[list[int]]:
        """Greedy-decode every row of ``state`` to the end, alone in a decode batch of their own.

        The first token is the argmax over the whole vocabulary at the verdict position, as the
        model card's ``generate`` picks it; rows stop at an end-of-turn token, after one of
        ``stop_strings``, or after ``max_new_tokens`` tokens. The engine loop decodes through the
        shared :class:`~prism_core.runtime.decode_state.DecodeBatch` instead; this is its one-batch
        form (tests and tools).

        Returns:
            Generated ids per row, in row order (stop token included).
        """
        rows = state.last_hidden.shape[0]
        batch = self.new_decode_batch()
        outputs: dict[int, list[int]] = {}
        for fin in batch.join(None, state, list(range(rows)), max_new_tokens, stop_strings):
            outputs[fin.doc] = fin.ids
        while batch.n:
            for fin in batch.step()[1]:
                outputs[fin.doc] = fin.ids
        return [outputs[i] for i in range(rows)]
