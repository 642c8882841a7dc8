"""Copying the caller's data without failing on it and without sharing containers with it.

Adapters return copies, never the caller's objects. A plain :func:`copy.deepcopy` fails on values
that cannot be copied (a lock, an open file, a generator, a database handle) and would make the
adapter crash on the caller's data after the model has run. :func:`safe_copy` copies value by
value instead:

* Everything that :func:`copy.deepcopy` copies is deep-copied.
* Containers (``dict``, ``list``, ``set``, ``tuple``, ``frozenset`` and their subclasses), pydantic
  models and dataclass instances holding something uncopyable are rebuilt around it, so that no
  mutable container, model or dataclass of the result is shared with the input.
* A value that cannot be copied at all (the lock itself) is kept as it is: the result and the
  input then hold the same object. That is the one documented exception.

Identity inside the input is kept (a list referenced twice comes back as one copied list
referenced twice), and cycles are handled.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["copy_object", "merge_metadata", "safe_copy"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ATOMIC = (type(None), bool, int, float, complex, str, bytes, range, type)


def safe_copy(value: T) -> T:
    """A deep copy of ``value`` that never fails: uncopyable parts are kept as they are (shared).

    Example:
        >>> import threading
        >>> lock = threading.Lock()
        >>> original = {"lock": lock, "tags": ["a"]}
        >>> copied = safe_copy(original)
        >>> copied["lock"] is lock, copied["tags"] is original["tags"], copied == original
        (True, False, True)
    """
    return _copy(value, {})


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    if isinstance(value, _ATOMIC):
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    trial = dict(memo)  # a failed deepcopy may leave partial entries: try on a scratch memo
    try:
        out = copy.deepcopy(value, trial)
    except Exception as exc:
        out = _rebuild(value, memo, exc)
    else:
        trial.pop(id(trial), None)  # deepcopy's keep-alive list, keyed by the scratch memo's id
        memo.update(trial)
    memo[key] = out
    return out


def _rebuild(value: Any, memo: dict[int, Any], exc: Exception) -> Any:
    """Copy ``value`` part by part, after :func:`copy.deepcopy` failed on it."""
    key = id(value)
    if type(value) is dict:
        out_dict: dict[Any, Any] = {}
        memo[key] = out_dict
        for k, v in value.items():
            out_dict[k] = _copy(v, memo)
        return out_dict
    if type(value) is list:
        out_list: list[Any] = []
        memo[key] = out_list
        out_list.extend(_copy(v, memo) for v in value)
        return out_list
    if type(value) in (tuple, frozenset, set):
        return type(value)(_copy(v, memo) for v in value)
    if isinstance(value, (dict, list, set)):  # a subclass (OrderedDict, defaultdict, ...): keep its type
        try:
            shell = copy.copy(value)
        except Exception:
            return _shared(value, exc)
        memo[key] = shell
        if isinstance(value, dict) and isinstance(shell, dict):
            items = [(k, _copy(v, memo)) for k, v in value.items()]
            shell.clear()
            shell.update(items)
        elif isinstance(shell, list):
            copied = [_copy(v, memo) for v in value]
            shell[:] = copied
        else:
            copied_set = {_copy(v, memo) for v in value}
            shell.clear()
            shell.update(copied_set)
        return shell
    if _is_pydantic(value):
        changes = {name: _copy(getattr(value, name), memo) for name in type(value).model_fields}
        try:
            out = value.model_copy(update=changes)
        except Exception:
            return _shared(value, exc)
        extra = getattr(out, "__pydantic_extra__", None)
        if extra:
            out.__pydantic_extra__ = {k: _copy(v, memo) for k, v in extra.items()}
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return copy_object(value, _memo=memo)
        except Exception:
            return _shared(value, exc)
    return _shared(value, exc)


def _shared(value: Any, exc: Exception) -> Any:
    logger.debug(
        "kept %s as it is (shared with the input): it cannot be copied (%s)", type(value).__name__, exc
    )
    return value


def _is_pydantic(value: Any) -> bool:
    return hasattr(type(value), "model_fields") and callable(getattr(value, "model_copy", None))


def copy_object(obj: T, _memo: dict[int, Any] | None = None, **changes: Any) -> T:
    """A copy of a pydantic model or dataclass instance with ``changes`` applied and every other
    field copied by :func:`safe_copy` (so the copy shares no container with ``obj``).

    Args:
        obj: A pydantic model (LangChain ``Document``, LlamaIndex node) or a dataclass instance
            (Haystack ``Document``).
        **changes: Field values to set instead of copies (used as given, not copied).

    Raises:
        TypeError: ``obj`` is neither a pydantic model nor a dataclass instance.

    Example:
        >>> from dataclasses import dataclass, field
        >>> @dataclass
        ... class Doc:
        ...     content: str
        ...     meta: dict = field(default_factory=dict)
        >>> doc = Doc("a", {"k": [1]})
        >>> new = copy_object(doc, content="b")
        >>> new.content, new.meta == doc.meta, new.meta is doc.meta
        ('b', True, False)
    """
    memo: dict[int, Any] = {} if _memo is None else _memo
    if _is_pydantic(obj):
        model = type(obj)
        update = {
            name: changes[name] if name in changes else _copy(getattr(obj, name), memo)
            for name in model.model_fields  # type: ignore[attr-defined]
        }
        update.update({k: v for k, v in changes.items() if k not in update})
        out = obj.model_copy(update=update)  # type: ignore[attr-defined]
        extra = getattr(out, "__pydantic_extra__", None)
        if extra:
            out.__pydantic_extra__ = {k: v if k in changes else _copy(v, memo) for k, v in extra.items()}
        private = getattr(out, "__pydantic_private__", None)
        if private:
            out.__pydantic_private__ = {k: _copy(v, memo) for k, v in private.items()}
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        values = {
            f.name: changes[f.name] if f.name in changes else _copy(getattr(obj, f.name), memo)
            for f in dataclasses.fields(obj)
            if f.init
        }
        return dataclasses.replace(obj, **values)
    raise TypeError(f"cannot copy a {type(obj).__name__}: expected a pydantic model or a dataclass instance")


def merge_metadata(caller: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> dict[str, Any]:
    """Copy the caller's metadata (:func:`safe_copy`) and append ours (our keys replace same-named
    keys and go last).

    Example:
        >>> merge_metadata({"relevance_score": 0.1, "a": 1}, {"relevance_score": 0.9})
        {'a': 1, 'relevance_score': 0.9}
    """
    merged: dict[str, Any] = safe_copy(dict(caller)) if caller else {}
    for key in ours:
        merged.pop(key, None)
    merged.update(ours)
    return merged
