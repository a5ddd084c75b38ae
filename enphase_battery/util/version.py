"""The package's version, in one place below everything that shows it (``--version``)."""

from __future__ import annotations

__all__ = ["VERSION"]

#: Kept equal to ``pyproject.toml``'s ``version`` (tests/util/test_version.py checks).
VERSION = "0.1.0"
