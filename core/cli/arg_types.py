"""The argparse value types the ``prism-rerank`` options share: each refuses a bad value naming it.

Example:
    >>> positive_int("3"), non_negative_int("0"), positive_float("2.5"), probability("0.5")
    (3, 0, 2.5, 0.5)
    >>> quality_value("2.5"), non_negative_float("0")
    (2.5, 0.0)
    >>> positive_int("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be >= 1, got 0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", int, float)


def value_type(
    parse: Callable[[str], T], accept: Callable[[T], bool], expected: str, must: str
) -> Callable[[str], T]:
    """An argparse type: ``parse`` the text, then refuse a value ``accept`` rejects.

    Args:
        parse: ``int`` or ``float``.
        accept: Whether a parsed value is allowed (a comparison, so NaN is refused).
        expected: What an unparsable value should have been (``"a positive integer"``).
        must: What a parsed value must be (``"must be >= 1"``).

    Returns:
        The type function; its errors name the bad value (integers as parsed, numbers as typed).

    Example:
        >>> even = value_type(int, lambda v: v % 2 == 0, "an even integer", "must be even")
        >>> even("4")
        4
    """

    def check(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{must}, got {value if parse is int else text}")
        return value

    check.__doc__ = f"argparse type: {expected}."
    return check


positive_int = value_type(int, lambda v: v >= 1, "a positive integer", "must be >= 1")
non_negative_int = value_type(int, lambda v: v >= 0, "an integer >= 0", "must be >= 0")
positive_float = value_type(
    float, lambda v: 0.0 < v < float("inf"), "a positive number", "must be a positive finite number"
)
non_negative_float = value_type(
    float, lambda v: 0.0 <= v < float("inf"), "a number >= 0", "must be a finite number >= 0"
)
probability = value_type(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]", "must be in [0, 1]")
#: A raw quality score: the JQL-Edu heads' scale.
quality_value = value_type(float, lambda v: 0.0 <= v <= 5.0, "a number in [0, 5]", "must be in [0, 5]")
