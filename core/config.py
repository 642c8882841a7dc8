"""The one frozen, JSON-safe description of an engine: :class:`EngineSpec` and its resolved form,
:class:`EngineConfig`.

Adapters (their ``engine_config`` field), the CLI (:class:`prism_core.cli.options.ModelOptions`, an
``EngineSpec`` read from flags), the server and Haystack's ``to_dict`` carry this object (or its
``to_dict()``) instead of loose option fields, and the process-wide engine cache
(:func:`prism_core.registry.get_engine`) is keyed by :meth:`EngineConfig.key`, so two callers asking
for the same engine in different spellings (``"cpu"`` and ``torch.device("cpu")``, a relative and an
absolute path to one directory, ``torch.bfloat16`` and ``"bf16"``) share one loaded model.

Options left at ``None`` keep the backend's own default; ``to_dict()`` writes only the options that
were set, so a saved pipeline does not pin today's defaults.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

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


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    """The engine option values of ``values`` validated and normalised (``None`` kept: the default)."""
    out = {name: values.get(name) for name in ENGINE_OPTION_NAMES}
    out["device"] = device_option(out["device"])
    out["dtype"] = dtype_option(out["dtype"])
    for name, minimum in _INT_MINIMUMS.items():
        out[name] = check_optional_int(out[name], name, minimum)
    if out["timeout"] is not None:
        out["timeout"] = check_float(out["timeout"], "timeout", 0.0, 86400.0)
    if out["instruction"] is not None:
        instruction = check_text(out["instruction"], "instruction")
        if not instruction.strip():
            raise ValueError(f"instruction must not be blank, got {instruction!r}")
    return out


def _refuse_unknown(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(ENGINE_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"unknown engine option(s) {', '.join(unknown)}; known: {', '.join(ENGINE_OPTION_NAMES)}"
        )


_S = TypeVar("_S", bound="EngineSpec")


@dataclass(frozen=True)
class EngineSpec:
    """The one description of an engine: backend, model and engine options.

    Adapters hold one (their ``engine_config`` field), the CLI reads one from its flags
    (:class:`prism_core.cli.options.ModelOptions` is this class with an argparse reader), and the
    server, the registry and the backends use its resolved form, :class:`EngineConfig` (the same
    fields, ``model`` and ``backend`` set). ``model`` and ``backend`` may stay ``None`` here until
    :meth:`resolve`: ``model=None`` is the backend's default model (Prism-Reranker's when ``backend``
    is ``None`` too), ``backend=None`` is told from the checkpoint
    (:func:`prism_core.detect_backend`), which for a hub id reads its ``config.json``: done on first
    use, not at construction.

    Options left at ``None`` keep the backend's own default; :meth:`to_dict` writes only the options
    that were set, so a saved pipeline does not pin today's defaults. :meth:`create` and
    :meth:`from_dict` validate; the plain constructor takes values as they are (the CLI's parsed
    flags), and :class:`EngineConfig` validates in its constructor too.

    Attributes:
        model: Hub id, local checkpoint directory, (remote backend) a base URL, or ``None``.
        backend: Backend name (``"prism"``, ``"qwen3-reranker"``, ``"cross-encoder"``, ...) or ``None``.
        device: ``None`` (auto: CUDA, then MPS, then CPU) or a device string such as ``"cuda:1"``.
        dtype: ``None`` (auto: bf16 on CUDA, fp32 elsewhere) or ``"float32"``/``"bfloat16"``/``"float16"``.
        max_length: Cap on tokens per (query, document) input; longer documents are cut.
        max_new_tokens: Generation budget per document (generating backends only).
        batch_tokens: Padded tokens per forward pass.
        instruction: The task instruction (Qwen3-Reranker only; Prism's instruction is fixed).
        timeout: Seconds per HTTP request (remote backend only).
        max_retries: Retries on connection errors, 429 and 5xx (remote backend only).

    Example:
        >>> spec = EngineSpec.create("org/prism", max_new_tokens=64)
        >>> spec.to_dict()
        {'model': 'org/prism', 'backend': None, 'max_new_tokens': 64}
        >>> EngineSpec.from_dict(spec.to_dict()) == spec
        True
    """

    model: str | None = None
    backend: str | None = None
    device: str | None = None
    dtype: str | None = None
    max_length: int | None = None
    max_new_tokens: int | None = None
    batch_tokens: int | None = None
    instruction: str | None = None
    timeout: float | None = None
    max_retries: int | None = None

    @classmethod
    def create(cls, model: Any = None, backend: Any = None, **options: Any) -> EngineSpec:
        """Validate and normalise (``torch.bfloat16`` → ``"bfloat16"``, numpy ints → ``int``).

        Raises:
            TypeError: An unknown option name (the known ones are listed) or a wrongly typed value.
            ValueError: A value out of range; :class:`prism_core.UnknownBackendError` for an
                unknown backend name.
        """
        from prism_core.registry import check_backend_name

        _refuse_unknown(options)
        if backend is not None:
            check_backend_name(backend)  # the known ones listed; imports nothing
        model = None if model is None else model_option(model)
        return cls(model=model, backend=backend, **_checked(options))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | EngineSpec) -> EngineSpec:
        """Rebuild a spec from :meth:`to_dict` output, or from a spec (an :class:`EngineConfig` too)."""
        if isinstance(data, EngineSpec):
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise TypeError(
                f"engine_config must be a mapping, an EngineConfig or None, got {type(data).__name__}"
            )
        rest = {k: v for k, v in data.items() if k not in ("model", "backend")}
        return EngineSpec.create(data.get("model"), data.get("backend"), **rest)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``model``, ``backend`` and the options that were set, in documented order."""
        return {"model": self.model, "backend": self.backend, **self.options()}

    def options(self) -> dict[str, Any]:
        """The engine options that were set (``None`` means the backend's default), in documented order."""
        return {name: getattr(self, name) for name in ENGINE_OPTION_NAMES if getattr(self, name) is not None}

    @property
    def option_dict(self) -> dict[str, Any]:
        """The engine options that were set, as a dict (:meth:`options`)."""
        return self.options()

    def replace(self: _S, **changes: Any) -> _S:
        """A copy with some fields changed (an :class:`EngineConfig` is validated again)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """A short name for logs and messages: the model, or the backend's default model."""
        from prism_core.registry import default_model

        if self.model is not None:
            return self.model
        try:
            default = default_model(self.backend or "prism")
        except Exception:  # an unknown or unimportable backend: the message is about something else
            default = None
        return default if default is not None else f"{self.backend} (default model)"

    def resolve_names(self) -> tuple[str, str]:
        """``(model, backend)``: the backend told from the checkpoint when not given, the backend's
        default model when no model was given.

        Raises:
            UnknownBackendError: An unknown backend name, or a checkpoint whose backend cannot be
                told (pass ``backend=``).
            ValueError: The backend has no default model and none was given.
        """
        from prism_core import registry

        backend, model = self.backend, self.model
        if backend is None:
            backend = "prism" if model is None else registry.detect_backend(model)
        else:
            registry.check_backend_name(backend)
        if model is None:
            model = registry.default_model(backend)
            if model is None:
                raise ValueError(f"backend {backend!r} has no default model: pass model=")
        return model, backend

    def resolve(self) -> EngineConfig:
        """The full configuration (:meth:`resolve_names`), refusing options the backend does not take.

        Raises:
            UnknownBackendError: See :meth:`resolve_names`.
            ValueError: The backend has no default model and none was given.
            TypeError: An option the backend does not take (for example ``instruction`` with Prism).
        """
        from prism_core.registry import backend_options, refused_options

        model, backend = self.resolve_names()
        try:
            refused = refused_options(backend, self.options())
        except ImportError:  # the backend's extra is missing: its construction says so
            refused = []
        if refused:
            takes = ", ".join(backend_options(backend) or ())
            names = ", ".join(refused)
            raise TypeError(
                f"engine option(s) {names} do not apply to backend {backend!r} (it takes: {takes})"
            )
        return EngineConfig.create(model, backend, **self.options())


@dataclass(frozen=True)
class EngineConfig(EngineSpec):
    """A resolved :class:`EngineSpec`: ``model`` and ``backend`` set, every value validated.

    The registry's process-wide engine cache (:func:`prism_core.registry.get_engine`) is keyed by
    :meth:`key`, so two callers asking for the same engine in different spellings (``"cpu"`` and
    ``torch.device("cpu")``, a relative and an absolute path to one directory, ``torch.bfloat16``
    and ``"bf16"``) share one loaded model.

    Example:
        >>> config = EngineConfig(model="infgrad/Prism-Qwen3.5-Reranker-0.8B", backend="prism", dtype="bf16")
        >>> config.to_dict()
        {'model': 'infgrad/Prism-Qwen3.5-Reranker-0.8B', 'backend': 'prism', 'dtype': 'bfloat16'}
        >>> EngineConfig.from_dict(config.to_dict()) == config
        True
    """

    model: str
    backend: str

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "model", model_option(self.model))
        if not isinstance(self.backend, str) or not self.backend:
            raise TypeError(f"backend must be a non-empty str, got {self.backend!r}")
        for name, value in _checked(self.options()).items():
            set_(self, name, value)

    @classmethod
    def create(cls, model: Any = None, backend: Any = None, **options: Any) -> EngineConfig:
        """Build a config from keyword options, refusing unknown names with the known ones listed.

        Example:
            >>> EngineConfig.create("m", "prism", max_new_tokens=64).max_new_tokens
            64
        """
        _refuse_unknown(options)
        return cls(model=model, backend=backend, **options)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | EngineSpec) -> EngineConfig:
        """Rebuild a config from :meth:`to_dict` output (unknown keys are refused, by name)."""
        if isinstance(data, EngineSpec):
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise TypeError(f"an engine configuration must be a mapping, got {type(data).__name__}")
        for required in ("model", "backend"):
            if required not in data:
                raise ValueError(f"engine configuration is missing {required!r}: {dict(data)!r}")
        rest = {k: v for k, v in data.items() if k not in ("model", "backend")}
        return cls.create(data["model"], data["backend"], **rest)

    def resolve(self) -> EngineConfig:
        """Itself: already resolved."""
        return self

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
