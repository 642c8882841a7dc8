"""Parsing the model's generated text: verdict, contribution, evidence.

Model output is never trusted to be well formed: a missing tag, a tag that never closes (the
budget ran out), or text with no tags at all yields ``None`` fields and ``complete=False``,
never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTRIBUTION_OPEN, CONTRIBUTION_CLOSE = "<contribution>", "</contribution>"
EVIDENCE_OPEN, EVIDENCE_CLOSE = "<evidence>", "</evidence>"

_CONTRIBUTION = re.compile(r"<contribution>(.*?)(</contribution>|$)", re.S)
_EVIDENCE = re.compile(r"<evidence>(.*?)(</evidence>|$)", re.S)


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """Fields extracted from one generated text."""

    contribution: str | None
    evidence: str | None
    complete: bool


def parse_output(text: str | None) -> ParsedOutput:
    """Extract contribution and evidence from generated text.

    A tag opened but never closed (budget exhausted) still yields its partial text, with
    ``complete=False``; a tag that is absent yields ``None``. ``complete`` is ``True`` only when
    both tags are opened and closed.

    Example:
        >>> p = parse_output("yes<contribution>C.</contribution>\\n<evidence>E.</evidence>")
        >>> (p.contribution, p.evidence, p.complete)
        ('C.', 'E.', True)
        >>> parse_output("yes<contribution>C.</contribution><evidence>cut sho").complete
        False
    """
    if not text:
        return ParsedOutput(None, None, False)
    c = _CONTRIBUTION.search(text)
    e = _EVIDENCE.search(text)
    contribution = c.group(1).strip() if c else None
    evidence = e.group(1).strip() if e else None
    complete = bool(c and c.group(2) and e and e.group(2))
    return ParsedOutput(contribution or None, evidence or None, complete)
