"""Opening one ``live_data`` stream through the client's transport, errors typed.

``duration`` travels as the request header the official spec declares (fact sheet §8);
older notes had a query parameter, for which no evidence was found, so it is not sent.
:data:`DURATION_SENT_AS` is the one place to change that.  A refusal is an HTTP status
with the JSON error envelope (:func:`~.errors.envelope_error`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

import aiohttp

from enphase_battery.exceptions import ResponseFormatError
from enphase_battery.http.calls import ApiCalls
from enphase_battery.http.errors import error_for, truncate
from enphase_battery.http.routes import ROUTES
from enphase_battery.live.errors import LIVE_ERROR_CODES, envelope_error, live_error
from enphase_battery.live.frames import ERROR_CODE_KEYS
from enphase_battery.models import BatteryTelemetry, Granularity
from enphase_battery.models.now import LatestTelemetry
from enphase_battery.quota.limits import RateLimits
from enphase_battery.util.json_decoder import loads
from enphase_battery.util.redaction import printable

__all__ = ["DURATION_SENT_AS", "LiveTransport", "open_live_stream"]

#: How ``duration`` is sent: "header" (the spec's way, fact sheet §8), "query", or both.
DURATION_SENT_AS: frozenset[str] = frozenset({"header"})
_MAX_ERROR_BODY = 4096
_MAX_DETAIL_CHARS = 300


@contextlib.asynccontextmanager
async def open_live_stream(
    transport: ApiCalls,
    system_id: int,
    *,
    duration_s: int,
    last_event_id: str | None = None,
    connect_timeout_s: float = 30.0,
    idle_timeout_s: float = 90.0,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """An open ``text/event-stream`` response of ``live_data`` (status 2xx).

    A live error code (the status, or the envelope's ``error.code``) raises its
    :class:`LiveDataError`; any other error status the client's usual typed error (403:
    :class:`PermissionDeniedError`, 5xx: :class:`ApiError`).  The body is read as it
    arrives: ``idle_timeout_s`` bounds the silence between bytes.
    """
    route = ROUTES["stream_live_data"]
    path = route.path(system_id=system_id)
    params: dict[str, str] = {}
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if "query" in DURATION_SENT_AS:
        params["duration"] = str(duration_s)
    if "header" in DURATION_SENT_AS:
        headers["duration"] = str(duration_s)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=idle_timeout_s)
    async with transport.stream(
        route, path, params=params, headers=headers, client_timeout=timeout
    ) as response:
        if not 200 <= response.status < 300:
            raw = await _read_some(response)
            body = transport.redact(truncate(raw))
            code, words = _envelope_in(raw)
            if code not in LIVE_ERROR_CODES:
                code = response.status
            detail = None if words is None else transport.redact(words)
            error = live_error(code, detail, body=body, method="GET", path=path)
            if error is not None:
                raise error
            raise error_for(route, path, response.status, raw, redact=transport.redact)
        content_type = response.headers.get("Content-Type", "")
        if "text/event-stream" not in content_type:
            raw = await _read_some(response)
            # A 2xx carrying a live error code in JSON instead of a stream [inferred: the
            # docs show codes, not where they travel]: the code decides.
            code = _code_in(raw)
            error = None if code is None else live_error(code, None, method="GET", path=path)
            if error is not None:
                raise error
            raise ResponseFormatError(
                f"live_data answered {content_type or 'no content type'}, not text/event-stream",
                status=response.status,
                body=transport.redact(truncate(raw)),
                method="GET",
                path=path,
            )
        yield response


async def _read_some(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.read(_MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):
        return b""


def _envelope_in(raw: bytes) -> tuple[int | None, str | None]:
    """The envelope's code and its words, cleaned and cut for a message."""
    try:
        code, words = envelope_error(loads(raw))
    except ValueError:
        return None, None
    return code, None if words is None else printable(words, _MAX_DETAIL_CHARS)


def _code_in(raw: bytes) -> int | None:
    try:
        body = loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code, _words = envelope_error(body)
    if code is not None:
        return code
    for key in ERROR_CODE_KEYS:
        code = body.get(key)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    return None


class LiveTransport(Protocol):
    """What a session needs from the client (``EnphaseClient`` provides it)."""

    @property
    def rate_limits(self) -> RateLimits:
        """The plan's limits (for the default fallback interval)."""
        ...

    def open_live_stream(
        self,
        system_id: int,
        *,
        duration_s: int,
        last_event_id: str | None = None,
        idle_timeout_s: float = 90.0,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """An open ``live_data`` response (status 200), or a typed error."""
        ...

    async def get_latest_telemetry(self, system_id: int) -> LatestTelemetry:
        """``latest_telemetry`` through the client's request path."""
        ...

    async def get_battery_telemetry(
        self,
        system_id: int,
        start_at: datetime | None = None,
        granularity: Granularity | str = Granularity.DAY,
    ) -> BatteryTelemetry:
        """The battery telemetry (its ``last_reported_aggregate_soc``: the fallback's SoC)."""
        ...
