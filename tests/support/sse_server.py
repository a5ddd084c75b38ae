"""A raw ``live_data`` server of the tests' own: each connection plays a script.

A script is a list of steps: ``bytes`` are written (as one chunk), a ``float`` sleeps
that many seconds, :data:`ABORT` drops the connection at once; the response ends
cleanly after the last step.  ``status`` answers with that HTTP status instead of a
stream.  ``latest_telemetry`` answers :data:`LATEST`.  Every connection is recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from enphase_battery import EnphaseClient, RateLimits

ABORT = object()
SYSTEM_ID = 4242
#: Each Encharge's ``power`` in latest_telemetry (the sign is undocumented) and state.
ENCHARGE_POWER_W = (1200, -300)
ENCHARGE_STATE = ("Discharging", "Discharging")
#: What the two Encharges together put out: the direction from the state.
LATEST_DISCHARGE_W = 1500
LATEST: dict[str, Any] = {
    "system_id": SYSTEM_ID,
    "devices": {
        "encharges": [
            {
                "id": 1,
                "name": "Encharge Battery",
                "channel": 1,
                "last_report_at": 1780000000,
                "power": ENCHARGE_POWER_W[0],
                "operational_mode": ENCHARGE_STATE[0],
            },
            {
                "id": 2,
                "name": "Encharge Battery",
                "channel": 2,
                "last_report_at": 1780000100,
                "power": ENCHARGE_POWER_W[1],
                "operational_mode": ENCHARGE_STATE[1],
            },
        ],
        "meters": [],
    },
}


def frame_event(n: int, *, soc: int = 50, event_id: str | None = None) -> bytes:
    """One well-formed live_data event."""
    body = {
        "data": {
            "pv_power": 3000 + n,
            "grid_power": -500,
            "battery_power": -1500,
            "battery_soc": soc,
            "battery_mode": "Self-consumption",
            "grid_status": "On Grid",
            "consumption_power": 1000,
            "generator_power": 0,
            "envoy_serial_number": ["122100000001"],
        },
        "timestamp_epoch": 1_780_000_000_000 + n * 1000,
        "type": "live_data",
    }
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {json.dumps(body)}\n\n".encode()


def error_event(code: int) -> bytes:
    return f'event: error\ndata: {{"type": "error", "code": {code}}}\n\n'.encode()


@dataclass
class Connection:
    """What the server saw of one live_data request."""

    query: dict[str, str]
    headers: dict[str, str]
    opened_at: float
    closed_at: float | None = None


@dataclass
class RawLiveServer:
    scripts: list[list[Any]] = field(default_factory=list)
    statuses: list[int | None] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    latest_requests: int = 0
    open_now: int = 0
    content_type: str = "text/event-stream"
    base_url: str = ""

    def add(self, *steps: Any, status: int | None = None) -> None:
        self.scripts.append(list(steps))
        self.statuses.append(status)

    async def live(self, request: web.Request) -> web.StreamResponse:
        record = Connection(dict(request.query), dict(request.headers), time.monotonic())
        self.connections.append(record)
        index = len(self.connections) - 1
        script = self.scripts[index] if index < len(self.scripts) else [3600.0]
        status = self.statuses[index] if index < len(self.statuses) else None
        if status is not None:
            record.closed_at = time.monotonic()
            body: dict[str, Any] = {"message": "error", "details": "x", "code": status}
            if status == 429:
                now = int(time.time())
                body.update(period="minute", period_start=now, period_end=now + 1, limit=50)
            return web.json_response(body, status=status)
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        self.open_now += 1
        try:
            for step in script:
                if step is ABORT:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    await response.write(step)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.open_now -= 1
            record.closed_at = time.monotonic()
        return response

    async def latest(self, request: web.Request) -> web.StreamResponse:
        self.latest_requests += 1
        return web.json_response(LATEST)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v4/systems/{system_id}/live_data", self.live)
        app.router.add_get("/api/v4/systems/{system_id}/latest_telemetry", self.latest)
        return app


async def _token() -> str:
    return "test-access-token"


@asynccontextmanager
async def serve() -> AsyncIterator[tuple[RawLiveServer, EnphaseClient]]:
    """The raw server on loopback and a client pointed at it."""
    raw = RawLiveServer()
    server = TestServer(raw.app())
    await server.start_server(access_log=None)
    raw.base_url = str(server.make_url("/")).rstrip("/")
    client = EnphaseClient(
        api_key="test-key",
        auth=_token,
        base_url=raw.base_url,
        rate_limits=RateLimits(1000, 1.0),
        timeout=5.0,
        max_retries=1,
        max_retry_time=5.0,
    )
    try:
        yield raw, client
    finally:
        await client.close()
        await server.close()
