"""The SDK and the simulator read the v4 API as its official spec says (fact sheet §8).

Real HTTP on loopback: the simulator, or a small aiohttp server of the test's own that
answers with the official examples.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from enphase_battery import EnphaseClient, QuotaExceededError, RateLimits
from enphase_battery.live import (
    GatewayNotReportingError,
    LiveBudget,
    LiveDataError,
    LiveDurationError,
    LiveServerError,
    LiveSession,
    LiveUnsupportedError,
)
from enphase_battery.live.now import battery_now
from enphase_battery.models.live import LiveFrame, LiveSource
from enphase_battery.models.vocabulary import BatteryState
from enphase_battery.simulator import EnphaseSimulator

SYSTEM_ID = 4242
START = datetime(2026, 6, 1, 12, tzinfo=UTC)
FAST = RateLimits(100_000)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def api(routes: dict[str, Handler]) -> AsyncIterator[tuple[EnphaseClient, list[str]]]:
    """A loopback server with ``routes`` (path suffix -> handler) and a client on it;
    yields the client and the list of paths the server was asked for."""
    seen: list[str] = []

    async def dispatch(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        for suffix, handler in routes.items():
            if request.path.endswith(suffix):
                return await handler(request)
        return web.json_response({"message": "Not Found", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    server = TestServer(app)
    await server.start_server(access_log=None)

    async def token() -> str:
        return "test-access-token"

    client = EnphaseClient(
        api_key="test-key",
        auth=token,
        base_url=str(server.make_url("/")).rstrip("/"),
        rate_limits=RateLimits(1000, 1.0, monthly_quota=1000),
        timeout=5.0,
        max_retries=2,
        max_retry_time=5.0,
    )
    try:
        yield client, seen
    finally:
        await client.close()
        await server.close()


def answer(body: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handler


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(
        seed=5,
        start=START,
        history=timedelta(days=3),
        plan="kilowatt",
        enforce_plan_access=True,
        live_frame_period_s=0.02,
        live_duration_scale=0.005,
    ) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with sim.make_client(rate_limits=FAST, max_retry_time=5) as made:
        yield made


async def take(session: LiveSession, count: int) -> list[LiveFrame]:
    frames: list[LiveFrame] = []

    async def run() -> None:
        async for frame in session:
            frames.append(frame)
            if len(frames) >= count:
                return

    await asyncio.wait_for(run(), 10)
    return frames


# -- latest_telemetry: operational_mode is the state; direction from it, not the sign -----

#: The official examples (fact sheet §8): Monitoring ``-15`` with ``Idle``; VPP ``+20``
#: with ``Charging`` and ``-10`` with ``Discharging``; and a word the spec does not list.
OFFICIAL_ENCHARGES = [
    {"id": 1, "channel": 1, "last_report_at": 1780000000, "power": -15, "operational_mode": "Idle"},
    {"id": 2, "channel": 2, "last_report_at": 1780000000, "power": 20,
     "operational_mode": "Charging"},
    {"id": 3, "channel": 3, "last_report_at": 1780000000, "power": -10,
     "operational_mode": "Discharging"},
    {"id": 4, "channel": 4, "last_report_at": 1780000000, "power": 70,
     "operational_mode": "Standby"},
]  # fmt: skip


async def test_latest_telemetry_direction_comes_from_the_state_not_the_sign() -> None:
    body = {
        "system_id": SYSTEM_ID,
        "items": "devices",
        "devices": {"encharges": OFFICIAL_ENCHARGES},
    }
    async with api({"/latest_telemetry": answer(body)}) as (client, _seen):
        latest = await client.get_latest_telemetry(SYSTEM_ID)
    states = [d.operational_mode for d in latest.devices.encharges]
    assert states == [
        BatteryState.IDLE,
        BatteryState.CHARGING,
        BatteryState.DISCHARGING,
        BatteryState.UNKNOWN,
    ]
    assert [d.discharge_w for d in latest.devices.encharges] == [0, -20, 10, None]
    # The known three: 0 - 20 + 10; the unknown one is left out, not guessed.
    assert latest.battery_discharge_w == -10
    assert latest.battery_state is BatteryState.CHARGING


async def test_battery_now_and_fallback_frames_follow_the_state_on_the_simulator(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    raw = await client.get_latest_telemetry(system_id)
    report = raw.last_report_at
    assert report is not None
    truth = 0
    for serial in sim.encharge_serials(system_id):
        (iv,) = sim.ground_truth_encharge(
            system_id, serial, report.timestamp() - 900, report.timestamp()
        )
        truth += (iv.discharge_wh - iv.charge_wh) * 4
    assert abs(truth) > 100  # a battery that moves: the direction matters
    now = await battery_now(client, system_id)
    assert now.battery_discharge_w is not None
    assert (now.battery_discharge_w > 0) == (truth > 0)
    assert now.battery_state is (BatteryState.DISCHARGING if truth > 0 else BatteryState.CHARGING)
    # The live session's fallback frames read it the same way.
    sim.live.refuse_next(472)
    async with client.live(system_id, budget=LiveBudget(total=1), fallback_interval_s=0.05) as s:
        (frame,) = await take(s, 1)
    assert frame.source is LiveSource.LATEST
    assert frame.battery_discharge_w == now.battery_discharge_w
    assert frame.battery_mode is None  # latest_telemetry carries no profile


# -- live_data errors: HTTP responses with the JSON error envelope ------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (461, LiveDurationError),
        (462, LiveDurationError),
        (463, LiveDurationError),
        (466, LiveUnsupportedError),
        (468, LiveDataError),
        (472, LiveUnsupportedError),
        (473, GatewayNotReportingError),
        (550, LiveServerError),
        (551, LiveServerError),
        (552, LiveServerError),
    ],
)
async def test_live_data_error_envelopes_as_http_responses_are_typed(
    sim: EnphaseSimulator, client: EnphaseClient, code: int, error: type[LiveDataError]
) -> None:
    system_id = sim.system_ids[0]
    for _ in range(3):
        sim.live.refuse_next(code)
    async with client.live(system_id, budget=LiveBudget(total=3), fallback=False) as session:
        with pytest.raises(error) as caught:
            await take(session, 1)
    assert type(caught.value) is error
    assert caught.value.code == code
    # The envelope's own words reach the message.
    assert caught.value.status == code
    assert str(code) in str(caught.value)


async def test_an_error_envelope_inside_the_stream_is_still_an_error() -> None:
    envelope = {
        "error": {
            "code": 473,
            "details": ["IQ Gateway is not reporting"],
            "message": "IQ Gateway is not reporting",
            "status": "IQ_GATEWAY_NOT_REPORTING",
        },
        "timestamp_epoch": 1780000000000,
        "type": "error",
    }

    async def live(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"event: error\ndata: {json.dumps(envelope)}\n\n".encode())
        await response.write_eof()
        return response

    async with (
        api({"/live_data": live}) as (client, _seen),
        client.live(SYSTEM_ID, budget=LiveBudget(total=1), fallback=False) as s,
    ):
        with pytest.raises(GatewayNotReportingError) as caught:
            await take(s, 1)
    assert caught.value.code == 473


# -- the three 429 shapes; a month 429 in any of them ends the month's sending ------------

TELEMETRY_MONTH_429 = {
    "message": "Too Many Requests",
    "details": "Usage limit exceeded for plan Kilowatt",
    "code": 429,
    "period": "month",
    "period_start": 1780000000,
    "period_end": 1780000000 + 20 * 86_400,
    "limit": 50000,
}
COMMISSIONING_MONTH_429 = {
    "reason": "429",
    "message": ["Monthly usage limit exceeded for plan Partner (custom)"],
}
LIVE_MONTH_429 = {
    "error": {
        "code": 429,
        "details": ["Monthly usage limit exceeded for plan Kilowatt"],
        "message": "Too Many Requests",
        "status": "TOO_MANY_REQUESTS",
    },
    "timestamp_epoch": 1780000000000,
    "timestamp_utc": "2026-05-28T20:26:40Z",
    "type": "error",
}


@pytest.mark.parametrize(
    "body",
    [TELEMETRY_MONTH_429, COMMISSIONING_MONTH_429, LIVE_MONTH_429],
    ids=["telemetry", "commissioning", "live_data"],
)
async def test_a_month_429_in_any_shape_ends_the_months_sending(body: dict[str, Any]) -> None:
    async with api({"/latest_telemetry": answer(body, 429)}) as (client, seen):
        with pytest.raises(QuotaExceededError):
            await client.get_latest_telemetry(SYSTEM_ID)
        assert len(seen) == 1  # not retried
        with pytest.raises(QuotaExceededError):
            await client.get_latest_telemetry(SYSTEM_ID)
        assert len(seen) == 1  # nothing more sent this month


async def test_a_month_429_on_live_data_ends_the_months_sending(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    sim.limiter.exhaust_month()
    async with client.live(system_id, budget=LiveBudget(total=3)) as session:
        with pytest.raises(QuotaExceededError):
            await take(session, 1)
    before = sim.request_count
    with pytest.raises(QuotaExceededError):
        await client.get_latest_telemetry(system_id)
    assert sim.request_count == before


# -- duration: the header the spec declares --------------------------------------------


async def test_duration_goes_as_the_header_only(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def live(request: web.Request) -> web.StreamResponse:
        seen.append((request.headers.get("duration"), request.query.get("duration")))
        return web.json_response({"error": {"code": 472}}, status=472)

    async with (
        api({"/live_data": live, "/latest_telemetry": answer({"system_id": 1})}) as (
            raw_client,
            _paths,
        ),
        raw_client.live(SYSTEM_ID, budget=LiveBudget(total=1), duration_s=120) as s,
    ):
        await take(s, 1)
    assert seen == [("120", None)]
    # The simulator reads the header: a 300 s stream is asked for and served.
    async with client.live(sim.system_ids[0], budget=LiveBudget(total=1), duration_s=300) as s:
        await take(s, 1)
    assert sim.live.durations == [300]
