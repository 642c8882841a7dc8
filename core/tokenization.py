"""Turning (query, document) into prompt token ids: exact, injection-proof, truncating.

The model card tokenizes the whole prompt string at once. Caller text inside that string could
then inject control tokens (``<|im_end|>``, ``<think>`` ...). Here the template's own special
tokens are spliced in as ids, and the caller's text is encoded by a copy of the tokenizer that has
no added vocabulary at all, so ``<|im_end|>`` written in a document becomes the plain characters
``<``, ``|``, ``im`` ... For ordinary text the ids are exactly the card's: the whole user segment
(instruction, query and document together) is encoded in one piece, as the card's tokenizer does
between two special tokens, so token boundaries around the query and the document are the same.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prism_core.prompt import INSTRUCTION, SYSTEM_PROMPT

logger = logging.getLogger(__name__)

_USER_HEAD = f"user\n<Instruct>: {INSTRUCTION}\n<Query>: "
_DOC_HEAD = "\n<Document>: "
# Trusted template pieces around the user segment; their special tokens are real control tokens.
_PREFIX = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>"
_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


@dataclass(frozen=True, slots=True)
class EncodedPrompt:
    """Prompt token ids of one document, and whether its document was cut to fit."""

    ids: list[int]
    truncated: bool


_PLAIN_CACHE: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_PLAIN_LOCK = threading.Lock()


def _plain_backend(tokenizer: Any) -> Any:
    """A copy of ``tokenizer``'s backend without any added (special or not) vocabulary.

    Built once per tokenizer object (a full vocabulary round trip through JSON takes a second).
    """
    from tokenizers import Tokenizer

    with _PLAIN_LOCK:
        plain = _PLAIN_CACHE.get(tokenizer)
        if plain is None:
            spec = json.loads(tokenizer.backend_tokenizer.to_str())
            spec["added_tokens"] = []
            spec["truncation"] = None
            spec["padding"] = None
            plain = _PLAIN_CACHE[tokenizer] = Tokenizer.from_str(json.dumps(spec))
        return plain


class PromptTokenizer:
    """Builds Prism prompt ids for a query and many documents.

    Args:
        tokenizer: The model's (fast) transformers tokenizer.
        max_length: Cap on prompt tokens; only the document is cut to respect it.

    Example:
        >>> pt = PromptTokenizer(tokenizer, max_length=10240)  # doctest: +SKIP
        >>> batch = pt.encode("what is rust?", ["Rust is a language."])  # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                f"a fast (tokenizers-backed) tokenizer is required, got {type(tokenizer).__name__}"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._plain = _plain_backend(tokenizer)
        self.prefix_ids: list[int] = tokenizer.encode(_PREFIX, add_special_tokens=False)
        self.suffix_ids: list[int] = tokenizer.encode(_SUFFIX, add_special_tokens=False)
        self.forbidden_ids = frozenset(int(i) for i in tokenizer.added_tokens_decoder)
        self.yes_id = int(tokenizer.encode("yes", add_special_tokens=False)[0])
        self.no_id = int(tokenizer.encode("no", add_special_tokens=False)[0])

    def plain_encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode caller text as plain text: no id of the added vocabulary can come out."""
        encodings = self._plain.encode_batch(list(texts), add_special_tokens=False)
        out = [e.ids for e in encodings]
        for ids in out:
            if self.forbidden_ids.intersection(ids):  # the BPE vocabulary itself holds a control token
                raise RuntimeError(
                    "plain encoding produced an added-vocabulary id; refusing to build the prompt"
                )
        return out

    def query_budget_check(self, query: str) -> int:
        """Return the number of prompt tokens without a document; ``ValueError`` if over budget."""
        fixed = len(self.prefix_ids) + len(self.plain_encode([_USER_HEAD + query + _DOC_HEAD])[0])
        fixed += len(self.suffix_ids)
        if fixed >= self.max_length:
            raise ValueError(
                f"the query alone needs {fixed} prompt tokens, which leaves no room for a document "
                f"within max_length={self.max_length}; shorten the query or raise max_length"
            )
        return fixed

    def encode(self, query: str, documents: Sequence[str]) -> list[EncodedPrompt]:
        """Prompt ids for each document, in input order, cutting documents to fit ``max_length``."""
        head = _USER_HEAD + query + _DOC_HEAD
        self.query_budget_check(query)
        segments = self.plain_encode([head + d for d in documents])
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        out: list[EncodedPrompt] = []
        n_cut = 0
        for doc, seg in zip(documents, segments, strict=True):
            truncated = len(seg) > budget
            if truncated:
                n_cut += 1
                seg = self._cut(head, doc, budget)
            out.append(EncodedPrompt(self.prefix_ids + seg + self.suffix_ids, truncated))
        if n_cut:
            logger.warning(
                "%d of %d documents were cut to fit max_length=%d prompt tokens",
                n_cut,
                len(documents),
                self.max_length,
            )
        return out

    def _cut(self, head: str, doc: str, budget: int) -> list[int]:
        """Encode ``head + doc`` and keep the head whole and as many document tokens as fit.

        The segment is re-encoded with offsets so the cut lands on document tokens only: the
        tokens that end inside ``head`` (the instruction and the query) are always kept.
        """
        enc = self._plain.encode(head + doc, add_special_tokens=False)
        ids: list[int] = enc.ids
        # Tokens entirely before the document: the query and instruction, never cut.
        n_head = sum(1 for _, end in enc.offsets if end <= len(head))
        keep = max(budget, n_head)
        return ids[:keep]
