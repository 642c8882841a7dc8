"""QualityScorer: equivalence with the JQL computation written out by hand, ensembles, batching,
sharing of the encoder, loading errors and validation."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from prism_core.errors import ModelLoadError
from prism_core.quality import HeadFileError, QualityScorer
from prism_core.runtime.loading import registry
from prism_core.testing.tiny_quality import build_head_checkpoint
from tests.quality._quality_cases import DOCS, TinyQuality, direct_head_scores, direct_scores


def _scorer(tq: TinyQuality, heads: list[str] | None = None, **kwargs: Any) -> QualityScorer:
    return QualityScorer(
        heads if heads is not None else tq.heads[:1], embedder=tq.embedder, device="cpu", **kwargs
    )


# --- equivalence -----------------------------------------------------------------------------------


def test_one_head_matches_direct_computation(tiny_quality: TinyQuality) -> None:
    ours = _scorer(tiny_quality).score(DOCS)
    expected = direct_scores(tiny_quality.embedder, tiny_quality.heads[:1], DOCS)
    assert len(ours) == len(DOCS)
    assert ours == pytest.approx(expected, abs=1e-4)
    assert max(expected) - min(expected) > 0.3  # the check would notice a scorer that ignores its input


def test_heads_are_averaged(tiny_quality: TinyQuality) -> None:
    scorer = _scorer(tiny_quality, tiny_quality.heads)
    per_head = direct_head_scores(tiny_quality.embedder, tiny_quality.heads, DOCS)
    table = scorer.head_scores(DOCS)
    for j in range(3):
        assert [row[j] for row in table] == pytest.approx(per_head[j], abs=1e-4)
    mean = [sum(col) / 3 for col in zip(*per_head, strict=True)]
    assert scorer.score(DOCS) == pytest.approx(mean, abs=1e-4)
    gap = max(abs(a - b) for a, b in zip(per_head[0], per_head[1], strict=True))
    assert gap > 0.1  # the heads really differ


def test_small_token_budget_many_batches_same_scores(tiny_quality: TinyQuality) -> None:
    """Several batches (longest first, padded) give the same scores in input order."""
    whole = _scorer(tiny_quality).score(DOCS)
    tiny_budget = _scorer(tiny_quality, batch_tokens=40).score(DOCS)
    assert tiny_budget == pytest.approx(whole, abs=1e-4)
    reordered = _scorer(tiny_quality).score(DOCS[::-1])
    assert reordered == pytest.approx(whole[::-1], abs=1e-4)


def test_truncation_at_max_length(tiny_quality: TinyQuality) -> None:
    long_doc = [DOCS[2]]
    cut = _scorer(tiny_quality, max_length=8).score(long_doc)
    assert cut == pytest.approx(
        direct_scores(tiny_quality.embedder, tiny_quality.heads[:1], long_doc, 8), abs=1e-4
    )
    assert abs(cut[0] - _scorer(tiny_quality).score(long_doc)[0]) > 1e-3


def test_embeddings_are_normalised_cls(tiny_quality: TinyQuality) -> None:
    emb = _scorer(tiny_quality).embed(DOCS)
    assert emb.shape == (len(DOCS), 32) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(DOCS)), atol=1e-5)


async def test_ascore_matches_score(tiny_scorer: QualityScorer) -> None:
    expected = tiny_scorer.score(DOCS)
    results = await asyncio.gather(tiny_scorer.ascore(DOCS), tiny_scorer.ascore(DOCS[:2]))
    assert results[0] == pytest.approx(expected, abs=1e-6)
    assert results[1] == pytest.approx(expected[:2], abs=1e-6)


def test_raw_scores_are_unclipped(tiny_quality: TinyQuality, tmp_path: Path) -> None:
    """The head's output comes back as it is, even far outside 0–5."""
    head = build_head_checkpoint(tmp_path / "far.ckpt", 32, seed=5)
    ckpt = torch.load(head, weights_only=True)
    ckpt["state_dict"]["layer2.bias"] = torch.tensor([40.0])
    torch.save(ckpt, head)
    scores = _scorer(tiny_quality, [str(head)]).score(DOCS[:2])
    assert all(s > 30 for s in scores)


# --- loading and sharing ---------------------------------------------------------------------------


def test_constructing_loads_nothing_and_empty_input_too(tiny_quality: TinyQuality) -> None:
    scorer = _scorer(tiny_quality)
    assert not scorer.loaded
    assert scorer.score([]) == []
    assert asyncio.run(scorer.ascore([])) == []
    assert not scorer.loaded


def test_one_encoder_per_process(tiny_quality: TinyQuality, tmp_path: Path) -> None:
    embedder = shutil.copytree(tiny_quality.embedder, tmp_path / "enc")
    before = registry.loads
    a = QualityScorer(tiny_quality.heads[0], embedder=str(embedder), device="cpu").load()
    b = QualityScorer(tiny_quality.heads[1:], embedder=str(embedder), device="cpu", batch_tokens=64).load()
    assert registry.loads == before + 1
    assert a._loaded is b._loaded
    a.load()  # idempotent
    assert registry.loads == before + 1


