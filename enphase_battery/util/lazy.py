"""Names of a package imported on first use, listed once.

A package lists its public names once, as the imports of its ``if TYPE_CHECKING:`` block
(``from enphase_battery.x import Name as Name``): type checkers and editors read them
there, and :func:`exports` reads the same block at import time to build the package's
``__all__`` and its module ``__getattr__``.  So a name is added in one place, and
``import enphase_battery`` still loads no submodule until a name is first used.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["exports", "load"]


def load(package: str, namespace: dict[str, Any], table: dict[str, str], name: str) -> Any:
    """``name`` from its module in ``table`` (name -> module, absolute or relative to
    ``package``), kept in ``namespace``.

    Raises :class:`AttributeError` for a name the package does not export, as a missing
    attribute would.
    """
    module = table.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, package), name)
    namespace[name] = value  # the next lookup is a plain attribute
    return value


_BLOCK = re.compile(r"^if TYPE_CHECKING:\n((?:(?:    .*)?\n)+)", re.MULTILINE)
_IMPORT = re.compile(r"from\s+([\w.]+)\s+import\s+(\([^)]*\)|[^\n]*)")


def _table(source: str) -> dict[str, str]:
    """Name -> module, from the ``if TYPE_CHECKING:`` imports of ``source``.

    A regular expression rather than :mod:`ast`, whose import would cost more than the
    rest of ``import enphase_battery`` (tests/util/test_lazy.py checks the two agree).
    """
    table: dict[str, str] = {}
    for block in _BLOCK.findall(source):
        for module, names in _IMPORT.findall(block):
            for item in names.strip("()").split(","):
                words = item.split("#", 1)[0].split()
                if words:
                    table[words[-1]] = module
    return table


def exports(
    package: str,
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package`` (its ``__name__``),
    from the ``if TYPE_CHECKING:`` imports of its ``__init__.py``."""
    module = sys.modules[package]
    file = module.__file__
    if file is None:  # pragma: no cover - a namespace package has no __init__
        raise ImportError(f"{package} has no __init__.py to read its names from")
    with open(file, encoding="utf-8") as source:  # not pathlib: its import costs more
        table = _table(source.read())
    namespace = vars(module)

    def getattr_(name: str) -> Any:
        return load(package, namespace, table, name)

    def dir_() -> list[str]:
        return sorted({*namespace, *table})

    return sorted(table), getattr_, dir_
