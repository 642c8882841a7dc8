"""Tokenising (query, document) pairs exactly as ``CrossEncoder.predict`` does, one unpadded row per pair,
and reading long documents (cut or windowed) into rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

from prism_core.backends.long_documents import windows

#: Pairs tokenised per ``preprocess`` call (each chunk is padded to its own longest pair).
TOKENIZE_CHUNK = 64

Pair = tuple[str, str]

#: One document's model input: ``input_ids``, ``attention_mask``... as 1-D tensors without padding,
#: plus the non-tensor entries of sentence-transformers' features (``modality``).
Row = dict[str, Any]


def default_prompt(cross_encoder: Any) -> str | None:
    """The prompt ``CrossEncoder.predict`` applies when called without one (usually ``None``)."""
    name = getattr(cross_encoder, "default_prompt_name", None)
    return None if name is None else (getattr(cross_encoder, "prompts", None) or {}).get(name)


def encode_pairs(
    cross_encoder: Any, pairs: Sequence[Pair], max_length: int, *, chunk: int = TOKENIZE_CHUNK
) -> tuple[list[Row], list[int]]:
    """Tokenise ``pairs`` as ``CrossEncoder.predict`` would (``preprocess``: tokenizer, truncation to
    ``max_length``, default prompt) and cut the padded features into one unpadded row per pair.

    Not thread-safe on one tokenizer (transformers changes the fast tokenizer's truncation and
    padding settings per call): callers hold the loaded model's lock.

    Returns:
        The rows, and each row's length in tokens (at most ``max_length``).
    """
    prompt = default_prompt(cross_encoder)
    left = getattr(cross_encoder.tokenizer, "padding_side", "right") == "left"
    rows: list[Row | None] = [None] * len(pairs)
    lengths = [0] * len(pairs)
    # Chunks of pairs of similar length (by characters, as ``predict`` sorts): ``preprocess`` pads
    # each chunk to its longest pair before making tensors, and that padding is most of its cost.
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for start in range(0, len(order), chunk):
        positions = order[start : start + chunk]
        features = cross_encoder.preprocess(
            [pairs[i] for i in positions],
            prompt=prompt,
            processing_kwargs={"text": {"max_length": max_length}},
        )
        counts = features["attention_mask"].sum(dim=1).tolist()
        tensors = {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}
        extras = {k: v for k, v in features.items() if not isinstance(v, torch.Tensor)}
        for j, (i, n) in enumerate(zip(positions, counts, strict=True)):
            cut = slice(-n, None) if left else slice(0, n)
            rows[i] = {**{k: v[j, cut] for k, v in tensors.items()}, **extras}
            lengths[i] = int(n)
    return cast("list[Row]", rows), lengths


@dataclass(frozen=True)
class DocumentRows:
    """What a request's documents become: the texts of its rows (a document, a cut document, or one
    window of it), each row's document, its window's character span, and whether it was cut."""

    texts: list[str]
    owners: list[int]
    chunks: list[tuple[int, int] | None]
    cut: list[bool]


def document_rows(
    tokenizer: Any,
    query: str,
    docs: Sequence[str],
    max_length: int,
    max_tokens_per_doc: int | None,
    long_documents: str,
) -> DocumentRows:
    """The rows for ``docs`` (callers hold the tokenizer's lock).

    A document's budget is what ``max_length`` leaves after the query and the pair's special tokens,
    capped by ``max_tokens_per_doc``. ``"truncate"`` cuts a document over ``max_tokens_per_doc`` to
    it (a pair over ``max_length`` is still cut by the tokenizer, as before); ``"chunk"`` turns a
    document over its budget into overlapping windows (:mod:`prism_core.backends.long_documents`).
    Nothing changes for a call with neither option.
    """
    n = len(docs)
    plain = DocumentRows(list(docs), list(range(n)), [None] * n, [False] * n)
    if max_tokens_per_doc is None and long_documents != "chunk":
        return plain
    specials = int(tokenizer.num_special_tokens_to_add(pair=True))
    query_tokens = len(tokenizer(query, add_special_tokens=False, verbose=False)["input_ids"])
    room = max(1, max_length - specials - query_tokens)
    budget = room if max_tokens_per_doc is None else max(1, min(room, max_tokens_per_doc))
    encoded = tokenizer(list(docs), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    rows = DocumentRows([], [], [], [])
    for index, (doc, ids, offsets) in enumerate(
        zip(docs, encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ):
        spans: list[tuple[int, int] | None] = [None]
        text, cut = doc, False
        if len(ids) > budget:
            if long_documents == "chunk":
                spans = list(windows([tuple(o) for o in offsets], len(doc), budget))
            else:
                text, cut = doc[: offsets[budget - 1][1]], True
        for span in spans:
            rows.texts.append(text if span is None else doc[span[0] : span[1]])
            rows.owners.append(index)
            rows.chunks.append(span)
            rows.cut.append(cut)
    return rows


def untruncated_lengths(cross_encoder: Any, pairs: Sequence[Pair]) -> list[int]:
    """Tokens of each pair with truncation off (the same ``preprocess``; callers hold the lock)."""
    features = cross_encoder.preprocess(
        list(pairs),
        prompt=default_prompt(cross_encoder),
        processing_kwargs={"text": {"truncation": False, "verbose": False}},
    )
    return [int(n) for n in features["attention_mask"].sum(dim=1).tolist()]
