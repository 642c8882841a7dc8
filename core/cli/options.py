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

The argparse value types live in :mod:`prism_core.cli.arg_types`, the quality prior's options in
:mod:`prism_core.cli.quality_options` and the two error kinds in :mod:`prism_core.cli.errors`; all
their public names are importable from here too.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from prism_core.cli.arg_types import non_negative_int as non_negative_int
from prism_core.cli.arg_types import positive_float as positive_float
from prism_core.cli.arg_types import positive_int as positive_int
from prism_core.cli.arg_types import probability as probability
from prism_core.cli.arg_types import quality_value as quality_value
from prism_core.cli.errors import ModelUnavailable as ModelUnavailable
from prism_core.cli.errors import OptionError as OptionError
from prism_core.cli.errors import check_backend_name as check_backend_name
from prism_core.cli.errors import load_failure as load_failure
from prism_core.cli.errors import load_now as load_now
from prism_core.cli.errors import one_line as one_line
from prism_core.cli.quality_options import QualityOptions as QualityOptions
from prism_core.cli.quality_options import add_quality_arguments as add_quality_arguments
from prism_core.cli.quality_options import build_quality_scorer as build_quality_scorer
from prism_core.config import ENGINE_OPTION_NAMES, EngineConfig, EngineSpec
from prism_core.errors import UnknownBackendError
from prism_core.protocol import Reranker

DTYPES = ("bfloat16", "float16", "float32")

#: The :class:`ModelOptions` fields that are engine options (everything but ``model`` and ``backend``).
ENGINE_FIELDS: tuple[str, ...] = ENGINE_OPTION_NAMES


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
