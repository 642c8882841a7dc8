"""The deterministic grounding check: is every verbatim item of an evidence passage in its document?

See :mod:`prism_core.grounding` for what is checked, how the score is computed and the blind spots.
Everything here is pure Python on two strings: no model, no network, no randomness.
"""

from __future__ import annotations

import math
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from prism_core.grounding.tables import (
    MONTHS,
    MULTIPLIERS,
    NOT_NAMES,
    NUMBER_WORDS,
    PREFIX_CURRENCIES,
    STOPWORDS,
    UNITS,
)

__all__ = ["GroundingReport", "check_grounding", "split_sentences"]

# ---------------------------------------------------------------------------------- patterns
_LATIN_ETC = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0e7f"
_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'`]+|www\.[^\s<>\"'`]+", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_BACKTICK = re.compile(r"`([^`\n]+)`")
_MONTH_ALT = "|".join(sorted((re.escape(m) for m in MONTHS), key=len, reverse=True))
_ORD = r"(?:st|nd|rd|th|er|e|\.|º)?"
_DATES = (
    # kind, pattern: groups are named y, m (number), mn (month name), d
    re.compile(r"(?<!\d)(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<![\d.])(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<y>\d{4}|\d{2})(?![\d])"),
    re.compile(r"(?P<y>\d{4})\s*[年년]\s*(?P<m>\d{1,2})\s*[月월](?:\s*(?P<d>\d{1,2})\s*[日일])?"),
    re.compile(
        rf"(?<!\w)(?P<d>\d{{1,2}}){_ORD}\s+(?:of\s+|de\s+)?(?P<mn>{_MONTH_ALT})\.?(?:\s+de)?,?\s+(?P<y>\d{{4}})(?!\d)",
        re.I,
    ),
    re.compile(rf"(?<!\w)(?P<mn>{_MONTH_ALT})\.?\s+(?P<d>\d{{1,2}}){_ORD},?\s+(?P<y>\d{{4}})(?!\d)", re.I),
    re.compile(rf"(?<!\w)(?P<mn>{_MONTH_ALT})\.?\s+(?:de\s+|of\s+)?(?P<y>\d{{4}})(?!\d)", re.I),
    re.compile(rf"(?<!\w)(?P<d>\d{{1,2}}){_ORD}\s+(?:of\s+|de\s+)?(?P<mn>{_MONTH_ALT})(?![{_LATIN_ETC}])", re.I),
    re.compile(rf"(?<!\w)(?P<mn>{_MONTH_ALT})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?![\w:])", re.I),
)
_TIME = re.compile(r"(?<![\d:.])(?P<h>\d{1,2})[:h](?P<mi>\d{2})(?::\d{2})?(?:\s?(?P<ap>[ap])\.?m\.?)?(?![\d:])", re.I)


def _alt(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_UNIT_ALT = _alt(list(UNITS))
_MULT_ALT = _alt(list(MULTIPLIERS))
_PREFIX_ALT = _alt(list(PREFIX_CURRENCIES))
_NUMBER = re.compile(
    rf"(?<![{_LATIN_ETC}\d_.,])(?<![{_LATIN_ETC}]-)"
    rf"(?:(?P<cur>{_PREFIX_ALT})[ \u00a0]?)?"
    r"(?P<num>\d{1,3}(?:[ \u00a0\u202f'’]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)*)"
    rf"(?P<ord>st|nd|rd|th)?"
    rf"(?:[ \u00a0\u202f]?(?P<mult>{_MULT_ALT}))?"
    rf"(?:[ \u00a0\u202f]?(?P<unit>{_UNIT_ALT}))?"
    rf"(?![{_LATIN_ETC}\d_])",
    re.I,
)
# A "chunk": word characters joined by - _ . : / ' (B-52, os.path.join, COVID-19, state-of-the-art).
_CHUNK = re.compile(rf"[^\W{_CJK_RANGES}](?:[^\W{_CJK_RANGES}]|[-_.:/'’](?=[^\W{_CJK_RANGES}]))*(?:\(\))?")
_CJK = re.compile(rf"[{_CJK_RANGES}]+")
_CJK_CHAR = re.compile(rf"[{_CJK_RANGES}]")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(rf"[{_LATIN_ETC}]")
_MIXED_CASE = re.compile(r"[a-z][A-Z]|[A-Z][a-z]+[A-Z]")
_ACRONYM = re.compile(r"[A-Z\u0400-\u042f\u0391-\u03a9][A-Z\u0400-\u042f\u0391-\u03a9&]+")
_CODE_SHAPE = re.compile(r"[A-Za-z]\w*_\w|\w\(\)$|[A-Za-z]\w+(?:\.|::)[A-Za-z]\w+")
_SQUASH = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?;])[\"'”’»)]*\s+|(?<=[。！？；])|\n\s*")
_OPENERS = frozenset(".!?:;\"'“«(\n-•*>#|。！？")
_VERSION_LIKE = re.compile(r"\d+(?:\.\d+){2,}")

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


# ---------------------------------------------------------------------------------- numbers


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _key(value: float) -> str:
    return f"{value:.9g}"


def _number_values(raw: str) -> tuple[float, ...] | None:
    """Candidate values of a written number (``1,083`` → 1083 and 1.083); ``None`` when malformed."""
    text = _nfkc(raw).replace("\u00a0", " ").replace("\u202f", " ").replace("’", "'")
    seps = [c for c in text if not c.isdigit()]
    if not seps:
        return (float(text),)
    kinds = list(dict.fromkeys(seps))
    if len(kinds) == 1:
        sep = kinds[0]
        parts = text.split(sep)
        grouped = all(len(p) == 3 for p in parts[1:]) and 1 <= len(parts[0]) <= 3
        if sep in " '":
            return (float("".join(parts)),) if grouped else None
        if len(parts) > 2:
            return (float("".join(parts)),) if grouped else None
        decimal = float(f"{parts[0]}.{parts[1]}")
        if grouped and parts[0] != "0":
            return (float("".join(parts)), decimal)
        return (decimal,)
    if len(kinds) == 2 and seps.count(kinds[1]) == 1 and text.rfind(kinds[1]) > text.rfind(kinds[0]):
        whole, _, fraction = text.rpartition(kinds[1])
        groups = whole.split(kinds[0])
        if all(len(p) == 3 for p in groups[1:]) and 1 <= len(groups[0]) <= 3:
            return (float("".join(groups) + "." + fraction),)
    return None


@dataclass(frozen=True, slots=True)
class _Number:
    text: str
    start: int
    end: int
    values: tuple[float, ...]  # precise: the written value times its scale word
    bare: tuple[float, ...]  # the written value without its scale word
    unit: tuple[str, float] | None
    raw: str = ""  # the digits and separators only

    @property
    def spaced(self) -> bool:
        """Grouped by spaces (``12 345``): perhaps two numbers side by side."""
        return any(c in self.raw for c in " \u00a0\u202f")


def _numbers(text: str, spans: list[tuple[int, int]]) -> Iterator[_Number]:
    for m in _NUMBER.finditer(text):
        if _covered(m.start(), spans):
            continue
        raw = m.group("num")
        values = _number_values(raw)
        start, end = m.start(), m.end()
        if values is None:
            if "," in raw and "." not in raw:  # a list written without spaces: 1,2,3
                offset = m.start("num")
                for part in re.finditer(r"\d+", raw):
                    value = (float(part.group(0)),)
                    yield _Number(part.group(0), offset + part.start(), offset + part.end(), value, value, None)
            continue  # 192.168.0.1 and 3.12.1 are left to the chunk stage (terms)
        mult = m.group("mult")
        scale = MULTIPLIERS[_nfkc(mult).lower()] if mult else 1.0
        unit_text = m.group("cur") or m.group("unit")
        unit = UNITS.get(_nfkc(unit_text).lower()) if unit_text else None
        yield _Number(
            text[start:end].strip(),
            start,
            end,
            tuple(v * scale for v in values),
            values,
            unit,
            raw,
        )


# ---------------------------------------------------------------------------------- dates and times


def _year(raw: str) -> int:
    y = int(raw)
    return y if len(raw) == 4 else (2000 + y if y < 50 else 1900 + y)


def _valid(y: int | None, m: int, d: int | None) -> bool:
    return 1 <= m <= 12 and (d is None or 1 <= d <= 31)


def _dates(text: str, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int, str, frozenset[tuple]]]:
    for pattern in _DATES:
        for m in pattern.finditer(text):
            if _covered(m.start(), spans) or _covered(m.end() - 1, spans):
                continue
            g = m.groupdict()
            values: set[tuple] = set()
            y = _year(g["y"]) if g.get("y") else None
            if g.get("a"):
                a, b = int(g["a"]), int(g["b"])
                for mo, d in ((b, a), (a, b)):
                    if _valid(y, mo, d):
                        values.add((y, mo, d))
            else:
                mo = int(g["m"]) if g.get("m") else MONTHS[_nfkc(g["mn"]).lower().rstrip(".")]
                d = int(g["d"]) if g.get("d") else None
                if _valid(y, mo, d):
                    values.add((y, mo, d))
            if values:
                spans.append((m.start(), m.end()))
                yield m.start(), m.end(), m.group(0), frozenset(values)


