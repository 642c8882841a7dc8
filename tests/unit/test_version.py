"""One version string: pyproject.toml takes it from ``prism_core.__version__``; pip reports the same."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import prism_core


def test_pyproject_reads_the_version_from_the_package() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "prism_core.__version__"}


def test_installed_metadata_matches() -> None:
    assert importlib.metadata.version("prism-integrations") == prism_core.__version__