def test_trust_remote_code_only_when_asked(
    tiny_quality: TinyQuality, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    calls: list[dict[str, Any]] = []
    original = transformers.AutoModel.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    embedder = str(shutil.copytree(tiny_quality.embedder, tmp_path / "enc"))
    QualityScorer(tiny_quality.heads[0], embedder=embedder, device="cpu").load()
    QualityScorer(tiny_quality.heads[0], embedder=embedder, device="cpu", trust_remote_code=True).load()
    assert len(calls) == 2  # a separate encoder for each setting
    assert "trust_remote_code" not in calls[0]
    assert calls[1]["trust_remote_code"] is True


def test_missing_local_head_names_the_file(tiny_quality: TinyQuality, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "edu-head.ckpt"
    with pytest.raises(HeadFileError, match=r"edu-head\.ckpt.*does not exist"):
        _scorer(tiny_quality, [tiny_quality.heads[0], str(missing)])
    with pytest.raises(ModelLoadError, match=r"edu-head\.ckpt"):  # also a ModelLoadError ...
        _scorer(tiny_quality, [str(missing)])
    with pytest.raises(ValueError, match=r"edu-head\.ckpt"):  # ... and a ValueError
        _scorer(tiny_quality, [str(missing)])


def test_bad_head_file_names_the_file(tiny_quality: TinyQuality, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"this is not a checkpoint")
    scorer = _scorer(tiny_quality, [str(bad)])
    with pytest.raises(HeadFileError, match=r"could not read quality head file .*garbage\.ckpt"):
        scorer.load()
    assert not scorer.loaded


def test_head_for_another_embedder_is_refused(tiny_quality: TinyQuality, tmp_path: Path) -> None:
    head = build_head_checkpoint(tmp_path / "wide.ckpt", input_dim=768, hidden_dim=8)
    with pytest.raises(HeadFileError, match=r"wide\.ckpt.*768-dimensional.*gives 32-dimensional"):
        _scorer(tiny_quality, [str(head)]).load()


def test_unreachable_hub_embedder_is_a_clear_error(
    tiny_quality: TinyQuality, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    scorer = QualityScorer(tiny_quality.heads[0], embedder="no-such-org/no-such-embedder", device="cpu")
    with pytest.raises(
        ModelLoadError,
        match=r"cannot load embedding model 'no-such-org/no-such-embedder': HF_HUB_OFFLINE is set and it "
        r"is not in the local cache",
    ):
        scorer.load()


def test_missing_local_embedder_directory(tiny_quality: TinyQuality, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        QualityScorer(tiny_quality.heads[0], embedder=str(tmp_path / "nothing" / "here"), device="cpu").load()


# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"heads": []}, ValueError, "at least one"),
        ({"heads": 3}, TypeError, "heads must be"),
        ({"heads": ["JQL-AI/JQL-Edu-Heads"]}, ValueError, "names a hub repository but not a file"),
        ({"max_length": 0}, ValueError, "max_length must be >= 1"),
        ({"batch_tokens": 0}, ValueError, "batch_tokens must be >= 1"),
        ({"trust_remote_code": "yes"}, TypeError, "trust_remote_code must be a bool"),
        ({"dtype": "int8"}, ValueError, "dtype"),
        ({"embedder": " "}, ValueError, "embedder must not be empty"),
    ],
)
def test_option_validation(
    tiny_quality: TinyQuality, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    heads = kwargs.pop("heads", tiny_quality.heads[0])
    with pytest.raises(error, match=message):
        QualityScorer(heads, **{"embedder": tiny_quality.embedder, "device": "cpu", **kwargs})


def test_document_validation_names_position(tiny_scorer: QualityScorer) -> None:
    with pytest.raises(TypeError, match=r"documents\[1\] must be a str"):
        tiny_scorer.score(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="documents must be a sequence"):
        tiny_scorer.score("one string")
    with pytest.raises(ValueError, match=r"documents\[0\].*UTF-8"):
        tiny_scorer.score(["\udc80"])


def test_to_dict_round_trip(tiny_quality: TinyQuality) -> None:
    scorer = QualityScorer(
        tiny_quality.heads[:2], embedder=tiny_quality.embedder, device="cpu", dtype=torch.float32,
        max_length=64, batch_tokens=128,
    )  # fmt: skip
    data = scorer.to_dict()
    assert data == {
        "heads": tiny_quality.heads[:2],
        "embedder": tiny_quality.embedder,
        "device": "cpu",
        "dtype": "float32",
        "trust_remote_code": False,
        "max_length": 64,
        "batch_tokens": 128,
    }
    assert QualityScorer.from_dict(data).to_dict() == data
    with pytest.raises(ValueError, match=r"unknown QualityScorer option\(s\) \['colour'\]"):
        QualityScorer.from_dict({**data, "colour": "red"})


def test_encoder_loaded_without_pooler(tiny_scorer: QualityScorer) -> None:
    """As the JQL pipeline loads it (``add_pooling_layer=False``): only the last hidden state is used."""
    assert tiny_scorer._loaded is not None
    assert tiny_scorer._loaded.model.pooler is None


def test_concurrent_callers_get_their_own_scores(tiny_scorer: QualityScorer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    expected = tiny_scorer.score(DOCS)
    subsets = [DOCS[i:] for i in range(6)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(tiny_scorer.score, subsets, timeout=120))
    for i, got in enumerate(results):
        assert got == pytest.approx(expected[i:], abs=1e-5)
