"""Exceptions raised by the Prism core."""

from __future__ import annotations


class PrismError(Exception):
    """Base class of the errors this package raises on purpose."""


class ModelLoadError(PrismError, OSError):
    """The model or its tokenizer could not be loaded (hub unreachable, bad path, bad files)."""


class NonFiniteScoreError(PrismError, ArithmeticError):
    """The model produced NaN or infinite verdict logits (typically an fp16 overflow)."""


class EngineClosedError(PrismError, RuntimeError):
    """The engine loop serving a model was closed while a request was waiting."""


class UnknownBackendError(PrismError, ValueError):
    """A backend name, or a checkpoint whose backend cannot be told, with the known backends listed."""
