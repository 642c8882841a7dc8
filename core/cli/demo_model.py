"""Picking a model the demo and examples can actually run, online or not."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from prism_core.backends.prism import DEFAULT_MODEL
from prism_core.errors import ModelLoadError

logger = logging.getLogger(__name__)

FALLBACK_BANNER = (
    "!! Not running the real Prism weights ({reason}).\n"
    "!! Falling back to a TINY RANDOM-WEIGHT model built locally: every score, verdict,\n"
    "!! contribution and evidence below is MEANINGLESS. It only shows the pipeline working.\n"
    "!! Pass --model /path/to/a/downloaded/Prism/checkpoint for real results."
)


def resolve_demo_model(model: str | None = None) -> tuple[str, bool]:
    """Return ``(model, is_fallback)``: ``model`` (default: the hub model) if its tokenizer and
    config can be fetched, else the path of a tiny random-weight checkpoint built offline.

    A path to a tiny random-weight checkpoint counts as a fallback too, so whoever runs it says so.
    Only the light files are fetched here; the weights load when the reranker is first used.

    Example:
        >>> path, fallback = resolve_demo_model()  # doctest: +SKIP
    """
    from transformers import AutoConfig, AutoTokenizer

    from prism_core.testing.tiny_models import TINY_MARKER, tiny_checkpoint

    name = model or DEFAULT_MODEL
    if (Path(name).expanduser() / TINY_MARKER).exists():  # a tiny random model passed on explicitly
        return name, True
    if _looks_like_hub_id(name) and not Path(name).exists() and not _hub_reachable():
        logger.warning("the Hugging Face Hub cannot be reached; using a tiny random-weight model")
        return str(tiny_checkpoint("qwen3_5")), True
    try:
        AutoConfig.from_pretrained(name)
        AutoTokenizer.from_pretrained(name)
        return name, False
    except Exception as exc:  # hub unreachable, bad path: any failure means "use the fallback"
        if model is not None and not _looks_like_hub_id(model):
            raise ModelLoadError(f"could not load Prism model {model!r}: {exc}") from exc
        logger.warning("could not load %s (%s); using a tiny random-weight model", name, type(exc).__name__)
        return str(tiny_checkpoint("qwen3_5")), True


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the Hub endpoint, so an offline demo does not sit through retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _looks_like_hub_id(model: str) -> bool:
    return model.count("/") == 1 and not model.startswith((".", "/", "~"))
