"""The model options every ``prism-rerank`` subcommand shares, and how they become a reranker.

One function, :func:`add_model_arguments`, defines the model arguments (``--model``, ``--backend``,
``--device``, ``--dtype``, ``--max-length``, ``--max-new-tokens``, ``--batch-tokens``,
``--instruction``, and ``--timeout``/``--max-retries`` for the remote backend);
:meth:`ModelOptions.from_args` reads them back; :meth:`ModelOptions.engine_config` turns them into
the :class:`prism_core.config.EngineConfig` the engine cache is keyed by (:func:`engine_config` does
both steps); and :func:`build_reranker` builds (constructs, does not load) the reranker, sorting
what can go wrong into two kinds:

- :class:`OptionError`: the options are wrong (unknown backend, ``--max-length`` below the prompt's
  minimum, an option the backend does not take, a checkpoint whose backend cannot be told). A
  command reports it like argparse does: ``prism-rerank: error: ...``, exit status 2.
- :class:`ModelUnavailable`: the options are fine but the model cannot be had (missing files, hub
  unreachable, a missing extra). A command reports it as one line and exits with status 1.

The quality prior's options (``--quality-head``, repeatable, ``--quality-embedder``,
``--min-quality``, ``--quality-weight``, ``--trust-remote-code``) are defined once too, by
:func:`add_quality_arguments`; :meth:`QualityOptions.from_args` reads them and
:func:`build_quality_scorer` builds the :class:`prism_core.quality.QualityScorer` (construct, not
load), reporting bad values as :class:`OptionError`.

A subcommand (``serve``, ``batch``, ``eval``...) uses them like this::

    parser = argparse.ArgumentParser(prog="prism-rerank serve")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    options = ModelOptions.from_args(args)
    try:
        reranker = build_reranker(options, reranker_factory)  # before reading any input
    except OptionError as exc:
        parser.error(str(exc))  # exit 2
    except ModelUnavailable as exc:
        print(f"prism-rerank serve: error: {exc}", file=sys.stderr)
        return 1
    ...
    load_now(reranker, options)  # when the weights are first needed (same two errors)
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prism_core.config import ENGINE_OPTION_NAMES, EngineConfig, EngineSpec
from prism_core.errors import UnknownBackendError
from prism_core.protocol import Reranker

if TYPE_CHECKING:
    from prism_core.quality.scorer import QualityScorer

DTYPES = ("bfloat16", "float16", "float32")

#: The :class:`ModelOptions` fields that are engine options (everything but ``model`` and ``backend``).
ENGINE_FIELDS: tuple[str, ...] = ENGINE_OPTION_NAMES


class OptionError(ValueError):
    """The model options are wrong; report like argparse (``prog: error: message``, exit 2)."""


class ModelUnavailable(Exception):
    """The reranker could not be built or loaded; the message is ready for stderr (exit 1)."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none).

    Example:
        >>> one_line(ValueError("bad\\n  value"))
        'bad value'
    """
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Argument types
# --------------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1.

    Example:
        >>> positive_int("3")
        3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0.

    Example:
        >>> non_negative_int("0")
        0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0.

    Example:
        >>> positive_float("2.5")
        2.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0.0 < value < float("inf"):  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a number in [0, 1] (NaN refused).

    Example:
        >>> probability("0.5")
        0.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def quality_value(text: str) -> float:
    """argparse type: a raw quality score, a number in [0, 5] (the JQL-Edu heads' scale; NaN refused).

    Example:
        >>> quality_value("2.5")
        2.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 5], got {text!r}") from None
    if not 0.0 <= value <= 5.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be in [0, 5], got {text}")
    return value


