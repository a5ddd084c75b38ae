"""The InfluxDB writer against a real ``influxd`` (1.x): line protocol, one key per
interval (a rewrite overwrites), retries through a restart, refusals raised."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.sinks.influxdb import (
    InfluxCredentials,
    InfluxWriteError,
    InfluxWriter,
    hour_line,
    interval_line,
)
from enphase_battery.statistics import HourlyRow
from tests.support.servers import Influx

END = datetime(2026, 5, 31, 12, 15, tzinfo=UTC)


def interval(minutes: int = 0, *, revision: int = 0, charge: int = 100) -> TelemetryInterval:
    return TelemetryInterval(
        system_id=7, source="battery",
        end_at=END.replace(minute=15) if minutes == 0 else END.replace(minute=15 + minutes),
        charge_wh=charge, discharge_wh=5, soc_percent=55, devices_reporting=1,
        total_devices=2, partial=revision == 0, revision=revision,
    )  # fmt: skip


def test_the_lines() -> None:
    assert interval_line(interval()) == (
        "battery_interval,system_id=7,source=battery"
        " charge_wh=100i,discharge_wh=5i,soc_percent=55i,revision=0i,partial=true"
        f" {int(END.timestamp())}"
    )
    odd = TelemetryInterval(7, "a b,c=d", END, 1, 2, None, None, None)
    assert interval_line(odd).startswith("battery_interval,system_id=7,source=a\\ b\\,c\\=d ")
    assert "soc_percent" not in interval_line(odd)
    row = HourlyRow(7, "battery", END.replace(minute=0), 10, 20, 30, 40, 55.5, 50, 60, 4, False)
    assert hour_line(row) == (
        "battery_hour,system_id=7,source=battery charge_wh=10i,discharge_wh=20i"
        ",charge_sum_wh=30i,discharge_sum_wh=40i,intervals=4i,partial=false"
        f",soc_mean=55.5,soc_min=50i,soc_max=60i {int(END.replace(minute=0).timestamp())}"
    )


def test_credentials_from_the_environment_then_the_config_file() -> None:
    config = {"influxdb_user": "cfg", "influxdb_password": "cfgpw"}
    env = {"ENPHASE_INFLUXDB_USER": "env", "ENPHASE_INFLUXDB_PASSWORD": "envpw"}
    assert InfluxCredentials.load(config, env) == InfluxCredentials("env", "envpw")
    assert InfluxCredentials.load(config, {}) == InfluxCredentials("cfg", "cfgpw")
    assert InfluxCredentials.load({}, {}) is None
    assert "envpw" not in repr(InfluxCredentials.load({}, env))


async def test_a_rewrite_overwrites_its_point(influx: Influx) -> None:
    async with InfluxWriter(influx.url, "enphase") as writer:
        await writer.write_intervals([interval(), interval(15)])
        await writer.write_intervals([interval(revision=1, charge=140)])
    rows = influx.query("enphase", "SELECT * FROM battery_interval")
    assert len(rows) == 2
    first = next(r for r in rows if r["time"] == int(END.timestamp()))
    assert (first["charge_wh"], first["revision"], first["partial"]) == (140, 1, False)
    assert (first["system_id"], first["source"]) == ("7", "battery")


async def test_writes_wait_through_a_restart_and_skip_nothing(influx: Influx) -> None:
    async with InfluxWriter(influx.url, "enphase", first_backoff=0.1, max_backoff=0.5) as writer:
        await asyncio.to_thread(influx.stop)
        restarted = threading.Timer(1.5, influx.start)
        restarted.start()
        try:
            await asyncio.wait_for(writer.write_intervals([interval(15 * k) for k in range(3)]), 60)
        finally:
            restarted.join()
        assert writer.retries > 0
        assert writer.failing_since is None
    assert len(influx.query("enphase", "SELECT * FROM battery_interval")) == 3


async def test_a_refusal_retrying_cannot_fix_is_raised(influx: Influx) -> None:
    async with InfluxWriter(influx.url, "enphase") as writer:
        with pytest.raises(InfluxWriteError) as caught:
            await writer.write_lines(["battery_interval charge_wh=oops"])
    assert caught.value.status == 400
