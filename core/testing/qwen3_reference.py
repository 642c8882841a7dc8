"""The Qwen3-Reranker model card's reference code, reimplemented faithfully (scores only).

The card (``Qwen/Qwen3-Reranker-0.6B``, "Usage with Transformers") loads the tokenizer with
``padding_side='left'``, tokenises each ``format_instruction(instruction, query, doc)`` pair text
with ``truncation='longest_first'`` to ``max_length - len(prefix_tokens) - len(suffix_tokens)``,
wraps the ids in the separately tokenised prefix and suffix, pads the batch on the left, runs
``model(**inputs).logits[:, -1, :]`` and takes ``log_softmax`` over the ``[no, yes]`` logits; the
score is ``exp`` of the ``yes`` entry. This module does exactly that, batch by batch, so it can be the
correctness oracle of :class:`prism_core.Qwen3Reranker` and the baseline of the benchmark. It is
deliberately naive (full-vocabulary logits at every position, as the card's code computes them); do
not optimise it.

Example:
    >>> from prism_core.testing.qwen3_reference import Qwen3CardReference
    >>> card = Qwen3CardReference("Qwen/Qwen3-Reranker-0.6B")  # doctest: +SKIP
    >>> card.score("what is rust?", ["Rust is a language.", "Paris."])  # doctest: +SKIP
    [0.99..., 0.0...]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from prism_core.qwen3.prompt import PREFIX, SUFFIX, format_instruction
from prism_core.testing.reference import load_causal_lm


class Qwen3CardReference:
    """The card's ``process_inputs`` + ``compute_logits``, on a checkpoint directory or hub id.

    Args:
        model: A checkpoint directory or hub id, or an already loaded causal LM.
        tokenizer: The tokenizer, when ``model`` is an object (its ``padding_side`` is set to left).
        max_length: The card's ``max_length`` (8192).
        device: Where to run.
        dtype: Weights' dtype when loading from a path.
    """

    def __init__(
        self,
        model: str | Any,
        tokenizer: Any = None,
        *,
        max_length: int = 8192,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        model, tokenizer = load_causal_lm(model, tokenizer, device=device, dtype=dtype, padding_side="left")
        self.model: Any = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.token_false_id = tokenizer.convert_tokens_to_ids("no")
        self.token_true_id = tokenizer.convert_tokens_to_ids("yes")
        self.prefix_tokens: list[int] = tokenizer.encode(PREFIX, add_special_tokens=False)
        self.suffix_tokens: list[int] = tokenizer.encode(SUFFIX, add_special_tokens=False)

    def process_inputs(self, pairs: Sequence[str]) -> Any:
        """The card's ``process_inputs``: tokenise, wrap in prefix and suffix, left-pad."""
        inputs = self.tokenizer(
            list(pairs),
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        inputs = self.tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=self.max_length)
        for key in inputs:
            inputs[key] = inputs[key].to(self.device)
        return inputs

    @torch.no_grad()
    def compute_logits(self, inputs: Any) -> list[float]:
        """The card's ``compute_logits``: ``exp(log_softmax([no, yes]))[yes]`` at the last position."""
        batch_scores = self.model(**inputs).logits[:, -1, :]
        true_vector = batch_scores[:, self.token_true_id]
        false_vector = batch_scores[:, self.token_false_id]
        batch_scores = torch.stack([false_vector, true_vector], dim=1)
        batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
        scores: list[float] = batch_scores[:, 1].exp().tolist()
        return scores

    def score(
        self,
        query: str,
        documents: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int | None = None,
    ) -> list[float]:
        """Scores in input order, ``batch_size`` pairs per pass (``None``: all at once, as the card)."""
        pairs = [format_instruction(instruction, query, doc) for doc in documents]
        size = len(pairs) if batch_size is None else batch_size
        scores: list[float] = []
        for start in range(0, len(pairs), max(size, 1)):
            scores.extend(self.compute_logits(self.process_inputs(pairs[start : start + size])))
        return scores
