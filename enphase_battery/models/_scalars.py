"""Parsers of the API's scalar quirks (timestamps, dates, flags, percentages, counts) for the
converter's hooks."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

__all__: list[str] = []

_LOGGER = logging.getLogger("enphase_battery.models.converter")


def _structure_datetime(value: Any, _type: Any) -> datetime:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise TypeError(f"not a timestamp: {value!r}")


def _structure_date(value: Any, _type: Any) -> date:
    if isinstance(value, str) and not value.strip().isdigit():
        return date.fromisoformat(value.strip()[:10])
    if isinstance(value, int | str) and not isinstance(value, bool):
        # Some answers echo start_date/end_date as epochs of the system's local midnight,
        # which lies within about 12 hours of that date's UTC midnight: round to it.
        return datetime.fromtimestamp(int(value) + 43_200, UTC).date()
    raise TypeError(f"not a date: {value!r}")


def _structure_flag(value: Any, _type: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith(("enabled", "true", "yes", "on")) or text == "1":
            return True
        if text.startswith(("disabled", "false", "no", "off")) or text == "0":
            return False
    raise ValueError(f"not an enabled/disabled flag: {value!r}")


def _structure_percent(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a percentage")
    if isinstance(value, int | float):
        return round(value)
    if isinstance(value, str):
        return round(float(value.strip().rstrip("%").strip()))
    raise TypeError(f"not a percentage: {value!r}")


def _structure_int(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value)
    if isinstance(value, str):
        return round(float(value))
    raise TypeError(f"not an integer: {value!r}")


def _warn_unknown(what: str, value: Any) -> None:
    _LOGGER.warning("unknown %s %r in a response; read as None", what, value)
