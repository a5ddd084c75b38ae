"""The Commissioning API's battery operations (tariff, battery_mode) over real loopback HTTP.

Against the simulator: shapes, the PV-only 422 as :class:`NoBatteryError`, the Partner
plan's gating (403), the activation id being the system id, and the write-safety rules
every PUT follows.  Against a small server of the test's own: the official example
answers, verbatim and with optional fields left out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from enphase_battery import (
    ApiError,
    EnphaseClient,
    EnphaseConnectionError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimits,
)
from enphase_battery.exceptions import NoBatteryError
from enphase_battery.models import BatteryModeSettings, BatteryModeUpdate, SystemTariff
from enphase_battery.simulator import EnphaseSimulator

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
FAST = RateLimits(100_000)

#: The official Commissioning file's tariff example (api-evangelist/enphase), shortened to
#: two seasons; the SDK must read it as it is.
OFFICIAL_TARIFF: dict[str, Any] = {
    "tariff": {
        "storage_settings": {"mode": "backup", "reserved_soc": 100},
        "currency": {"code": "AUD"},
        "single_rate": {"rate": "1", "sell": "1"},
        "seasons": [
            {
                "id": "all_year_long",
                "start": "1/1",
                "days": [
                    {
                        "id": "weekdays",
                        "days": "Mon,Tue,Wed,Thu,Fri",
                        "must_charge_start": 0,
                        "must_charge_duration": 59,
                        "periods": [
                            {"id": "period_1", "start": 0, "rate": "10", "error": {}},
                            {"id": "period_2", "start": 240, "rate": "12", "error": {}},
                            {"id": "period_6", "start": 1200, "rate": "12", "error": {}},
                        ],
                        "enable_charge_from_grid": True,
                        "enable_discharge_to_grid": True,
                    },
                    {
                        "id": "weekend",
                        "days": "Sun,Sat",
                        "must_charge_start": 0,
                        "must_charge_duration": 0,
                        "periods": [{"id": "period_1", "start": 0, "rate": "1"}],
                        "enable_charge_from_grid": False,
                        "enable_discharge_to_grid": False,
                    },
                ],
            },
            {
                "id": "summer",
                "start": "3/1",
                "days": [
                    {
                        "id": "weekdays",
                        "days": "Mon,Tue,Wed,Thu,Fri",
                        "must_charge_start": 0,
                        "must_charge_duration": 0,
                        "periods": [{"id": "period_1", "start": 0, "rate": "1"}],
                    }
                ],
            },
        ],
        "seasons_sell": [
            {
                "id": "all_year_long",
                "start": "1/1",
                "days": [
                    {
                        "id": "all_days",
                        "days": "Sun,Mon,Tue,Wed,Thu,Fri,Sat",
                        "must_charge_start": 0,
                        "must_charge_duration": 0,
                        "periods": [{"id": "period_1", "start": 0, "rate": "1"}],
                    }
                ],
            }
        ],
    },
    "task": {"status": "pending", "created_at": "2021-06-24T13:29:16Z"},
}


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    # The second system is a PV-only site (no Encharges).
    async with EnphaseSimulator(
        seed=21, systems=2, encharges=[2, 0], start=START, history=timedelta(days=1)
    ) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with sim.make_client(rate_limits=FAST, max_retry_time=5) as api:
        yield api


def battery_mode_path(system_id: int) -> str:
    return f"/api/v4/activations/{system_id}/battery_mode"


# -- tariff ---------------------------------------------------------------------------


async def test_tariff_from_the_simulator_is_typed(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    answer = await client.get_system_tariff(system_id)
    assert isinstance(answer, SystemTariff)
    assert answer.tariff.currency == "USD"  # the first site is in California
    assert answer.task is not None
    assert answer.task.status == "completed"
    weekdays = answer.tariff.seasons[0].days[0]
    assert weekdays.days == ("Mon", "Tue", "Wed", "Thu", "Fri")
    # Periods start at a time of day, read from minutes after midnight.
    assert [p.start for p in weekdays.periods] == [time(0), time(17), time(21)]
    assert all(isinstance(p.rate, Decimal) for p in weekdays.periods)
    # The day groups' grid flags are the system's battery_mode.
    mode = await client.get_battery_mode(system_id)
    assert weekdays.enable_charge_from_grid is mode.cfg_allowed
    assert weekdays.enable_discharge_to_grid is mode.dtg_allowed
    assert weekdays.must_charge_window is None
    assert sim.path_counts[f"/api/v4/systems/config/{system_id}/tariff"] == 1


async def test_tariff_of_a_pv_only_site_is_served(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    answer = await client.get_system_tariff(sim.system_ids[1])
    assert answer.tariff.seasons


async def _official(body: Any, status: int = 200) -> tuple[TestServer, EnphaseClient]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server(access_log=None)

    async def token() -> str:
        return "test-access-token"

    client = EnphaseClient(
        api_key="test-key",
        auth=token,
        base_url=str(server.make_url("/")).rstrip("/"),
        rate_limits=FAST,
        max_retries=0,
        max_retry_time=5.0,
    )
    return server, client


async def test_the_official_tariff_example_reads_as_it_is() -> None:
    server, client = await _official(OFFICIAL_TARIFF)
    try:
        answer = await client.get_system_tariff(1)
    finally:
        await client.close()
        await server.close()
    tariff = answer.tariff
    assert tariff.currency == "AUD"
    assert tariff.single_rate is not None
    assert tariff.single_rate.sell == Decimal("1")
    assert tariff.storage_settings is not None
    assert tariff.storage_settings.reserved_soc == 100
    season = tariff.seasons[0]
    assert season.start_month_day == (1, 1)
    weekdays, weekend = season.days
    assert [p.start for p in weekdays.periods] == [time(0), time(4), time(20)]
    assert weekdays.periods[1].rate == Decimal("12")
    assert weekdays.enable_charge_from_grid is True
    assert weekdays.enable_discharge_to_grid is True
    assert weekdays.must_charge_window == (time(0), timedelta(minutes=59))
    assert weekend.enable_charge_from_grid is False
    assert weekend.must_charge_window is None
    # The summer season's day group says nothing of the grid: None, not False.
    assert tariff.seasons[1].days[0].enable_charge_from_grid is None
    assert tariff.seasons_sell[0].days[0].days[-1] == "Sat"
    assert answer.task is not None
    assert answer.task.created_at == datetime(2021, 6, 24, 13, 29, 16, tzinfo=UTC)


async def test_a_tariff_without_its_optional_fields_reads() -> None:
    sparse = {
        "tariff": {
            "currency_type": {"code": "USD"},
            "seasons": [{"days": [{"periods": [{"start": "90"}, {"rate": "0.3"}, {}]}]}],
        }
    }
    server, client = await _official(sparse)
    try:
        answer = await client.get_system_tariff(1)
    finally:
        await client.close()
        await server.close()
    assert answer.task is None
    assert answer.tariff.currency == "USD"
    assert answer.tariff.single_rate is None
    assert answer.tariff.seasons_sell == ()
    group = answer.tariff.seasons[0].days[0]
    assert group.days == ()
    assert group.must_charge_window is None
    assert [p.start for p in group.periods] == [time(1, 30), None, None]
    assert group.periods[1].rate == Decimal("0.3")


# -- battery_mode -----------------------------------------------------------------------


async def test_battery_mode_round_trip_by_system_id(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    before = await client.get_battery_mode(system_id)
    assert isinstance(before, BatteryModeSettings)
    update = await client.update_battery_mode(
        system_id, cfg_allowed=not before.cfg_allowed, dtg_allowed=True
    )
    assert update == BatteryModeUpdate(message="Battery mode updated successfully")
    after = await client.get_battery_mode(system_id)
    assert after == BatteryModeSettings(cfg_allowed=not before.cfg_allowed, dtg_allowed=True)
    # The activation id is the system id: every call went to /activations/{system_id}.
    assert sim.path_counts[battery_mode_path(system_id)] == 3
    # Charging from the grid is the battery setting the physics follows.
    settings = await client.get_system_battery_settings(system_id)
    assert settings.charge_from_grid is after.cfg_allowed


async def test_pv_only_site_is_a_typed_422_for_both_reads_and_writes(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    pv_only = sim.system_ids[1]
    with pytest.raises(NoBatteryError, match="PV only site") as info:
        await client.get_battery_mode(pv_only)
    assert info.value.status == 422
    assert info.value.body == {
        "errorMessages": [
            "This is a PV only site. Battery mode can only be fetched for sites with"
            " Enphase battery systems"
        ]
    }
    with pytest.raises(NoBatteryError, match="update_battery_mode"):
        await client.update_battery_mode(pv_only, cfg_allowed=True, dtg_allowed=False)
    # A 422 is final: one request each, nothing accepted.
    assert sim.path_counts[battery_mode_path(pv_only)] == 2
    assert sim.writes.counts["accepted"] == 0
    # The configuration endpoints' own words for the same thing are typed alike.
    with pytest.raises(NoBatteryError, match="doesn't have encharges"):
        await client.get_system_battery_settings(pv_only)


async def test_arguments_are_refused_before_anything_is_sent(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    bad: list[dict[str, Any]] = [
        {"cfg_allowed": 1, "dtg_allowed": False},
        {"cfg_allowed": True, "dtg_allowed": "yes"},
        {"cfg_allowed": True, "dtg_allowed": None},
    ]
    for arguments in bad:
        with pytest.raises(InvalidRequestError):
            await client.update_battery_mode(system_id, **arguments)
    with pytest.raises(TypeError):
        await client.update_battery_mode(system_id, cfg_allowed=True)  # type: ignore[call-overload]
    for system in (0, -4, "12", True):
        with pytest.raises(InvalidRequestError):
            await client.get_battery_mode(system)  # type: ignore[arg-type]
    assert sim.request_count == 0


@pytest.mark.parametrize(
    ("plan", "allowed"), [("watt", False), ("megawatt", False), ("partner", True)]
)
async def test_the_commissioning_operations_are_partner_only(plan: str, allowed: bool) -> None:
    async with (
        EnphaseSimulator(
            seed=5, systems=1, plan=plan, enforce_plan_access=True, start=START
        ) as sim,
        sim.make_client(rate_limits=FAST) as client,
    ):
        system_id = sim.system_ids[0]
        calls = [
            client.get_system_tariff(system_id),
            client.get_battery_mode(system_id),
            client.update_battery_mode(system_id, cfg_allowed=True, dtg_allowed=False),
        ]
        for call in calls:
            if allowed:
                await call
                continue
            with pytest.raises(PermissionDeniedError, match="needs the Partner plan") as info:
                await call
            assert info.value.status == 403
        if plan == "megawatt":
            # The configuration operations stay open to Megawatt.
            await client.get_system_battery_settings(system_id)
        assert sim.writes.counts["accepted"] == (1 if allowed else 0)


# -- write safety ------------------------------------------------------------------------


async def test_applied_write_with_an_unreadable_answer_is_read_back_not_resent(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    sim.faults.malform_next(1, path="/battery_mode")
    update = await client.update_battery_mode(system_id, cfg_allowed=True, dtg_allowed=True)
    # The state was read back (its answer carries no message): never sent twice.
    assert update.message is None
    assert sim.writes.counts["accepted"] == 1
    assert sim.path_counts[battery_mode_path(system_id)] == 2  # the PUT, then one GET
    assert await client.get_battery_mode(system_id) == BatteryModeSettings(True, True)


async def test_a_dropped_write_sets_the_whole_state_so_it_is_sent_again_once(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    await client.get_battery_mode(system_id)  # a keep-alive connection to reuse
    sim.faults.drop_next(1, path="/battery_mode")
    update = await client.update_battery_mode(system_id, cfg_allowed=False, dtg_allowed=True)
    assert update.message == "Battery mode updated successfully"
    assert sim.writes.counts["accepted"] == 1
    assert sim.path_counts[battery_mode_path(system_id)] == 3  # GET, dropped PUT, PUT


async def test_a_failing_write_is_sent_at_most_write_retries_more_times(
    sim: EnphaseSimulator,
) -> None:
    system_id = sim.system_ids[0]
    for write_retries, sent in ((1, 2), (0, 1)):
        sim.faults.clear()
        sim.reset_counters()
        sim.faults.fail_next(5, 500, path="/battery_mode")
        async with sim.make_client(
            rate_limits=FAST, max_retries=4, write_retries=write_retries, max_retry_time=5
        ) as client:
            with pytest.raises(ApiError) as info:
                await client.update_battery_mode(system_id, cfg_allowed=True, dtg_allowed=True)
        assert info.value.status == 500
        assert sim.path_counts[battery_mode_path(system_id)] == sent
    assert sim.writes.counts["accepted"] == 0


async def test_a_write_to_a_dead_server_fails_fast(sim: EnphaseSimulator) -> None:
    base_url = sim.base_url
    async with sim.make_client(rate_limits=FAST, max_retries=4) as client:
        await sim.close()
        with pytest.raises(EnphaseConnectionError) as info:
            await client.update_battery_mode(1, cfg_allowed=True, dtg_allowed=False)
    assert info.value.reached_server is False
    assert base_url.startswith("http://127.0.0.1:")
