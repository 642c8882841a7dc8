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
from typing import Any

from prism_core.grounding.tables import (
    GERMAN_MARKERS,
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
_EMAIL_LOCAL = re.compile(r"(?<![\w.+-])[\w.+-]+$")
_EMAIL_DOMAIN = re.compile(r"@[\w-]+(?:\.[\w-]+)+")
_SCHEME_BEFORE = re.compile(r"(?<![a-z])(?:https?|ftp)$")
_BACKTICK = re.compile(r"`([^`\n]+)`")
_MN = r"(?P<mn>(?<![^\W\d_])[^\W\d_]{3,10})"  # a month name: checked against MONTHS after the match (fast)
_ORD = r"(?:st|nd|rd|th|er|e|\.|º)?"
# Dates starting at a digit run, one alternative per form; group names end in the form's number.
_DATE_AT_DIGIT = re.compile(
    r"(?<!\d)(?P<y0>\d{4})[-/.](?P<m0>\d{1,2})[-/.](?P<d0>\d{1,2})(?!\d)"
    r"|(?<![\d.])(?P<a1>\d{1,2})[-/.](?P<b1>\d{1,2})[-/.](?P<y1>\d{4}|\d{2})(?!\d)"
    r"|(?P<y2>\d{4})\s*[年년]\s*(?P<m2>\d{1,2})\s*[月월](?:\s*(?P<d2>\d{1,2})\s*[日일])?"
    rf"|(?P<d3>\d{{1,2}}){_ORD}\s+(?:of\s+|de\s+)?(?P<mn3>[^\W\d_]{{3,10}})"
    rf"(?:\.?(?:\s+de)?,?\s+(?P<y3>\d{{4}})(?!\d))?(?![{_LATIN_ETC}])"
)
# Dates starting with a month name, tried at the word before a digit run.
_DATE_MONTH_FIRST = re.compile(
    r"(?P<mn4>[^\W\d_]{3,10})\.?\s+(?:(?:de\s+|of\s+)?(?P<y4>\d{4})(?!\d)"
    r"|(?P<d4>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<y5>\d{4})(?!\d))?(?![\w:]))"
)
_DIGIT_RUN = re.compile(r"(?<!\d)\d+")
_WORD_BEFORE = re.compile(r"(?<![^\W\d_])([^\W\d_]{3,10})\.?\s+(?:de\s+|of\s+)?$")
_WORD_AFTER = re.compile(r"(?:st|nd|rd|th|er|e|\.|º)?\s+(?:of\s+|de\s+)?([^\W\d_]{3,10})")
_WORD_CHAR = re.compile(rf"[^\W{_CJK_RANGES}]")  # a chunk character (CJK text around code is not)
_JOINERS = "-_.:/'’"
_LATIN_OR_DIGIT = re.compile(rf"[{_LATIN_ETC}\d_]")
_TIME = re.compile(
    r"(?<![\d:.])(?P<h>\d{1,2})[:h](?P<mi>\d{2})(?::\d{2})?(?:\s?(?P<ap>[ap])\.?m\.?)?(?![\d:])", re.I
)


def _alt(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_PREFIX_ALT = _alt(list(PREFIX_CURRENCIES))
_CURRENCY_BEFORE = re.compile(rf"(?:{_PREFIX_ALT})[ \u00a0]?$", re.I)
_NUMBER = re.compile(
    rf"\d(?<![{_LATIN_ETC}\d_.,]\d)(?<![{_LATIN_ETC}]-\d)"
    r"(?:\d{0,2}(?:[ \u00a0\u202f'’]\d{3})+(?:[.,]\d+)?|\d*(?:[.,]\d+)*)"
)
_ORDINAL = re.compile(r"(?:st|nd|rd|th)(?![^\W\d_])")
# A unit or scale word after a number: a word (with a final dot: Mio.), a symbol, or a compound (km/h, m²).
_TAIL = re.compile(
    rf"[%°℃℉$€£¥₹]+[^\W\d_{_CJK_RANGES}]?|[{_CJK_RANGES}]+"
    rf"|[^\W\d_{_CJK_RANGES}]+(?:/[^\W\d_{_CJK_RANGES}]+|²|\.)?"
)
# A "chunk": word characters joined by - _ . : / ' (B-52, os.path.join, COVID-19, state-of-the-art).
_CHUNK = re.compile(rf"[^\W{_CJK_RANGES}](?:[^\W{_CJK_RANGES}]|[-_.:/'’](?=[^\W{_CJK_RANGES}]))*(?:\(\))?")
_CJK = re.compile(rf"[{_CJK_RANGES}]+")
_CJK_CHAR = re.compile(rf"[{_CJK_RANGES}]")
_UNIT_WORD = re.compile(rf"[^\W\d_{_CJK_RANGES}\u3040-\U0010ffff]{{3,}}")
_DIGITS = re.compile(r"\d+")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(rf"[{_LATIN_ETC}]")
_MIXED_CASE = re.compile(r"[a-z][A-Z]|[A-Z][a-z]+[A-Z]")
_ACRONYM = re.compile(r"[A-Z\u0400-\u042f\u0391-\u03a9][A-Z\u0400-\u042f\u0391-\u03a9&]+")
_CODE_SHAPE = re.compile(r"[A-Za-z]\w*_\w|\w\(\)$|[A-Za-z]\w+(?:\.|::)[A-Za-z]\w+")
_SQUASH = re.compile(r"[\W_]+")
_WORD = re.compile(rf"[^\W\d_{_CJK_RANGES}]+(?:['’][^\W\d_{_CJK_RANGES}]+)?")
_MID_INITIAL = re.compile(r"[^\s.!?:;\"'“«(•*>#|。！？-][ \t]+([^\W\d_])")
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
    if raw.isdigit():
        return (float(raw),)
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


def _tail_word(text: str, pos: int, table: dict[str, float] | dict[str, tuple[str, float]]) -> int:
    """End of the scale word or unit of ``table`` that starts at ``pos`` (after one optional space), else -1.

    A word in a script with spaces must be whole (``5 men`` has no unit ``m``) and two-word units
    (``per cent``) are tried first; in scripts without spaces the longest known prefix counts
    (``333米高``).
    """
    if pos < len(text) and text[pos] in " \u00a0\u202f":
        pos += 1
    m = _TAIL.match(text, pos)
    if m is None:
        return -1
    token = m.group(0)
    if _CJK_CHAR.match(token):
        for size in range(min(len(token), 6), 0, -1):
            if token[:size] in table:
                return pos + size
        return -1
    nxt = _TAIL.match(text, m.end() + 1) if m.end() < len(text) and text[m.end()] == " " else None
    if nxt is not None and _nfkc(f"{token} {nxt.group(0)}").lower() in table:
        return nxt.end()
    folded = _nfkc(token).lower()
    if folded in table:
        return m.end()
    if folded.endswith(".") and folded[:-1] in table:
        return m.end() - 1
    return -1


def _lookup(table: dict[str, Any], word: str) -> Any:
    key = _nfkc(word.strip()).lower()
    return table[key] if key in table else table[key.rstrip(".")]


def _numbers(text: str, spans: list[tuple[int, int]]) -> Iterator[_Number]:
    for m in _NUMBER.finditer(text):
        if _covered(m.start(), spans):
            continue
        raw = m.group(0)
        values = _number_values(raw)
        start, end = m.start(), m.end()
        if values is None:
            if "," in raw and "." not in raw:  # a list written without spaces: 1,2,3
                for part in re.finditer(r"\d+", raw):
                    value = (float(part.group(0)),)
                    yield _Number(part.group(0), start + part.start(), start + part.end(), value, value, None)
            continue  # 192.168.0.1 and 3.12.1 are left to the chunk stage (terms)
        ordinal = _ORDINAL.match(text, end)
        if ordinal is not None:
            end = ordinal.end()
        scale = 1.0
        after = _tail_word(text, end, MULTIPLIERS)
        if after >= 0:
            scale = _lookup(MULTIPLIERS, text[end:after])
            end = after
        unit_end = _tail_word(text, end, UNITS)
        unit_text: str | None = None
        if unit_end >= 0:
            unit_text, end = text[end:unit_end].strip(), unit_end
        if end < len(text) and _LATIN_OR_DIGIT.match(text, end):
            continue  # 3D, 5x: a term, not a number
        currency = _CURRENCY_BEFORE.search(text, max(0, start - 4), start)
        if currency is not None:
            start = currency.start()
            unit_text = currency.group(0).strip()
        unit = _lookup(UNITS, unit_text) if unit_text else None
        yield _Number(text[start:end], start, end, tuple(v * scale for v in values), values, unit, raw)


# ---------------------------------------------------------------------------------- dates and times


def _year(raw: str) -> int:
    y = int(raw)
    return y if len(raw) == 4 else (2000 + y if y < 50 else 1900 + y)


def _valid(y: int | None, m: int, d: int | None) -> bool:
    return 1 <= m <= 12 and (d is None or 1 <= d <= 31)


def _date_value(m: re.Match[str], text: str) -> frozenset[tuple] | None:
    if m.start() and _LATIN_OR_DIGIT.match(text, m.start() - 1):
        return None
    g = {k[:-1]: v for k, v in m.groupdict().items() if v is not None}
    if g.get("mn") is not None and _nfkc(g["mn"]).lower() not in MONTHS:
        return None
    values: set[tuple] = set()
    y = _year(g["y"]) if g.get("y") else None
    if g.get("a"):
        a, b = int(g["a"]), int(g["b"])
        values.update((y, mo, d) for mo, d in ((b, a), (a, b)) if _valid(y, mo, d))
    else:
        mo = int(g["m"]) if g.get("m") else MONTHS[_nfkc(g["mn"]).lower()]
        d = int(g["d"]) if g.get("d") else None
        if _valid(y, mo, d):
            values.add((y, mo, d))
    return frozenset(values) if values else None


def _may_start_date(text: str, end: int, size: int) -> bool:
    """Cheap test: can a date start at a digit run of ``size`` digits ending at ``end``?"""
    nxt = text[end : end + 1]
    if nxt in ("-", "/", ".") and text[end + 1 : end + 2].isdigit():
        return True
    if size == 4:
        return bool(nxt) and (nxt in "年년" or (nxt == " " and text[end + 1 : end + 2] in ("年", "년")))
    if size <= 2:
        word = _WORD_AFTER.match(text, end)
        return word is not None and word.group(1).lower() in MONTHS
    return False


def _dates(text: str, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int, str, frozenset[tuple]]]:
    """Dates in ``text``, tried only at digit runs (month first: at the word before the run)."""
    end = 0
    for digit in _DIGIT_RUN.finditer(text):
        pos = digit.start()
        if pos < end or (spans and _covered(pos, spans)):
            continue
        m: re.Match[str] | None = None
        values = None
        if pos > 3 and text[pos - 1].isspace():
            word = _WORD_BEFORE.search(text, max(0, pos - 20), pos)
            if word is not None and word.start() >= end and word.group(1).lower() in MONTHS:
                m = _DATE_MONTH_FIRST.match(text, word.start())
                values = _date_value(m, text) if m is not None else None
        if values is None and _may_start_date(text, digit.end(), digit.end() - pos):
            m = _DATE_AT_DIGIT.match(text, pos)
            values = _date_value(m, text) if m is not None else None
        if m is not None and values is not None:
            end = m.end()
            spans.append((m.start(), end))
            yield m.start(), end, m.group(0), values


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
    def _parsed(self) -> tuple[set[str], set[tuple[str, str]], set[str], set[tuple]]:
        # the evidence's URLs and addresses are masked before its dates and numbers: so are these
        spans = _urls(self.text) + _emails(self.text)
        dates: set[tuple] = set()
        values: set[str] = set()
        for _, _, _, vals in _dates(self.text, spans):
            for y, mo, d in vals:
                dates.update({(y, mo, d), (y, mo, None), (None, mo, d)})
                for part in (y, d):
                    if part is not None:
                        values.add(_key(float(part)))
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
        return values, with_unit, unitless, dates

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

    @cached_property
    def times(self) -> set[tuple[int, int]]:
        return {t for _, _, _, t in _times(self.text, [])}

    @cached_property
    def words(self) -> list[str]:
        return _WORD.findall(self.folded)

    @cached_property
    def number_words(self) -> set[str]:
        """Values of the document's small number words (``three`` → 3), as keys."""
        return {_key(float(NUMBER_WORDS[w])) for w in NUMBER_WORDS.keys() & set(self.words)}

    @cached_property
    def sorted_words(self) -> list[str]:
        return sorted(set(self.words))

    @cached_property
    def sentences(self) -> list[tuple[int, int]]:
        return split_sentences(self.text)

    @cached_property
    def sentence_units(self) -> list[set[str]]:
        return [_sentence_units(self.text[s:e]) for s, e in self.sentences]

    @cached_property
    def stems(self) -> set[str]:
        return set().union(*self.sentence_units)

    @cached_property
    def initials(self) -> str:
        return "".join(w[0] for w in self.words if w not in STOPWORDS)

    @cached_property
    def capitalises_nouns(self) -> bool:
        """German-like (its function words make up 8 % of the words) or mostly capitalised (titles):
        a capital then does not mark a name."""
        words = self.words
        german = sum(1 for w in words if w in GERMAN_MARKERS)
        return (len(words) >= 8 and german >= 0.08 * len(words)) or _capitalised_share(self.text) > 0.45

    def has_word_like(self, word: str) -> bool:
        """A document word equal to ``word`` or sharing its first ``max(4, ⌈0.75·len⌉)`` letters."""
        folded = word.casefold()
        prefix = folded[: max(4, math.ceil(0.75 * len(folded)))]
        words = self.sorted_words
        i = bisect_left(words, prefix)
        return i < len(words) and words[i].startswith(prefix)


def _capitalised_share(text: str) -> float:
    """Share of mid-sentence words written with a capital (about 0.05 in English prose, 0.3 in German)."""
    initials = _MID_INITIAL.findall(text)
    if len(initials) < 8:
        return 0.0
    return sum(1 for c in initials if c.isupper()) / len(initials)


# ---------------------------------------------------------------------------------- the check


@dataclass
class _Evidence:
    text: str
    items: list[tuple[int, int, str, bool]] = field(default_factory=list)  # start, end, text, supported
    spans: list[tuple[int, int]] = field(default_factory=list)

    def add(self, start: int, end: int, text: str, supported: bool) -> None:
        self.items.append((start, end, text, supported))
        self.spans.append((start, end))


def _urls(text: str) -> list[tuple[int, int]]:
    """Spans of the URLs in ``text`` (found from their ``://`` or ``www.``: no full-text regex scan)."""
    out: list[tuple[int, int]] = []
    lower = text.lower()
    for marker in ("://", "www."):
        at = lower.find(marker)
        while at >= 0:
            start = at
            if marker == "://":
                scheme = _SCHEME_BEFORE.search(lower, max(0, at - 5), at)
                start = scheme.start() if scheme is not None else -1
            if start >= 0 and not _covered(start, out):
                m = _URL.match(text, start)
                if m is not None:
                    out.append(m.span())
            at = lower.find(marker, at + 1)
    return sorted(out)


def _emails(text: str) -> list[tuple[int, int]]:
    """Spans of the e-mail addresses in ``text`` (found from their ``@``)."""
    out: list[tuple[int, int]] = []
    at = text.find("@")
    while at >= 0:
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        domain = _EMAIL_DOMAIN.match(text, at)
        if local is not None and domain is not None and (not out or local.start() >= out[-1][1]):
            out.append((local.start(), domain.end()))
        at = text.find("@", at + 1)
    return out


def _url_key(url: str) -> str:
    url = _nfkc(url).casefold().rstrip(".,;:!?)]}»\"'")
    url = re.sub(r"^(?:https?|ftp)://", "", url)
    return url.removeprefix("www.").rstrip("/")


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


# ---------------------------------------------------------------------------------- alignment

#: An evidence sentence is aligned only when at least this share of its units is found in one window.
MIN_ALIGNMENT = 0.3
#: The most consecutive document sentences one evidence sentence may be aligned to.
MAX_WINDOW = 3


def _sentence_units(text: str) -> set[str]:
    return set(_content_units(text, digits=True))


def _align(
    doc: _Document, evidence: str, sentences: list[tuple[int, int]]
) -> tuple[tuple[int, int] | None, ...]:
    doc_sentences = doc.sentences
    doc_units = doc.sentence_units
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