def _times(text: str, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int, str, tuple[int, int]]]:
    for m in _TIME.finditer(text):
        if _covered(m.start(), spans):
            continue
        h, mi = int(m.group("h")), int(m.group("mi"))
        ap = (m.group("ap") or "").lower()
        if ap == "p" and h < 12:
            h += 12
        elif ap == "a" and h == 12:
            h = 0
        if h < 24 and mi < 60:
            spans.append((m.start(), m.end()))
            yield m.start(), m.end(), m.group(0), (h, mi)


def _covered(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= position < e for s, e in spans)


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


def _stem(word: str) -> str:
    return word[:5]


def _content_units(text: str) -> list[str]:
    """Content units of a text (casefolded): word stems (no stopwords, 3+ letters) and CJK bigrams."""
    folded = text.casefold()
    units = [_stem(w) for w in _WORD.findall(folded) if len(w) > 2 and w not in STOPWORDS and not _CJK_CHAR.match(w)]
    for run in _CJK.findall(folded):
        if len(run) == 1:
            units.append(run)
        else:
            units.extend(run[i : i + 2] for i in range(len(run) - 1))
    return units


# ---------------------------------------------------------------------------------- the document


class _Document:
    """What the check needs to know about the document, each part computed on first use."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def folded(self) -> str:
        return _nfkc(self.text).casefold()

    @cached_property
    def squashed(self) -> str:
        return _SQUASH.sub("", self.folded)

    @cached_property
    def spaced(self) -> str:
        return " ".join(self.text.split())

    @cached_property
    def _parsed(self) -> tuple[set[str], set[tuple[str, str]], set[str], set[tuple], set[tuple[int, int]]]:
        spans: list[tuple[int, int]] = []
        dates: set[tuple] = set()
        values: set[str] = set()
        for _, _, _, vals in _dates(self.text, spans):
            for y, mo, d in vals:
                dates.update({(y, mo, d), (y, mo, None), (None, mo, d)})
                for part in (y, d):
                    if part is not None:
                        values.add(_key(float(part)))
        times = {t for _, _, _, t in _times(self.text, spans)}
        with_unit: set[tuple[str, str]] = set()
        unitless: set[str] = set()
        for n in _numbers(self.text, spans):
            keys = {_key(v) for v in (*n.values, *n.bare)}
            values |= keys
            if n.unit is None:
                unitless |= keys
            else:
                dim, factor = n.unit
                with_unit.update((dim, _key(v * factor)) for v in (*n.values, *n.bare))
            if n.spaced:
                for part in re.findall(r"\d+(?:[.,]\d+)?", n.raw):
                    for v in _number_values(part) or ():
                        values.add(_key(v))
                        unitless.add(_key(v))
        for word in self.words:
            if word in NUMBER_WORDS:
                values.add(_key(float(NUMBER_WORDS[word])))
                unitless.add(_key(float(NUMBER_WORDS[word])))
        return values, with_unit, unitless, dates, times

    @property
    def values(self) -> set[str]:
        return self._parsed[0]

    @property
    def with_unit(self) -> set[tuple[str, str]]:
        return self._parsed[1]

    @property
    def unitless(self) -> set[str]:
        return self._parsed[2]

    @property
    def dates(self) -> set[tuple]:
        return self._parsed[3]

    @property
    def times(self) -> set[tuple[int, int]]:
        return self._parsed[4]

    @cached_property
    def words(self) -> list[str]:
        return _WORD.findall(self.folded)

    @cached_property
    def sorted_words(self) -> list[str]:
        return sorted(set(self.words))

    @cached_property
    def stems(self) -> set[str]:
        return set(_content_units(self.text))

    @cached_property
    def initials(self) -> str:
        return "".join(w[0] for w in self.words if w not in STOPWORDS)

    @cached_property
    def capitalised_share(self) -> float:
        return _capitalised_share(self.text)

    def has_word_like(self, word: str) -> bool:
        """A document word equal to ``word`` or sharing its first ``max(4, ⌈0.75·len⌉)`` letters."""
        folded = word.casefold()
        prefix = folded[: max(4, math.ceil(0.75 * len(folded)))]
        words = self.sorted_words
        i = bisect_left(words, prefix)
        return i < len(words) and words[i].startswith(prefix)


def _capitalised_share(text: str) -> float:
    """Share of mid-sentence words written with a capital (about 0.05 in English prose, 0.3 in German)."""
    mid = caps = 0
    previous = "\n"
    for m in _WORD.finditer(text):
        word = m.group(0)
        before = text[max(0, m.start() - 3) : m.start()].strip() or previous
        if before and before[-1] not in _OPENERS:
            mid += 1
            caps += word[0].isupper()
        previous = "x"
    return caps / mid if mid >= 8 else 0.0


# ---------------------------------------------------------------------------------- the check


@dataclass
class _Evidence:
    text: str
    items: list[tuple[int, int, str, bool]] = field(default_factory=list)  # start, end, text, supported
    spans: list[tuple[int, int]] = field(default_factory=list)

    def add(self, start: int, end: int, text: str, supported: bool) -> None:
        self.items.append((start, end, text, supported))
        self.spans.append((start, end))


def _url_key(url: str) -> str:
    url = _nfkc(url).casefold().rstrip(".,;:!?)]}»\"'")
    url = re.sub(r"^(?:https?|ftp)://", "", url)
    return url.removeprefix("www.").rstrip("/")


def _number_supported(n: _Number, doc: _Document) -> bool:
    if n.unit is None:
        return any(_key(v) in doc.values for v in n.values)
    dim, factor = n.unit
    if any((dim, _key(v * factor)) in doc.with_unit for v in n.values):
        return True
    return any(_key(v) in doc.unitless for v in n.values)


def _term_supported(term: str, doc: _Document) -> bool:
    folded = _nfkc(term).casefold()
    if folded in doc.folded:
        return True
    squashed = _SQUASH.sub("", folded)
    return bool(squashed) and squashed in doc.squashed


def _acronym_supported(term: str, doc: _Document) -> bool:
    return _term_supported(term, doc) or (
        len(term) >= 2 and term.replace("&", "").casefold() in doc.initials
    )


def _scan(ev: _Evidence, doc: _Document, check_names: bool | None) -> bool | None:
    text = ev.text
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".,;:!?)]}»\"'")
        key = _url_key(url)
        ev.add(m.start(), m.start() + len(url), url, key in _url_key_doc(doc))
    for m in _EMAIL.finditer(text):
        if not _covered(m.start(), ev.spans):
            ev.add(m.start(), m.end(), m.group(0), _nfkc(m.group(0)).casefold() in doc.folded)
    for m in _BACKTICK.finditer(text):
        if not _covered(m.start(), ev.spans):
            code = m.group(1).strip()
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
                    check_names = doc.capitalised_share < 0.2 and _capitalised_share(text) < 0.25
                if check_names and chunk.casefold() not in NOT_NAMES:
                    ev.add(m.start(), m.end(), chunk, doc.has_word_like(chunk))
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
    """``code`` in ``text`` as a whole (``pip install prism`` is not in ``pip install prism-x``)."""
    start = text.find(code)
    while start >= 0:
        end = start + len(code)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (code[0].isalnum() and (before.isalnum() or before in "_-")) and not (
            code[-1].isalnum() and (after.isalnum() or after in "_-")
        ):
            return True
        start = text.find(code, start + 1)
    return False


def _url_key_doc(doc: _Document) -> set[str]:
    cached: set[str] | None = getattr(doc, "_urls", None)
    if cached is None:
        cached = {_url_key(m.group(0)) for m in _URL.finditer(doc.text)}
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
    spans = _align(document, evidence, sentences, ev.items)
    return GroundingReport(
        score=score,
        unsupported=unsupported,
        items=tuple(t for _, _, t, _ in ev.items),
        spans=spans,
        sentences=tuple(sentences),
    )


# ---------------------------------------------------------------------------------- alignment

#: An evidence sentence is aligned only when at least this share of its units is found in one window.
MIN_ALIGNMENT = 0.3
#: The most consecutive document sentences one evidence sentence may be aligned to.
MAX_WINDOW = 3


def _sentence_units(text: str) -> set[str]:
    units = set(_content_units(text))
    units.update("#" + k for k in re.findall(r"\d+", text))
    return units


def _align(
    document: str,
    evidence: str,
    sentences: list[tuple[int, int]],
    items: list[tuple[int, int, str, bool]],
) -> tuple[tuple[int, int] | None, ...]:
    doc_sentences = split_sentences(document)
    doc_units = [_sentence_units(document[s:e]) for s, e in doc_sentences]
    out: list[tuple[int, int] | None] = []
    for s, e in sentences:
        units = _sentence_units(evidence[s:e])
        if not units or not doc_units:
            out.append(None)
            continue
        hits = [units & u for u in doc_units]
        best: tuple[int, int, int] | None = None  # covered, start, width
        for i in range(len(doc_units)):
            if not hits[i]:
                continue
            covered: set[str] = set()
            for width in range(1, min(MAX_WINDOW, len(doc_units) - i) + 1):
                extra = hits[i + width - 1]
                if width > 1 and not (extra - covered):
                    break
                covered |= extra
                if best is None or len(covered) > best[0]:
                    best = (len(covered), i, width)
        if best is None or best[0] < MIN_ALIGNMENT * len(units):
            out.append(None)
            continue
        _, i, width = best
        out.append((doc_sentences[i][0], doc_sentences[i + width - 1][1]))
    return tuple(out)
