"""Argument checks that run before any request is sent.

Each function returns the value in the form the API wants, or raises
:class:`InvalidRequestError` with a message that names the argument.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from urllib.parse import urlsplit

from .exceptions import InvalidRequestError
from .models import BatteryMode, Granularity, LoadControlMode

_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def http_url(name: str, value: object) -> str:
    """An absolute ``http://`` or ``https://`` URL with a host (``notaurl`` is refused)."""
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a URL string, got {type(value).__name__}")
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(
            f"{name} must be an http:// or https:// URL with a host, got {value!r}"
        )
    return value.strip()


def system_id(value: object) -> int:
    """A positive int (``bool`` is refused although it is an ``int``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequestError(f"system_id must be a positive int, got {value!r}")
    return value


def serial_number(value: object) -> str:
    """A plain token: letters, digits, ``-``, ``_`` or ``.``; no slashes, spaces or queries."""
    if not isinstance(value, str) or not _SERIAL.match(value):
        raise InvalidRequestError(
            f"serial number must be a plain token of letters and digits, got {value!r}"
        )
    return value


def percent(name: str, value: object, low: int = 0, high: int = 100) -> int:
    """An int within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(f"{name} must be an int from {low} to {high}, got {value!r}")
    return value


def battery_mode(value: object) -> BatteryMode:
    """A :class:`BatteryMode`, or a string naming one loosely."""
    if isinstance(value, BatteryMode):
        return value
    if isinstance(value, str):
        try:
            return BatteryMode.parse(value)
        except ValueError:
            pass
    choices = ", ".join(repr(m.value) for m in BatteryMode)
    raise InvalidRequestError(f"unknown battery profile {value!r}; expected one of {choices}")


def load_control_mode(value: object) -> LoadControlMode:
    """A :class:`LoadControlMode`, or a string naming one."""
    if isinstance(value, LoadControlMode):
        return value
    if isinstance(value, str):
        try:
            return LoadControlMode.parse(value)
        except ValueError:
            pass
    choices = ", ".join(m.value for m in LoadControlMode)
    raise InvalidRequestError(f"unknown load control mode {value!r}; expected one of {choices}")


def granularity(value: object) -> Granularity:
    """A :class:`Granularity`, or its API string (``15mins``, ``day``, ``week``)."""
    if isinstance(value, Granularity):
        return value
    if isinstance(value, str):
        try:
            return Granularity(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(g.value for g in Granularity)
    raise InvalidRequestError(f"unknown granularity {value!r}; expected one of {choices}")


def aware_datetime(name: str, value: object) -> int:
    """A timezone-aware datetime, as the epoch seconds the API takes."""
    if not isinstance(value, datetime):
        raise InvalidRequestError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequestError(f"{name} must be timezone-aware (e.g. tzinfo=UTC)")
    return int(value.astimezone(UTC).timestamp())


def plain_date(name: str, value: object) -> str:
    """A :class:`datetime.date` (not a datetime), as ``YYYY-MM-DD``."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidRequestError(f"{name} must be a datetime.date, got {type(value).__name__}")
    return value.isoformat()


def seconds_after_midnight(name: str, value: object) -> int:
    """A :class:`datetime.time` or an int of seconds after midnight (0..86399)."""
    if isinstance(value, time):
        return value.hour * 3600 + value.minute * 60 + value.second
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 86_400:
        raise InvalidRequestError(
            f"{name} must be a datetime.time or seconds after midnight (0-86399), got {value!r}"
        )
    return value


def circuit_name(value: object) -> str:
    """A non-empty circuit name such as ``NC1``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"load control circuit name is required, got {value!r}")
    return value.strip()
