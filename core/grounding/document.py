"""A document parsed once for the grounding check: its values, words, stems and sentences, lazily."""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from functools import cached_property

from prism_core.grounding.patterns import _MID_INITIAL, _SQUASH, _WORD
from prism_core.grounding.sentences import _sentence_units, split_sentences
from prism_core.grounding.tables import (
    GERMAN_MARKERS,
    NUMBER_WORDS,
    STOPWORDS,
)
from prism_core.grounding.values import _dates, _emails, _key, _nfkc, _number_values, _numbers, _times, _urls

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
