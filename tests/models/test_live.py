"""Live and "now" models from the JSON shapes the API may send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from enphase_battery.models import BatteryMode, GridState, converter
from enphase_battery.models.live import LiveFrame, LiveSource
from enphase_battery.models.now import LatestTelemetry, StorageMeterReadings
from enphase_battery.models.vocabulary import BatteryState


def test_a_live_event_through_the_one_converter() -> None:
    frame = converter.structure(
        {
            "data": {
                "battery_soc": "64%",
                "battery_power": 812.6,
                "battery_mode": "Savings",
                "grid_status": "off_grid",
                "pv_power": "0",
                "envoy_serial_number": 122100000001,
            },
            "timestamp_epoch": 1780000000,  # seconds, not milliseconds
            "type": "live_data",
        },
        LiveFrame,
    )
    assert frame.source is LiveSource.LIVE
    assert frame.timestamp == datetime(2026, 5, 28, 20, 26, 40, tzinfo=UTC)
    assert (frame.battery_soc, frame.battery_power, frame.pv_power) == (64, 813, 0)
    assert frame.battery_mode is BatteryMode.SAVINGS
    assert frame.grid_status is GridState.OFF_GRID
    assert frame.envoy_serial_numbers == ("122100000001",)
    assert frame.grid_power is None
    assert frame.battery_discharge_w == 813


def test_an_unknown_mode_reads_as_none_and_a_broken_number_fails() -> None:
    frame = converter.structure(
        {"data": {"battery_mode": "AI Optimisation"}, "timestamp_epoch": 1_780_000_000_000},
        LiveFrame,
    )
    assert frame.battery_mode is None
    with pytest.raises(ValueError, match="could not convert"):
        converter.structure({"data": {"battery_soc": "lots"}}, LiveFrame)
    with pytest.raises(TypeError):
        converter.structure({"data": {"battery_power": True}}, LiveFrame)


def test_latest_telemetry_with_stale_devices() -> None:
    latest = converter.structure(
        {
            "system_id": 1,
            "devices": {
                "encharges": [
                    {"id": 1, "channel": 1, "last_report_at": 1780000000, "power": -400,
                     "operational_mode": "Charging"},
                    {"id": 2, "channel": 2, "last_report_at": None, "power": None,
                     "operational_mode": None},
                ],
                "evse": [{"id": 9}],
            },
        },
        LatestTelemetry,
    )  # fmt: skip
    assert latest.battery_discharge_w == -400
    assert latest.battery_state is BatteryState.CHARGING
    assert latest.last_report_at == datetime.fromtimestamp(1780000000, UTC)
    empty = converter.structure({"system_id": 1, "devices": {"encharges": []}}, LatestTelemetry)
    assert empty.battery_discharge_w is None
    assert empty.battery_state is None
    assert empty.last_report_at is None


def test_meter_readings_keyed_by_serial() -> None:
    readings = converter.structure(
        {
            "system_id": 1,
            "meter_readings": [
                {"serial_num": "A", "value_charged": 10, "value_discharged": 8,
                 "read_at": 1780000000},
                {"serial_num": "B", "value_charged": None, "value_discharged": None,
                 "read_at": None},
            ],
        },
        StorageMeterReadings,
    )  # fmt: skip
    assert readings.by_serial()["A"].value_charged == 10
    assert readings.by_serial()["B"].read_at is None


def test_the_fast_frame_equals_the_one_the_constructor_builds() -> None:
    # structure_live_frame fills the frozen frame's slots directly (issue 18 item 9): the
    # result must be the very frame the attrs constructor would build, every field set.
    event = {
        "data": {
            "pv_power": 3000,
            "grid_power": -400.4,
            "battery_power": "-1500",
            "battery_soc": "40%",
            "battery_mode": "Self - Consumption",
            "grid_status": "on grid",
            "consumption_power": 1100,
            "generator_power": None,
            "envoy_serial_number": [122100800001, "122100800002"],
            "system_id": 7,
        },
        "timestamp_epoch": 1_780_000_000_000,
        "type": "response",
    }
    fast = converter.structure(event, LiveFrame)
    built = LiveFrame(
        timestamp=datetime(2026, 5, 28, 20, 26, 40, tzinfo=UTC),
        source=LiveSource.LIVE,
        battery_soc=40,
        battery_power=-1500,
        battery_mode=BatteryMode.SELF_CONSUMPTION,
        grid_status=GridState.ON_GRID,
        pv_power=3000,
        grid_power=-400,
        consumption_power=1100,
        generator_power=None,
        envoy_serial_numbers=("122100800001", "122100800002"),
    )
    assert fast == built
    assert hash(fast) == hash(built)
    assert fast.battery_state is BatteryState.CHARGING
