"""Loading a Prism checkpoint (hub id or local directory) once per process.

Weights are shared: every :class:`~prism_core.PrismReranker` asking for the same
``(model, device, dtype)`` uses the same loaded model, whatever its other options.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prism_core.errors import ModelLoadError

logger = logging.getLogger(__name__)


def canonical_model(model: str | os.PathLike[str]) -> str:
    """A local directory becomes its absolute real path; a hub id stays as it is."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve())
    return text


@dataclass
class LoadedModel:
    """A loaded causal LM and its tokenizer, with the lock that serialises their use."""

    name: str
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    lock: threading.RLock = field(default_factory=threading.RLock)
    scheduler: Any = None  # the PrefillScheduler every reranker on these weights shares


def load_model_and_tokenizer(model: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load the model and tokenizer from a hub id or a local directory.

    Raises:
        ModelLoadError: With the model's name and how to use a local directory instead.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model)
    looks_local = (
        path.is_absolute() or model.startswith((".", "~")) or (os.sep in model and model.count("/") != 1)
    )
    if looks_local and not path.exists():
        raise ModelLoadError(f"Prism model directory {model!r} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    except Exception as exc:  # transformers raises OSError, ValueError, HF hub errors...
        raise ModelLoadError(
            f"could not load Prism model {model!r}: {type(exc).__name__}: {exc}\n"
            "If the Hugging Face Hub cannot be reached from here, download the checkpoint on a machine that "
            f"can (`hf download {model} --local-dir ./prism-model`), copy the folder over and pass its path: "
            "PrismReranker('./prism-model')."
        ) from exc
    lm.to(device)  # type: ignore[arg-type]
    lm.eval()
    lm.requires_grad_(False)
    return lm, tokenizer


class _Registry:
    """The process-wide cache of loaded models, keyed by ``(model, device, dtype)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str, str], threading.Lock] = {}
        self._models: dict[tuple[str, str, str], LoadedModel] = {}

    def get(self, model: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
        key = (canonical_model(model), str(device), str(dtype))
        with self._lock:
            if key in self._models:
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:  # one thread loads, the others wait for it
            if key not in self._models:
                logger.info("loading Prism model %s on %s (%s)", key[0], device, dtype)
                lm, tok = load_model_and_tokenizer(key[0], device, dtype)
                self._models[key] = LoadedModel(key[0], lm, tok, device, dtype)
            return self._models[key]

    def clear(self) -> None:
        """Forget every loaded model (they are freed once no reranker holds them)."""
        with self._lock:
            self._models.clear()
            self._loading.clear()


registry = _Registry()
