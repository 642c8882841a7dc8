"""Grounding: check an evidence rewrite against its document, deterministically and fast.

Prism's evidence is an abstractive rewrite that adapters swap in for the document body. The model
card promises that proper nouns, terms, numbers, dates, code and URLs are kept verbatim; this
package checks that promise, with no model, in about half a millisecond for a 250-word passage
and under a millisecond for number-dense ones, on a loaded 2-core CPU (``benchmarks/grounding.py``).

**Verbatim items** (taken from the evidence, each reported as written there):

* URLs (``http(s)://``, ``ftp://``, ``www.``): supported when the document has the same URL
  (case, scheme, ``www.`` and a trailing slash ignored).
* E-mail addresses: the same address in the document (case ignored).
* Code spans in backticks: the same code in the document (exact, or with whitespace runs
  collapsed); code-shaped words (``snake_case``, ``os.path.join``, ``main()``): exact.
* Dates (ISO ``2024-03-05``, ``5.3.2024``, ``03/05/2024``, ``5 March 2024``, ``March 5, 2024``,
  ``5. März 2024``, ``5 de marzo de 2024``, ``2024年3月5日``, ``2024년 3월 5일``, month and year,
  day and month): supported when the document has a date of the same value in any of those forms
  (a numeric date that reads two ways, day/month or month/day, is supported by either). Month
  names in English, French, German, Spanish, Italian, Portuguese, Dutch and Russian.
* Times (``14:30``, ``2:30 pm``, ``14h30``): the same hour and minute.
* Numbers, with their scale word and unit when present: ``1,083`` / ``1.083`` / ``1 083`` /
  ``1'083`` are one value (a separator followed by exactly three digits reads both as grouping and
  as a decimal point, and either reading may match); ``1.2 million`` = ``1,200,000`` = ``120万``;
  units are recognised in several languages and converted within their dimension (``330 m`` =
  ``330 metres`` = ``330米`` = ``0.33 km``), currencies and temperature scales are not converted.
  A number with a unit is supported by the same quantity in the document, or by the same value
  written there without a unit; ``330 feet`` is not supported by ``330 metres``. A document's
  small number words (``three``, ``drei``, ``trois``...) support the digits.
* Terms: words that mix letters and digits (``B-52``, ``COVID-19``, ``Qwen3.5``, ``3.12.1``),
  mixed-case words (``iPhone``, ``PyTorch``) and acronyms (``NASA``, ``EU``): supported when the
  document contains them (case and ``-``/``_``/space differences ignored); an acronym also when
  the initials of consecutive document words spell it (``European Union`` → ``EU``).
* Names: capitalised words that do not start a sentence, in scripts with case, unless the document
  capitalises every noun (German: its function words make up 8 % of its words) or most of its
  words (titles): supported by a document word sharing its first ``max(4, ⌈0.75·n⌉)`` letters,
  which tolerates inflection (``Москвы`` / ``Москва``).

**The support score** is the share of the evidence's content units found in the document. A
content unit is a verbatim item (found when supported, as above), a word of three or more letters
that is not a common function word, compared by its first five letters (casefolded), or, in
scripts written without spaces (Chinese, Japanese, Korean Hangul, Thai), a character bigram. An
evidence with no content unit scores ``1.0``. The score measures lexical support, so a faithful
paraphrase with synonyms scores lower than a close rewrite: the hard signal is ``unsupported``.

**Source spans**: the evidence and the document are split into sentences (:func:`split_sentences`);
each evidence sentence is aligned to the window of one to :data:`MAX_WINDOW` consecutive document
sentences that holds most of its content units (word stems, bigrams, digit runs), preferring the
narrower window. Alignment gives up (``None``) when the best window holds fewer than
:data:`MIN_ALIGNMENT` of the sentence's units, or when the sentence has no content unit.

**Blind spots**: meaning is not checked: a rewrite that negates a claim, swaps who did what to
whom, or keeps every number but attaches it to the wrong thing passes. Names are not checked in
scripts without case (CJK, Arabic, Hebrew...) nor in German text, a name that starts a sentence is
not checked, and the prefix match lets a near-miss with a long common prefix through. Number signs,
ranges and numbers spelled out in the evidence are not checked; numbers written as words are
recognised in the document only up to twelve. A number with a unit is supported by the same value
written without a unit anywhere in the document. A fabricated item that also occurs elsewhere in
the document passes. Units outside the table are treated as plain words; currencies are not
converted, nor are non-decimal unit conversions exact beyond nine significant digits.

Example:
    >>> from prism_core import check_grounding
    >>> report = check_grounding(
    ...     "The Eiffel Tower is 330 metres tall. It opened on 31 March 1889.",
    ...     "The Eiffel Tower (330 m) opened on March 31, 1889.",
    ... )
    >>> report.unsupported, report.score
    ((), 1.0)
    >>> check_grounding("The tower is 330 metres tall.", "The tower is 512 metres tall.").unsupported
    ('512 metres',)
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from prism_core.grounding.check import (
    MAX_WINDOW,
    MIN_ALIGNMENT,
    GroundingReport,
    check_grounding,
    split_sentences,
)

if TYPE_CHECKING:
    from prism_core.results import PrismResult

__all__ = [
    "MAX_WINDOW",
    "MIN_ALIGNMENT",
    "GroundingReport",
    "check_grounding",
    "ground_result",
    "split_sentences",
]


def ground_result(result: PrismResult, document: str) -> PrismResult:
    """``result`` with ``grounding``, ``unsupported`` and ``evidence_spans`` filled from its evidence.

    A result without evidence, or one whose grounding is already filled (by the backend that made
    it), is returned as it is; otherwise a new result (the original is never changed).

    Example:
        >>> from prism_core.results import PrismResult
        >>> r = PrismResult(0, 0.9, 2.2, True, evidence="It is 512 m tall.")
        >>> ground_result(r, "It is 330 m tall.").unsupported
        ('512 m',)
    """
    if result.evidence is None or result.grounding is not None:
        return result
    report = check_grounding(document, result.evidence)
    return replace(
        result, grounding=report.score, unsupported=report.unsupported, evidence_spans=report.spans
    )
