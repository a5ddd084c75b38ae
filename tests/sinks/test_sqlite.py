"""The SQLite sink alone: its tables, a revision updating its row (never an older one
over a newer), hourly rows replaced, and rows committed with the checkpoint or before it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.sinks.sqlite import SqliteSink
from enphase_battery.statistics import HourlyRow

END = datetime(2026, 5, 31, 12, 15, tzinfo=UTC)


def iv(revision: int, charge: int) -> TelemetryInterval:
    return TelemetryInterval(7, "battery", END, charge, 0, 50, 1, 2, revision == 0, revision)


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        conn.close()


def test_a_revision_updates_its_row_and_an_older_one_does_not(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "b.db", shares_checkpoint=False)
    sink.open()
    try:
        sink.write_intervals([iv(0, 10)])
        sink.write_intervals([iv(1, 30)])
        sink.write_intervals([iv(0, 10)])  # a replay of the first: ignored
    finally:
        sink.close()
    assert rows(tmp_path / "b.db", "battery_interval") == [
        (7, "battery", END.isoformat(), 30, 0, 50, 0, 1)
    ]


def test_an_hour_written_again_replaces_its_row(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "b.db", shares_checkpoint=False)
    sink.open()
    start = END.replace(minute=0)
    try:
        sink.write_hours([HourlyRow(7, "battery", start, 1, 2, 1, 2, None, None, None, 1, True)])
        sink.write_hours([HourlyRow(7, "battery", start, 5, 2, 5, 2, 50.5, 50, 51, 4, False)])
    finally:
        sink.close()
    assert rows(tmp_path / "b.db", "battery_hour") == [
        (7, "battery", start.isoformat(), 5, 2, 5, 2, 50.5, 50, 51, 4, 0)
    ]


def test_sharing_the_checkpoint_leaves_the_rows_uncommitted_until_the_batch(
    tmp_path: Path,
) -> None:
    """With the checkpoint in the file the rows wait for ``batch.commit(conn)``: closed
    before it (a crash), they are gone, as the checkpoint's position is."""
    sink = SqliteSink(tmp_path / "b.db", shares_checkpoint=True)
    sink.open()
    sink.write_intervals([iv(0, 10)])
    sink.close()
    assert rows(tmp_path / "b.db", "battery_interval") == []
