"""Loading checkpoints (hub id or local directory) once per process.

Weights are shared: every engine asking for the same ``(kind, model, device, dtype)`` uses the
same loaded model, whatever its other options, and the same :class:`EngineLoop`, the one thread
that drives that model for every caller.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prism_core.config import canonical_model
from prism_core.errors import ModelLoadError
from prism_core.runtime.engine_loop import EngineLoop, Executor
from prism_core.runtime.hub import check_hub
from prism_core.runtime.quiet import fold_kernel_fallback_warnings

logger = logging.getLogger(__name__)

#: Builds ``(model, tokenizer)`` from ``(model, device, dtype)``.
Loader = Callable[[str, torch.device, torch.dtype], tuple[Any, Any]]


@dataclass
class LoadedModel:
    """A loaded causal LM and its tokenizer, with the lock that serialises their use."""

    name: str
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    lock: threading.RLock = field(default_factory=threading.RLock)
    loops: dict[Any, EngineLoop] = field(default_factory=dict)  # the threads that drive these weights

    def engine_loop(self, make_executor: Callable[[LoadedModel], Executor], kind: Any = None) -> EngineLoop:
        """The engine loop of these weights for executors of ``kind``, created on first use.

        Every engine on these weights with the same kind of executor shares one loop (one owner of
        the model, coalescing everyone's passes). A different kind (a benchmark's instrumented
        runner) gets its own loop over the same weights.
        """
        with self.lock:
            loop = self.loops.get(kind)
            if loop is None:
                name = f"prism-engine:{Path(self.name).name}@{self.device}"
                loop = self.loops[kind] = EngineLoop(make_executor(self), name=name)
            return loop


def looks_local(model: str) -> bool:
    """Whether ``model`` is meant as a local path rather than a hub id (``org/name``)."""
    return (
        Path(model).is_absolute()
        or model.startswith((".", "~"))
        or (os.sep in model and model.count("/") != 1)
    )


def load_error(
    model: str, exc: BaseException, what: str = "model", example: str = "model='./model'"
) -> ModelLoadError:
    """The error for a checkpoint that cannot be loaded, saying how to use a local copy instead."""
    if isinstance(exc, ModelLoadError):  # already says what went wrong (check_hub's message...)
        return exc
    return ModelLoadError(
        f"could not load {what} {model!r}: {type(exc).__name__}: {exc}\n"
        "If the Hugging Face Hub cannot be reached from here, download the checkpoint on a machine that "
        f"can (`hf download {model} --local-dir ./model`), copy the folder over and pass its path: "
        f"{example}."
    )


def check_local(model: str, what: str = "model") -> None:
    """Refuse what cannot be loaded, before transformers tries the hub with it: a local-looking
    path that does not exist, or a hub id when the hub is unreachable (a quick probe, once per
    process) and the checkpoint is not in the local cache (:func:`prism_core.runtime.hub.check_hub`).

    Raises:
        ModelLoadError: One line naming the model and what to do instead.
    """
    if looks_local(model) and not Path(model).exists():
        raise ModelLoadError(f"model directory {model!r} does not exist")
    check_hub(model, what)


def load_model_and_tokenizer(model: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a hub id or a local directory.

    Raises:
        ModelLoadError: With the model's name and how to use a local directory instead.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_local(model)
    fold_kernel_fallback_warnings()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    except Exception as exc:  # transformers raises OSError, ValueError, HF hub errors...
        raise load_error(model, exc) from exc
    lm.to(device)  # type: ignore[arg-type]
    lm.eval()
    lm.requires_grad_(False)
    return lm, tokenizer


class _Registry:
    """The process-wide cache of loaded models, keyed by ``(loader, model, device, dtype)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, ...], threading.Lock] = {}
        self._models: dict[tuple[str, ...], LoadedModel] = {}
        self.loads = 0  # weight loads so far (tests check that configurations share them)

    def get(
        self, model: str, device: torch.device, dtype: torch.dtype, loader: Loader | None = None
    ) -> LoadedModel:
        """The loaded model for these settings, loading it (once, whatever the threads) if needed.

        ``loader`` defaults to :func:`load_model_and_tokenizer` (a causal LM and its tokenizer).
        """
        loader = load_model_and_tokenizer if loader is None else loader
        key = (f"{loader.__module__}.{loader.__qualname__}", canonical_model(model), str(device), str(dtype))
        with self._lock:
            if key in self._models:
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:  # one thread loads, the others wait for it
            if key not in self._models:
                logger.info("loading %s on %s (%s)", key[1], device, dtype)
                lm, tok = loader(key[1], device, dtype)
                self.loads += 1
                self._models[key] = LoadedModel(key[1], lm, tok, device, dtype)
            return self._models[key]

    def clear(self) -> None:
        """Forget every loaded model: the next engine to load gets fresh weights. Engines already
        loaded keep theirs (and their loop) until they are dropped."""
        with self._lock:
            self._models.clear()
            self._loading.clear()


registry = _Registry()
