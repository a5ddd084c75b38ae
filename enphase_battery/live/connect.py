"""Opening one ``live_data`` stream through the client's transport, errors typed.

How ``duration`` travels is not settled (fact sheet §7: a request header in one
digest, a query parameter in older notes): :data:`DURATION_SENT_AS` says, and by
default it goes both ways, because a server that ignored the one we picked would fall
back to 30 s streams and bill ten connections where one was meant.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import aiohttp

from .._json import loads
from ..exceptions import ResponseFormatError
from ..http_errors import error_for, truncate
from ..limits import RateLimits
from ..models.now import LatestTelemetry
from ..routes import ROUTES
from ..transport import Transport
from .errors import live_error
from .frames import ERROR_CODE_KEYS

__all__ = ["DURATION_SENT_AS", "LiveTransport", "open_live_stream"]

#: [inferred] "header", "query", or both.
DURATION_SENT_AS: frozenset[str] = frozenset({"header", "query"})
_MAX_ERROR_BODY = 4096


@contextlib.asynccontextmanager
async def open_live_stream(
    transport: Transport,
    system_id: int,
    *,
    duration_s: int,
    last_event_id: str | None = None,
    connect_timeout_s: float = 30.0,
    idle_timeout_s: float = 90.0,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """An open ``text/event-stream`` response of ``live_data`` (status 2xx).

    A live error code as the status raises its :class:`LiveDataError`; any other error
    status the client's usual typed error (403: :class:`PermissionDeniedError`).  The
    body is read as it arrives: ``idle_timeout_s`` bounds the silence between bytes.
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
            error = live_error(response.status, None, body=body, method="GET", path=path)
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


def _code_in(raw: bytes) -> int | None:
    try:
        body = loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
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
