"""EngineConfig (validation, round trips, cache key), the validators, and backend detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from prism_core import EngineConfig, UnknownBackendError
from prism_core.config import ENGINE_OPTION_NAMES
from prism_core.registry import BACKENDS, backend_class, detect_backend, get_engine, load_reranker
from prism_core.validation import check_float, check_int, check_threshold, check_top_n


def test_config_round_trips_and_writes_only_what_was_set(tmp_path: Path) -> None:
    config = EngineConfig.create(str(tmp_path), "prism", dtype=torch.bfloat16, device=torch.device("cpu"))
    assert config.to_dict() == {
        "model": str(tmp_path),
        "backend": "prism",
        "device": "cpu",
        "dtype": "bfloat16",
    }
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    assert EngineConfig.from_dict(config.to_dict()) == config
    assert config.options() == {"device": "cpu", "dtype": "bfloat16"}


def test_config_key_is_equal_for_spellings_of_one_engine(tmp_path: Path) -> None:
    a = EngineConfig.create(str(tmp_path), "prism", device="cpu", dtype="fp32")
    b = EngineConfig.create(str(tmp_path) + "/", "prism", device=torch.device("cpu"), dtype=torch.float32)
    c = EngineConfig.create(str(tmp_path), "prism", device="cpu", max_new_tokens=8)
    assert a.key() == b.key() and a.key() != c.key()
    assert EngineConfig.create(str(tmp_path), "prism").key() == a.key()  # None resolves to cpu fp32 here


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_length": 0}, ValueError, "max_length must be >= 1, got 0"),
        ({"max_new_tokens": True}, TypeError, "max_new_tokens must be an int, got bool"),
        ({"batch_tokens": "3"}, TypeError, "batch_tokens must be an int, got str"),
        ({"dtype": "int8"}, ValueError, "dtype must be"),
        ({"device": "gpu:7"}, ValueError, "device must be like"),
        ({"timeout": -1}, ValueError, r"timeout must be in \[0, 86400\], got -1"),
        ({"instruction": "  "}, ValueError, "instruction must not be blank"),
        ({"colour": "red"}, TypeError, "unknown engine option"),
    ],
)
def test_config_refuses_bad_options_by_name(options: dict, error: type, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=match):
        EngineConfig.create("some/model", "prism", **options)


def test_from_dict_refuses_missing_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="missing 'backend'"):
        EngineConfig.from_dict({"model": "m"})
    with pytest.raises(TypeError, match="unknown engine option"):
        EngineConfig.from_dict({"model": "m", "backend": "prism", "top_n": 3})
    assert set(ENGINE_OPTION_NAMES) >= {"device", "dtype", "max_length", "max_new_tokens", "batch_tokens"}


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_numpy_integers_are_integers(value: object) -> None:
    assert check_top_n(value) == 3 and type(check_top_n(value)) is int
    assert check_int(value, "x") == 3


@pytest.mark.parametrize("value", [True, np.bool_(True), "3", 3.0])
def test_non_integers_are_refused(value: object) -> None:
    with pytest.raises(TypeError, match="top_n must be an int"):
        check_top_n(value)


def test_thresholds_accept_numpy_floats_and_refuse_nan() -> None:
    assert check_threshold(np.float32(0.25)) == 0.25
    assert check_threshold(np.int64(1)) == 1.0
    with pytest.raises(ValueError, match="score_threshold must be in"):
        check_threshold(float("nan"))
    with pytest.raises(TypeError):
        check_threshold(True)
    with pytest.raises(ValueError, match="x must be a finite number"):
        check_float(float("nan"), "x")


def write_config(path: Path, **config: object) -> str:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def test_detection_from_the_checkpoint_and_the_name(tmp_path: Path) -> None:
    qwen35 = write_config(
        tmp_path / "anything", architectures=["Qwen3_5ForCausalLM"], model_type="qwen3_5_text"
    )
    bert = write_config(tmp_path / "prism-looking-name", architectures=["BertForSequenceClassification"])
    prism3 = write_config(tmp_path / "Prism-Qwen3-Reranker-4B-exp", architectures=["Qwen3ForCausalLM"])
    qwen3 = write_config(tmp_path / "Qwen3-Reranker-0.6B", architectures=["Qwen3ForCausalLM"])
    plain = write_config(tmp_path / "my-qwen", architectures=["Qwen3ForCausalLM"])
    assert detect_backend(qwen35) == "prism"
    assert detect_backend(bert) == "cross-encoder"  # the checkpoint wins over a misleading name
    assert detect_backend(prism3) == "prism"
    assert detect_backend(qwen3) == "qwen3-reranker"
    with pytest.raises(
        UnknownBackendError, match="pass backend= one of: prism, qwen3-reranker, cross-encoder"
    ):
        detect_backend(plain)
    assert detect_backend("http://127.0.0.1:8000") == "remote"


def test_unknown_backend_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownBackendError, match="unknown backend 'colbert'; known backends: prism"):
        load_reranker("some/model", backend="colbert")
    assert set(BACKENDS) >= {"prism", "qwen3-reranker", "cross-encoder", "remote"}
    assert backend_class("prism").__name__ == "PrismReranker"


def test_options_a_backend_does_not_take_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"backend .prism. does not take option\(s\) instruction"):
        get_engine(EngineConfig.create("some/Prism-model", "prism", instruction="x"))


def test_one_engine_per_configuration(tmp_path: Path) -> None:
    path = write_config(tmp_path / "Qwen3-Reranker", architectures=["Qwen3ForCausalLM"])
    a = load_reranker(path, device="cpu")
    assert a is load_reranker(path + "/", backend="qwen3-reranker", device=torch.device("cpu"), dtype="fp32")
    assert a is not load_reranker(path, device="cpu", instruction="another task")
    assert not a.is_loaded  # type: ignore[attr-defined]  # nothing was loaded


def test_backend_options_are_declared_once_and_read_by_every_reader() -> None:
    from prism_core.cli.options import ModelOptions, OptionError, default_reranker_factory
    from prism_core.config import EngineSpec
    from prism_core.registry import backend_options, refused_options

    assert backend_options("prism") == ("device", "dtype", "max_length", "max_new_tokens", "batch_tokens")
    assert backend_options("qwen3-reranker") == (*backend_options("prism"), "instruction")  # type: ignore[misc]
    assert backend_options("cross-encoder") == backend_options("prism")
    assert refused_options("prism", ["device", "instruction"]) == ["instruction"]
    with pytest.raises(TypeError, match=r"backend 'prism' does not take option\(s\) instruction"):
        backend_class("prism")("some/model", instruction="x")  # the constructor reads the declaration
    with pytest.raises(TypeError, match="instruction do not apply to backend 'prism'"):
        EngineSpec.create("m", "prism", instruction="x").resolve()  # the adapters' reader
    with pytest.raises(OptionError, match="--instruction does not apply to the prism backend"):
        default_reranker_factory(ModelOptions(model="m", backend="prism", instruction="x"))  # the CLI's


def test_one_engine_description_for_adapters_cli_and_registry() -> None:
    from prism_core.cli.options import ModelOptions
    from prism_core.config import EngineSpec

    spec = EngineSpec.create("m", "qwen3-reranker", instruction="Find code")
    config = spec.resolve()
    assert isinstance(config, EngineSpec) and issubclass(ModelOptions, EngineSpec)
    assert (
        config.to_dict()
        == spec.to_dict()
        == {"model": "m", "backend": "qwen3-reranker", "instruction": "Find code"}
    )
    assert (
        ModelOptions(model="m", backend="qwen3-reranker", instruction="Find code").engine_config() == config
    )
    assert EngineSpec.from_dict(config) == spec
