"""Head specs and reading JQL-layout Lightning checkpoints without Lightning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from prism_core.quality import JQL_EDU_HEADS, HeadFileError, load_head, parse_head_spec, read_head_file
from prism_core.testing.tiny_quality import build_head_checkpoint

# --- specs -----------------------------------------------------------------------------------------


def test_hub_spec() -> None:
    src = parse_head_spec("JQL-AI/JQL-Edu-Heads:checkpoints/edu-gemma-snowflake-balanced.ckpt")
    assert (src.repo_id, src.filename, src.revision, src.path) == (
        "JQL-AI/JQL-Edu-Heads", "checkpoints/edu-gemma-snowflake-balanced.ckpt", None, None,
    )  # fmt: skip
    pinned = parse_head_spec("JQL-AI/JQL-Edu-Heads@v1.0:checkpoints/x.ckpt")
    assert (pinned.repo_id, pinned.revision, pinned.filename) == (
        "JQL-AI/JQL-Edu-Heads",
        "v1.0",
        "checkpoints/x.ckpt",
    )
    assert [parse_head_spec(s).filename for s in JQL_EDU_HEADS] == [
        "checkpoints/edu-gemma-snowflake-balanced.ckpt",
        "checkpoints/edu-mistral-snowflake-balanced.ckpt",
        "checkpoints/edu-llama-snowflake-balanced.ckpt",
    ]


def test_local_specs(tmp_path: Path) -> None:
    head = build_head_checkpoint(tmp_path / "a:b.ckpt")  # a local file wins even with ':' in its name
    assert parse_head_spec(str(head)).path == head
    assert parse_head_spec(head).path == head  # PathLike


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("JQL-AI/JQL-Edu-Heads", ValueError, "names a hub repository but not a file"),
        ("./heads/missing.ckpt", HeadFileError, r"'./heads/missing.ckpt' does not exist"),
        ("missing.ckpt", HeadFileError, "does not exist"),
        ("", ValueError, "must not be empty"),
        (None, TypeError, "must be a str or path"),
    ],
)
def test_bad_specs(spec: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_head_spec(spec)


def test_directory_is_not_a_head(tmp_path: Path) -> None:
    with pytest.raises(HeadFileError, match="is a directory"):
        parse_head_spec(str(tmp_path))


def test_unreachable_hub_head_names_it_and_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HeadFileError) as info:
        load_head("no-such-org/no-such-heads:checkpoints/edu.ckpt")
    message = str(info.value)
    assert "could not load quality head 'no-such-org/no-such-heads:checkpoints/edu.ckpt'" in message
    assert "hf download no-such-org/no-such-heads checkpoints/edu.ckpt --local-dir ./heads" in message


# --- reading ---------------------------------------------------------------------------------------


def _expected(path: Path, prefix: str = "") -> list[torch.Tensor]:
    sd = torch.load(path, weights_only=True)["state_dict"]
    return [
        sd[f"{prefix}{k}"].to(torch.bfloat16).float()
        for k in ("layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias")
    ]


@pytest.mark.parametrize("prefix", ["", "model.", "net.head."])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reads_lightning_layout(tmp_path: Path, prefix: str, dtype: torch.dtype) -> None:
    path = build_head_checkpoint(tmp_path / "h.ckpt", 12, 5, prefix=prefix, dtype=dtype, seed=3)
    head = read_head_file(path)
    assert (head.input_dim, head.hidden_dim) == (12, 5)
    for got, want in zip((head.w1, head.b1, head.w2, head.b2), _expected(path, prefix), strict=True):
        assert got.dtype == torch.float32 and torch.equal(got, want)
    x = torch.nn.functional.normalize(torch.randn(4, 12), dim=1)
    w1, b1, w2, b2 = _expected(path, prefix)
    assert torch.allclose(head(x), (torch.relu(x @ w1.T + b1) @ w2.T + b2).squeeze(-1), atol=1e-6)


def test_sizes_from_shapes_without_hyper_parameters(tmp_path: Path) -> None:
    path = build_head_checkpoint(tmp_path / "h.ckpt", 12, 5, hyper_parameters=None)
    assert (read_head_file(path).input_dim, read_head_file(path).hidden_dim) == (12, 5)


def test_bare_state_dict(tmp_path: Path) -> None:
    path = build_head_checkpoint(tmp_path / "h.ckpt", 12, 5)
    torch.save(torch.load(path, weights_only=True)["state_dict"], tmp_path / "bare.pt")
    assert read_head_file(tmp_path / "bare.pt").input_dim == 12


EXPLODED: list[str] = []


def _explode() -> object:
    EXPLODED.append("code from the checkpoint ran")
    return {}


class _Boom:
    """Pickles as a call to ``_explode``: loading it the unsafe way would run code."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


class _AttributeDict(dict):  # type: ignore[type-arg]
    """Like Lightning's AttributeDict (a dict subclass) holding the hyper-parameters."""


def test_reads_around_objects_the_safe_loader_refuses(tmp_path: Path) -> None:
    hparams = _AttributeDict(input_dim=12, hidden_dim=5, loss=torch.nn.MSELoss())
    path = build_head_checkpoint(
        tmp_path / "h.ckpt", 12, 5, hyper_parameters=hparams, extra={"callbacks": {"x": _Boom()}}
    )
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)  # the plain safe load refuses this file
    head = read_head_file(path)
    assert (head.input_dim, head.hidden_dim) == (12, 5)
    plain = build_head_checkpoint(tmp_path / "plain.ckpt", 12, 5)  # same seed, nothing refused
    assert torch.equal(head.w1, _expected(plain)[0]) and torch.equal(head.b2, _expected(plain)[3])
    assert EXPLODED == []  # nothing from the file ran


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ck: ck["state_dict"].pop("layer2.bias"), r"no complete head: expected keys"),
        (lambda ck: ck.pop("state_dict"), r"not a JQL head checkpoint: no 'state_dict'"),
        (
            lambda ck: ck["hyper_parameters"].update(input_dim=99),
            r"hyper_parameters input_dim=99 but the weights have input_dim=12",
        ),
        (lambda ck: ck["state_dict"].update({"layer2.weight": torch.zeros(2, 5)}), "inconsistent shapes"),
        (lambda ck: ck["state_dict"].update({"layer1.bias": torch.full((5,), float("nan"))}), "non-finite"),
        (
            lambda ck: ck["state_dict"].update({"layer1.bias": torch.ones(5, dtype=torch.long)}),
            "is not a float tensor",
        ),
        (
            lambda ck: ck["state_dict"].update({f"ema.{k}": v for k, v in list(ck["state_dict"].items())}),
            r"several heads \(prefixes \['', 'ema.'\]\)",
        ),
    ],
)
def test_bad_checkpoints_name_the_file(tmp_path: Path, mutate: Any, message: str) -> None:
    path = build_head_checkpoint(tmp_path / "edu-broken.ckpt", 12, 5)
    ckpt = torch.load(path, weights_only=True)
    mutate(ckpt)
    torch.save(ckpt, path)
    with pytest.raises(HeadFileError, match=message) as info:
        read_head_file(path)
    assert "edu-broken.ckpt" in str(info.value)


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    path = build_head_checkpoint(tmp_path / "edu-cut.ckpt", 12, 5)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(HeadFileError, match=r"could not read quality head file .*edu-cut\.ckpt"):
        read_head_file(path)