def _backend_names() -> str:
    from prism_core.registry import BACKENDS

    return ", ".join(BACKENDS)


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the model options (the one definition every subcommand uses) as a "model" group.

    Args:
        parser: The parser to extend.

    Returns:
        The argument group (a subcommand may add its own model-related options to it).

    Example:
        >>> parser = argparse.ArgumentParser(prog="x")
        >>> _ = add_model_arguments(parser)
        >>> ModelOptions.from_args(parser.parse_args(["--backend", "qwen3-reranker"])).backend
        'qwen3-reranker'
    """
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help="Hugging Face model id, local checkpoint directory, or a rerank server's URL with --backend "
        "remote (default: the backend's default model; Prism's when no backend is given)",
    )
    group.add_argument(
        "--backend",
        help=f"reranker backend, one of: {_backend_names()} (default: told from the checkpoint's "
        "config and name; prism without --model)",
    )
    group.add_argument("--device", help='torch device, e.g. "cuda", "cuda:1", "cpu" (default: auto)')
    group.add_argument("--dtype", choices=DTYPES, help="weights dtype (default: auto)")
    group.add_argument(
        "--max-length",
        type=positive_int,
        help="token budget for prompt plus document; below the backend's fixed prompt length it is "
        "refused (default: the backend's, 10240 for prism)",
    )
    group.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help="generation budget per document, generating backends only (default: 1024)",
    )
    group.add_argument(
        "--batch-tokens", type=positive_int, help="padded tokens per forward pass (default: by device)"
    )
    group.add_argument(
        "--instruction",
        help="task instruction, qwen3-reranker only (default: the model card's web-search instruction)",
    )
    group.add_argument(
        "--timeout", type=positive_float, help="seconds per HTTP request (remote backend only)"
    )
    group.add_argument(
        "--max-retries",
        type=non_negative_int,
        help="retries on connection errors, 429 and 5xx (remote backend only)",
    )
    return group


def add_quality_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the quality prior's options as a "quality prior" group (off unless ``--quality-head``).

    Example:
        >>> parser = argparse.ArgumentParser(prog="x")
        >>> _ = add_quality_arguments(parser)
        >>> args = parser.parse_args(["--quality-head", "a.ckpt", "--quality-head", "b.ckpt"])
        >>> QualityOptions.from_args(args).heads
        ('a.ckpt', 'b.ckpt')
    """
    from prism_core.quality.heads import JQL_EDU_HEADS
    from prism_core.quality.scorer import DEFAULT_EMBEDDER

    group = parser.add_argument_group(
        "quality prior",
        "A query-free quality score (JQL-Edu heads on document embeddings) beside the reranker's "
        "relevance; off unless --quality-head is given.",
    )
    group.add_argument(
        "--quality-head",
        dest="quality_heads",
        action="append",
        metavar="HEAD",
        help="a quality head: a local .ckpt file or 'repo_id:path/in/repo.ckpt' (e.g. "
        f"{JQL_EDU_HEADS[0]}); repeat it to average several heads, as the paper's ensemble does",
    )
    group.add_argument(
        "--quality-embedder",
        metavar="MODEL",
        help=f"hub id or local directory of the heads' embedding model (default: {DEFAULT_EMBEDDER}); "
        "it runs on --device",
    )
    group.add_argument(
        "--min-quality",
        type=quality_value,
        metavar="X",
        help="drop results whose raw quality score is below X, in [0, 5] (default: keep all)",
    )
    group.add_argument(
        "--quality-weight",
        type=probability,
        metavar="W",
        help="blend W in [0, 1]: results are ranked, cut by --threshold and --top-n on "
        "(1 - W) * score + W * clip(quality / 5, 0, 1) (default: 0, the reranker's order)",
    )
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=None,
        help="let the quality embedder run its repository's own code (the default Snowflake embedder "
        "needs it); applies to the quality embedder only",
    )
    return group


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityOptions:
    """The quality prior as given on the command line (``None``: not given).

    Attributes:
        heads: The ``--quality-head`` values, in order (empty: no quality prior).
        embedder: ``--quality-embedder``; ``None`` keeps the heads' default embedder.
        min_quality: ``--min-quality`` (raw scale, ``[0, 5]``).
        quality_weight: ``--quality-weight`` (``[0, 1]``).
        trust_remote_code: ``--trust-remote-code`` (``None`` when not given).

    Example:
        >>> QualityOptions(heads=("h.ckpt",), quality_weight=0.3).enabled
        True
    """

    heads: tuple[str, ...] = ()
    embedder: str | None = None
    min_quality: float | None = None
    quality_weight: float | None = None
    trust_remote_code: bool | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> QualityOptions:
        """Read the options :func:`add_quality_arguments` defined from parsed arguments."""
        return cls(
            heads=tuple(getattr(args, "quality_heads", None) or ()),
            embedder=getattr(args, "quality_embedder", None),
            min_quality=getattr(args, "min_quality", None),
            quality_weight=getattr(args, "quality_weight", None),
            trust_remote_code=getattr(args, "trust_remote_code", None),
        )

    @property
    def enabled(self) -> bool:
        """Whether a quality prior was asked for (at least one ``--quality-head``)."""
        return bool(self.heads)

    @property
    def weight(self) -> float:
        """The blend weight, ``0`` when not given."""
        return 0.0 if self.quality_weight is None else self.quality_weight


