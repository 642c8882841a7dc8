"""Turning (query, document) into prompt token ids: exact, injection-proof, truncating.

A :class:`PromptTemplate` says where the trusted template text ends and the caller's text starts;
each backend's data contract (``prism_core.prism.prompt``, ``prism_core.qwen3.prompt``) defines one.
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
from dataclasses import dataclass, replace
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A reranker prompt, cut where the caller's text goes in.

    The prompt is ``prefix + query_head + query + doc_head + document + suffix``. ``prefix`` and
    ``suffix`` are encoded by the full tokenizer (their special tokens are real control tokens);
    ``query_head + query + doc_head + document`` is the *segment*, encoded in one piece as plain
    text, exactly as the model card's tokenizer encodes the text between two special tokens.

    Attributes:
        prefix: Trusted text before the segment.
        query_head: Trusted text that starts the segment, before the query.
        doc_head: Trusted text between the query and the document.
        suffix: Trusted text after the segment (ends where the verdict token comes next).
    """

    prefix: str
    query_head: str
    doc_head: str
    suffix: str

    def format(self, query: str, document: str) -> str:
        """The full prompt string, as a model card builds it."""
        return self.prefix + self.query_head + query + self.doc_head + document + self.suffix


@dataclass(frozen=True, slots=True)
class EncodedPrompt:
    """Prompt token ids of one document (or one window of it), and whether its text was cut to fit."""

    ids: list[int]
    truncated: bool
    document_tokens: int = 0  # the document (its kept part when cut) encoded on its own
    chunk: tuple[int, int] | None = None  # the window's [start, end) characters; None: read whole
    #: Leading ids set by the template and the query alone (the same for every document of a query:
    #: the engine runs them once per request); 0 when the document's first token merged into them.
    prefix_len: int = 0


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
    """Builds prompt ids for a query and many documents.

    Args:
        tokenizer: The model's (fast) transformers tokenizer.
        template: The backend's prompt.
        max_length: Cap on prompt tokens; only the document is cut to respect it.

    Raises:
        ValueError: ``max_length`` leaves no room for a one-token query and document; the message
            gives the minimum.

    Example:
        >>> from prism_core.prism.prompt import PRISM_TEMPLATE
        >>> pt = PromptTokenizer(tokenizer, PRISM_TEMPLATE, max_length=10240)  # doctest: +SKIP
        >>> batch = pt.encode("what is rust?", ["Rust is a language."])  # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, template: PromptTemplate, max_length: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(
                f"a fast (tokenizers-backed) tokenizer is required, got {type(tokenizer).__name__}"
            )
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self._plain = _plain_backend(tokenizer)
        self.prefix_ids: list[int] = tokenizer.encode(template.prefix, add_special_tokens=False)
        self.suffix_ids: list[int] = tokenizer.encode(template.suffix, add_special_tokens=False)
        self.forbidden_ids = frozenset(int(i) for i in tokenizer.added_tokens_decoder)
        self.yes_id, self.no_id = verdict_ids(tokenizer)
        if max_length < self.min_length:
            raise ValueError(
                f"max_length must be >= {self.min_length} for this prompt (its fixed part is "
                f"{self.min_length - 2} tokens, plus one token of query and one of document), "
                f"got {max_length}"
            )

    @property
    def min_length(self) -> int:
        """The smallest usable ``max_length``: the fixed prompt plus one query and one document token."""
        head = self.plain_encode([self.template.query_head + "q" + self.template.doc_head + "d"])[0]
        return len(self.prefix_ids) + len(head) + len(self.suffix_ids)

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

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` encoded as plain text (for accounting; never raises on odd text)."""
        return len(self._plain.encode(text, add_special_tokens=False).ids)

    def query_budget_check(self, query: str) -> int:
        """Return the number of prompt tokens without a document; ``ValueError`` if over budget."""
        head = self.template.query_head + query + self.template.doc_head
        fixed = len(self.prefix_ids) + len(self.plain_encode([head])[0])
        fixed += len(self.suffix_ids)
        if fixed >= self.max_length:
            raise ValueError(
                f"the query alone needs {fixed} prompt tokens, which leaves no room for a document "
                f"within max_length={self.max_length}; shorten the query or raise max_length"
            )
        return fixed

    def document_budget(self, query: str, max_tokens_per_doc: int | None = None) -> int:
        """Document tokens a prompt for ``query`` holds: what ``max_length`` leaves after the fixed
        prompt and the query, capped by ``max_tokens_per_doc``."""
        room = self.max_length - self.query_budget_check(query)
        return room if max_tokens_per_doc is None else max(1, min(room, max_tokens_per_doc))

    def encode(
        self, query: str, documents: Sequence[str], *, max_tokens_per_doc: int | None = None
    ) -> list[EncodedPrompt]:
        """Prompt ids for each document, in input order, cutting documents to fit ``max_length``
        (and to ``max_tokens_per_doc`` document tokens, when given)."""
        head = self.template.query_head + query + self.template.doc_head
        self.query_budget_check(query)
        segments = self.plain_encode([head + d for d in documents])
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        # The instruction and query: the tokens that end before the document (the head's last space
        # merges into the document's first token). With the template's prefix, they are the query's
        # prefix, the same ids for every document that does not merge further back.
        probe = self._plain.encode(head + "d", add_special_tokens=False)
        n_head = sum(1 for _, end in probe.offsets if end <= len(head))
        query_prefix = self.prefix_ids + probe.ids[:n_head]
        if max_tokens_per_doc is not None:
            # The segment holds the head and at most ``max_tokens_per_doc`` document tokens.
            budget = min(budget, n_head + max_tokens_per_doc)
        # Each document counted on its own (as an evidence passage is): "<Document>: " ends in a
        # space that merges into the document's first token inside the prompt.
        own = [len(e.ids) for e in self._plain.encode_batch(list(documents), add_special_tokens=False)]
        out: list[EncodedPrompt] = []
        n_cut = 0
        for doc, seg, count in zip(documents, segments, own, strict=True):
            truncated = len(seg) > budget
            if truncated:
                n_cut += 1
                seg, kept = self._cut(head, doc, budget)
                count = self.count_tokens(doc[:kept])
            ids = self.prefix_ids + seg + self.suffix_ids
            shared = len(query_prefix) if ids[: len(query_prefix)] == query_prefix else 0
            out.append(EncodedPrompt(ids, truncated, count, prefix_len=shared))
        if n_cut:
            logger.warning(
                "%d of %d documents were cut to fit max_length=%d prompt tokens",
                n_cut,
                len(documents),
                self.max_length,
            )
        return out

    def encode_long(
        self,
        query: str,
        documents: Sequence[str],
        *,
        max_tokens_per_doc: int | None = None,
        long_documents: str = "truncate",
    ) -> tuple[list[EncodedPrompt], list[int]]:
        """Prompts for ``documents`` read as ``long_documents`` says, and each prompt's document.

        ``"truncate"``: one prompt per document, cut to the budget (:meth:`encode`). ``"chunk"``: a
        document over the budget becomes several prompts, one per overlapping window
        (:func:`prism_core.backends.long_documents.windows`), each with its ``chunk`` offsets.

        Returns:
            The prompts, and for each the index of the document it reads (in input order).
        """
        if long_documents != "chunk":
            return self.encode(query, documents, max_tokens_per_doc=max_tokens_per_doc), list(
                range(len(documents))
            )
        from prism_core.backends.long_documents import windows

        budget = self.document_budget(query, max_tokens_per_doc)
        own = self._plain.encode_batch(list(documents), add_special_tokens=False)
        texts: list[str] = []
        owners: list[int] = []
        spans: list[tuple[int, int] | None] = []
        for index, (doc, enc) in enumerate(zip(documents, own, strict=True)):
            if len(enc.ids) <= budget:
                texts.append(doc)
                owners.append(index)
                spans.append(None)
                continue
            for start, end in windows(enc.offsets, len(doc), budget):
                texts.append(doc[start:end])
                owners.append(index)
                spans.append((start, end))
        prompts = self.encode(query, texts, max_tokens_per_doc=max_tokens_per_doc)
        out = [p if span is None else replace(p, chunk=span) for p, span in zip(prompts, spans, strict=True)]
        return out, owners

    def _cut(self, head: str, doc: str, budget: int) -> tuple[list[int], int]:
        """Encode ``head + doc`` and keep the head whole and as many document tokens as fit.

        The segment is re-encoded with offsets so the cut lands on document tokens only: the
        tokens that end inside ``head`` (the instruction and the query) are always kept.

        Returns:
            The kept ids, and how many characters of ``doc`` they cover.
        """
        enc = self._plain.encode(head + doc, add_special_tokens=False)
        ids: list[int] = enc.ids
        # Tokens entirely before the document: the query and instruction, never cut.
        n_head = sum(1 for _, end in enc.offsets if end <= len(head))
        keep = max(budget, n_head)
        kept_chars = max(enc.offsets[keep - 1][1] - len(head), 0) if keep else 0
        return ids[:keep], kept_chars


def verdict_ids(tokenizer: Any) -> tuple[int, int]:
    """Token ids of ``yes`` and ``no`` (the first token of each, as the model cards take them)."""
    yes = tokenizer.encode("yes", add_special_tokens=False)
    no = tokenizer.encode("no", add_special_tokens=False)
    return int(yes[0]), int(no[0])
