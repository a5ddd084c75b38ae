"""The hourly CLI tests' simulator and their reference: the rows one pass over every
interval makes, checked against the simulator's ground truth (``stream --hourly``, on
SQLite and on PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.statistics import HourlyRow, hourly_rows
from tests.support.cli import SimulatorThread


def hourly_simulator() -> SimulatorThread:
    """Two systems of one Encharge each, two days of history, on Partner."""
    return SimulatorThread(
        seed=3, systems=2, encharges=1, plan="partner", history=timedelta(days=2)
    )


RowKey = tuple[int, str, str]


def requests_seen(simulator: SimulatorThread) -> int:
    return simulator.call(lambda: simulator.sim.request_count)


def to_interval(record: dict[str, Any]) -> TelemetryInterval:
    return TelemetryInterval(
        system_id=record["system_id"],
        source=record["source"],
        end_at=datetime.fromisoformat(record["end_at"]),
        charge_wh=record["charge_wh"],
        discharge_wh=record["discharge_wh"],
        soc_percent=record["soc_percent"],
        devices_reporting=record["devices_reporting"],
        total_devices=record["total_devices"],
        partial=record["partial"],
        revision=record.get("revision", 0),
    )


def expected_rows(
    simulator: SimulatorThread, intervals: list[dict[str, Any]]
) -> dict[RowKey, dict[str, Any]]:
    """The rows of the reference run's intervals, in one pass, after checking each
    complete one against the simulator's ground truth."""
    sim = simulator.sim
    since = min(datetime.fromisoformat(r["end_at"]) for r in intervals) - timedelta(minutes=15)
    until = max(datetime.fromisoformat(r["end_at"]) for r in intervals)
    truth: dict[tuple[int, str, int], tuple[int, int, int | None]] = {}
    for system, source in {(r["system_id"], r["source"]) for r in intervals}:
        if source == BATTERY:
            found = simulator.call(sim.ground_truth_battery, system, since, until)
        else:
            found = simulator.call(sim.ground_truth_encharge, system, source, since, until)
        for t in found:
            truth[(system, source, int(t.end_at))] = (t.charge_wh, t.discharge_wh, t.soc_percent)
    complete = [r for r in intervals if not r["partial"]]
    assert complete
    for r in complete:
        end_s = int(datetime.fromisoformat(r["end_at"]).timestamp())
        assert (r["charge_wh"], r["discharge_wh"], r["soc_percent"]) == truth[
            (r["system_id"], r["source"], end_s)
        ]
    rows = hourly_rows(to_interval(record) for record in intervals)
    return {key_of(as_record(row)): as_record(row) for row in rows}


def as_record(row: HourlyRow) -> dict[str, Any]:
    return {
        "system_id": row.system_id,
        "source": row.source,
        "start": row.start.isoformat(),
        "charge_wh": row.charge_wh,
        "discharge_wh": row.discharge_wh,
        "charge_sum_wh": row.charge_sum_wh,
        "discharge_sum_wh": row.discharge_sum_wh,
        "soc_mean": row.soc_mean,
        "soc_min": row.soc_min,
        "soc_max": row.soc_max,
        "intervals": row.intervals,
        "partial": row.partial,
    }


def key_of(record: dict[str, Any]) -> RowKey:
    return (record["system_id"], record["source"], record["start"])


def upserted(records: list[dict[str, Any]]) -> dict[RowKey, dict[str, Any]]:
    """What a consumer holds after upserting every row in order."""
    return {key_of(record): record for record in records}
