"""Argument checks that run before any request is sent.

Each function returns the value in the form the API wants, or raises
:class:`InvalidRequestError` with a message that names the argument.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models import BatteryMode, Granularity, LoadControlMode

_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: An API key or client credential: printable ASCII, no spaces (a pasted newline or a
#: quote would otherwise go into every URL).
_CREDENTIAL = re.compile(r"[!-~]{1,512}")
#: [inferred] No Enphase system reported before this day (the first microinverter
#: systems): an earlier ``end_at`` or ``summary_date`` is a mistake, not a question.
EARLIEST_API_DATE = date(2008, 1, 1)
#: How far back the API serves telemetry (pollers, reconcile and the CLI refuse more).
MAX_BACKFILL = timedelta(days=730)


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
    if not isinstance(value, str) or not _SERIAL.fullmatch(value):
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


def credential(name: str, value: object) -> str:
    """An API key or client credential: printable ASCII without spaces or line breaks."""
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{name} is required")
    if not _CREDENTIAL.fullmatch(value):
        # The value itself stays out of the message: it is a secret.
        raise InvalidRequestError(
            f"{name} must be printable ASCII without spaces or line breaks"
            " (check for a pasted newline or quote)"
        )
    return value


def seconds(name: str, value: object, *, minimum: float = 0.0, positive: bool = False) -> float:
    """A finite number of seconds (an int, float or :class:`timedelta`) >= ``minimum``
    (``> 0`` with ``positive``); ``nan`` and ``inf`` are refused."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(
            f"{name} must be seconds or a timedelta, got {type(value).__name__}"
        )
    number = float(value)
    if not math.isfinite(number) or number < minimum or (positive and number <= 0):
        bound = "> 0" if positive else f">= {minimum:g}"
        raise InvalidRequestError(
            f"{name} must be a finite number of seconds {bound}, got {value!r}"
        )
    return number


def duration(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A :class:`timedelta` > 0 (>= 0 with ``allow_zero``), as seconds."""
    if not isinstance(value, timedelta):
        raise InvalidRequestError(f"{name} must be a timedelta, got {type(value).__name__}")
    if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidRequestError(f"{name} must be a timedelta {bound}, got {value!r}")
    return value.total_seconds()


def wait_range(name: str, value: object, *, allow_zero: bool = False) -> tuple[float, float]:
    """``(first, longest)`` seconds, both finite, ``0 < first <= longest`` (``0 <=`` with
    ``allow_zero``)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InvalidRequestError(f"{name} must be (first, longest) seconds, got {value!r}")
    first = seconds(f"{name}[0]", value[0], positive=not allow_zero)
    longest = seconds(f"{name}[1]", value[1])
    if longest < first:
        raise InvalidRequestError(f"{name} must be (first, longest) with first <= longest")
    return first, longest


def positive_int(name: str, value: object) -> int:
    """An int >= 1 (``bool`` refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{name} must be an int >= 1, got {value!r}")
    return value


def api_time(name: str, value: object) -> int:
    """A timezone-aware datetime from :data:`EARLIEST_API_DATE` to now (a minute of slack),
    as epoch seconds."""
    epoch = aware_datetime(name, value)
    earliest = datetime.combine(EARLIEST_API_DATE, time(), UTC).timestamp()
    now = datetime.now(UTC).timestamp()
    if not earliest <= epoch <= now + 60:
        raise InvalidRequestError(
            f"{name} must be from {EARLIEST_API_DATE.isoformat()} to now, got {value!r}"
        )
    return epoch


def api_date(name: str, value: object) -> str:
    """A :class:`datetime.date` from :data:`EARLIEST_API_DATE` to tomorrow (the system's
    day may be ahead of UTC), as ``YYYY-MM-DD``."""
    text = plain_date(name, value)
    assert isinstance(value, date)
    latest = datetime.now(UTC).date() + timedelta(days=1)
    if not EARLIEST_API_DATE <= value <= latest:
        raise InvalidRequestError(
            f"{name} must be from {EARLIEST_API_DATE.isoformat()} to today, got {text}"
        )
    return text


def aware_datetime(name: str, value: object) -> int:
    """A timezone-aware datetime, as the epoch seconds the API takes."""
    if not isinstance(value, datetime):
        raise InvalidRequestError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequestError(f"{name} must be timezone-aware (e.g. tzinfo=UTC)")
    try:
        return int(value.astimezone(UTC).timestamp())
    except (OverflowError, ValueError):
        raise InvalidRequestError(f"{name} is out of range: {value!r}") from None


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
