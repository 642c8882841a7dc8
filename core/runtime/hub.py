"""Is the Hugging Face Hub reachable? Asked once, quickly, before anything downloads.

Without it, a hub id on a machine that cannot reach the Hub sits through huggingface_hub's retries
(five per file, backing off to 8 s: about 50 s for a causal LM) before one error. Every loader
calls :func:`check_hub` first: it probes the Hub once per process (a HEAD request with a short
timeout, through the same proxy settings as the Hub client) and, when the Hub cannot be reached,

- a checkpoint already in the local Hugging Face cache loads from it: the process switches to
  local files only (``HF_HUB_OFFLINE``), and says so once;
- any other checkpoint fails at once with :func:`hub_unreachable_error`: one line that names the
  model, says the Hub is unreachable, and how to pass a local directory or set ``HF_HUB_OFFLINE=1``.

``PRISM_HUB_PROBE_TIMEOUT`` (seconds, default 3) bounds the probe; ``0`` turns the probe off.

Example:
    >>> from prism_core.runtime.hub import looks_like_hub_id
    >>> looks_like_hub_id("infgrad/Prism-Qwen3.5-Reranker-0.8B"), looks_like_hub_id("./model")
    (True, False)
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from prism_core.errors import ModelLoadError

logger = logging.getLogger(__name__)

#: Default seconds the reachability probe may take (``PRISM_HUB_PROBE_TIMEOUT`` overrides it).
PROBE_TIMEOUT = 3.0

_TRUE = {"1", "true", "yes", "on"}
_lock = threading.Lock()
_reachable: bool | None = None  # the probe's answer, once asked (per process)


def looks_like_hub_id(model: str) -> bool:
    """Whether ``model`` reads as a hub id (``org/name``) rather than a local path or a URL.

    Example:
        >>> looks_like_hub_id("BAAI/bge-reranker-v2-m3"), looks_like_hub_id("/abs/path")
        (True, False)
    """
    return (
        "://" not in model
        and model.count("/") == 1
        and not model.startswith((".", "/", "~"))
        and not Path(model).expanduser().exists()
    )


def hub_offline() -> bool:
    """Whether the Hub is off limits for this process (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``)."""
    import huggingface_hub.constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or env.strip().lower() in _TRUE


def _probe_timeout() -> float:
    text = os.environ.get("PRISM_HUB_PROBE_TIMEOUT", "")
    try:
        return float(text) if text.strip() else PROBE_TIMEOUT
    except ValueError:
        logger.warning("PRISM_HUB_PROBE_TIMEOUT=%r is not a number; using %s s", text, PROBE_TIMEOUT)
        return PROBE_TIMEOUT


def hub_reachable(*, refresh: bool = False) -> bool:
    """Whether the Hub endpoint answers within the probe timeout (asked once per process).

    Any HTTP answer counts as reachable; a DNS failure, a refused or timed-out connection or a
    proxy refusal does not. The probe honours the ``HTTPS_PROXY``/``NO_PROXY`` settings.

    Args:
        refresh: Ask again instead of reusing the process's earlier answer.

    Example:
        >>> hub_reachable()  # doctest: +SKIP
        False
    """
    global _reachable
    with _lock:
        if _reachable is not None and not refresh:
            return _reachable
        timeout = _probe_timeout()
        if timeout <= 0:
            _reachable = True  # probe turned off: let the Hub client decide
            return True
        import httpx
        from huggingface_hub import constants

        try:
            httpx.head(constants.ENDPOINT, timeout=timeout, follow_redirects=False)
            _reachable = True
        except httpx.HTTPError as exc:  # ConnectError, timeouts, ProxyError...
            logger.debug("Hugging Face Hub probe of %s failed: %s", constants.ENDPOINT, exc)
            _reachable = False
        return _reachable


def in_local_cache(model: str, filename: str = "config.json") -> bool:
    """Whether ``filename`` of hub repository ``model`` is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, filename), str)
    except Exception:  # a malformed repo id...
        return False


def hub_unreachable_error(model: str, what: str = "model", *, offline: bool = False) -> ModelLoadError:
    """The one-line error for a hub id that cannot be had: the Hub is unreachable (or off) and the
    checkpoint is not in the local cache.

    Example:
        >>> str(hub_unreachable_error("org/m")).startswith("cannot load model 'org/m': the Hugging Face Hub")
        True
    """
    from huggingface_hub import constants

    why = (
        "HF_HUB_OFFLINE is set"
        if offline
        else f"the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached from here"
    )
    return ModelLoadError(
        f"cannot load {what} {model!r}: {why} and it is not in the local cache; download it where the Hub "
        f"is reachable (`hf download {model} --local-dir ./model`), copy the folder here and pass its "
        "path as the model (`--model ./model`, `model='./model'`); HF_HUB_OFFLINE=1 skips the Hub and "
        "uses cached checkpoints only"
    )


def _go_offline() -> None:
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub and transformers
    os.environ["HF_HUB_OFFLINE"] = "1"  # and by what reads the environment (child processes)


def check_hub(model: str, what: str = "model") -> None:
    """Fail fast when ``model`` is a hub id that cannot be had; a no-op for local paths and URLs.

    Hub unreachable (quick probe, once per process): a checkpoint in the local cache is used from
    there (the process switches to local files only, logged once); any other fails at once.
    ``HF_HUB_OFFLINE`` set and the checkpoint not cached: fails at once too.

    Raises:
        ModelLoadError: :func:`hub_unreachable_error`'s message.

    Example:
        >>> check_hub("./a/local/dir")  # local paths are the loader's business
    """
    if not looks_like_hub_id(model):
        return
    if hub_offline():
        if not in_local_cache(model):
            raise hub_unreachable_error(model, what, offline=True)
        return
    if hub_reachable():
        return
    if not in_local_cache(model):
        raise hub_unreachable_error(model, what)
    with _lock:
        if not hub_offline():
            logger.warning(
                "the Hugging Face Hub cannot be reached; using cached files only for the rest of this "
                "process (as HF_HUB_OFFLINE=1 would)"
            )
            _go_offline()