def build_quality_scorer(options: QualityOptions, device: str | None = None) -> QualityScorer | None:
    """Build (construct, not load) the quality scorer the options describe, or ``None`` without heads.

    Args:
        options: The command line's quality options.
        device: The torch device for the embedder (the command's ``--device``; ``None``: auto).

    Returns:
        The scorer (loaded on first use), or ``None`` when no ``--quality-head`` was given.

    Raises:
        OptionError: A quality option without ``--quality-head``, a local head file that does not
            exist, a hub repository named without a file, or a bad value: a usage error (exit 2).

    Example:
        >>> build_quality_scorer(QualityOptions()) is None
        True
        >>> build_quality_scorer(QualityOptions(min_quality=2.0))  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        OptionError: --min-quality needs --quality-head
    """
    if not options.enabled:
        given = [
            flag
            for flag, value in (
                ("--quality-embedder", options.embedder),
                ("--min-quality", options.min_quality),
                ("--quality-weight", options.quality_weight),
                ("--trust-remote-code", options.trust_remote_code),
            )
            if value is not None
        ]
        if given:
            raise OptionError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --quality-head")
        return None
    from prism_core.quality.scorer import DEFAULT_EMBEDDER, QualityScorer

    try:
        return QualityScorer(
            list(options.heads),
            embedder=DEFAULT_EMBEDDER if options.embedder is None else options.embedder,
            device=device,
            trust_remote_code=bool(options.trust_remote_code),
        )
    except (ValueError, TypeError, OSError) as exc:  # HeadFileError (a missing file) is both
        raise OptionError(one_line(exc)) from None


class ModelOptions(EngineSpec):
    """How to build the reranker, as given on the command line: the core's one engine description
    (:class:`~prism_core.config.EngineSpec`, ``None``: not given) read from parsed flags.

    Values are taken as argparse parsed them and validated when the engine configuration is built
    (:meth:`engine_config`), so a bad value is reported as an option error there.

    Example:
        >>> ModelOptions(model="m", backend="prism", max_length=512).engine_config().to_dict()
        {'model': 'm', 'backend': 'prism', 'max_length': 512}
    """

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelOptions:
        """Read the options :func:`add_model_arguments` defined from parsed arguments."""
        return cls(**{f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)})

    @property
    def model_name(self) -> str:
        """The model as it should appear in messages (the backend's default model when unset)."""
        name = self.describe()
        return "<default model>" if self.model is None and name.endswith("(default model)") else name

    def engine_options(self) -> dict[str, Any]:
        """The engine options that were given (``None`` ones left out)."""
        return self.options()

    def engine_config(self) -> EngineConfig:
        """The :class:`~prism_core.config.EngineConfig` these options describe (validated); whether
        the backend takes each option is checked by :func:`default_reranker_factory`, by flag name.

        Raises:
            prism_core.errors.UnknownBackendError: Unknown backend name, or a checkpoint whose
                backend cannot be told.
            OptionError: The backend has no default model and ``model`` is not given.
            ValueError: An option value the configuration refuses (a bad device string...).
        """
        try:
            model, backend = self.resolve_names()
        except UnknownBackendError:
            raise
        except ValueError:
            raise OptionError(
                f"the {self.backend or 'prism'} backend has no default model: pass --model"
            ) from None
        return EngineConfig.create(model, backend, **self.options())


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """The :class:`EngineConfig` that arguments parsed with :func:`add_model_arguments` describe.

    Raises:
        prism_core.errors.UnknownBackendError: Unknown backend, or one that cannot be told.
        ValueError, TypeError: An option value the configuration refuses (the message names it).
    """
    return ModelOptions.from_args(args).engine_config()


RerankerFactory = Callable[[ModelOptions], Reranker]
"""Builds (constructs; loading may wait) the reranker for the options.

Raises ``ValueError``/``TypeError`` for bad options (reported as option errors, exit 2) and
``OSError`` (e.g. ``ModelLoadError``) or ``ImportError`` when the model cannot be had (exit 1).
"""


def _check_applicable(config: EngineConfig) -> None:
    """Refuse an option the backend does not take (:func:`prism_core.registry.refused_options`),
    naming the option by its flag and the backend."""
    from prism_core.registry import refused_options

    for name in refused_options(config.backend, config.options()):
        raise OptionError(f"--{name.replace('_', '-')} does not apply to the {config.backend} backend")


