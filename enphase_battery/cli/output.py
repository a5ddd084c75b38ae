"""Output: tables, JSON, warnings, and one-line error messages with secrets removed."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, TextIO

import attrs

from enphase_battery.cli.errors import PROG
from enphase_battery.util.redaction import printable, scrub

#: Every secret seen in this run, removed from any error message as a last line of defence.
_SECRETS: set[str] = set()


def _jsonable(value: Any) -> Any:
    """Models to JSON-ready data: datetimes ISO 8601, enums their API string, decimals
    their text."""
    if attrs.has(type(value)):
        return {f.name: _jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # a tariff rate, as exact as the API sent it
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record for a CSV row: booleans spelt as in JSON (``true``/``false``), not Python's."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in record.items()}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    if isinstance(value, enum.Enum):
        return str(value.value)
    # Names and labels come from the server: no escape sequences reach the terminal.
    return printable(str(value), 500)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    raw_rows = [list(row) for row in rows]
    cells = [[_cell(v) for v in row] for row in raw_rows]
    numeric = [
        all(
            (isinstance(r[i], int | float) and not isinstance(r[i], bool)) or r[i] is None
            for r in raw_rows
        )
        and any(r[i] is not None for r in raw_rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def _pairs(pairs: Iterable[tuple[str, Any]]) -> str:
    items = list(pairs)
    width = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in items)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _print_json(data: Any) -> None:
    _out(json.dumps(data, indent=2, ensure_ascii=False))


def _plural(n: int, noun: str) -> str:
    """``1 request``, ``2 requests``: a count and its noun, singular for one."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {message}\n")
    sys.stderr.flush()


def _one_line(message: str) -> str:
    return " ".join(printable(scrub(message, tuple(_SECRETS)), 1000).split())


class _StatusLine:
    """A progress line on ``stream`` (stderr): rewritten in place on a terminal, else one
    line per update, throttled to every 0.2 s on a terminal and every 5 s elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = -1e9
        self._dirty = False

    def _due(self, now: float, *, force: bool = False) -> bool:
        """Whether to show an update at loop time ``now`` (``force``: yes); counts it."""
        if not force and now - self._last < (0.2 if self.tty else 5.0):
            return False
        self._last = now
        return True

    def _show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line in place on a terminal (the shell's prompt starts below it)."""
        if self.tty and self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False
