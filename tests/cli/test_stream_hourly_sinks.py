"""``stream --hourly --out sqlite:///… | postgresql://… | influxdb://…``: table (or
measurement) ``battery_hour``; after ``kill -9`` at random moments and reruns, every
settled hour equals the hour computed from a clean reference run's intervals."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enphase_battery.cli.pg_stream import LEASE_TTL_S
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.statistics import hourly_rows
from tests.support.cli import SimulatorThread
from tests.support.servers import Influx
from tests.support.sinks import SINCE, cli_values, run_killed, run_to_the_end, stream_argv

HourKey = tuple[int, str, int]
Hours = dict[HourKey, tuple[Any, ...]]


def _hours_of(found: list[tuple[Any, ...]]) -> Hours:
    """(system, source, start s) -> the row's values, soc_mean rounded."""
    hours: Hours = {}
    for s, src, start, c, d, cs, ds, mean, lo, hi, n, partial in found:
        stamp = start if isinstance(start, int) else int(_moment(start).timestamp())
        rounded = None if mean is None else round(float(mean), 6)
        hours[(int(s), src, stamp)] = (c, d, cs, ds, rounded, lo, hi, n, bool(partial))
    return hours


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


_COLUMNS = (
    "system_id, source, start_at, charge_wh, discharge_wh, charge_sum_wh, discharge_sum_wh,"
    " soc_mean, soc_min, soc_max, intervals, partial"
)


def sqlite_hours(path: Path) -> Hours:
    conn = sqlite3.connect(path)
    try:
        return _hours_of(conn.execute(f"SELECT {_COLUMNS} FROM battery_hour").fetchall())
    finally:
        conn.close()


def postgres_hours(dsn: str, schema: str) -> Hours:
    import asyncpg

    async def read() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [
                tuple(r)
                for r in await conn.fetch(f'SELECT {_COLUMNS} FROM "{schema}".battery_hour')
            ]
        finally:
            await conn.close()

    return _hours_of(asyncio.run(read()))


def influx_hours(influx: Influx) -> Hours:
    points = influx.query("enphase", "SELECT * FROM battery_hour")
    names = [c.strip() for c in _COLUMNS.split(",")]
    found = [tuple(p["time"] if n == "start_at" else p.get(n) for n in names) for p in points]
    return _hours_of(found)


def reference_hours(values: dict[str, str], tmp_path: Path) -> Hours:
    """The hours of every interval a fresh run reads now, from the start."""
    ref = tmp_path / "reference.db"
    run_to_the_end(
        values, stream_argv("--all-systems", "--since", SINCE, "--out", f"sqlite:///{ref}")
    )
    conn = sqlite3.connect(ref)
    try:
        found = conn.execute("SELECT * FROM battery_interval").fetchall()
    finally:
        conn.close()
    intervals = [
        TelemetryInterval(s, src, datetime.fromisoformat(end), c, d, soc, None, None, bool(p), r)
        for (s, src, end, c, d, soc, p, r) in found
    ]
    rows = hourly_rows(intervals)
    return _hours_of(
        [
            (r.system_id, r.source, r.start, r.charge_wh, r.discharge_wh, r.charge_sum_wh,
             r.discharge_sum_wh, r.soc_mean, r.soc_min, r.soc_max, r.intervals, r.partial)
            for r in rows
        ]
    )  # fmt: skip


@pytest.mark.parametrize("sink", ["sqlite", "postgresql", "influxdb"])
def test_hourly_rows_into_each_sink_survive_kill_9(
    sink: str, late_simulator: SimulatorThread, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    simulator = late_simulator
    values = cli_values(simulator.sim, tmp_path)
    read: Callable[[], Hours]
    wait = 0.0
    if sink == "sqlite":
        db = tmp_path / "hourly.db"
        out = [f"sqlite:///{db}"]
        read = lambda: sqlite_hours(db)  # noqa: E731
    elif sink == "postgresql":
        dsn: str = request.getfixturevalue("postgres_dsn")
        schema: str = request.getfixturevalue("pg_schema")
        out = [dsn, "--pg-schema", schema]
        read = lambda: postgres_hours(dsn, schema)  # noqa: E731
        wait = LEASE_TTL_S + 1  # the killed runs' leases expire
    else:
        influx: Influx = request.getfixturevalue("influx")
        out = [f"influxdb://127.0.0.1:{influx.port}/enphase",
               "--checkpoint", str(tmp_path / "cp.sqlite")]  # fmt: skip
        read = lambda: influx_hours(influx)  # noqa: E731
    argv = stream_argv("--all-systems", "--hourly", "--since", SINCE, "--out", *out)
    assert run_killed(simulator, values, argv, kills=3, seed=21) >= 2
    time.sleep(wait)
    run_to_the_end(values, argv, simulator)
    written = read()
    expected = reference_hours(values, tmp_path)
    # Settled hours: long before the newest data, where no late part is still to come.
    now = simulator.call(simulator.sim.clock.timestamp)
    settled = {k: v for k, v in expected.items() if k[2] < now - timedelta(hours=4).total_seconds()}
    assert len(settled) > 24
    wrong = {k: (written.get(k), v) for k, v in settled.items() if written.get(k) != v}
    assert not wrong, list(wrong.items())[:3]
    assert set(written) <= set(expected) | {k for k in written if k[2] >= now - 4 * 3600}
