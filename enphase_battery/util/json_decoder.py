"""The JSON decoder for response bodies: ``orjson`` when installed, the standard library otherwise.

``pip install 'enphase-battery[speed]'`` brings ``orjson``, which decodes a week of
telemetry several times faster than :func:`json.loads`.  Nothing else changes: a body
``orjson`` refuses (it is stricter: ``NaN``, ``Infinity``, text that is not UTF-8) goes
to :func:`json.loads`, so both backends accept the same bodies and raise the same
:class:`ValueError` on a broken one.  One difference remains: ``orjson`` reads an integer
beyond 64 bits as a float; no field of the API comes near that.

The environment variable ``ENPHASE_BATTERY_JSON``, read once at import, chooses:

* ``auto`` (or unset): ``orjson`` if it can be imported, else the standard library;
* ``stdlib``: the standard library even when ``orjson`` is installed (to compare, or to
  rule the fast decoder out while debugging);
* ``orjson``: ``orjson`` or an :class:`ImportError` saying how to install it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

__all__ = ["BACKEND", "ENV_VAR", "choose", "loads"]

ENV_VAR = "ENPHASE_BATTERY_JSON"
_CHOICES = ("auto", "stdlib", "orjson")

Loads = Callable[[bytes | str], Any]


def choose(setting: str) -> tuple[str, Loads]:
    """The backend name and its ``loads`` for a setting of :data:`ENV_VAR`."""
    setting = setting.strip().lower() or "auto"
    if setting not in _CHOICES:
        raise ValueError(f"{ENV_VAR} must be one of {', '.join(_CHOICES)}, not {setting!r}")
    if setting != "stdlib":
        try:
            import orjson
        except ImportError:
            if setting == "orjson":
                raise ImportError(
                    f"{ENV_VAR}=orjson but orjson is not installed: "
                    "pip install 'enphase-battery[speed]'"
                ) from None
        else:
            return "orjson", _with_fallback(orjson.loads, orjson.JSONDecodeError)
    return "stdlib", json.loads


def _with_fallback(fast: Loads, refused: type[Exception]) -> Loads:
    stdlib = json.loads

    def loads(data: bytes | str) -> Any:
        try:
            return fast(data)
        except refused:
            # The standard library has the last word, so a body decodes (or fails) the
            # same with and without the extra.
            return stdlib(data)

    return loads


#: ``"orjson"`` or ``"stdlib"``: which decoder :func:`loads` is.
BACKEND, loads = choose(os.environ.get(ENV_VAR, "auto"))
