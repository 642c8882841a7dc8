"""Documents as strings or objects: the text the model reads, by ``rank_fields`` (Cohere v1 rules).

Example:
    >>> document_texts(["plain", {"title": "T", "text": "body"}], None)
    ['plain', 'body']
    >>> document_texts([{"title": "T", "text": "body"}], ["title", "text"])
    ['title: T\\ntext: body']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from prism_core.validation import check_text


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def document_texts(documents: Sequence[Any], rank_fields: Sequence[str] | None) -> list[str]:
    """The text of each document: a string as is; an object by ``rank_fields`` (default ``["text"]``).

    With one rank field (the default ``text``), an object's text is that field's value. With several,
    the object is read as ``"field: value"`` lines in ``rank_fields`` order (non-string values as
    compact JSON); fields an object lacks are skipped, but an object with none of them is refused.

    Args:
        documents: Strings or JSON objects.
        rank_fields: The object fields to read, or ``None`` for ``["text"]``.

    Raises:
        ValueError: An object without any of the fields, a blank or non-UTF-8 text, or an empty
            ``rank_fields``; the message names the document's position.
    """
    fields = ["text"] if rank_fields is None else list(rank_fields)
    if not fields:
        raise ValueError("rank_fields must name at least one field, got []")
    for position, field in enumerate(fields):
        if not isinstance(field, str) or not field:
            raise ValueError(f"rank_fields.{position} must be a non-empty string, got {field!r}")
    texts: list[str] = []
    for position, document in enumerate(documents):
        if isinstance(document, str):
            texts.append(document)
            continue
        present = [f for f in fields if document.get(f) is not None]
        if not present:
            raise ValueError(
                f"documents.{position}: an object document needs one of the rank_fields {fields} "
                f"(it has {sorted(document)[:10]}); pass rank_fields to name the fields to read"
            )
        if len(fields) == 1:
            text = _value_text(document[present[0]])
        else:
            text = "\n".join(f"{f}: {_value_text(document[f])}" for f in present)
        try:
            texts.append(check_text(text, f"documents.{position}"))
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc
    return texts


def echo_document(document: Any) -> dict[str, Any]:
    """What ``return_documents`` sends back: the original object, or ``{"text": ...}`` for a string."""
    return dict(document) if isinstance(document, dict) else {"text": document}
