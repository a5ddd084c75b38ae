"""``telemetry``: the 15-minute battery intervals of a period, one request per window."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from enphase_battery.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from enphase_battery.cli.output import _cell, _jsonable, _out, _print_json, _table, _warn
from enphase_battery.cli.session import _known_encharges, _open_client
from enphase_battery.cli.settings import _Context
from enphase_battery.client.client import EnphaseClient
from enphase_battery.exceptions import ApiError, NotFoundError
from enphase_battery.models import Granularity
from enphase_battery.models.delivered import TelemetryInterval

_FIRST_INTERVAL = re.compile(r"first_interval\D{0,8}(\d{9,11})")


def _first_interval(err: ApiError) -> datetime | None:
    """The ``first_interval`` a 422 "date range is invalid" names, if any."""
    if err.status != 422:
        return None
    match = _FIRST_INTERVAL.search(json.dumps(err.body) if err.body is not None else "")
    return None if match is None else datetime.fromtimestamp(int(match[1]), UTC)


def _interval_record(interval: TelemetryInterval) -> dict[str, Any]:
    data: dict[str, Any] = _jsonable(interval)
    data["end_at"] = interval.end_at.astimezone(UTC).isoformat()
    return data


_RECORD_FIELDS = [f.name for f in attrs.fields(TelemetryInterval)]


async def _fetch_window(
    client: EnphaseClient,
    system_id: int,
    serial: str | None,
    start: datetime,
    granularity: Granularity,
    found: dict[datetime, TelemetryInterval],
) -> datetime | None:
    """One request: the window after ``start`` into ``found``; returns the window's end."""
    window_end: datetime | None
    if serial is None:
        battery = await client.get_battery_telemetry(system_id, start, granularity)
        total = battery.total_devices
        window_end = battery.end_at
        for iv in battery.intervals:
            found[iv.end_at] = TelemetryInterval(
                system_id,
                "battery",
                iv.end_at,
                iv.charge.enwh,
                iv.discharge.enwh,
                iv.soc.percent,
                iv.devices_reporting,
                total,
                partial=(
                    iv.devices_reporting is not None
                    and total is not None
                    and iv.devices_reporting < total
                ),
            )
    else:
        encharge = await client.get_encharge_telemetry(system_id, serial, start, granularity)
        window_end = encharge.end_at
        for ev in encharge.intervals:
            found[ev.end_at] = TelemetryInterval(
                system_id,
                serial,
                ev.end_at,
                ev.charge.enwh,
                ev.discharge.enwh,
                ev.soc.percent,
                1,
                1,
            )
    return window_end


async def _fetch_telemetry(
    client: EnphaseClient,
    system_id: int,
    serial: str | None,
    since: datetime,
    until: datetime | None,
    granularity: Granularity,
) -> tuple[list[TelemetryInterval], datetime | None]:
    """Every interval ending in (since, until], one request per window, and where the
    data begins when the API said the period starts before it.

    Without ``until``, windows continue until the API answers with a window cut short
    at its "now": the server's clock decides what "now" is, not ours.
    """
    data_starts: datetime | None = None
    span = timedelta(seconds=granularity.span_s)
    start = since
    found: dict[datetime, TelemetryInterval] = {}
    while until is None or start < until:
        try:
            window_end = await _fetch_window(client, system_id, serial, start, granularity, found)
        except ApiError as err:
            first = _first_interval(err)
            if first is None or first - timedelta(minutes=15) <= start:
                raise
            # The period starts before the system (or Encharge) has data: begin at its
            # first interval, as the API tells us, instead of failing.
            start = first - timedelta(minutes=15)
            data_starts = first
            continue
        if window_end is None or window_end < start + span:
            break  # the window was cut short at the API's now: nothing newer exists
        start += span
    intervals = [
        iv
        for end_at, iv in sorted(found.items())
        if end_at > since and (until is None or end_at <= until)
    ]
    return intervals, data_starts


async def _cmd_telemetry(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    if args.until is not None and args.until <= args.since:
        raise CliError("--until must be after --since", EXIT_USAGE)
    async with _open_client(ctx) as client:
        try:
            intervals, data_starts = await _fetch_telemetry(
                client, system_id, args.encharge, args.since, args.until,
                Granularity(args.granularity),
            )  # fmt: skip
        except NotFoundError:
            if args.encharge is None:
                raise
            # An unknown serial: the same friendly exit 2 as `stream --encharge`, with the
            # system's serials (a request only on this failure path).
            await _known_encharges(client, system_id, [args.encharge])
            raise
    if not intervals:
        # An empty table alone reads like a failure to fetch; say why it is empty.
        why = f"; its data starts at {_cell(data_starts)}" if data_starts is not None else ""
        _warn(f"no intervals in that period{why}")
    if ctx.json:
        _print_json([_interval_record(iv) for iv in intervals])
        return EXIT_OK
    _out(_interval_table(intervals))
    return EXIT_OK


def _interval_table(intervals: Sequence[TelemetryInterval]) -> str:
    return _table(
        ["END (UTC)", "SOURCE", "CHARGE Wh", "DISCHARGE Wh", "SOC %", "DEVICES"],
        [
            (
                iv.end_at,
                iv.source,
                iv.charge_wh,
                iv.discharge_wh,
                iv.soc_percent,
                f"{_cell(iv.devices_reporting)}/{_cell(iv.total_devices)}"
                + (" partial" if iv.partial else ""),
            )
            for iv in intervals
        ],
    )
