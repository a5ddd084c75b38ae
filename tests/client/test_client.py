"""The client against the fake v4 API over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import traceback
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

import aiohttp
import pytest

from enphase_battery import (
    ApiError,
    AuthenticationError,
    BatteryMode,
    EnphaseClient,
    EnphaseConnectionError,
    EnphaseError,
    Granularity,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RateLimits,
    ResponseFormatError,
)
from enphase_battery.models import GridState, LoadControlMode
from tests.support.clients import MakeClient, MakeManager
from tests.support.fake_api import (
    API_KEY,
    ENCHARGE_SERIAL,
    ERRORS,
    SYSTEM_ID,
    FakeEnphase,
    Recorded,
    Reply,
    load_fixture,
)

CONFIG = f"/api/v4/systems/config/{SYSTEM_ID}"
SYSTEM = f"/api/v4/systems/{SYSTEM_ID}"


def assert_sent(rec: Recorded, method: str, path: str, query: dict[str, str] | None = None) -> None:
    """The request reached the fake as the real API wants it."""
    assert rec.method == method
    assert rec.path == path
    assert rec.query.get("key") == API_KEY
    assert rec.bearer is not None
    assert rec.headers["Authorization"] == f"Bearer {rec.bearer}"
    expected = {"key": API_KEY, **(query or {})}
    assert rec.query == expected


# -- every endpoint: the request and the parsed model ------------------------------------


async def test_list_systems_pages(fake: FakeEnphase, client: EnphaseClient) -> None:
    template = load_fixture("systems")["systems"][0]
    fake.systems = [{**template, "system_id": 1000 + i, "name": f"S{i}"} for i in range(205)]
    systems = await client.list_systems()
    assert [s.system_id for s in systems] == [1000 + i for i in range(205)]
    assert [r.query.get("page") for r in fake.requests] == ["1", "2", "3"]
    for rec in fake.requests:
        assert_sent(rec, "GET", "/api/v4/systems", {"page": rec.query["page"], "size": "100"})
    assert systems[0].timezone == "America/Los_Angeles"
    assert systems[0].last_report_at == datetime.fromtimestamp(1716980400, UTC)


async def test_list_systems_single_page(fake: FakeEnphase, client: EnphaseClient) -> None:
    systems = await client.list_systems()
    assert [s.system_id for s in systems] == [698905955, 698905956]
    assert len(fake.requests) == 1


async def test_get_system_devices(fake: FakeEnphase, client: EnphaseClient) -> None:
    devices = await client.get_system_devices(SYSTEM_ID)
    (rec,) = fake.requests
    assert_sent(rec, "GET", f"{SYSTEM}/devices")
    assert devices.system_id == SYSTEM_ID
    assert devices.encharge_serials == ("122137013201", "122137013202")
    assert devices.devices.encharges[0].active is True


async def test_get_battery_settings(fake: FakeEnphase, client: EnphaseClient) -> None:
    settings = await client.get_system_battery_settings(SYSTEM_ID)
    (rec,) = fake.requests
    assert_sent(rec, "GET", f"{CONFIG}/battery_settings")
    assert rec.body == b""
    assert settings.battery_mode is BatteryMode.SELF_CONSUMPTION  # "Self - Consumption"
    assert settings.reserve_soc == 30
    assert settings.energy_independence is True
    assert settings.charge_from_grid is False


async def test_update_battery_settings_full(fake: FakeEnphase, client: EnphaseClient) -> None:
    settings = await client.update_system_battery_settings(
        SYSTEM_ID, battery_mode="full backup", reserve_soc=80, energy_independence=False
    )
    (rec,) = fake.requests
    assert_sent(rec, "PUT", f"{CONFIG}/battery_settings")
    assert rec.headers["Content-Type"].startswith("application/json")
    assert rec.json == {
        "battery_mode": "Full Backup",
        "reserve_soc": 80,
        "energy_independence": "disabled",
    }
    assert settings.battery_mode is BatteryMode.FULL_BACKUP
    assert settings.reserve_soc == 80
    assert settings.energy_independence is False


async def test_update_battery_settings_partial(fake: FakeEnphase, client: EnphaseClient) -> None:
    await client.update_system_battery_settings(
        SYSTEM_ID, battery_mode=BatteryMode.SELF_CONSUMPTION
    )
    await client.update_system_battery_settings(SYSTEM_ID, reserve_soc=0)
    assert fake.requests[0].json == {"battery_mode": "Self-consumption"}
    assert fake.requests[1].json == {"reserve_soc": 0}


async def test_storm_guard(fake: FakeEnphase, client: EnphaseClient) -> None:
    storm = await client.get_system_storm_guard(SYSTEM_ID)
    assert storm.storm_guard_status is True
    assert storm.storm_alert is False
    updated = await client.update_system_storm_guard(SYSTEM_ID, False)
    get, put = fake.requests
    assert_sent(get, "GET", f"{CONFIG}/storm_guard")
    assert_sent(put, "PUT", f"{CONFIG}/storm_guard")
    assert put.json == {"storm_guard_status": "disabled"}
    assert updated.storm_guard_status is False


async def test_grid_status(fake: FakeEnphase, client: EnphaseClient) -> None:
    grid = await client.get_system_grid_status(SYSTEM_ID)
    (rec,) = fake.requests
    assert_sent(rec, "GET", f"{CONFIG}/grid_status")
    assert grid.grid_state is GridState.ON_GRID
    assert grid.last_report_date == datetime.fromtimestamp(1716980400, UTC)


async def test_load_control(fake: FakeEnphase, client: EnphaseClient) -> None:
    control = await client.get_system_load_control(SYSTEM_ID)
    assert control.load_control_data[0].mode is LoadControlMode.ADVANCED_BATTERY_POWERED
    updated = await client.update_system_load_control(
        SYSTEM_ID,
        name="NC2",
        load_name="Pool pump",
        mode="Scheduled",
        soc_low=20,
        essential_start_time=dtime(6, 30),
        essential_end_time=79200,
    )
    get, put = fake.requests
    assert_sent(get, "GET", f"{CONFIG}/load_control")
    assert_sent(put, "PUT", f"{CONFIG}/load_control")
    assert put.json == {
        "name": "NC2",
        "load_name": "Pool pump",
        "mode": "Scheduled",
        "soc_low": 20,
        "essential_start_time": 23400,
        "essential_end_time": 79200,
    }
    nc2 = updated.load_control_data[1]
    assert nc2.mode is LoadControlMode.SCHEDULED
    assert nc2.essential_start_time == 23400


async def test_battery_lifetime(fake: FakeEnphase, client: EnphaseClient) -> None:
    lifetime = await client.get_battery_lifetime(
        SYSTEM_ID, start_date=date(2024, 5, 20), end_date=date(2024, 5, 24)
    )
    (rec,) = fake.requests
    assert_sent(
        rec,
        "GET",
        f"{SYSTEM}/battery_lifetime",
        {"start_date": "2024-05-20", "end_date": "2024-05-24"},
    )
    assert lifetime.start_date == date(2024, 5, 20)
    assert lifetime.days[-1].date == date(2024, 5, 24)


async def test_battery_lifetime_defaults(fake: FakeEnphase, client: EnphaseClient) -> None:
    await client.get_battery_lifetime(SYSTEM_ID)
    assert_sent(fake.requests[0], "GET", f"{SYSTEM}/battery_lifetime", {})


async def test_battery_telemetry_start_at(fake: FakeEnphase, client: EnphaseClient) -> None:
    start = datetime(2024, 5, 28, 7, 0, tzinfo=UTC)
    telemetry = await client.get_battery_telemetry(SYSTEM_ID, start, "15mins")
    (rec,) = fake.requests
    assert_sent(
        rec,
        "GET",
        f"{SYSTEM}/telemetry/battery",
        {"start_at": str(int(start.timestamp())), "granularity": "15mins"},
    )
    assert telemetry.granularity is Granularity.FIFTEEN_MINUTES
    assert telemetry.last_reported_aggregate_soc == 97
    assert telemetry.start_at is not None
    assert telemetry.start_at.tzinfo is not None
    assert telemetry.intervals[0].end_at == datetime(2024, 5, 28, 7, 15, tzinfo=UTC)
    assert telemetry.intervals[0].end_at.utcoffset().total_seconds() == 0


async def test_battery_telemetry_default_window(fake: FakeEnphase, client: EnphaseClient) -> None:
    telemetry = await client.get_battery_telemetry(SYSTEM_ID)
    assert_sent(fake.requests[0], "GET", f"{SYSTEM}/telemetry/battery", {"granularity": "day"})
    assert len(telemetry.intervals) == 4


async def test_battery_telemetry_start_at_other_zone(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    from zoneinfo import ZoneInfo

    start = datetime(2024, 5, 28, 0, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    await client.get_battery_telemetry(SYSTEM_ID, start, Granularity.WEEK)
    assert fake.requests[0].query["start_at"] == "1716879600"
    assert fake.requests[0].query["granularity"] == "week"


async def test_battery_telemetry_start_date(fake: FakeEnphase, client: EnphaseClient) -> None:
    telemetry = await client.get_battery_telemetry(SYSTEM_ID, start_date=date(2024, 5, 28))
    assert_sent(
        fake.requests[0],
        "GET",
        f"{SYSTEM}/telemetry/battery",
        {"start_date": "2024-05-28", "granularity": "day"},
    )
    assert telemetry.start_date == date(2024, 5, 28)
    assert telemetry.start_at is None


async def test_encharge_telemetry(fake: FakeEnphase, client: EnphaseClient) -> None:
    start = datetime(2024, 5, 28, 7, 0, tzinfo=UTC)
    telemetry = await client.get_encharge_telemetry(SYSTEM_ID, ENCHARGE_SERIAL, start, "15mins")
    (rec,) = fake.requests
    assert_sent(
        rec,
        "GET",
        f"{SYSTEM}/devices/encharges/{ENCHARGE_SERIAL}/telemetry",
        {"start_at": str(int(start.timestamp())), "granularity": "15mins"},
    )
    assert telemetry.serial_number == ENCHARGE_SERIAL
    assert telemetry.last_reported_soc == 99
    assert telemetry.intervals[0].soc.percent == 63


# -- argument validation: nothing is sent ------------------------------------------------

NAIVE = datetime(2024, 5, 28, 7, 0)
AWARE = datetime(2024, 5, 28, 7, 0, tzinfo=UTC)

BAD_CALLS: list[tuple[str, Any]] = [
    ("system_id 0", lambda c: c.get_system_battery_settings(0)),
    ("system_id -1", lambda c: c.get_system_grid_status(-1)),
    ("system_id '1'", lambda c: c.get_system_devices("1")),
    ("system_id True", lambda c: c.get_battery_telemetry(True)),
    ("system_id 1.0", lambda c: c.get_system_storm_guard(1.0)),
    ("serial ../x", lambda c: c.get_encharge_telemetry(SYSTEM_ID, "../x")),
    ("serial a b", lambda c: c.get_encharge_telemetry(SYSTEM_ID, "a b")),
    ("serial empty", lambda c: c.get_encharge_telemetry(SYSTEM_ID, "")),
    ("serial query", lambda c: c.get_encharge_telemetry(SYSTEM_ID, "12?key=x")),
    ("reserve 101", lambda c: c.update_system_battery_settings(SYSTEM_ID, reserve_soc=101)),
    ("reserve -1", lambda c: c.update_system_battery_settings(SYSTEM_ID, reserve_soc=-1)),
    ("reserve str", lambda c: c.update_system_battery_settings(SYSTEM_ID, reserve_soc="50")),
    (
        "unknown profile",
        lambda c: c.update_system_battery_settings(SYSTEM_ID, battery_mode="ai optimisation"),
    ),
    (
        "cost_savings web slug",
        lambda c: c.update_system_battery_settings(SYSTEM_ID, battery_mode="cost_savings"),
    ),
    (
        "energy_independence str",
        lambda c: c.update_system_battery_settings(SYSTEM_ID, energy_independence="enabled"),
    ),
    ("update nothing", lambda c: c.update_system_battery_settings(SYSTEM_ID)),
    ("storm guard str", lambda c: c.update_system_storm_guard(SYSTEM_ID, "enabled")),
    ("soc_low 5", lambda c: c.update_system_load_control(SYSTEM_ID, name="NC1", soc_low=5)),
    ("soc_low 95", lambda c: c.update_system_load_control(SYSTEM_ID, name="NC1", soc_low=95)),
    ("load name empty", lambda c: c.update_system_load_control(SYSTEM_ID, name=" ")),
    ("load mode", lambda c: c.update_system_load_control(SYSTEM_ID, name="NC1", mode="Turbo")),
    (
        "essential time",
        lambda c: c.update_system_load_control(SYSTEM_ID, name="NC1", essential_end_time=86400),
    ),
    ("naive start_at", lambda c: c.get_battery_telemetry(SYSTEM_ID, NAIVE)),
    ("naive encharge", lambda c: c.get_encharge_telemetry(SYSTEM_ID, ENCHARGE_SERIAL, NAIVE)),
    ("start_at as date", lambda c: c.get_battery_telemetry(SYSTEM_ID, date(2024, 5, 28))),
    (
        "start_at and start_date",
        lambda c: c.get_battery_telemetry(SYSTEM_ID, AWARE, start_date=date(2024, 5, 28)),
    ),
    ("start_date datetime", lambda c: c.get_battery_telemetry(SYSTEM_ID, start_date=AWARE)),
    ("granularity month", lambda c: c.get_battery_telemetry(SYSTEM_ID, AWARE, "month")),
    ("granularity 5min", lambda c: c.get_encharge_telemetry(SYSTEM_ID, "1", AWARE, "5min")),
    (
        "lifetime reversed",
        lambda c: c.get_battery_lifetime(SYSTEM_ID, date(2024, 5, 2), date(2024, 5, 1)),
    ),
]


@pytest.mark.parametrize(("label", "call"), BAD_CALLS, ids=[label for label, _ in BAD_CALLS])
async def test_bad_input_sends_nothing(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager, label: str, call: Any
) -> None:
    # An expired token: had validation come after the token, a refresh would be seen too.
    client = make_client(auth=make_manager(expires_in=-60))
    with pytest.raises(InvalidRequestError):
        await call(client)
    assert fake.requests == []
    assert fake.token_requests == []
    assert client.requests_sent == 0


def test_invalid_request_error_is_a_value_error() -> None:
    assert issubclass(InvalidRequestError, ValueError)
    assert issubclass(InvalidRequestError, EnphaseError)


# -- rate limits and quota -------------------------------------------------------------


async def test_429_waits_until_period_end(fake: FakeEnphase, client: EnphaseClient) -> None:
    period_end = time.time() + 1.0
    body = {**ERRORS["429_minute"], "period_end": period_end}
    fake.script(f"{CONFIG}/grid_status", Reply(429, body))
    grid = await client.get_system_grid_status(SYSTEM_ID)
    assert grid.grid_state is GridState.ON_GRID
    _first, second = fake.requests
    assert second.at >= period_end


async def test_429_without_period_backs_off_exponentially(
    fake: FakeEnphase, client: EnphaseClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="enphase_battery")
    fake.script("*", Reply(429, ERRORS["429_bare"]), Reply(429, ERRORS["429_bare"]))
    await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 3
    waits = [float(w) for w in re.findall(r"waiting ([0-9.]+) s", caplog.text)]
    assert len(waits) == 2
    # Full-jitter exponential: the first wait is at most 0.5 s, the second at most 1 s.
    assert 0 <= waits[0] <= 0.5
    assert 0 <= waits[1] <= 1.0


async def test_429_month_raises_quota_exceeded_without_retry(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    period_end = int(time.time()) + 86400 * 3
    body = {**ERRORS["429_month"], "period_end": period_end}
    fake.script("*", Reply(429, body))
    with pytest.raises(QuotaExceededError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 1
    assert info.value.period == "month"
    assert info.value.limit == 1000
    assert info.value.status == 429
    assert client.quota_remaining == 0
    # The month is spent: the next call costs no request.
    with pytest.raises(QuotaExceededError):
        await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 1


async def test_429_beyond_max_retry_time_raises_promptly(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(max_retry_time=2.0, max_retries=4)
    body = {**ERRORS["429_minute"], "period_end": int(time.time()) + 60}
    fake.script("*", Reply(429, body))
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert time.monotonic() - started < 2.0
    assert not isinstance(info.value, QuotaExceededError)
    assert info.value.retry_after is not None
    assert 50 < info.value.retry_after <= 60
    assert info.value.period == "minute"
    assert info.value.limit == 5
    assert len(fake.requests) == 1


async def test_429_lasting_raises_rate_limit_error(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(max_retries=1)
    fake.script("*", Reply(429, ERRORS["429_bare"]), Reply(429, ERRORS["429_bare"]))
    with pytest.raises(RateLimitError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.status == 429
    assert len(fake.requests) == 2


async def test_local_monthly_quota(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client(rate_limits=RateLimits(1000, 1.0, monthly_quota=3))
    assert client.quota_remaining == 3
    for left in (2, 1, 0):
        await client.get_system_grid_status(SYSTEM_ID)
        assert client.quota_remaining == left
    assert client.quota_used == 3
    with pytest.raises(QuotaExceededError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.status is None
    assert len(fake.requests) == 3


async def test_quota_already_spent_sends_nothing(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    client = make_client(
        rate_limits=RateLimits(1000, 1.0, monthly_quota=1000),
        quota_used=1000,
    )
    assert client.quota_remaining == 0
    with pytest.raises(QuotaExceededError):
        await client.get_battery_telemetry(SYSTEM_ID)
    assert fake.requests == []


async def test_default_rate_limits_are_the_watt_plan(fake: FakeEnphase) -> None:
    async def provider() -> str:
        return "unused"

    client = EnphaseClient(api_key=API_KEY, auth=provider, base_url=fake.base_url)
    try:
        assert client.rate_limits == RateLimits.WATT
        assert client.quota_remaining == 1000
    finally:
        await client.close()


# -- server errors, broken bodies, the network -------------------------------------------


async def test_lasting_500_raises_api_error(fake: FakeEnphase, client: EnphaseClient) -> None:
    assert client.max_retries == 2
    fake.script("*", *[Reply(500, ERRORS["500"])] * 3)  # a 4th try would succeed
    with pytest.raises(ApiError) as info:
        await client.get_system_battery_settings(SYSTEM_ID)
    assert type(info.value) is ApiError
    assert info.value.status == 500
    assert info.value.body == ERRORS["500"]
    assert info.value.details == "Something went wrong"
    assert info.value.method == "GET"
    assert info.value.path == f"{CONFIG}/battery_settings"
    assert len(fake.requests) == client.max_retries + 1


async def test_503_then_success(fake: FakeEnphase, client: EnphaseClient) -> None:
    fake.script("*", Reply(503, text="Service Unavailable"))
    settings = await client.get_system_battery_settings(SYSTEM_ID)
    assert settings.reserve_soc == 30
    assert len(fake.requests) == 2


async def test_rgm_500_body_is_parsed(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client(max_retries=0)
    body = {"errorCode": 7, "errorMessages": ["Data is temporarily unavailable"]}
    fake.script("*", Reply(500, body))
    with pytest.raises(ApiError) as info:
        await client.get_battery_telemetry(SYSTEM_ID)
    assert info.value.body == body
    assert "temporarily unavailable" in str(info.value)


async def test_malformed_json_then_success(fake: FakeEnphase, client: EnphaseClient) -> None:
    fake.script("*", Reply(200, text='{"system_id": 1, "grid_st'))
    grid = await client.get_system_grid_status(SYSTEM_ID)
    assert grid.grid_state is GridState.ON_GRID
    assert len(fake.requests) == 2


async def test_wrong_shape_then_success(fake: FakeEnphase, client: EnphaseClient) -> None:
    fake.script("*", Reply(200, ["not", "an", "object"]))
    telemetry = await client.get_battery_telemetry(SYSTEM_ID)
    assert len(telemetry.intervals) == 4
    assert len(fake.requests) == 2


async def test_lasting_malformed_raises_response_format_error(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    fake.script("*", *[Reply(200, text="<html>gateway</html>")] * 3)
    with pytest.raises(ResponseFormatError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.status == 200
    assert len(fake.requests) == 3


async def test_missing_required_field_is_a_format_error(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(max_retries=0)
    fake.script("*", Reply(200, {"intervals": []}))  # no system_id
    with pytest.raises(ResponseFormatError, match="system_id"):
        await client.get_battery_telemetry(SYSTEM_ID)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{_free_port()}", max_retries=1)
    with pytest.raises(EnphaseConnectionError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert client.requests_sent == 2
    assert "grid_status" in str(info.value)


async def test_dropped_connection(fake: FakeEnphase, client: EnphaseClient) -> None:
    # aiohttp itself resends an idempotent request once when a reused keep-alive
    # connection drops, so the fake may see more requests than the client sent.
    fake.script("*", *[Reply(drop=True)] * 10)
    with pytest.raises(EnphaseConnectionError):
        await client.get_system_grid_status(SYSTEM_ID)
    assert client.requests_sent == 3
    assert len(fake.requests) >= 3


async def test_dropped_then_success(fake: FakeEnphase, client: EnphaseClient) -> None:
    fake.script("*", Reply(drop=True))
    grid = await client.get_system_grid_status(SYSTEM_ID)
    assert grid.system_id == SYSTEM_ID
    assert len(fake.requests) == 2


async def test_timeout(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client(timeout=0.2, max_retries=1)
    fake.script("*", Reply(delay=1.0), Reply(delay=1.0))
    with pytest.raises(EnphaseConnectionError, match="no answer"):
        await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 2


async def test_403_permission_denied(fake: FakeEnphase, client: EnphaseClient) -> None:
    fake.script("*", Reply(403, ERRORS["403"]))
    with pytest.raises(PermissionDeniedError) as info:
        await client.update_system_battery_settings(SYSTEM_ID, reserve_soc=20)
    message = str(info.value)
    assert "plan" in message
    assert "grant" in message
    assert info.value.status == 403
    assert info.value.details == "Not authorized to access this resource"
    assert len(fake.requests) == 1


async def test_404_not_found(fake: FakeEnphase, client: EnphaseClient) -> None:
    fake.script("*", Reply(404, ERRORS["404"]))
    with pytest.raises(NotFoundError) as info:
        await client.get_system_devices(1)
    assert info.value.status == 404
    assert "System not found" in str(info.value)
    assert info.value.path == "/api/v4/systems/1/devices"
    assert len(fake.requests) == 1


async def test_422_is_not_retried(fake: FakeEnphase, client: EnphaseClient) -> None:
    fake.script("*", Reply(422, ERRORS["422"]))
    with pytest.raises(ApiError) as info:
        await client.get_system_battery_settings(SYSTEM_ID)
    assert info.value.status == 422
    assert "encharges" in str(info.value)
    assert len(fake.requests) == 1


# -- sessions ------------------------------------------------------------------------


async def test_client_closes_the_session_it_created(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client()
    await client.get_system_grid_status(SYSTEM_ID)
    session = client._transport.session
    assert isinstance(session, aiohttp.ClientSession)
    assert not session.closed
    await client.close()
    assert session.closed
    with pytest.raises(InvalidRequestError):
        await client.get_system_grid_status(SYSTEM_ID)


async def test_client_leaves_a_callers_session_open(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    async with aiohttp.ClientSession() as session:
        async with make_client(session=session) as client:
            await client.get_system_grid_status(SYSTEM_ID)
        assert not session.closed
        async with session.get(fake.base_url + "/api/v4/systems") as response:
            assert response.status == 401  # the session still works
        assert fake.requests[0].path == f"{CONFIG}/grid_status"


# -- secrets never leak ------------------------------------------------------------------

SECRET_MARK = "d1st1nct"  # part of the API key, client secret, code and every token


async def _collect(errors: list[BaseException], awaitable: Any) -> None:
    try:
        await awaitable
    except EnphaseError as err:
        errors.append(err)


async def test_no_secret_leaks(
    fake: FakeEnphase,
    make_client: MakeClient,
    make_manager: MakeManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    manager = make_manager(expires_in=-5)  # expired: the first call refreshes
    client = make_client(auth=manager, max_retries=1, timeout=0.3)
    echo = {"message": "Bad", "details": f"key={API_KEY} token={fake.current_refresh}"}

    # A retry, a refresh, a 401 refresh-and-retry, and a run of errors.
    fake.script("*", Reply(500, echo))
    await client.get_system_battery_settings(SYSTEM_ID)
    fake.script("*", Reply(401, ERRORS["401"]))
    await client.get_system_grid_status(SYSTEM_ID)
    for reply in (
        Reply(403, ERRORS["403"]),
        Reply(404, echo),
        Reply(422, echo),
        Reply(401, echo),
        Reply(401, echo),
    ):
        fake.script("*", reply)
        await _collect(errors, client.get_system_storm_guard(SYSTEM_ID))
    fake.script("*", Reply(500, echo), Reply(500, echo))
    await _collect(errors, client.get_system_load_control(SYSTEM_ID))
    fake.script("*", Reply(200, text=f"oops {API_KEY}"), Reply(200, text=f"oops {API_KEY}"))
    await _collect(errors, client.get_system_load_control(SYSTEM_ID))
    fake.script("*", Reply(delay=1.0), Reply(drop=True))
    await _collect(errors, client.get_battery_telemetry(SYSTEM_ID))
    fake.script("*", Reply(429, {**ERRORS["429_minute"], "period_end": time.time() + 600}))
    await _collect(errors, client.get_battery_telemetry(SYSTEM_ID))
    fake.script("*", Reply(429, {**ERRORS["429_month"], "period_end": time.time() + 600}))
    await _collect(errors, client.get_battery_telemetry(SYSTEM_ID))
    refused = make_client(auth=manager, base_url=f"http://127.0.0.1:{_free_port()}", max_retries=0)
    await _collect(errors, refused.get_system_devices(SYSTEM_ID))
    # A token endpoint that fails, then a dead refresh token (its error echoes the token).
    fake.token_script.append(Reply(500, {"error": "server_error"}))
    await _collect(errors, manager.refresh())
    fake.current_refresh = "someone-else-rotated-it"
    fake.revoke_access_tokens()
    await _collect(errors, refused.get_system_devices(SYSTEM_ID))
    other = make_client(auth=manager)
    await _collect(errors, other.get_system_devices(SYSTEM_ID))

    kinds = {type(err) for err in errors}
    assert {
        PermissionDeniedError,
        NotFoundError,
        ApiError,
        AuthenticationError,
        ResponseFormatError,
        EnphaseConnectionError,
        RateLimitError,
        QuotaExceededError,
    } <= kinds
    assert any("sign in again" in str(err) for err in errors)
    assert len(fake.token_requests) >= 4

    texts = [caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(client), repr(manager), repr(manager.token), str(manager.token)]
    for err in errors:
        texts += [str(err), repr(err), "".join(traceback.format_exception(err))]
        if isinstance(err, ApiError):
            texts.append(repr(err.body))
    leaks = [text for text in texts if SECRET_MARK in text]
    assert leaks == []
    # And the run did put secrets on the wire, so the check above means something.
    assert any(SECRET_MARK in rec.query.get("key", "") for rec in fake.requests)


async def test_exceptions_chain_no_secrets(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{_free_port()}", max_retries=0)
    with pytest.raises(EnphaseConnectionError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    err: BaseException | None = info.value
    while err is not None:
        assert SECRET_MARK not in str(err)
        assert SECRET_MARK not in repr(err)
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


async def test_concurrent_calls_share_limiter(fake: FakeEnphase, client: EnphaseClient) -> None:
    results = await asyncio.gather(*(client.get_system_grid_status(SYSTEM_ID) for _ in range(20)))
    assert len(results) == 20
    assert len(fake.requests) == 20
    assert client.requests_sent == 20


# -- retry budget and token-endpoint failures --------------------------------------------


async def test_429_reset_beyond_the_remaining_budget_raises_without_waiting(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    # The first 429 has no reset time (a short exponential wait); the second resets in
    # 2.5 s: within the 3 s budget, but not within what is left of it after the first.
    client = make_client(max_retry_time=3.0, max_retries=4)
    fake.script(
        "*",
        Reply(429, ERRORS["429_bare"], delay=0.8),
        Reply(429, {**ERRORS["429_minute"], "period_end": time.time() + 3.3}),
    )
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 2
    assert time.monotonic() - started < 2.5


async def test_token_endpoint_outage_is_not_retried_again_by_the_client(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-10, max_tries=2)
    client = make_client(auth=manager, max_retries=4)
    fake.token_script.extend([Reply(503, {"message": "down"})] * 10)
    with pytest.raises(ApiError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.status == 503
    # The manager's own two tries, not multiplied by the client's five.
    assert len(fake.token_requests) == 2
    assert fake.requests == []


async def test_unknown_battery_mode_reads_as_none(
    fake: FakeEnphase, client: EnphaseClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = {**load_fixture("battery_settings"), "battery_mode": "AI Optimisation"}
    fake.script(f"{CONFIG}/battery_settings", Reply(200, body))
    settings = await client.get_system_battery_settings(SYSTEM_ID)
    assert settings.battery_mode is None
    assert settings.reserve_soc == body["reserve_soc"]
    assert "AI Optimisation" in caplog.text
    assert len(fake.requests) == 1


async def test_token_manager_borrows_the_clients_session(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-10)
    async with make_client(auth=manager) as client:
        await client.get_system_grid_status(SYSTEM_ID)
        assert fake.grants == ["refresh_token"]
        # One pool for both: the refresh went through the client's session.
        assert manager._session is client._transport.session
    # The client closed its session; the manager makes its own when it needs one.
    await manager.refresh()
    assert manager._session is not None
    assert not manager._session.closed
    assert fake.grants == ["refresh_token", "refresh_token"]
