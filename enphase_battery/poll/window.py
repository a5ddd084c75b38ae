"""One telemetry request for one stream: the window after its cursor, and what it says.

The one implementation both the one-system :class:`~enphase_battery.TelemetryPoller` and
the :class:`~enphase_battery.FleetPoller` use to move a
:class:`~enphase_battery.poll.stream_log.StreamLog` forward by one request:

* the window is the week after the stream's cursor (``day`` from the system's local
  midnight when the stream has no position yet: the API's answer sets it, not our
  clock);
* a 422 naming ``first_interval`` moves the stream to where its data starts;
  "in the future" means there is nothing yet;
* a full window means there may be more: the caller asks again from the new cursor,
  unless an Encharge's ``last_reported_time`` (or, for the battery stream, every
  Encharge's in this poll) says the data ends inside the window.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from enphase_battery.exceptions import ApiError
from enphase_battery.models import BatteryTelemetry, EnchargeTelemetry, Granularity
from enphase_battery.models.delivered import BATTERY, INTERVAL_S, TelemetryInterval
from enphase_battery.poll.stream_log import StreamLog, first_interval_hint, to_intervals

if TYPE_CHECKING:
    from enphase_battery.client.client import EnphaseClient

__all__ = ["WINDOW_SLACK_S", "WindowResult", "fetch_window"]

#: How far past the answer's own window end an interval may lie (clock rounding).
WINDOW_SLACK_S = 60

_LOGGER = logging.getLogger("enphase_battery.window")


@attrs.frozen
class WindowResult:
    """What one request did to a stream.

    Attributes:
        ready: intervals to deliver now (sorted), already accepted by the stream's log.
        ends: their end times (epoch seconds), index for index.
        done: the stream reached the newest data the API has (the poll of it is over).
    """

    ready: list[TelemetryInterval]
    ends: list[int]
    done: bool


async def fetch_window(
    client: EnphaseClient,
    stream: StreamLog,
    *,
    settle_s: float,
    late_horizon_s: float,
    last_reports: MutableMapping[str, int],
    revise_s: float = 0.0,
) -> WindowResult:
    """One request for ``stream`` from its cursor; see the module docstring.

    ``last_reports`` collects each Encharge's ``last_reported_time`` seen in the current
    poll of the system (clear it when a poll of the system begins).  Raises what the
    client raises (a 403 or 404 on an Encharge too: the engine decides what it does),
    except the 422s above.
    """
    system_id = stream.system_id
    start = stream.cursor
    granularity = Granularity.WEEK if start is not None else Granularity.DAY
    start_at = datetime.fromtimestamp(start, UTC) if start is not None else None
    try:
        response: BatteryTelemetry | EnchargeTelemetry
        if stream.source == BATTERY:
            response = await client.get_battery_telemetry(system_id, start_at, granularity)
        else:
            response = await client.get_encharge_telemetry(
                system_id, stream.source, start_at, granularity
            )
    except ApiError as err:
        if err.status != 422:
            raise
        return WindowResult([], [], done=_handle_422(stream, err))

    if start is None:
        # First poll without a checkpoint: the API chose the window (today, from the
        # system's local midnight); its answer sets the watermark, not our clock.
        if response.start_at is not None:
            start = int(response.start_at.timestamp())
        elif response.intervals:
            start = int(response.intervals[0].end_at.timestamp()) - INTERVAL_S
        else:
            return WindowResult([], [], done=True)
        start -= start % INTERVAL_S
        stream.start_at(start)
    intervals = to_intervals(system_id, stream.source, response)
    window_end = int(response.end_at.timestamp()) if response.end_at is not None else None
    span = granularity.span_s
    # What the API may send for this request: after the window's start, and up to its
    # end (the answer's end_at is min(server's now, start + span)).  Anything else (an
    # interval in 2056) is dropped by the log and never moves the watermark.
    latest = start + span if window_end is None else min(start + span, window_end)
    ready, ends = stream.accept(
        intervals, settle_s, window=(start, latest + WINDOW_SLACK_S), revise_s=revise_s
    )
    stream.advance(late_horizon_s)
    if window_end is None or window_end < start + span:
        return WindowResult(ready, ends, done=True)  # the window reached the API's "now"
    if _data_ends_by(stream, response, window_end, last_reports):
        return WindowResult(ready, ends, done=True)
    stream.cursor = start + span
    return WindowResult(ready, ends, done=False)


def _data_ends_by(
    stream: StreamLog,
    response: BatteryTelemetry | EnchargeTelemetry,
    window_end: int,
    last_reports: MutableMapping[str, int],
) -> bool:
    """Whether the API says there is no data after ``window_end`` (a full window).

    A full window only says "now" is at or after its end.  An Encharge's
    ``last_reported_time`` at or before the window's end means nothing newer exists;
    the system's intervals are built from its Encharges, so when every one of them has
    said so in this poll, the battery stream has nothing newer either.  Without the
    hint one more request finds out.
    """
    if isinstance(response, EnchargeTelemetry):
        if response.last_reported_time is None:
            return False
        reported = int(response.last_reported_time.timestamp())
        last_reports[stream.source] = reported
        return reported <= window_end
    total = response.total_devices
    if not total or len(last_reports) < total:
        return False
    return max(last_reports.values()) <= window_end


def _handle_422(stream: StreamLog, err: ApiError) -> bool:
    text = err.details or ""
    if isinstance(err.body, dict):
        text = " ".join(str(v) for v in err.body.values())
    first = first_interval_hint(text)
    # The stream's data starts later (a new Encharge, start_at before the system
    # existed): jump to its first interval.
    if first is not None and stream.jump_to_first(first - INTERVAL_S):
        return False
    if "future" in text.lower():
        return True
    raise err
