"""Loading a cross-encoder checkpoint with sentence-transformers; refusing what the runtime cannot serve."""

from __future__ import annotations

import os
from typing import Any

import torch

from prism_core.errors import ModelLoadError
from prism_core.extras import missing_extra
from prism_core.runtime.loading import check_local, load_error


def _offline() -> bool:
    """Whether the Hub is off limits, read from the environment at call time."""
    import huggingface_hub.constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or env.strip().lower() in {"1", "true", "yes", "on"}


def load_cross_encoder(model: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load ``model`` as a sentence-transformers ``CrossEncoder``; return it and its tokenizer.

    ``HF_HUB_OFFLINE=1`` set at any time before the call means local files only (no retries).

    Raises:
        ImportError: sentence-transformers is missing (the message names the extra to install).
        ModelLoadError: The checkpoint cannot be loaded (with the model's name and how to use a
            local copy), or it is not a one-label sequence-classification model.
    """
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:
        raise missing_extra("cross-encoder", needs="sentence-transformers", by="the cross-encoder") from exc

    from transformers import AutoConfig

    check_local(model)
    offline = _offline()
    try:
        config = AutoConfig.from_pretrained(model, local_files_only=offline)
    except Exception as exc:  # transformers and the hub raise OSError, ValueError, HTTP errors...
        raise load_error(model, exc, "cross-encoder") from exc
    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForCausalLM") for a in archs):  # refused before any weight is read
        raise _not_a_cross_encoder(model, f"architectures {archs!r}")
    try:
        cross_encoder = CrossEncoder(
            model, device=str(device), model_kwargs={"dtype": dtype}, local_files_only=offline
        )
    except Exception as exc:
        raise load_error(model, exc, "cross-encoder") from exc
    modules = list(cross_encoder)
    task = getattr(modules[0], "transformer_task", None) if len(modules) == 1 else None
    if task != "sequence-classification" or cross_encoder.num_labels != 1:
        raise _not_a_cross_encoder(
            model,
            f"architectures {archs!r}, {cross_encoder.num_labels} label(s), "
            f"modules {[type(m).__name__ for m in modules]}",
        )
    cross_encoder.eval()
    check_features(cross_encoder, model)
    return cross_encoder, cross_encoder.tokenizer


def _not_a_cross_encoder(model: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"{model!r} is not a one-label sequence-classification cross-encoder ({what}); for a Qwen3 "
        "causal-LM reranker use backend='qwen3-reranker' (or backend='prism' for Prism checkpoints)"
    )


def check_features(cross_encoder: Any, model: str) -> None:
    """Refuse a model whose ``preprocess`` output is not one row of 2-D tensors per pair, or whose
    forward gives no one-per-pair ``scores``: the runtime re-pads rows of exactly that shape."""
    features = cross_encoder.preprocess([("query", "document"), ("q", "d")])
    shapes = {k: tuple(v.shape) for k, v in features.items() if isinstance(v, torch.Tensor)}
    if "attention_mask" not in shapes or any(len(s) != 2 or s[0] != 2 for s in shapes.values()):
        raise ModelLoadError(f"{model!r}: unsupported sentence-transformers input features {shapes}")
    with torch.inference_mode():
        scores = cross_encoder(_to_device(features, cross_encoder.device)).get("scores")
    if not isinstance(scores, torch.Tensor) or scores.numel() != 2:
        raise ModelLoadError(f"{model!r}: the cross-encoder's forward gives no one-per-pair 'scores'")


def _to_device(features: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
