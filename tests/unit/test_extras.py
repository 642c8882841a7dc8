"""The one helper for missing optional packages (``prism_core.extras``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prism_core.extras import missing_extra, require_extra


def test_require_extra_returns_the_module() -> None:
    assert require_extra("json", "server").dumps([1]) == "[1]"


def test_require_extra_names_the_extra_and_chains_the_cause() -> None:
    with pytest.raises(ImportError) as info:
        require_extra("prism_no_such_module_xyz", "server", by="the rerank service")
    message = str(info.value)
    assert message == (
        "the rerank service needs prism_no_such_module_xyz, which is not installed. "
        'Install it with: pip install "prism-integrations[server]"'
    )
    assert isinstance(info.value.__cause__, ImportError)


def test_missing_extra_shapes() -> None:
    assert str(missing_extra("bench", needs="matplotlib", alternative="matplotlib")) == (
        'matplotlib is not installed. Install it with: pip install "prism-integrations[bench]" '
        "(or pip install matplotlib)"
    )
    assert str(missing_extra(None, needs="httpx", by="the remote backend")) == (
        "the remote backend needs httpx, which is not installed. Install it with: pip install httpx"
    )


def test_no_other_install_hint_shapes_in_the_package() -> None:
    """Library code builds no install hint of its own: every one comes from ``missing_extra``."""
    root = Path(__file__).resolve().parents[2]
    hint = re.compile(r"ImportError\(.{0,300}?pip install", re.S)  # a hint written out by hand
    offenders = [
        str(path.relative_to(root))
        for package in ("core", "prism_integrations", "haystack_integrations")
        for path in (root / package).rglob("*.py")
        if path.name != "extras.py" and hint.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
