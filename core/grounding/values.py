"""Numbers, dates, times, URLs and e-mail addresses in a text, each with a normalised value to compare."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prism_core.grounding.patterns import (
    _CJK_CHAR,
    _CURRENCY_BEFORE,
    _DATE_AT_DIGIT,
    _DATE_MONTH_FIRST,
    _DIGIT_RUN,
    _EMAIL_DOMAIN,
    _EMAIL_LOCAL,
    _LATIN_OR_DIGIT,
    _NUMBER,
    _ORDINAL,
    _SCHEME_BEFORE,
    _TAIL,
    _TIME,
    _URL,
    _WORD_AFTER,
    _WORD_BEFORE,
)
from prism_core.grounding.tables import (
    MONTHS,
    MULTIPLIERS,
    UNITS,
)

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
