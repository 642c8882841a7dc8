"""The model card's reference loop: one document at a time through ``generate``.

This is the correctness oracle (same weights → same scores and same greedy text) and the speed
baseline of the benchmark. It is deliberately naive; do not optimise it.

Example:
    >>> from prism_core.testing.reference import ReferenceLoop
    >>> loop = ReferenceLoop("path/to/checkpoint")  # doctest: +SKIP
    >>> loop.run("what is rust?", ["Rust is a language."])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from prism_core.prism.prompt import format_prompt


def load_causal_lm(
    model: str | Any, tokenizer: Any, *, device: str, dtype: torch.dtype, padding_side: str | None = None
) -> tuple[Any, Any]:
    """The model and tokenizer a reference runs: loaded from a checkpoint directory or hub id, or
    the objects given (the tokenizer's ``padding_side`` set when asked).

    Example:
        >>> lm, tok = load_causal_lm("dir/", None, device="cpu", dtype=torch.float32)  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(model, str):
        extra = {} if padding_side is None else {"padding_side": padding_side}
        tokenizer = AutoTokenizer.from_pretrained(model, **extra)
        lm: Any = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        return lm.to(device).eval(), tokenizer
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return model, tokenizer


@dataclass(frozen=True)
class ReferenceOutput:
    """What the model card's loop yields for one document."""

    score: float
    logit: float
    text: str
    prompt_ids: list[int]
    generated_ids: list[int]


class ReferenceLoop:
    """The model card's per-document loop, faithfully.

    Args:
        model: A checkpoint directory or hub id, or an already loaded causal LM.
        tokenizer: The tokenizer, when ``model`` is an object.
        max_new_tokens: The generation budget (the card uses 512).
        device: Where to run.
        dtype: Weights' dtype when loading from a path.
    """

    def __init__(
        self,
        model: str | Any,
        tokenizer: Any = None,
        *,
        max_new_tokens: int = 512,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        model, tokenizer = load_causal_lm(model, tokenizer, device=device, dtype=dtype)
        self.model: Any = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.yes_id = tokenizer.encode("yes", add_special_tokens=False)[0]
        self.no_id = tokenizer.encode("no", add_special_tokens=False)[0]

    @torch.no_grad()
    def run_one(self, query: str, document: str, *, generate: bool = True) -> ReferenceOutput:
        """Score one document and, with ``generate``, decode greedily as the card does."""
        prompt = format_prompt(query, document)
        inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        out = self.model.generate(
            **inputs,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            max_new_tokens=self.max_new_tokens if generate else 1,
        )
        first = out.scores[0][0].float()
        logit = (first[self.yes_id] - first[self.no_id]).item()
        score = torch.sigmoid(torch.tensor(logit)).item()
        gen = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
        text = self.tokenizer.decode(gen, skip_special_tokens=True)
        return ReferenceOutput(score, logit, text, inputs["input_ids"][0].tolist(), gen)

    def run(self, query: str, documents: Sequence[str], *, generate: bool = True) -> list[ReferenceOutput]:
        """Run :meth:`run_one` over ``documents`` in order."""
        return [self.run_one(query, d, generate=generate) for d in documents]
