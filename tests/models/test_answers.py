"""Models built from JSON shaped like the real responses (tests/fixtures)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from enphase_battery import BatteryMode, BatterySettings, BatteryTelemetry, Granularity, System
from enphase_battery.models import (
    BatteryLifetime,
    EnchargeTelemetry,
    GridState,
    GridStatus,
    LoadControl,
    LoadControlMode,
    StormGuard,
    SystemDevices,
    converter,
)
from tests.support.fake_api import load_fixture


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def assert_utc(value: datetime | None) -> None:
    assert isinstance(value, datetime)
    assert value.tzinfo is not None
    assert value.utcoffset() is not None
    assert value.utcoffset().total_seconds() == 0


def test_battery_settings_loose_mode_flags_and_extra_fields() -> None:
    settings = converter.structure(load_fixture("battery_settings"), BatterySettings)
    assert settings.system_id == 698905955
    assert settings.battery_mode is BatteryMode.SELF_CONSUMPTION
    assert settings.reserve_soc == 30
    assert settings.energy_independence is True
    assert settings.charge_from_grid is False
    assert settings.battery_shutdown_level == 10
    assert not hasattr(settings, "firmware_flag")


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("Self - Consumption", BatteryMode.SELF_CONSUMPTION),
        ("self-consumption", BatteryMode.SELF_CONSUMPTION),
        ("Self-consumption", BatteryMode.SELF_CONSUMPTION),
        ("SELF CONSUMPTION", BatteryMode.SELF_CONSUMPTION),
        ("Savings Mode", BatteryMode.SAVINGS),
        ("savings mode", BatteryMode.SAVINGS),
        ("Full Backup", BatteryMode.FULL_BACKUP),
        ("full_backup", BatteryMode.FULL_BACKUP),
    ],
)
def test_battery_mode_spellings(raw: str, mode: BatteryMode) -> None:
    settings = converter.structure({"system_id": 1, "battery_mode": raw}, BatterySettings)
    assert settings.battery_mode is mode


def test_battery_mode_official_spellings_are_sent() -> None:
    assert BatteryMode.SELF_CONSUMPTION.value == "Self-consumption"
    assert BatteryMode.SAVINGS.value == "Savings Mode"
    assert BatteryMode.FULL_BACKUP.value == "Full Backup"


def test_battery_mode_unknown_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown battery mode"):
        BatteryMode.parse("AI optimisation")


def test_missing_optional_fields_are_none() -> None:
    settings = converter.structure({"system_id": 5}, BatterySettings)
    assert settings == BatterySettings(system_id=5)
    assert settings.battery_mode is None
    assert settings.reserve_soc is None
    assert settings.energy_independence is None
    telemetry = converter.structure({"system_id": 5}, BatteryTelemetry)
    assert telemetry.start_at is None
    assert telemetry.last_reported_aggregate_soc is None
    assert telemetry.intervals == ()


def test_storm_guard_flags() -> None:
    storm = converter.structure(load_fixture("storm_guard"), StormGuard)
    assert storm.storm_guard_status is True  # "Enabled (Inactive)"
    assert storm.storm_alert is False  # "false"
    off = converter.structure(
        {"system_id": 1, "storm_guard_status": "disabled", "storm_alert": "true"}, StormGuard
    )
    assert off.storm_guard_status is False
    assert off.storm_alert is True


def test_grid_status() -> None:
    grid = converter.structure(load_fixture("grid_status"), GridStatus)
    assert grid.grid_state is GridState.ON_GRID
    assert grid.last_report_date == utc(1716980400)
    assert_utc(grid.last_report_date)
    off = converter.structure({"system_id": 1, "grid_state": "off grid"}, GridStatus)
    assert off.grid_state is GridState.OFF_GRID
    assert off.last_report_date is None
    odd = converter.structure({"system_id": 1, "grid_state": "Islanded?"}, GridStatus)
    assert odd.grid_state is GridState.UNKNOWN


def test_load_control() -> None:
    control = converter.structure(load_fixture("load_control"), LoadControl)
    assert control.system_id == 698905955
    first, second = control.load_control_data
    assert first.name == "NC1"
    assert first.mode is LoadControlMode.ADVANCED_BATTERY_POWERED
    assert first.owner_can_override is True
    assert (first.soc_low, first.soc_high) == (25, 35)
    assert (first.essential_start_time, first.essential_end_time) == (61200, 75600)
    assert second.mode is LoadControlMode.BASIC
    assert second.owner_can_override is False
    assert second.soc_low is None
    assert second.essential_start_time is None


def test_battery_telemetry() -> None:
    telemetry = converter.structure(load_fixture("telemetry_battery"), BatteryTelemetry)
    assert telemetry.system_id == 698905955
    assert telemetry.granularity is Granularity.DAY
    assert telemetry.total_devices == 2
    assert telemetry.start_at == utc(1716879600)
    assert telemetry.end_at == utc(1716883200)
    assert telemetry.start_date is None
    assert telemetry.end_date is None
    assert_utc(telemetry.start_at)
    assert telemetry.last_reported_aggregate_soc == 97
    assert len(telemetry.intervals) == 4
    first = telemetry.intervals[0]
    assert first.end_at == utc(1716880500)
    assert_utc(first.end_at)
    assert first.charge.enwh == 0
    assert first.discharge.enwh == 212
    assert first.soc.percent == 64
    assert first.devices_reporting == 2
    partial = telemetry.intervals[2]
    assert partial.devices_reporting == 1
    assert telemetry.intervals[3].charge.enwh == 344


def test_battery_telemetry_start_date_echo() -> None:
    telemetry = converter.structure(load_fixture("telemetry_battery_start_date"), BatteryTelemetry)
    assert telemetry.start_date == date(2024, 5, 28)
    assert telemetry.end_date == date(2024, 5, 28)
    assert telemetry.start_at is None
    assert telemetry.end_at is None
    assert telemetry.last_reported_aggregate_soc == 64


def test_encharge_telemetry() -> None:
    telemetry = converter.structure(load_fixture("telemetry_encharge"), EnchargeTelemetry)
    assert telemetry.serial_number == "122137013201"
    assert telemetry.granularity is Granularity.FIFTEEN_MINUTES
    assert telemetry.last_reported_soc == 99
    assert telemetry.last_reported_time == utc(1716880620)
    assert_utc(telemetry.last_reported_time)
    (interval,) = telemetry.intervals
    assert interval.discharge.enwh == 106
    assert interval.discharge.devices_reporting is None
    assert interval.soc.percent == 63


def test_battery_lifetime_days() -> None:
    lifetime = converter.structure(load_fixture("battery_lifetime"), BatteryLifetime)
    assert lifetime.start_date == date(2024, 5, 20)
    assert lifetime.charge == (8211, 9340, 7702, 10125, 6044)
    assert lifetime.meta is not None
    assert lifetime.meta.status == "normal"
    assert_utc(lifetime.meta.last_report_at)
    days = lifetime.days
    assert len(days) == 5
    assert days[0].date == date(2024, 5, 20)
    assert days[4].date == date(2024, 5, 24)
    assert (days[1].charge_wh, days[1].discharge_wh) == (9340, 8901)


def test_system_and_devices() -> None:
    raw = load_fixture("systems")["systems"]
    first = converter.structure(raw[0], System)
    assert first.system_id == 698905955
    assert first.timezone == "America/Los_Angeles"
    assert first.address is not None
    assert first.address.city == "Sacramento"
    assert first.last_report_at == utc(1716980400)
    assert_utc(first.operational_at)
    second = converter.structure(raw[1], System)
    assert second.reference is None
    assert second.address is not None
    assert second.address.state is None

    devices = converter.structure(load_fixture("devices"), SystemDevices)
    assert devices.total_devices == 6
    assert devices.encharge_serials == ("122137013201", "122137013202")
    encharge = devices.devices.encharges[0]
    assert encharge.active is True
    assert encharge.sku == "B10T-1P-NA"
    assert_utc(encharge.last_report_at)
    assert devices.devices.gateways[0].serial_number == "122125067699"
    # heat_pump arrives as an object on this site: no devices, no failure.
    assert devices.devices.heat_pump == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("97%", 97), ("100 %", 100), (55, 55), ("0%", 0), (88.6, 89)],
)
def test_percent_strings(raw: object, expected: int) -> None:
    telemetry = converter.structure(
        {"system_id": 1, "last_reported_aggregate_soc": raw}, BatteryTelemetry
    )
    assert telemetry.last_reported_aggregate_soc == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1716880500, datetime(2024, 5, 28, 7, 15, tzinfo=UTC)),
        ("1716880500", datetime(2024, 5, 28, 7, 15, tzinfo=UTC)),
        ("2024-05-28T07:15:00Z", datetime(2024, 5, 28, 7, 15, tzinfo=UTC)),
        ("2024-05-28T09:15:00+02:00", datetime(2024, 5, 28, 7, 15, tzinfo=UTC)),
    ],
)
def test_datetimes_are_utc(raw: object, expected: datetime) -> None:
    grid = converter.structure({"system_id": 1, "last_report_date": raw}, GridStatus)
    assert grid.last_report_date == expected
    assert_utc(grid.last_report_date)


def test_unstructure_time_as_seconds() -> None:
    assert converter.unstructure(time(17, 0)) == 61200


def test_intervals_with_missing_or_null_readings() -> None:
    raw = load_fixture("telemetry_battery")
    raw["intervals"][2]["charge"] = None  # a gap late in the list
    del raw["intervals"][3]["soc"]["devices_reporting"]
    telemetry = converter.structure(raw, BatteryTelemetry)
    assert len(telemetry.intervals) == 4
    assert telemetry.intervals[0].discharge.enwh == 212
    assert telemetry.intervals[2].charge.enwh == 0
    assert telemetry.intervals[2].charge.devices_reporting is None
    assert telemetry.intervals[3].soc.percent == 65
    assert telemetry.intervals[3].soc.devices_reporting is None
    assert [i.end_at for i in telemetry.intervals] == [
        utc(ts) for ts in (1716880500, 1716881400, 1716882300, 1716883200)
    ]


def test_intervals_are_frozen_and_hashable() -> None:
    import attrs as _attrs

    telemetry = converter.structure(load_fixture("telemetry_battery"), BatteryTelemetry)
    interval = telemetry.intervals[0]
    with pytest.raises(_attrs.exceptions.FrozenInstanceError):
        interval.end_at = utc(0)  # type: ignore[misc]
    assert len(set(telemetry.intervals)) == 4
    assert (
        interval
        == converter.structure(load_fixture("telemetry_battery"), BatteryTelemetry).intervals[0]
    )


def _week(start: int = 1_716_415_200, count: int = 96) -> list[dict[str, object]]:
    return [
        {
            "end_at": start + (i + 1) * 900,
            "charge": {"enwh": (i * 37) % 700, "devices_reporting": 2},
            "discharge": {"enwh": (i * 11) % 300, "devices_reporting": 1 + i % 2},
            "soc": {"percent": 10 + i % 90, "devices_reporting": 2},
        }
        for i in range(count)
    ]


def _expected(items: list[dict[str, object]]) -> list[tuple[object, ...]]:
    rows = []
    for item in items:
        charge, discharge, soc = item["charge"], item["discharge"], item["soc"]
        assert isinstance(charge, dict)
        assert isinstance(discharge, dict)
        assert isinstance(soc, dict)
        rows.append(
            (
                datetime.fromtimestamp(item["end_at"], UTC),  # type: ignore[arg-type]
                charge.get("enwh") or 0,
                charge.get("devices_reporting"),
                discharge.get("enwh") or 0,
                discharge.get("devices_reporting"),
                soc.get("percent"),
                soc.get("devices_reporting"),
            )
        )
    return rows


def _rows(telemetry: BatteryTelemetry) -> list[tuple[object, ...]]:
    return [
        (
            i.end_at,
            i.charge.enwh,
            i.charge.devices_reporting,
            i.discharge.enwh,
            i.discharge.devices_reporting,
            i.soc.percent,
            i.soc.devices_reporting,
        )
        for i in telemetry.intervals
    ]


@pytest.mark.parametrize("shape", ["consecutive", "gap", "missing count", "null reading"])
def test_intervals_read_the_same_on_every_call(shape: str) -> None:
    # The first answer meets new readings, the next ones find them shared (a faster path
    # for the common shape): every call must give the same intervals, whatever the shape.
    items = _week()
    if shape == "gap":
        del items[40]
    elif shape == "missing count":
        del items[7]["charge"]["devices_reporting"]  # type: ignore[attr-defined]
    elif shape == "null reading":
        items[9]["soc"] = None
    body = {"system_id": 1, "intervals": items}
    first = converter.structure(body, BatteryTelemetry)
    again = converter.structure(body, BatteryTelemetry)
    assert first == again
    expected = _expected([{**item, "soc": item["soc"] or {}} for item in items])
    assert _rows(first) == _rows(again) == expected
