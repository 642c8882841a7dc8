"""``PrismReranker``: scores, and for relevant documents a contribution and an evidence rewrite.

The Prism family in one place: this backend, its prompt (:mod:`prism_core.prism.prompt`) and the
parsing of its output (:mod:`prism_core.prism.parsing`); the model's card is summarised in
``shared/prism-model-facts.md``.
"""

from __future__ import annotations

from typing import Any

from prism_core.backends.causal import CausalLMReranker
from prism_core.grounding import check_grounding
from prism_core.prism.parsing import EVIDENCE_CLOSE, parse_output
from prism_core.prism.prompt import PRISM_TEMPLATE
from prism_core.protocol import Capabilities
from prism_core.runtime.tokenization import PromptTemplate

DEFAULT_MODEL = "infgrad/Prism-Qwen3.5-Reranker-0.8B"


class PrismReranker(CausalLMReranker):
    """Prism-Reranker: relevance scores, and for relevant documents a contribution and evidence.

    Constructing is cheap and loads nothing; the model loads on first use (or :meth:`load`).
    Loaded weights are shared by every instance asking for the same ``(model, device, dtype)``, and
    one engine loop drives them for every caller (threads, asyncio tasks, server requests).

    Args:
        model: Hub id or local checkpoint directory.
        device: ``None`` (CUDA, else MPS, else CPU), or ``"cpu"``, ``"cuda:1"``, ...
        dtype: ``None`` (bf16 on CUDA, fp32 elsewhere), a torch dtype or ``"float32"``/``"bfloat16"``.
        max_length: Cap on prompt tokens (default 10240); longer documents are cut (only the document).
        max_new_tokens: Generation budget for verdict, contribution and evidence (default 1024).
        batch_tokens: Padded prompt tokens per forward pass (default by device type).
        show_progress: Progress bar on stderr: ``True``, ``False`` or ``None`` (only for long jobs
            when stderr is a terminal).

    Example:
        >>> from prism_core import PrismReranker
        >>> reranker = PrismReranker("infgrad/Prism-Qwen3.5-Reranker-0.8B")  # loads nothing yet
        >>> results = reranker.rerank("what is rust?", ["Rust is a language.", "Paris."])  # doctest: +SKIP
        >>> results[0].evidence  # doctest: +SKIP
    """

    backend = "prism"
    display_name = "Prism"
    capabilities = Capabilities(verdict=True, evidence=True)
    default_model = DEFAULT_MODEL
    default_max_length = 10240
    min_length_hint = 200  # the Qwen3.5 tokenizer; tests check it against the real one
    stop_strings = (EVIDENCE_CLOSE,)

    def template(self) -> PromptTemplate:
        """Prism's prompt (fixed: the model was trained on it)."""
        return PRISM_TEMPLATE

    def _generated_fields(self, generated: list[int] | None, document: str) -> dict[str, Any]:
        """Output processing for one document: parse the generated text, count the evidence's tokens
        and check the evidence against the caller's original ``document``
        (:func:`prism_core.check_grounding`: ``grounding``, ``unsupported``, ``evidence_spans``)."""
        tokenizer = self._model().tokenizer  # loaded by this call already: no load() per document
        raw = tokenizer.decode(generated, skip_special_tokens=True) if generated is not None else None
        parsed = parse_output(raw)
        evidence_tokens = None
        report = None
        if parsed.evidence is not None:
            assert self._prompts is not None
            evidence_tokens = self._prompts.count_tokens(parsed.evidence)
            report = check_grounding(document, parsed.evidence)
        return {
            "contribution": parsed.contribution,
            "evidence": parsed.evidence,
            "evidence_complete": parsed.complete,
            "raw_output": raw,
            "evidence_tokens": evidence_tokens,
            "grounding": None if report is None else report.score,
            "unsupported": None if report is None else report.unsupported,
            "evidence_spans": None if report is None else report.spans,
        }
