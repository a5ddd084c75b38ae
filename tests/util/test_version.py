"""The package's version is the project's (pyproject.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import enphase_battery
from enphase_battery.util.version import VERSION


def test_the_version_is_the_projects() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert enphase_battery.__version__ == VERSION == pyproject["project"]["version"]
