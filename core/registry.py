"""Backend names → classes, telling a checkpoint's backend, and the one process-wide engine cache.

``load_reranker(model, backend=None, **options)`` is the one way in: it picks the backend (the
``backend=`` name always wins; else the checkpoint's config; else its name), builds an
:class:`~prism_core.config.EngineConfig` and returns the process-wide engine for it, created on
first use and shared by every adapter, CLI run or server in the process that asks for the same
configuration (spelled any way). Engines load their weights lazily.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from prism_core.config import ENGINE_OPTION_NAMES, EngineConfig
from prism_core.errors import UnknownBackendError
from prism_core.protocol import Reranker

logger = logging.getLogger(__name__)

#: Backend name → ``"module:Class"`` (imported on first use, so a score-only install never imports
#: what it does not use).
BACKENDS: dict[str, str] = {
    "prism": "prism_core.prism.reranker:PrismReranker",
    "qwen3-reranker": "prism_core.qwen3.reranker:Qwen3Reranker",
    "cross-encoder": "prism_core.cross_encoder.reranker:CrossEncoderReranker",
    "remote": "prism_core.backends.remote:RemoteReranker",
}

E = TypeVar("E")

_engines: dict[tuple[Any, ...], Any] = {}
_engines_lock = threading.Lock()


def check_backend_name(name: Any) -> str:
    """``name`` if it is a registered backend name (nothing is imported).

    Raises:
        UnknownBackendError: The name is not registered; the message lists the known ones.
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    return name


def backend_class(name: str) -> type:
    """The class registered for a backend name (its module imported on first use).

    Raises:
        UnknownBackendError: The name is not registered; the message lists the known ones.
    """
    module, _, attr = BACKENDS[check_backend_name(name)].partition(":")
    cls: type = getattr(importlib.import_module(module), attr)
    return cls


def default_model(backend: str) -> str | None:
    """The backend's default model (its class's ``default_model``), ``None`` when it has none or its
    extra is not installed.

    Raises:
        UnknownBackendError: An unknown backend name.

    Example:
        >>> default_model("qwen3-reranker")  # doctest: +SKIP
        'Qwen/Qwen3-Reranker-0.6B'
    """
    try:
        default = getattr(backend_class(backend), "default_model", None)
    except ImportError:
        return None
    return default if isinstance(default, str) and default else None


def backend_options(backend: str | type) -> tuple[str, ...] | None:
    """The engine options (:data:`~prism_core.config.ENGINE_OPTION_NAMES`) a backend takes.

    Read from the class's declaration, ``engine_options`` (every built-in local backend declares
    it: :class:`~prism_core.backends.engine_backed.EngineBackedReranker`); a class without one is
    read from its constructor's parameters, and ``None`` means it takes any (``**kwargs``). The
    registry, the adapters and the CLI refuse an option by this one answer.

    Raises:
        UnknownBackendError: An unknown backend name.
        ImportError: The backend's module cannot be imported (its extra is missing).

    Example:
        >>> backend_options("qwen3-reranker")
        ('device', 'dtype', 'max_length', 'max_new_tokens', 'batch_tokens', 'instruction')
    """
    cls = backend_class(backend) if isinstance(backend, str) else backend
    declared = getattr(cls, "engine_options", None)
    if declared is not None:
        return tuple(declared)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover - a class without a readable signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(name for name in ENGINE_OPTION_NAMES if name in params)


def refused_options(backend: str | type, options: Iterable[str]) -> list[str]:
    """The names in ``options`` that ``backend`` does not take (:func:`backend_options`), in order."""
    takes = backend_options(backend)
    return [] if takes is None else [name for name in options if name not in takes]


def shared_engine(cls: type[E], candidate: Any) -> E:
    """The process-wide engine of class ``cls`` for ``candidate``'s configuration (``candidate`` if new)."""
    key = (cls, *candidate.engine_config.key())
    with _engines_lock:
        engine: E = _engines.setdefault(key, candidate)
    return engine


def get_engine(config: EngineConfig) -> Reranker:
    """The process-wide engine for ``config`` (created, not loaded, on first use).

    Raises:
        UnknownBackendError: The backend is not registered.
        TypeError: An option the backend does not take (its options are listed).
    """
    cls = backend_class(config.backend)
    options = config.options()
    refused = refused_options(cls, options)
    if refused:
        raise TypeError(
            f"backend {config.backend!r} does not take option(s) {', '.join(refused)}; "
            f"it takes: {', '.join(backend_options(cls) or ())}"
        )
    return shared_engine(cls, cls(config.model, **options))


def clear_engines() -> None:
    """Forget the cached engines (the next request builds new ones; weights stay cached by the runtime)."""
    with _engines_lock:
        _engines.clear()


