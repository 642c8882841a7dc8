"""The quality prior's command-line options, defined once, and the scorer they build.

:func:`add_quality_arguments` adds ``--quality-head`` (repeatable), ``--quality-embedder``,
``--min-quality``, ``--quality-weight`` and ``--trust-remote-code``; :meth:`QualityOptions.from_args`
reads them and :func:`build_quality_scorer` builds the :class:`prism_core.quality.QualityScorer`
(construct, not load), reporting bad values as :class:`~prism_core.cli.errors.OptionError`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prism_core.cli.arg_types import probability, quality_value
from prism_core.cli.errors import OptionError, one_line

if TYPE_CHECKING:
    from prism_core.quality.scorer import QualityScorer


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
