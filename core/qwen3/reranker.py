"""``Qwen3Reranker``: the Qwen3-Reranker checkpoints on the core's batched, injection-safe runtime.

The Qwen3-Reranker family in one place: this backend and its card's prompt
(:mod:`prism_core.qwen3.prompt`).
"""

from __future__ import annotations

from prism_core.backends.causal import CausalLMReranker
from prism_core.protocol import SCORE_ONLY
from prism_core.qwen3.prompt import qwen3_template
from prism_core.runtime.tokenization import PromptTemplate

DEFAULT_MODEL = "Qwen/Qwen3-Reranker-0.6B"


class Qwen3Reranker(CausalLMReranker):
    """Qwen3-Reranker (``Qwen/Qwen3-Reranker-0.6B/4B/8B``): score = ``sigmoid(logit_yes - logit_no)``.

    The exact prompt of its model card, with the card's default instruction or yours; scored on the
    same runtime as Prism (token-budget batches, coalesced concurrent callers, verdict logits from
    two rows of the output layer). Score-only: nothing is generated, ``evidence=True`` is a no-op.

    Args:
        model: Hub id or local checkpoint directory.
        instruction: The task instruction (``None``: ``"Given a web search query, retrieve relevant
            passages that answer the query"``).
        device, dtype, max_length, batch_tokens, show_progress: As for :class:`PrismReranker`
            (``max_length`` defaults to the card's 8192).
        max_new_tokens: Accepted for a uniform surface; unused (nothing is generated).

    Example:
        >>> from prism_core import Qwen3Reranker
        >>> reranker = Qwen3Reranker("Qwen/Qwen3-Reranker-0.6B", instruction="Find code that answers")
        >>> reranker.score("what is rust?", ["Rust is a language."])  # doctest: +SKIP
    """

    backend = "qwen3-reranker"
    display_name = "Qwen3-Reranker"
    capabilities = SCORE_ONLY
    default_model = DEFAULT_MODEL
    default_max_length = 8192
    min_length_hint = 74  # the default instruction, Qwen3.5 tokenizer; tests check it

    engine_options = (*CausalLMReranker.engine_options, "instruction")

    @property
    def instruction(self) -> str | None:
        """The task instruction (``None``: the card's default)."""
        return self.engine_config.instruction

    def template(self) -> PromptTemplate:
        """The card's prompt with this instance's instruction."""
        return qwen3_template(self.instruction)
