"""Turning ``live_data`` events and ``latest_telemetry`` answers into :class:`LiveFrame`.

The event shape is the official spec's (fact sheet §8): ``{"data": {...},
"timestamp_epoch": <ms>, "timestamp_utc", "type": "response"}``.  The spec puts errors in
HTTP responses, not events; an error event is still accepted, as older notes describe
it: an event named ``error``, JSON with ``"type": "error"``, the error envelope
(``{"error": {"code", ...}}``), or a numeric code under one of :data:`ERROR_CODE_KEYS`
and no ``data`` object, is an error carrying that code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from enphase_battery.http.sse import SseEvent
from enphase_battery.live.errors import envelope_error
from enphase_battery.models.live import LiveFrame, LiveSource, structure_live_frame
from enphase_battery.models.now import LatestTelemetry
from enphase_battery.util.json_decoder import loads

__all__ = ["ERROR_CODE_KEYS", "frame_from_event", "frame_from_latest"]

#: [inferred] Where an error event keeps its code.
ERROR_CODE_KEYS = ("code", "error_code", "status")


def _error_code(event: SseEvent, body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    flagged = event.event == "error" or body.get("type") == "error"
    if not flagged and isinstance(body.get("data"), dict):
        return None
    code, _words = envelope_error(body)
    if code is not None:
        return code
    for key in ERROR_CODE_KEYS:
        code = body.get(key)
        if isinstance(code, str) and code.isdigit():
            code = int(code)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    if flagged:
        raise ValueError("an error event without a code")
    return None


def frame_from_event(event: SseEvent) -> LiveFrame | int | None:
    """The frame an event carries, its error code (an ``int``), or ``None`` (no data).

    Raises ``ValueError`` for an event that is neither.
    """
    try:
        body = loads(event.data)
    except ValueError:
        if event.event == "error":
            text = event.data.strip()
            if text.isdigit():
                return int(text)
        raise ValueError("event data is not JSON") from None
    code = _error_code(event, body)
    if code is not None:
        return code
    if not isinstance(body, dict):
        raise ValueError("event data is not a JSON object")
    if body.get("data") is None:
        return None
    try:
        return structure_live_frame(body, event.id)
    except (TypeError, ValueError) as err:
        raise ValueError(f"unexpected live data fields: {err}") from None


def frame_from_latest(latest: LatestTelemetry) -> LiveFrame:
    """A frame from ``latest_telemetry``: battery power at the last report.

    The power takes each Encharge's direction from its ``operational_mode`` and its
    magnitude from ``power`` (whose sign is undocumented), summed as W leaving the
    batteries, the sign ``live_data`` uses.  ``latest_telemetry`` carries no profile, so
    ``battery_mode`` is ``None``.
    """
    return LiveFrame(
        timestamp=latest.last_report_at or datetime.now(UTC),
        source=LiveSource.LATEST,
        battery_power=latest.battery_discharge_w,
    )
