"""The regular expressions the grounding check reads (compiled once, no logic)."""

from __future__ import annotations

import re

from prism_core.grounding.tables import (
    PREFIX_CURRENCIES,
)

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
