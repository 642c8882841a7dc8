"""``EngineConfig``: the one frozen, JSON-safe description of an engine.

Adapters, the CLI, the server and Haystack's ``to_dict`` carry this object (or its
:meth:`EngineConfig.to_dict`) instead of loose option fields, and the process-wide engine cache
(:func:`prism_core.registry.get_engine`) is keyed by :meth:`EngineConfig.key`, so two callers asking
for the same engine in different spellings (``"cpu"`` and ``torch.device("cpu")``, a relative and an
absolute path to one directory, ``torch.bfloat16`` and ``"bf16"``) share one loaded model.

Options left at ``None`` keep the backend's own default; :meth:`EngineConfig.to_dict` writes only the
options that were set, so a saved pipeline does not pin today's defaults.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prism_core.validation import check_float, check_optional_int, check_text

#: Engine options, in the order they are documented and serialised.
ENGINE_OPTION_NAMES: tuple[str, ...] = (
    "device",
    "dtype",
    "max_length",
    "max_new_tokens",
    "batch_tokens",
    "instruction",
    "timeout",
    "max_retries",
)

#: Minimum accepted for each integer option (the prompt-dependent minimum of ``max_length`` is
#: checked by the backend, which knows its prompt).
_INT_MINIMUMS = {"max_length": 1, "max_new_tokens": 1, "batch_tokens": 1, "max_retries": 0}

_DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}  # fmt: skip


def dtype_option(dtype: Any) -> str | None:
    """Normalise a dtype option to its canonical name (``torch.bfloat16``/``"bf16"`` → ``"bfloat16"``).

    Example:
        >>> dtype_option("bf16")
        'bfloat16'
    """
    if dtype is None:
        return None
    text = dtype if isinstance(dtype, str) else str(dtype)
    name = _DTYPE_NAMES.get(text.lower().removeprefix("torch."))
    if name is None:
        raise ValueError(f"dtype must be 'float32', 'bfloat16', 'float16' or a torch dtype, got {dtype!r}")
    return name


def device_option(device: Any) -> str | None:
    """Normalise a device option to a string (``torch.device("cuda", 1)`` → ``"cuda:1"``)."""
    if device is None:
        return None
    if not isinstance(device, str):
        if type(device).__name__ != "device":
            raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}: {device!r}")
        device = str(device)
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be like 'cpu', 'cuda', 'cuda:1' or 'mps', got {device!r}") from exc
    return device


def model_option(model: Any) -> str:
    """A hub id, a local directory or a URL, as a non-empty string."""
    if not isinstance(model, (str, os.PathLike)) or not os.fspath(model):
        raise TypeError(f"model must be a hub id, a local directory or a URL, got {model!r}")
    return os.fspath(model)


def canonical_model(model: str) -> str:
    """A local directory becomes its absolute real path; a hub id or URL stays as it is."""
    if "://" in model:
        return model.rstrip("/")
    from pathlib import Path

    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    return model


@dataclass(frozen=True)
class EngineConfig:
    """What engine to build: backend, model and engine options.

    Attributes:
        model: Hub id, local checkpoint directory, or (remote backend) a base URL.
        backend: Backend name (``"prism"``, ``"qwen3-reranker"``, ``"cross-encoder"``, ...).
        device: ``None`` (auto: CUDA, then MPS, then CPU) or a device string such as ``"cuda:1"``.
        dtype: ``None`` (auto: bf16 on CUDA, fp32 elsewhere) or ``"float32"``/``"bfloat16"``/``"float16"``.
        max_length: Cap on tokens per (query, document) input; longer documents are cut.
        max_new_tokens: Generation budget per document (generating backends only).
        batch_tokens: Padded tokens per forward pass.
        instruction: The task instruction (Qwen3-Reranker only; Prism's instruction is fixed).
        timeout: Seconds per HTTP request (remote backend only).
        max_retries: Retries on connection errors, 429 and 5xx (remote backend only).

    Example:
        >>> config = EngineConfig(model="infgrad/Prism-Qwen3.5-Reranker-0.8B", backend="prism", dtype="bf16")
        >>> config.to_dict()
        {'model': 'infgrad/Prism-Qwen3.5-Reranker-0.8B', 'backend': 'prism', 'dtype': 'bfloat16'}
        >>> EngineConfig.from_dict(config.to_dict()) == config
        True
    """

    model: str
    backend: str
    device: str | None = None
    dtype: str | None = None
    max_length: int | None = None
    max_new_tokens: int | None = None
    batch_tokens: int | None = None
    instruction: str | None = None
    timeout: float | None = None
    max_retries: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "model", model_option(self.model))
        if not isinstance(self.backend, str) or not self.backend:
            raise TypeError(f"backend must be a non-empty str, got {self.backend!r}")
        set_(self, "device", device_option(self.device))
        set_(self, "dtype", dtype_option(self.dtype))
        for name, minimum in _INT_MINIMUMS.items():
            set_(self, name, check_optional_int(getattr(self, name), name, minimum))
        if self.timeout is not None:
            set_(self, "timeout", check_float(self.timeout, "timeout", 0.0, 86400.0))
        if self.instruction is not None:
            instruction = check_text(self.instruction, "instruction")
            if not instruction.strip():
                raise ValueError(f"instruction must not be blank, got {instruction!r}")

    @classmethod
    def create(cls, model: Any, backend: str, **options: Any) -> EngineConfig:
        """Build a config from keyword options, refusing unknown names with the known ones listed.

        Example:
            >>> EngineConfig.create("m", "prism", max_new_tokens=64).max_new_tokens
            64
        """
        unknown = sorted(set(options) - set(ENGINE_OPTION_NAMES))
        if unknown:
            raise TypeError(
                f"unknown engine option(s) {', '.join(unknown)}; known: {', '.join(ENGINE_OPTION_NAMES)}"
            )
        return cls(model=model, backend=backend, **options)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys are refused, by name)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"an engine configuration must be a mapping, got {type(data).__name__}")
        for required in ("model", "backend"):
            if required not in data:
                raise ValueError(f"engine configuration is missing {required!r}: {dict(data)!r}")
        rest = {k: v for k, v in data.items() if k not in ("model", "backend")}
        return cls.create(data["model"], data["backend"], **rest)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``model``, ``backend`` and the options that were set, in documented order."""
        return {"model": self.model, "backend": self.backend, **self.options()}

    def options(self) -> dict[str, Any]:
        """The engine options that were set (``None`` means the backend's default), in documented order."""
        return {name: getattr(self, name) for name in ENGINE_OPTION_NAMES if getattr(self, name) is not None}

    def replace(self, **changes: Any) -> EngineConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def key(self) -> tuple[Any, ...]:
        """The cache key: equal for configs that build the same engine.

        The model path is made absolute, and ``device``/``dtype`` are resolved the way the engine
        resolves them (so ``None`` and ``"cpu"`` on a CPU-only machine are one key).
        """
        from prism_core.runtime.devices import dtype_name, resolve_device, resolve_dtype

        if "://" in self.model:
            device, dtype = self.device, self.dtype
        else:
            resolved = resolve_device(self.device)
            device, dtype = str(resolved), dtype_name(resolve_dtype(self.dtype, resolved))
        options = {**self.options(), "device": device, "dtype": dtype}
        return (self.backend, canonical_model(self.model), *sorted(options.items()))
