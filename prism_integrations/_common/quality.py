"""The quality prior's options in the reranking adapters: checks, serialisation, copying.

The three reranking adapters take the same three options, off by default:

* ``quality``: a :class:`prism_core.quality.QualityScorer` (or its ``to_dict()`` mapping, which is
  how a serialised adapter holds it), or ``None`` (no prior: nothing changes);
* ``min_quality``: drop documents whose raw quality is below this (``[0, 5]``, the heads' scale);
* ``quality_weight``: ``w`` in ``[0, 1]``; the framework's score slot gets
  ``(1 − w) · relevance + w · clip(raw / 5, 0, 1)``.

``min_quality`` or ``w > 0`` without ``quality`` is refused (it would silently do nothing). The
rules themselves are :mod:`prism_core.quality.blend`'s; :mod:`.ranking` applies them.

Serialisation: an adapter without ``quality`` serialises exactly as before (none of the three keys);
with one, the three keys follow the other options and ``quality`` is ``QualityScorer.to_dict()``.
Copies share the scorer (like the engine: its encoder is loaded once per process); pickling carries
the scorer's description and rebuilds it (loaded again on first use).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator

from prism_core.quality.blend import (
    DEFAULT_QUALITY_WEIGHT,
    QUALITY_SCORE,
    check_min_quality,
    check_quality_weight,
)
from prism_core.quality.scorer import QualityScorer, as_quality_scorer

__all__ = [
    "DEFAULT_MIN_QUALITY",
    "DEFAULT_QUALITY",
    "DEFAULT_QUALITY_WEIGHT",
    "QUALITY_OPTION_NAMES",
    "QUALITY_SCORE",
    "PickledQuality",
    "QualityField",
    "check_quality_options",
    "omit_unused_quality",
    "quality_from_pickle",
    "quality_options_dict",
    "quality_to_pickle",
    "share_quality",
]

#: No quality prior.
DEFAULT_QUALITY: QualityScorer | None = None
#: No quality filter.
DEFAULT_MIN_QUALITY: float | None = None
#: The option names, in documented (and serialised) order.
QUALITY_OPTION_NAMES: tuple[str, ...] = ("quality", "min_quality", "quality_weight")


def check_quality_options(
    quality: Any = None,
    min_quality: Any = None,
    quality_weight: Any = DEFAULT_QUALITY_WEIGHT,
    *,
    rebuild: bool = True,
) -> tuple[QualityScorer | None, float | None, float]:
    """Check the three quality options together and return them normalised.

    Args:
        quality: A :class:`~prism_core.quality.QualityScorer`, its ``to_dict()`` mapping (rebuilt
            when ``rebuild``), or ``None``.
        min_quality: ``None`` or a number in ``[0, 5]`` (NumPy numbers accepted).
        quality_weight: A number in ``[0, 1]``; ``None`` means ``0``.
        rebuild: Accept a mapping for ``quality`` (at construction and deserialisation); per call,
            adapters pass ``False`` so that a scorer is never rebuilt (and reloaded) at each call.

    Returns:
        ``(quality, min_quality, quality_weight)``.

    Raises:
        TypeError: A wrongly typed value (``quality`` that is no scorer, ``"2"``, ``True``).
        ValueError: A value out of range, a bad scorer description, or ``min_quality`` /
            ``quality_weight > 0`` given without ``quality``.

    Example:
        >>> check_quality_options(None, None, 0)
        (None, None, 0.0)
        >>> check_quality_options(None, 2.0, 0.0)
        Traceback (most recent call last):
        ...
        ValueError: min_quality=2.0 needs a quality prior: pass quality=QualityScorer(...) too
    """
    weight = check_quality_weight(quality_weight)
    threshold = check_min_quality(min_quality)
    if quality is None:
        if threshold is not None:
            raise ValueError(
                f"min_quality={threshold} needs a quality prior: pass quality=QualityScorer(...) too"
            )
        if weight > 0.0:
            raise ValueError(
                f"quality_weight={weight} needs a quality prior: pass quality=QualityScorer(...) too"
            )
        return None, None, weight
    if not rebuild and not isinstance(quality, QualityScorer):
        raise TypeError(f"quality must be a prism_core.quality.QualityScorer, got {type(quality).__name__}")
    return as_quality_scorer(quality), threshold, weight


def quality_options_dict(
    quality: QualityScorer | None, min_quality: float | None, quality_weight: float
) -> dict[str, Any]:
    """The quality options as an adapter serialises them: nothing without ``quality``, else all three.

    Example:
        >>> quality_options_dict(None, None, 0.0)
        {}
        >>> quality_options_dict(QualityScorer("org/heads:h.ckpt"), 2.0, 0.3)["quality"]["heads"]
        ['org/heads:h.ckpt']
    """
    if quality is None:
        return {}
    return {"quality": quality.to_dict(), "min_quality": min_quality, "quality_weight": quality_weight}


def omit_unused_quality(data: dict[str, Any]) -> dict[str, Any]:
    """Drop the quality keys from a serialised adapter that has no ``quality`` (so it serialises as before).

    Example:
        >>> omit_unused_quality({"top_n": 3, "quality": None, "min_quality": None, "quality_weight": 0.0})
        {'top_n': 3}
    """
    if data.get("quality") is None:
        for name in QUALITY_OPTION_NAMES:
            data.pop(name, None)
    return data


def _quality_or_none(value: Any) -> QualityScorer | None:
    return None if value is None else as_quality_scorer(value)


def _quality_to_dict(value: QualityScorer | None) -> dict[str, Any] | None:
    return None if value is None else value.to_dict()


#: The pydantic field type of an adapter's ``quality``: a :class:`QualityScorer` in Python, its
#: ``to_dict()`` in ``model_dump``/JSON, and rebuilt from that mapping.
QualityField = Annotated[
    QualityScorer | None,
    PlainValidator(_quality_or_none, json_schema_input_type=dict[str, Any] | None),
    PlainSerializer(_quality_to_dict, return_type=dict[str, Any] | None),
]


def share_quality(memo: dict[int, Any], quality: QualityScorer | None) -> None:
    """Make a :func:`copy.deepcopy` in progress keep ``quality`` as it is (shared, like the engine).

    A scorer holds a lock and a loaded encoder, which cannot be copied; a copy of an adapter calls the
    same scorer.
    """
    if quality is not None:
        memo.setdefault(id(quality), quality)


@dataclass(frozen=True)
class PickledQuality:
    """What a pickled adapter holds instead of its scorer: the scorer's ``to_dict()``."""

    description: dict[str, Any]


def quality_to_pickle(state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an adapter's ``__dict__`` whose scorer is replaced by a :class:`PickledQuality`."""
    out = dict(state)
    quality = out.get("quality")
    if isinstance(quality, QualityScorer):
        out["quality"] = PickledQuality(copy.deepcopy(quality.to_dict()))
    return out


def quality_from_pickle(state: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the scorer in an unpickled adapter's ``__dict__`` (in place; also returned)."""
    quality = state.get("quality")
    if isinstance(quality, PickledQuality):
        state["quality"] = QualityScorer.from_dict(quality.description)
    return state
