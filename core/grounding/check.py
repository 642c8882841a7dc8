"""The deterministic grounding check: is every verbatim item of an evidence passage in its document?

See :mod:`prism_core.grounding` for what is checked, how the score is computed and the blind spots.
Everything here is pure Python on two strings: no model, no network, no randomness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prism_core.grounding.alignment import MAX_WINDOW as MAX_WINDOW
from prism_core.grounding.alignment import MIN_ALIGNMENT as MIN_ALIGNMENT
from prism_core.grounding.alignment import _align
from prism_core.grounding.document import _Document
from prism_core.grounding.patterns import (
    _ACRONYM,
    _BACKTICK,
    _CHUNK,
    _CODE_SHAPE,
    _HAS_DIGIT,
    _HAS_LETTER,
    _JOINERS,
    _MIXED_CASE,
    _OPENERS,
    _SQUASH,
    _VERSION_LIKE,
    _WORD_CHAR,
)
from prism_core.grounding.sentences import _content_units
from prism_core.grounding.sentences import split_sentences as split_sentences
from prism_core.grounding.tables import (
    NOT_NAMES,
    STOPWORDS,
)
from prism_core.grounding.values import (
    _covered,
    _dates,
    _emails,
    _key,
    _nfkc,
    _Number,
    _number_values,
    _numbers,
    _times,
    _url_key,
    _urls,
)

__all__ = ["GroundingReport", "check_grounding", "split_sentences"]


# ---------------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class GroundingReport:
    """The outcome of :func:`check_grounding` for one evidence passage.

    Attributes:
        score: The support score in ``[0, 1]``: the share of the evidence's content units (word
            stems, character bigrams of scripts written without spaces, and verbatim items) found in
            the document. ``1.0`` for an evidence with no content unit.
        unsupported: The evidence's verbatim items the document does not contain, each as written in
            the evidence, in order of appearance, without repeats.
        items: Every verbatim item found in the evidence (supported or not), as written.
        spans: Per evidence sentence (in :func:`split_sentences` order), the ``(start, end)``
            character offsets of the document span that supports it, or ``None`` where alignment
            gave up.
        sentences: Per evidence sentence, its ``(start, end)`` offsets in the evidence.

    Example:
        >>> report = check_grounding("The tower is 330 metres tall.", "The tower is 512 m tall.")
        >>> report.unsupported, report.grounded
        (('512 m',), False)
    """

    score: float
    unsupported: tuple[str, ...]
    items: tuple[str, ...] = ()
    spans: tuple[tuple[int, int] | None, ...] = ()
    sentences: tuple[tuple[int, int], ...] = ()

    @property
    def grounded(self) -> bool:
        """``True`` when no verbatim item is unsupported."""
        return not self.unsupported


# ---------------------------------------------------------------------------------- the check


@dataclass
class _Evidence:
    text: str
    items: list[tuple[int, int, str, bool]] = field(default_factory=list)  # start, end, text, supported
    spans: list[tuple[int, int]] = field(default_factory=list)

    def add(self, start: int, end: int, text: str, supported: bool) -> None:
        self.items.append((start, end, text, supported))
        self.spans.append((start, end))


def _number_supported(n: _Number, doc: _Document) -> bool:
    keys = [_key(v) for v in n.values]
    if n.unit is None:
        if any(k in doc.values for k in keys):
            return True
    else:
        dim, factor = n.unit
        if any((dim, _key(v * factor)) in doc.with_unit for v in n.values):
            return True
        if any(k in doc.unitless for k in keys):
            return True
    return any(k in doc.number_words for k in keys)


def _term_supported(term: str, doc: _Document) -> bool:
    folded = _nfkc(term).casefold()
    if folded in doc.folded:
        return True
    squashed = _SQUASH.sub("", folded)
    return bool(squashed) and squashed in doc.squashed


def _acronym_supported(term: str, doc: _Document) -> bool:
    return _term_supported(term, doc) or (len(term) >= 2 and term.replace("&", "").casefold() in doc.initials)


def _scan(ev: _Evidence, doc: _Document, check_names: bool | None) -> bool | None:
    text = ev.text
    for start, end in _urls(text):
        url = text[start:end].rstrip(".,;:!?)]}»\"'")
        ev.add(start, start + len(url), url, _url_key(url) in _url_key_doc(doc))
    for start, end in _emails(text):
        if not _covered(start, ev.spans):
            address = text[start:end]
            ev.add(start, end, address, _nfkc(address).casefold() in doc.folded)
    for m in _BACKTICK.finditer(text):
        if not _covered(m.start(), ev.spans):
            code = m.group(1).strip()
            if not code:
                continue
            ok = _contains_code(doc.text, code) or _contains_code(doc.spaced, " ".join(code.split()))
            ev.add(m.start(), m.end(), m.group(0), ok)
    for start, end, raw, values in _dates(text, ev.spans):
        ev.items.append((start, end, raw, bool(values & doc.dates)))
    for start, end, raw, value in _times(text, ev.spans):
        ev.items.append((start, end, raw, value in doc.times))
    for n in _numbers(text, ev.spans):
        ok = _number_supported(n, doc)
        if not ok and n.spaced:
            parts = re.findall(r"\d+(?:[.,]\d+)?", n.raw)
            ok = all(any(_key(v) in doc.values for v in (_number_values(p) or ())) for p in parts)
        ev.add(n.start, n.end, n.text, ok)
    for m in _CHUNK.finditer(text):
        if _covered(m.start(), ev.spans):
            continue
        chunk = m.group(0)
        kind = _chunk_kind(chunk)
        if kind is None:
            if check_names is not False and _is_name(text, m.start(), chunk):
                if check_names is None:
                    check_names = not doc.capitalises_nouns
                folded = chunk.casefold()
                if check_names and folded not in NOT_NAMES and folded not in STOPWORDS:
                    ok = _term_supported(chunk, doc) or all(
                        doc.has_word_like(part) for part in re.split(r"[-'’.]", chunk) if part
                    )
                    ev.add(m.start(), m.end(), chunk, ok)
            continue
        if kind == "acronym":
            ok = _acronym_supported(chunk, doc)
        elif kind == "code":
            ok = _contains_code(doc.text, chunk)
        else:
            ok = _term_supported(chunk, doc)
        ev.add(m.start(), m.end(), chunk, ok)
    return check_names


def _contains_code(text: str, code: str) -> bool:
    """``code`` in ``text`` as a whole (``pip install prism`` is not in ``pip install prism-x``).

    An occurrence is part of a longer word when a word character touches it, or a joiner
    (``-_.:/'``) followed (or preceded) by a word character, as in the evidence's own chunks.
    """
    if not code:
        return True
    start = text.find(code)
    while start >= 0:
        end = start + len(code)
        glued_before = _WORD_CHAR.match(code[0]) and (
            (start >= 1 and _WORD_CHAR.match(text[start - 1]))
            or (start >= 2 and text[start - 1] in _JOINERS and _WORD_CHAR.match(text[start - 2]))
        )
        glued_after = _WORD_CHAR.match(code[-1]) and (
            (end < len(text) and _WORD_CHAR.match(text[end]))
            or (end + 1 < len(text) and text[end] in _JOINERS and _WORD_CHAR.match(text[end + 1]))
        )
        if not glued_before and not glued_after:
            return True
        start = text.find(code, start + 1)
    return False


def _url_key_doc(doc: _Document) -> set[str]:
    cached: set[str] | None = getattr(doc, "_urls", None)
    if cached is None:
        cached = {_url_key(doc.text[start:end]) for start, end in _urls(doc.text)}
        doc._urls = cached  # type: ignore[attr-defined]
    return cached


def _chunk_kind(chunk: str) -> str | None:
    """``"term"``, ``"code"``, ``"acronym"`` or ``None`` (an ordinary word) for one chunk."""
    if _HAS_DIGIT.search(chunk):
        if not _HAS_LETTER.search(chunk):
            return "term" if _VERSION_LIKE.fullmatch(chunk) or "." in chunk else None
        return "term"
    if _CODE_SHAPE.search(chunk):
        return "code"
    if _MIXED_CASE.search(chunk):
        return "term"
    if len(chunk) >= 2 and _ACRONYM.fullmatch(chunk):
        return "acronym"
    return None


def _is_name(text: str, start: int, chunk: str) -> bool:
    if not chunk[0].isupper() or len(chunk) < 2 or not chunk[1:2].islower():
        return False
    before = text[max(0, start - 3) : start].strip()
    return bool(before) and before[-1] not in _OPENERS


def check_grounding(document: str, evidence: str) -> GroundingReport:
    """Check an evidence rewrite against its document: verbatim items, a support score, source spans.

    Deterministic and model-free (see :mod:`prism_core.grounding` for the rules and blind spots).

    Args:
        document: The original document text.
        evidence: The evidence passage written from it.

    Returns:
        The :class:`GroundingReport`: ``score`` in ``[0, 1]``, ``unsupported`` items (as written in
        the evidence), every verbatim item, and per evidence sentence its supporting document span.

    Raises:
        TypeError: ``document`` or ``evidence`` is not a string.

    Example:
        >>> doc = "Die Brücke ist 1.083 Meter lang und wurde am 5. März 2024 eröffnet."
        >>> check_grounding(doc, "The bridge is 1,083 m long; it opened on 2024-03-05.").unsupported
        ()
        >>> check_grounding(doc, "The bridge is 1,380 m long.").unsupported
        ('1,380 m',)
    """
    if not isinstance(document, str):
        raise TypeError(f"document must be a str, got {type(document).__name__}")
    if not isinstance(evidence, str):
        raise TypeError(f"evidence must be a str, got {type(evidence).__name__}")
    doc = _Document(document)
    ev = _Evidence(evidence)
    _scan(ev, doc, None)
    ev.items.sort()
    unsupported = tuple(dict.fromkeys(t for _, _, t, ok in ev.items if not ok))
    # Content units outside the items, plus one unit per item.
    units: list[str] = []
    cursor = 0
    for start, end, _, _ in ev.items:
        if start >= cursor:
            units.extend(_content_units(evidence[cursor:start]))
            cursor = end
    units.extend(_content_units(evidence[cursor:]))
    total = len(units) + len(ev.items)
    found = sum(1 for u in units if u in doc.stems) + sum(1 for *_, ok in ev.items if ok)
    score = 1.0 if total == 0 else found / total
    sentences = split_sentences(evidence)
    spans = _align(doc, evidence, sentences)
    return GroundingReport(
        score=score,
        unsupported=unsupported,
        items=tuple(t for _, _, t, _ in ev.items),
        spans=spans,
        sentences=tuple(sentences),
    )