def _read_config(model: str, *, network: bool) -> dict[str, Any] | None:
    """The checkpoint's ``config.json``: a local directory's, the hub cache's, or (``network``) the
    hub's; ``None`` when there is none to read."""
    path = Path(model).expanduser()
    if path.is_dir():
        file = path / "config.json"
        return json.loads(file.read_text()) if file.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        from prism_core.runtime.hub import hub_reachable

        if network and not hub_reachable():  # one quick probe instead of a minute of retries
            network = False
        cached = hf_hub_download(model, "config.json", local_files_only=not network)
        return json.loads(Path(cached).read_text())
    except Exception as exc:  # offline, unknown repo, no config: fall back to the name
        logger.debug("could not read config.json of %r: %s", model, exc)
        return None


def _is_cross_encoder_dir(model: str) -> bool:
    path = Path(model).expanduser()
    return (
        path.is_dir()
        and any((path / name).exists() for name in ("config_sentence_transformers.json", "modules.json"))
        and not (path / "generation_config.json").exists()
    )


def backend_from_name(model: str) -> str | None:
    """The backend a model's name suggests (no file or network access), else ``None``.

    Example:
        >>> backend_from_name("Qwen/Qwen3-Reranker-0.6B"), backend_from_name("BAAI/bge-reranker-v2-m3")
        ('qwen3-reranker', 'cross-encoder')
    """
    name = model.lower()
    if "prism" in name:
        return "prism"
    if "qwen3-reranker" in name or "qwen3_reranker" in name:
        return "qwen3-reranker"
    if any(k in name for k in ("cross-encoder", "ms-marco", "reranker")):
        return "cross-encoder"
    return None


def detect_backend(model: str) -> str:
    """Tell a checkpoint's backend from its config's architectures and files, else from its name.

    - ``*ForSequenceClassification`` → ``"cross-encoder"``;
    - Qwen3.5 causal LMs → ``"prism"`` (the only Qwen3.5 reranker this package knows);
    - plain Qwen3 causal LMs → the name decides (``prism`` in it → ``"prism"``, ``qwen3-reranker``
      → ``"qwen3-reranker"``): both are Qwen3 causal LMs;
    - no readable config → the name decides, as above, and ``reranker``/``cross-encoder``/``ms-marco``
      in it → ``"cross-encoder"``.

    Raises:
        UnknownBackendError: The backend cannot be told; the message lists the backends to pass
            as ``backend=``.

    Example:
        >>> detect_backend("infgrad/Prism-Qwen3.5-Reranker-0.8B")  # doctest: +SKIP
        'prism'
    """
    if "://" in model:
        if "remote" in BACKENDS:
            return "remote"
        raise UnknownBackendError(f"{model!r} is a URL and no remote backend is registered")
    guess = backend_from_name(model)
    by_name = guess if guess in ("prism", "qwen3-reranker") else None  # both are Qwen3 causal LMs
    # The hub is asked only when the name cannot decide (it may be unreachable: no slow retries).
    config = _read_config(model, network=by_name is None)
    if config is not None:
        archs = [str(a) for a in config.get("architectures") or []]
        model_type = str(config.get("model_type", ""))
        if any(a.endswith("ForSequenceClassification") for a in archs):
            return "cross-encoder"
        if model_type.startswith("qwen3_5") or any(a.startswith("Qwen3_5") for a in archs):
            return "prism"
        if any(a.endswith("ForCausalLM") for a in archs) and by_name is not None:
            return by_name
    elif by_name is not None:
        return by_name
    elif guess == "cross-encoder" or _is_cross_encoder_dir(model):
        return "cross-encoder"
    what = f"architectures {config.get('architectures')!r}" if config is not None else "no readable config"
    raise UnknownBackendError(
        f"cannot tell the backend of {model!r} ({what}); pass backend= one of: {', '.join(BACKENDS)}"
    )


def load_reranker(model: Any, *, backend: str | None = None, **options: Any) -> Reranker:
    """The process-wide reranker for ``model`` (created on first call; weights load on first use).

    Args:
        model: Hub id, local directory (or, with a remote backend, a base URL).
        backend: ``"prism"``, ``"qwen3-reranker"``, ``"cross-encoder"``...; ``None`` tells it from
            the checkpoint (:func:`detect_backend`). An explicit name always wins.
        **options: Engine options (see :class:`~prism_core.config.EngineConfig`).

    Raises:
        UnknownBackendError: Unknown ``backend`` name, or a checkpoint whose backend cannot be told.
        TypeError: An unknown option (the known ones are listed).

    Example:
        >>> from prism_core import load_reranker
        >>> reranker = load_reranker("Qwen/Qwen3-Reranker-0.6B", device="cpu")  # doctest: +SKIP
        >>> reranker.score("what is rust?", ["Rust is a language."])  # doctest: +SKIP
    """
    from prism_core.config import model_option

    model = model_option(model)
    name = detect_backend(model) if backend is None else backend
    backend_class(name)  # refuse an unknown name before anything else
    return get_engine(EngineConfig.create(model, name, **options))
