"""Malformed model output never raises and never loses the text."""

from __future__ import annotations

import pytest

from prism_core.prism.parsing import parse_output


def test_well_formed_output() -> None:
    p = parse_output("yes<contribution> It says X. </contribution>\n<evidence>X is Y.\nZ.</evidence>")
    assert (p.contribution, p.evidence, p.complete) == ("It says X.", "X is Y.\nZ.", True)


@pytest.mark.parametrize(
    ("text", "contribution", "evidence", "complete"),
    [
        (None, None, None, False),
        ("", None, None, False),
        ("no", None, None, False),
        ("yes", None, None, False),
        ("yes and some rambling without tags", None, None, False),
        ("yes<contribution>C", "C", None, False),  # budget ran out in the contribution
        ("yes<contribution>C</contribution><evidence>E cut", "C", "E cut", False),
        ("yes<contribution>C</contribution>", "C", None, False),
        ("yes<evidence>E</evidence>", None, "E", False),
        ("yes<contribution></contribution><evidence></evidence>", None, None, True),
        ("yes</contribution></evidence><evidence>", None, None, False),
        ("yes<contribution>C</contribution><evidence>E</evidence><evidence>F</evidence>", "C", "E", True),
        ("\x00\ufffd<contribution>\u202eC</contribution><evidence>E</evidence>", "\u202eC", "E", True),
    ],
)
def test_malformed_outputs(
    text: str | None, contribution: str | None, evidence: str | None, complete: bool
) -> None:
    p = parse_output(text)
    assert (p.contribution, p.evidence, p.complete) == (contribution, evidence, complete)
