"""Names of a package imported on first use (the package's module ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["load"]


def load(package: str, namespace: dict[str, Any], table: Mapping[str, str], name: str) -> Any:
    """``name`` from its submodule in ``table`` (name -> relative module), kept in ``namespace``.

    Raises :class:`AttributeError` for a name the package does not export, as a missing
    attribute would.
    """
    module = table.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, package), name)
    namespace[name] = value  # the next lookup is a plain attribute
    return value