def default_reranker_factory(options: ModelOptions) -> Reranker:
    """The process-wide engine for ``options`` (:func:`prism_core.registry.get_engine`), not loaded.

    The command-line commands draw their own progress, so the engine's own progress bar is turned
    off where it has one.

    Args:
        options: Model, backend and engine options from the command line.

    Returns:
        The reranker; its weights load on first use (or :func:`load_now`).

    Raises:
        prism_core.errors.UnknownBackendError: See :meth:`ModelOptions.resolve`.
        OptionError: An option the backend does not take, or no default model.
        ValueError: An option value the backend refuses (``max_length`` below its prompt's minimum).
        ImportError: The backend's extra is not installed.
        prism_core.errors.ModelLoadError: A hub id while the hub cannot be reached (a quick probe)
            and the checkpoint is not in the local cache.

    Example:
        >>> reranker = default_reranker_factory(ModelOptions(backend="prism", device="cpu"))  # doctest: +SKIP
    """
    from prism_core.registry import get_engine
    from prism_core.runtime.hub import check_hub

    config = options.engine_config()
    _check_applicable(config)
    if config.backend != "remote":
        check_hub(config.model)  # a hub id the hub cannot give: fail now, in one line, not after retries
    engine = get_engine(config)
    if hasattr(engine, "show_progress"):
        engine.show_progress = False
    return engine


def check_backend_name(backend: str | None) -> None:
    """Refuse an unknown backend name before anything is built.

    Raises:
        OptionError: ``backend`` is not registered; the message lists the known backends.

    Example:
        >>> check_backend_name("prism")
        >>> check_backend_name("nope")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        OptionError: unknown backend 'nope'; known backends: prism, ...
    """
    from prism_core.errors import UnknownBackendError
    from prism_core.registry import BACKENDS, backend_class

    if backend is None or backend in BACKENDS:
        return
    try:
        backend_class(backend)  # raises with the registry's own message
    except UnknownBackendError as exc:
        raise OptionError(one_line(exc)) from None


def build_reranker(options: ModelOptions, factory: RerankerFactory | None = None) -> Reranker:
    """Build (construct, not load) the reranker, sorting failures into option and model errors.

    Args:
        options: The command line's model options.
        factory: Builds the reranker; ``None`` uses :func:`default_reranker_factory`.

    Returns:
        The reranker.

    Raises:
        OptionError: Unknown backend, an option value the engine refuses (``--max-length 5``), an
            option the backend does not take: report as a usage error (exit 2).
        ModelUnavailable: The model cannot be had (files, network, a missing extra): exit 1.

    Example:
        >>> build_reranker(ModelOptions(backend="nope"))  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        OptionError: unknown backend 'nope'; known backends: prism, ...
    """
    check_backend_name(options.backend)
    try:
        return (factory or default_reranker_factory)(options)
    except OptionError:
        raise
    except (ValueError, TypeError) as exc:  # UnknownBackendError included; ModelLoadError is an OSError
        raise OptionError(one_line(exc)) from None
    except ImportError as exc:
        which = f"the {options.backend} backend" if options.backend else "the backend"
        raise ModelUnavailable(f"cannot use {which}: {one_line(exc)}") from None
    except Exception as exc:  # OSError (ModelLoadError, hub errors) and anything a custom factory raises
        raise ModelUnavailable(load_failure(options, exc)) from None


def load_now(reranker: Reranker, options: ModelOptions) -> None:
    """Load the reranker's weights now, when it has a ``load()`` (idempotent), sorting failures.

    Args:
        reranker: What :func:`build_reranker` returned.
        options: The options it was built from (for messages).

    Raises:
        OptionError: The backend refused an option once its tokenizer was known (``max_length``
            below the exact prompt length): a usage error, exit 2.
        ModelUnavailable: Anything else that stops the model loading: exit 1.
    """
    load = getattr(reranker, "load", None)
    if not callable(load):
        return
    try:
        load()
    except ValueError as exc:  # transformers' own errors come wrapped in ModelLoadError (an OSError)
        raise OptionError(one_line(exc)) from None
    except Exception as exc:
        raise ModelUnavailable(load_failure(options, exc)) from None


def load_failure(options: ModelOptions, exc: BaseException) -> str:
    """One line saying why the model cannot be loaded, naming it once.

    A :class:`~prism_core.errors.ModelLoadError` already names the model (and what to do): it is
    used as it is; anything else gets ``cannot load model '<model>': `` in front.

    Example:
        >>> load_failure(ModelOptions(model="m"), OSError("disk gone"))
        "cannot load model 'm': disk gone"
    """
    from prism_core.errors import ModelLoadError

    text = one_line(exc)
    if isinstance(exc, ModelLoadError) and text.startswith(("cannot load ", "could not load ")):
        return text
    return f"cannot load model {options.model_name!r}: {text}"
