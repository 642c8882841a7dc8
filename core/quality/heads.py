"""JQL-Edu regression heads: naming them, finding their files and reading them without Lightning.

A JQL head is a PyTorch-Lightning checkpoint (``*.ckpt``) of a two-layer regression head:
``Linear(input_dim, hidden_dim) → ReLU → Linear(hidden_dim, 1)``. Its ``state_dict`` holds
``layer1.weight``, ``layer1.bias``, ``layer2.weight`` and ``layer2.bias`` (possibly under a prefix
such as ``model.``) and its ``hyper_parameters`` hold ``input_dim`` and ``hidden_dim``.

Naming a head (:func:`parse_head_spec`):

* a local file: ``"./heads/edu-gemma-snowflake-balanced.ckpt"`` (any existing path, or a
  :class:`os.PathLike`);
* a file in a Hugging Face Hub repository: ``"repo_id:path/in/repo.ckpt"``, optionally pinned to a
  revision with ``"repo_id@revision:path/in/repo.ckpt"``, e.g.
  ``"JQL-AI/JQL-Edu-Heads:checkpoints/edu-gemma-snowflake-balanced.ckpt"``.

A bare repository id (``"JQL-AI/JQL-Edu-Heads"``) is refused: the repository holds several heads,
so the file must be named (:data:`JQL_EDU_HEADS` lists the three of the paper's ensemble).

Reading (:func:`load_head`): ``torch.load(..., weights_only=True)``, so no code from the file runs
and Lightning is not needed. A Lightning checkpoint may also pickle objects that the restricted
loader refuses (an ``AttributeDict`` or an OmegaConf config as ``hyper_parameters``, a loss module,
callback state); those are replaced by inert stand-ins (:class:`OpaqueObject`, never importing their
module) and the head is read from the tensors, its sizes from ``hyper_parameters`` when readable,
else from the weight shapes. The weights are rounded to bfloat16 (the heads' published dtype, what
the reference pipeline runs them in) and the head is computed in float32.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from prism_core.errors import ModelLoadError
from prism_core.runtime.loading import looks_local

logger = logging.getLogger(__name__)

__all__ = [
    "JQL_EDU_HEADS",
    "JQL_EDU_REPO",
    "HeadFileError",
    "HeadSource",
    "OpaqueObject",
    "QualityHead",
    "load_head",
    "parse_head_spec",
    "read_head_file",
    "resolve_head",
]

#: The Hugging Face Hub repository of the JQL-Edu heads (model card ``JQL-AI/JQL-Edu-Heads``).
JQL_EDU_REPO = "JQL-AI/JQL-Edu-Heads"

#: The paper's three Edu heads on Snowflake embeddings (Gemma, Mistral, Llama annotators), as head
#: specs; pass them all to average them as the paper's ensemble does.
JQL_EDU_HEADS: tuple[str, ...] = (
    f"{JQL_EDU_REPO}:checkpoints/edu-gemma-snowflake-balanced.ckpt",
    f"{JQL_EDU_REPO}:checkpoints/edu-mistral-snowflake-balanced.ckpt",
    f"{JQL_EDU_REPO}:checkpoints/edu-llama-snowflake-balanced.ckpt",
)

_KEYS = ("layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias")
_HUB_FILE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[^:@]+))?:(?P<file>[^:]+)$")
_HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HeadFileError(ModelLoadError, ValueError):
    """A head file that is missing, unreadable or not a JQL head (the message names the file).

    Both a :class:`prism_core.ModelLoadError` (an ``OSError``) and a ``ValueError``.
    """


@dataclass(frozen=True)
class HeadSource:
    """Where a head comes from, parsed from its spec.

    Attributes:
        spec: The spec as the caller wrote it (used in messages and serialisation).
        path: The local file, for a local spec.
        repo_id: The hub repository, for a hub spec.
        filename: The file inside ``repo_id``.
        revision: The hub revision (branch, tag or commit), or ``None`` for the default branch.
    """

    spec: str
    path: Path | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        """Whether the head is a local file."""
        return self.path is not None


def parse_head_spec(spec: str | os.PathLike[str]) -> HeadSource:
    """Parse one head spec: a local path, or ``"repo_id[@revision]:path/in/repo"``.

    An existing local path always wins (so a local file whose name contains ``:`` still works).

    Args:
        spec: The head's name.

    Returns:
        The parsed :class:`HeadSource`.

    Raises:
        TypeError: If ``spec`` is not a string or path.
        HeadFileError: If ``spec`` looks like a local path that does not exist.
        ValueError: If ``spec`` is empty or names a hub repository without a file.

    Example:
        >>> parse_head_spec("JQL-AI/JQL-Edu-Heads:checkpoints/edu-gemma-snowflake-balanced.ckpt").filename
        'checkpoints/edu-gemma-snowflake-balanced.ckpt'
    """
    if isinstance(spec, os.PathLike):
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if not path.is_file():
            raise HeadFileError(_missing_message(text, path))
        return HeadSource(spec=text, path=path)
    if not isinstance(spec, str):
        raise TypeError(f"a quality head must be a str or path, got {type(spec).__name__}: {spec!r:.80}")
    if not spec.strip():
        raise ValueError(f"a quality head must not be empty, got {spec!r}")
    path = Path(spec).expanduser()
    if path.is_file():
        return HeadSource(spec=spec, path=path)
    match = _HUB_FILE.match(spec)
    if match is not None and not looks_local(match.group("repo")):
        return HeadSource(
            spec=spec, repo_id=match.group("repo"), filename=match.group("file"), revision=match.group("rev")
        )
    if _HUB_REPO.match(spec) and not path.exists():
        raise ValueError(
            f"quality head {spec!r} names a hub repository but not a file in it; write "
            f"'{spec}:path/in/repo.ckpt' (for the JQL-Edu heads, e.g. {JQL_EDU_HEADS[0]!r}; "
            "prism_core.quality.JQL_EDU_HEADS lists the paper's three) or give a local .ckpt path"
        )
    raise HeadFileError(_missing_message(spec, path))


def _missing_message(spec: str, path: Path) -> str:
    if path.is_dir():
        return f"quality head file {spec!r} is a directory; name the .ckpt file inside it"
    return (
        f"quality head file {spec!r} does not exist (a hub file is written "
        "'repo_id:path/in/repo.ckpt', e.g. " + repr(JQL_EDU_HEADS[0]) + ")"
    )


def resolve_head(source: HeadSource) -> Path:
    """Return the local file of a head, downloading a hub file (or using the hub cache) if needed.

    Raises:
        HeadFileError: If the local file vanished, or the hub file cannot be fetched (the message
            says how to download it elsewhere and pass the local path).
    """
    if source.path is not None:
        if not source.path.is_file():
            raise HeadFileError(_missing_message(source.spec, source.path))
        return source.path
    assert source.repo_id is not None and source.filename is not None
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        from prism_core.runtime.hub import hub_offline, hub_reachable

        cached = try_to_load_from_cache(source.repo_id, source.filename, revision=source.revision)
        if not isinstance(cached, str) and (hub_offline() or not hub_reachable()):
            raise OSError("the Hugging Face Hub cannot be reached and the file is not in the local cache")
        return Path(hf_hub_download(source.repo_id, source.filename, revision=source.revision))
    except Exception as exc:  # hub errors, offline mode, missing file in the repo...
        name = Path(source.filename).name
        raise HeadFileError(
            f"could not load quality head {source.spec!r}: {type(exc).__name__}: {exc}\n"
            "If the Hugging Face Hub cannot be reached from here, download the file on a machine that can "
            f"(`hf download {source.repo_id} {source.filename} --local-dir ./heads`), copy it over and pass "
            f"its path (heads='./heads/{source.filename}')"
            + ("" if name == source.filename else f" or any path to {name!r}")
            + "."
        ) from exc


class OpaqueObject(dict[str, Any]):
    """An inert stand-in for an object of a class the restricted loader may not import.

    It accepts any construction, item or state, so the rest of the checkpoint still loads; nothing
    of the original class runs. ``qualified_name`` says what it stands for.
    """

    qualified_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.args = args
        self.items_appended: list[Any] = []
        self.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        """Collect a list item (pickled lists subclasses append)."""
        self.items_appended.append(item)

    def extend(self, items: Any) -> None:
        """Collect list items."""
        self.items_appended.extend(items)

    def __repr__(self) -> str:
        return f"<opaque {self.qualified_name}>"


def _opaque_class(qualified_name: str) -> type[OpaqueObject]:
    return type("Opaque", (OpaqueObject,), {"qualified_name": qualified_name})


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, standing in inert objects for refused classes."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        if not names:
            raise
        logger.info("%s: reading around %d object(s) the safe loader refuses: %s", path, len(names), names)
        stand_ins = [(_opaque_class(name), name) for name in names]
        with torch.serialization.safe_globals(stand_ins):  # type: ignore[arg-type]
            return torch.load(path, map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class QualityHead:
    """One loaded JQL head: ``relu(x @ w1.T + b1) @ w2.T + b2`` (weights float32, bf16-rounded).

    Attributes:
        source: Where it came from.
        w1: ``(hidden_dim, input_dim)``.
        b1: ``(hidden_dim,)``.
        w2: ``(1, hidden_dim)``.
        b2: ``(1,)``.
    """

    source: HeadSource
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    @property
    def input_dim(self) -> int:
        """The embedding size the head expects."""
        return int(self.w1.shape[1])

    @property
    def hidden_dim(self) -> int:
        """The hidden layer's width."""
        return int(self.w1.shape[0])

    def to(self, device: torch.device) -> QualityHead:
        """This head with its weights on ``device``."""
        return QualityHead(
            self.source, self.w1.to(device), self.b1.to(device), self.w2.to(device), self.b2.to(device)
        )

    def __call__(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Raw scores, float32, one per row of ``embeddings`` (``(rows, input_dim)``)."""
        x = embeddings.to(self.w1.dtype)
        hidden = torch.relu(x @ self.w1.T + self.b1)
        return (hidden @ self.w2.T + self.b2).squeeze(-1)


def _find_state_dict(checkpoint: Any, spec: str) -> Mapping[str, Any]:
    if isinstance(checkpoint, Mapping):
        inner = checkpoint.get("state_dict")
        if isinstance(inner, Mapping):
            return inner
        if any(isinstance(k, str) and k.endswith("layer1.weight") for k in checkpoint):
            return checkpoint  # a bare state dict
    kind = type(checkpoint).__name__
    keys = sorted(map(str, checkpoint))[:10] if isinstance(checkpoint, Mapping) else []
    raise HeadFileError(
        f"quality head file {spec!r} is not a JQL head checkpoint: no 'state_dict' "
        f"(got a {kind}{' with keys ' + str(keys) if keys else ''})"
    )


def _head_tensors(state: Mapping[str, Any], spec: str) -> dict[str, torch.Tensor]:
    """The four head tensors under one common prefix (``""``, ``"model."``, ...)."""
    prefixes = {
        str(k)[: -len("layer1.weight")]
        for k in state
        if isinstance(k, str) and k.endswith("layer1.weight") and (k == "layer1.weight" or k[-14] == ".")
    }
    complete = sorted(p for p in prefixes if all(f"{p}{key}" in state for key in _KEYS))
    if len(complete) != 1:
        found = sorted(map(str, state))[:12]
        if not complete:
            raise HeadFileError(
                f"quality head file {spec!r} has no complete head: expected keys {list(_KEYS)} "
                f"(optionally under one prefix such as 'model.'), found {found}"
            )
        raise HeadFileError(
            f"quality head file {spec!r} holds several heads (prefixes {complete}); pass a file with one"
        )
    prefix = complete[0]
    out: dict[str, torch.Tensor] = {}
    for key in _KEYS:
        value = state[f"{prefix}{key}"]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise HeadFileError(
                f"quality head file {spec!r}: {prefix}{key} is not a float tensor: {value!r:.80}"
            )
        out[key] = value
    return out


def _hyper_dim(hparams: Any, name: str) -> int | None:
    if not isinstance(hparams, Mapping):
        return None
    value = hparams.get(name)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def read_head_file(path: str | os.PathLike[str], spec: str | None = None) -> QualityHead:
    """Read a JQL head checkpoint (Lightning layout or a bare state dict) from a local file.

    Args:
        path: The ``.ckpt`` file.
        spec: How the caller named the head (for messages); defaults to ``path``.

    Returns:
        The :class:`QualityHead` on the CPU.

    Raises:
        HeadFileError: Naming the file, if it cannot be read or is not a JQL head (missing keys,
            several heads, shapes that disagree with each other or with ``hyper_parameters``).

    Example:
        >>> head = read_head_file("heads/edu-gemma-snowflake-balanced.ckpt")  # doctest: +SKIP
        >>> head.input_dim, head.hidden_dim  # doctest: +SKIP
        (768, 1000)
    """
    file = Path(path)
    name = spec if spec is not None else str(path)
    if not file.is_file():
        raise HeadFileError(_missing_message(name, file))
    try:
        checkpoint = _torch_load(file)
    except Exception as exc:  # not a torch file, truncated zip, refused pickle...
        raise HeadFileError(
            f"could not read quality head file {name!r}: {type(exc).__name__}: {str(exc)[:400]}"
        ) from exc
    state = _find_state_dict(checkpoint, name)
    t = _head_tensors(state, name)
    w1, b1, w2, b2 = t["layer1.weight"], t["layer1.bias"], t["layer2.weight"], t["layer2.bias"]
    if w1.ndim != 2 or b1.shape != (w1.shape[0],) or w2.shape != (1, w1.shape[0]) or b2.shape != (1,):
        raise HeadFileError(
            f"quality head file {name!r} has inconsistent shapes: layer1.weight {tuple(w1.shape)}, "
            f"layer1.bias {tuple(b1.shape)}, layer2.weight {tuple(w2.shape)}, layer2.bias {tuple(b2.shape)} "
            "(expected (hidden, input), (hidden,), (1, hidden), (1,))"
        )
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, Mapping) else None
    for dim_name, actual in (("input_dim", int(w1.shape[1])), ("hidden_dim", int(w1.shape[0]))):
        declared = _hyper_dim(hparams, dim_name)
        if declared is not None and declared != actual:
            raise HeadFileError(
                f"quality head file {name!r}: hyper_parameters {dim_name}={declared} but the weights "
                f"have {dim_name}={actual}"
            )
    weights = [x.detach().to(torch.bfloat16).to(torch.float32) for x in (w1, b1, w2, b2)]
    if not all(bool(torch.isfinite(x).all()) for x in weights):
        raise HeadFileError(f"quality head file {name!r} holds non-finite weights (NaN or inf)")
    source = HeadSource(spec=name, path=file)
    return QualityHead(source, *weights)


def load_head(spec: str | os.PathLike[str] | HeadSource) -> QualityHead:
    """Find (downloading if needed) and read one head.

    Args:
        spec: A head spec (see :func:`parse_head_spec`) or a parsed :class:`HeadSource`.

    Raises:
        HeadFileError: Naming the head, if it cannot be found, fetched or read.
        ValueError: If the spec names a hub repository without a file.

    Example:
        >>> head = load_head(JQL_EDU_HEADS[0])  # doctest: +SKIP
    """
    source = spec if isinstance(spec, HeadSource) else parse_head_spec(spec)
    file = resolve_head(source)
    head = read_head_file(file, source.spec)
    return QualityHead(source, head.w1, head.b1, head.w2, head.b2)
