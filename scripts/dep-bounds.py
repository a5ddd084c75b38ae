#!/usr/bin/env python3
"""The runtime dependencies of pyproject.toml: their declared minimums, or what is installed.

    dep-bounds.py min [EXTRA...]        pip constraints, ``name==X.Y`` for each ``>=X.Y``
    dep-bounds.py installed [EXTRA...]  one line: each dependency and its installed version

``make test-min`` installs the SDK under the first (``pip install -c``) to prove the lower
bounds ``pyproject.toml`` states, and prints the second before its run, as ``make
test-pins`` does under Home Assistant's pins. The dependencies are ``[project]
dependencies`` and those of the extras named (e.g. ``postgres speed``). A dependency
without a lower bound is an error: its range would not be one that was tested.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: ``name>=X.Y`` (extras, and a comma-separated upper bound after it, allowed).
LOWER = re.compile(r"^\s*([A-Za-z0-9][\w.-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.]*)")


def bounds(extras: list[str]) -> list[tuple[str, str]]:
    """(name, declared minimum) of each runtime dependency and of each extra's."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    found = []
    for requirement in requirements:
        match = LOWER.match(requirement)
        if match is None:
            raise SystemExit(f"dep-bounds: no lower bound in {requirement!r}")
        found.append((match[1], match[2]))
    return found


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("min", "installed"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, extras = argv[0], argv[1:]
    if mode == "min":
        for name, lower in bounds(extras):
            print(f"{name}=={lower}")
        return 0
    installed = []
    for name, _ in bounds(extras):
        try:
            installed.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            installed.append(f"{name} (not installed)")
    print(f"Python {sys.version.split()[0]}: " + ", ".join(installed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
