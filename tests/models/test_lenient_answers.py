"""Answers with values the models don't know: read leniently through real HTTP (the aiohttp
fake API), strict only where the SDK cannot do without; a permanent format error reaches
the poller's consumer instead of being retried forever."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from enphase_battery import EnphaseClient, Granularity, ResponseFormatError
from enphase_battery.poll.poller import FORMAT_RETRIES, TelemetryPoller
from tests.support.fake_api import SYSTEM_ID, FakeEnphase, Reply, load_fixture

CONFIG = f"/api/v4/systems/config/{SYSTEM_ID}"
BATTERY_PATH = f"/api/v4/systems/{SYSTEM_ID}/telemetry/battery"


async def test_flags_the_models_dont_know_read_as_none(
    fake: FakeEnphase, client: EnphaseClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(
        f"{CONFIG}/storm_guard",
        Reply(
            200, {"system_id": SYSTEM_ID, "storm_guard_status": "paused", "storm_alert": "unknown"}
        ),
    )
    settings = load_fixture("battery_settings")
    settings.update(energy_independence="n/a", charge_from_grid="enabled")
    fake.script(f"{CONFIG}/battery_settings", Reply(200, settings))
    with caplog.at_level(logging.WARNING):
        guard = await client.get_system_storm_guard(SYSTEM_ID)
        battery = await client.get_system_battery_settings(SYSTEM_ID)
    assert guard.storm_guard_status is None
    assert guard.storm_alert is None
    assert battery.energy_independence is None
    assert battery.charge_from_grid is True
    logged = " ".join(r.getMessage() for r in caplog.records)
    for raw in ("'paused'", "'unknown'", "'n/a'"):
        assert raw in logged  # the raw value is kept in the log


@pytest.mark.parametrize(
    ("granularity", "expected"),
    [
        ("5mins", None),
        ("WEEK", Granularity.WEEK),
        ("Day", Granularity.DAY),
        ("15 mins", Granularity.FIFTEEN_MINUTES),
    ],
)
async def test_telemetry_with_odd_granularity_and_percent_strings(
    fake: FakeEnphase, client: EnphaseClient, granularity: str, expected: Granularity | None
) -> None:
    body = load_fixture("telemetry_battery")
    body["granularity"] = granularity
    body["last_reported_aggregate_soc"] = "n/a"
    body["intervals"][0]["soc"]["percent"] = "97%"
    body["intervals"][1]["soc"]["percent"] = "n/a"
    body["intervals"][2]["charge"]["devices_reporting"] = "paused"
    fake.script(BATTERY_PATH, Reply(200, body))
    telemetry = await client.get_battery_telemetry(SYSTEM_ID)
    assert telemetry.granularity == expected
    assert telemetry.last_reported_aggregate_soc is None
    assert telemetry.intervals[0].soc.percent == 97
    assert telemetry.intervals[1].soc.percent is None
    assert telemetry.intervals[2].charge.devices_reporting is None
    assert len(telemetry.intervals) == len(body["intervals"])


async def test_an_interval_without_a_readable_end_at_is_still_an_error(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    body = load_fixture("telemetry_battery")
    body["intervals"][1]["end_at"] = "n/a"
    fake.script(BATTERY_PATH, *[Reply(200, body)] * 5)
    with pytest.raises(ResponseFormatError) as caught:
        await client.get_battery_telemetry(SYSTEM_ID)
    assert caught.value.status == 200


async def test_a_permanently_unreadable_answer_reaches_the_consumer(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    now = int(time.time())
    start = now - now % 900 - 3600
    broken: dict[str, Any] = {
        "system_id": SYSTEM_ID,
        "granularity": "week",
        "start_at": start,
        "end_at": start + 3600,
        "intervals": [{"end_at": "soon", "charge": {"enwh": 1}}],
    }
    fake.script(BATTERY_PATH, *[Reply(200, broken)] * 100)
    poller = TelemetryPoller(
        client,
        SYSTEM_ID,
        encharges=(),
        start_at=datetime.fromtimestamp(start, UTC),
        poll_interval=3600,
        retry_wait_s=(0.0, 0.0),
    )
    async with poller:
        with pytest.raises(ResponseFormatError):
            await asyncio.wait_for(anext(poller), 30)
    assert poller.retries == FORMAT_RETRIES
    sent = len(fake.requests_to(BATTERY_PATH))
    assert sent == (FORMAT_RETRIES + 1) * (client.max_retries + 1)
