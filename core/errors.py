"""Exceptions raised by the Prism core."""

from __future__ import annotations


class PrismError(Exception):
    """Base class of the errors this package raises on purpose."""


class ModelLoadError(PrismError, OSError):
    """The model or its tokenizer could not be loaded (hub unreachable, bad path, bad files)."""
