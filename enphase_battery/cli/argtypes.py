"""Argument types: the text of a flag turned into a time, date, moment, count, duration or
seconds."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta


def _hhmm(text: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected HH:MM, got {text!r}")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise argparse.ArgumentTypeError(f"not a time of day: {text!r}")
    return time(hour, minute, second)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _moment(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 date-time (UTC unless it has an offset)."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD or an ISO 8601 date-time, got {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _whole_number(text: str) -> int:
    """An int written in ASCII digits: ``int()`` alone reads other scripts' digits too
    (``"١٢٣"`` is 123), which a user never meant as a system id."""
    stripped = text.strip()
    digits = stripped.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(stripped)


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _percent(low: int, high: int) -> Callable[[str], int]:
    """A whole percentage from ``low`` to ``high``, checked where the flag is named (the
    SDK's own message would name its argument, ``reserve_soc``, not ``--reserve``)."""

    def parse(text: str) -> int:
        value = _whole_number(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low}-{high} (%), got {value}")
        return value

    return parse


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def _duration(text: str) -> timedelta:
    """``90m``, ``6h``, ``1d``, ``3600s`` or a bare number of seconds; ``0`` allowed."""
    raw = text.strip().lower()
    unit = _UNITS_S.get(raw[-1:])
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90m, 6h or 1d, got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a duration >= 0, got {text!r}")
    return timedelta(seconds=value)


def _revise_for(text: str) -> timedelta:
    """``--revise-for``: 0 (no revisions) or longer than the poller's settle (1 h) and
    under a week, as the poller requires; refused here, before anything is sent."""
    value = _duration(text)
    if value and not timedelta(hours=1) < value < timedelta(days=7):
        raise argparse.ArgumentTypeError(
            "--revise-for must be 0 (no revisions) or longer than 1h (the settle time) and under 7d"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text) if text.strip().isascii() else math.nan
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError("seconds must be >= 0")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("seconds must be > 0")
    return value
