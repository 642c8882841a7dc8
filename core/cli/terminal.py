"""What every ``prism-rerank`` command does to keep its terminal output quiet and honest.

:func:`setup_terminal` is called by each command once its arguments are parsed:

- progress bars (ours, and transformers' ``Loading weights`` / huggingface_hub's download bars) only
  when standard error is a terminal, and never with ``--no-progress``;
- transformers' per-kernel "falling back to its reference PyTorch implementation" warnings folded
  into one line (:func:`prism_core.runtime.quiet.fold_kernel_fallback_warnings`).

Example:
    >>> from prism_core.cli.terminal import setup_terminal
    >>> setup_terminal(False)
    False
"""

from __future__ import annotations

import sys

from prism_core.runtime.quiet import fold_kernel_fallback_warnings


def show_progress(progress: bool | None) -> bool:
    """Whether to draw progress bars: ``progress`` when given, else whether stderr is a terminal.

    Example:
        >>> show_progress(False)
        False
    """
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def setup_terminal(progress: bool | None = None) -> bool:
    """Set up this process's terminal output for a command (see the module docstring).

    Args:
        progress: ``False`` for ``--no-progress``, ``True`` to force bars, ``None``: bars only when
            standard error is a terminal.

    Returns:
        Whether progress bars are shown.
    """
    show = show_progress(progress)
    if not show:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # transformers' bars and huggingface_hub's
    fold_kernel_fallback_warnings()
    return show
