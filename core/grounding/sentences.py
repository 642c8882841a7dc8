"""Sentence splitting and the content units (word stems, CJK bigrams) the support score counts."""

from __future__ import annotations

from prism_core.grounding.patterns import _CJK, _DIGITS, _SENTENCE_END, _UNIT_WORD
from prism_core.grounding.tables import (
    STOPWORDS,
)

# ---------------------------------------------------------------------------------- sentences


def split_sentences(text: str) -> list[tuple[int, int]]:
    """The sentences of ``text`` as ``(start, end)`` character offsets, whitespace trimmed.

    A sentence ends at ``.``, ``!``, ``?`` or ``;`` followed by whitespace, at ``。！？；`` (no
    space needed), and at a line break. Decimal points (``3.14``) do not end a sentence;
    abbreviations followed by a space (``e.g. this``) do.

    Example:
        >>> text = "Rust is fast. It is safe!"
        >>> [text[s:e] for s, e in split_sentences(text)]
        ['Rust is fast.', 'It is safe!']
    """
    out: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        _add_sentence(text, start, m.start(), out)
        start = m.end()
    _add_sentence(text, start, len(text), out)
    return out


def _add_sentence(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append((start, end))


# ---------------------------------------------------------------------------------- units of content


def _content_units(text: str, digits: bool = False) -> list[str]:
    """Content units of a text (casefolded): stems of words of 3+ letters that are not stopwords,
    character bigrams of runs in scripts without spaces and, with ``digits``, digit runs (``#330``)."""
    folded = text.casefold()
    units = [w[:5] for w in _UNIT_WORD.findall(folded) if w not in STOPWORDS]
    for run in _CJK.findall(folded):
        if len(run) == 1:
            units.append(run)
        else:
            units.extend(run[i : i + 2] for i in range(len(run) - 1))
    if digits:
        units.extend("#" + d for d in _DIGITS.findall(folded))
    return units


def _sentence_units(text: str) -> set[str]:
    return set(_content_units(text, digits=True))
