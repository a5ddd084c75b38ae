"""Sinks and the exporter: what ``stream --out URL`` and ``serve`` cost.

Figures (one table row each, see benchtable.py), each sink against a bare client writing
the same rows in the same run:

* SQLite: intervals per second through the sink's writer (``SqliteSink.write_intervals``:
  an upsert by ``executemany``, committed per batch of 1,000) against ``sqlite3``
  ``executemany`` of plain INSERTs of the same tuples, committed alike;
* PostgreSQL: the sink's writer (``sinks.postgres.upsert_intervals``: ``executemany`` of
  the upsert in a transaction per batch) against ``asyncpg``'s ``copy_records_to_table``
  of the same rows into a table of the same shape;
* InfluxDB: ``InfluxWriter.write_intervals`` (line protocol built from the intervals, one
  request per batch) against one ``aiohttp`` POST per batch of the same lines, built
  beforehand;
* ``serve``'s ``GET /metrics`` with 3,000 series (750 streams x 4 series), p99 latency
  over loopback HTTP (goal <= 50 ms);
* the exporter's state after a simulated week of 1,000 systems (3 streams each, 2 million
  intervals, a tenth delivered partial then revised): its memory, measured with
  ``tracemalloc`` (goal <= 50 MB; the poller's own memory is the fleet benchmark's).

The sink figures exclude the poller (``bench_poller``/``bench_fleet`` measure it): they
are the cost of the sink's writes themselves.  The servers: PostgreSQL as
``bench_postgres.py`` finds one (``ENPHASE_BENCH_POSTGRES_DSN``, the test server, or a
throwaway one through ``scripts/with-postgres.sh``, durable); InfluxDB a throwaway
``influxd`` (``ENPHASE_TEST_INFLUXD`` or on ``PATH``) in a temporary directory.  A server
that cannot be had: its rows say so.  ``--smoke``: a few batches.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchtable import Row, emit, is_smoke

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from enphase_battery.models.delivered import TelemetryInterval  # noqa: E402
from enphase_battery.sinks.rows import interval_tuples  # noqa: E402

BATCH = 1000
START = datetime(2026, 5, 1, tzinfo=UTC)


def intervals(count: int, *, streams: int = 30) -> list[TelemetryInterval]:
    """``count`` intervals over ``streams`` streams (10 systems of 3), ascending."""
    found = []
    for i in range(count):
        stream = i % streams
        end = START + timedelta(minutes=15 * (i // streams + 1))
        found.append(
            TelemetryInterval(
                system_id=1000 + stream // 3,
                source="battery" if stream % 3 == 0 else f"12110000{stream:04d}",
                end_at=end,
                charge_wh=i % 900,
                discharge_wh=(i * 7) % 800,
                soc_percent=i % 101,
                devices_reporting=2,
                total_devices=2,
            )
        )
    return found


def batches(items: list[TelemetryInterval]) -> list[list[TelemetryInterval]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# -- SQLite ---------------------------------------------------------------------------------


def bench_sqlite(items: list[TelemetryInterval], directory: Path) -> Row:
    from enphase_battery.sinks.sqlite import SqliteSink

    sink = SqliteSink(directory / "sink.db", shares_checkpoint=False)
    sink.open()
    began = time.perf_counter()
    for batch in batches(items):
        sink.write_intervals(batch)  # upsert, committed per batch
    sdk = rate(len(items), time.perf_counter() - began)
    sink.close()

    conn = sqlite3.connect(directory / "bare.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE battery_interval (system_id INTEGER, source TEXT, end_at TEXT,"
        " charge_wh INTEGER, discharge_wh INTEGER, soc_percent INTEGER, partial INTEGER,"
        " revision INTEGER, PRIMARY KEY (system_id, source, end_at))"
    )
    rows = [
        [(s, src, e.isoformat(), c, d, soc, int(p), r) for s, src, e, c, d, soc, p, r in part]
        for part in (interval_tuples(b) for b in batches(items))
    ]
    began = time.perf_counter()
    for part in rows:
        conn.executemany("INSERT INTO battery_interval VALUES (?,?,?,?,?,?,?,?)", part)
        conn.commit()
    bare = rate(len(items), time.perf_counter() - began)
    conn.close()
    print(f"sqlite: sink {sdk:,.0f}/s, bare executemany {bare:,.0f}/s")
    return Row(
        "sinks: SQLite sink vs bare sqlite3 executemany",
        sdk,
        "intervals/s",
        baseline=bare,
        goal_op=">=",
        goal_value=0.5,
        note="upsert vs plain INSERT, 1,000 a commit; the bare one converts nothing",
    )


# -- PostgreSQL -------------------------------------------------------------------------------


async def bench_postgres(items: list[TelemetryInterval], dsn: str) -> Row:
    import asyncpg

    from enphase_battery.sinks.postgres import create_tables, upsert_intervals

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await create_tables(conn, f'"{schema}"')
        await conn.execute(
            f'CREATE TABLE "{schema}".bare (LIKE "{schema}".battery_interval INCLUDING ALL)'
        )
        began = time.perf_counter()
        for batch in batches(items):
            async with conn.transaction():
                await upsert_intervals(conn, f'"{schema}"', batch)
        sdk = rate(len(items), time.perf_counter() - began)
        rows = [interval_tuples(batch) for batch in batches(items)]
        began = time.perf_counter()
        for part in rows:
            async with conn.transaction():
                await conn.copy_records_to_table("bare", records=part, schema_name=schema)
        bare = rate(len(items), time.perf_counter() - began)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    print(f"postgres: sink {sdk:,.0f}/s, bare COPY {bare:,.0f}/s")
    return Row(
        "sinks: PostgreSQL sink vs bare asyncpg COPY",
        sdk,
        "intervals/s",
        baseline=bare,
        goal_op=">=",
        goal_value=0.1,
        note="upsert by executemany vs COPY (which cannot upsert), 1,000 a transaction",
    )


# -- InfluxDB ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_influxd(directory: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    influxd = os.environ.get("ENPHASE_TEST_INFLUXD") or shutil.which("influxd")
    if not influxd:
        return None
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "influxdb.conf"
    config.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{free_port()}"\n'
        f'[meta]\n  dir = "{directory}/meta"\n  logging-enabled = false\n'
        f'[data]\n  dir = "{directory}/data"\n  wal-dir = "{directory}/wal"\n'
        "  query-log-enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
    )
    log = (directory / "influxd.log").open("ab")
    process = subprocess.Popen([influxd, "-config", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2):
                return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                return None
            time.sleep(0.1)


async def bench_influx(items: list[TelemetryInterval], url: str) -> Row:
    import aiohttp

    from enphase_battery.sinks.influxdb import InfluxWriter, interval_line

    async with InfluxWriter(url, "sink") as writer:
        began = time.perf_counter()
        for batch in batches(items):
            await writer.write_intervals(batch)
        sdk = rate(len(items), time.perf_counter() - began)
    bodies = [
        ("\n".join(interval_line(iv) for iv in batch) + "\n").encode() for batch in batches(items)
    ]
    async with aiohttp.ClientSession() as session:
        await session.post(f"{url}/query", data={"q": 'CREATE DATABASE "bare"'})
        began = time.perf_counter()
        for body in bodies:
            async with session.post(
                f"{url}/write", params={"db": "bare", "precision": "s"}, data=body
            ) as response:
                assert response.status == 204, await response.text()
        bare = rate(len(items), time.perf_counter() - began)
    print(f"influxdb: sink {sdk:,.0f}/s, bare POST {bare:,.0f}/s")
    return Row(
        "sinks: InfluxDB sink vs one bare POST a batch",
        sdk,
        "intervals/s",
        baseline=bare,
        goal_op=">=",
        goal_value=0.8,
        note="the sink builds its lines per batch; the bare client's are built beforehand",
    )


# -- the exporter -------------------------------------------------------------------------------


async def bench_metrics(scrapes: int) -> Row:
    import aiohttp

    from enphase_battery.cli.serve import _start_http
    from enphase_battery.sinks.metrics import ExporterState

    state = ExporterState(stall_after_s=3600)
    state.record(intervals(750, streams=750))  # 750 streams x 4 series each
    state.answered(200)
    port = free_port()
    runner = await _start_http(state, "127.0.0.1", port)
    latencies = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(scrapes):
                began = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    body = await response.read()
                latencies.append(time.perf_counter() - began)
    finally:
        await runner.cleanup()
    series = sum(
        1
        for line in body.decode().splitlines()
        if line.startswith(("enphase_battery_soc", "enphase_battery_interval_end",
                            "enphase_battery_charge", "enphase_battery_discharge"))
    )  # fmt: skip
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"/metrics: {series} series, p50 {statistics.median(latencies) * 1000:.1f} ms,"
          f" p99 {p99:.1f} ms over {scrapes} scrapes")  # fmt: skip
    return Row(
        "serve: GET /metrics p99, 3,000 series",
        p99,
        "ms",
        goal_op="<=",
        goal_value=50,
        goal_on="sdk",
        note=f"{series} series over loopback HTTP",
    )


def bench_memory(systems: int, days: int) -> Row:
    from enphase_battery.sinks.metrics import ExporterState

    tracemalloc.start()
    state = ExporterState(stall_after_s=3600)
    streams = [(1_000_000 + s, source) for s in range(systems) for source in ("battery", "a", "b")]
    count = 0
    for step in range(days * 96):
        end = START + timedelta(minutes=15 * (step + 1))
        batch = []
        for n, (system_id, source) in enumerate(streams):
            partial = source == "battery" and (n + step) % 10 == 0
            batch.append(TelemetryInterval(system_id, source, end, 100, 50, 60, 1, 2, partial))
        if step >= 8:
            # Two hours later the partial ones come again, complete (a revision).
            earlier = START + timedelta(minutes=15 * (step - 7))
            batch += [
                TelemetryInterval(system_id, source, earlier, 150, 60, 61, 2, 2, False, 1)
                for n, (system_id, source) in enumerate(streams)
                if source == "battery" and (n + step - 8) % 10 == 0
            ]
        state.record(batch)
        count += len(batch)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"exporter state: {count:,} intervals of {len(streams):,} streams over {days} days:"
          f" {current / 1e6:.1f} MB held, peak {peak / 1e6:.1f} MB")  # fmt: skip
    return Row(
        f"serve: exporter state after {days} days of {systems:,} systems",
        current / 1e6,
        "MB",
        goal_op="<=",
        goal_value=50,
        goal_on="sdk",
        note=f"{count:,} intervals recorded; the poller's memory is bench_fleet's",
    )


def postgres_dsn() -> str | None:
    return os.environ.get("ENPHASE_BENCH_POSTGRES_DSN") or os.environ.get(
        "ENPHASE_TEST_POSTGRES_DSN"
    )


def main() -> None:
    smoke = is_smoke()
    dsn = postgres_dsn()
    if dsn is None and not os.environ.get("ENPHASE_BENCH_WRAPPED"):
        env = {**os.environ, "ENPHASE_BENCH_WRAPPED": "1", "ENPHASE_PG_DURABLE": "1"}
        script = str(ROOT / "scripts" / "with-postgres.sh")
        os.execve(script, [script, sys.executable, *sys.argv], env)
    items = intervals(3_000 if smoke else 100_000)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rows.append(bench_sqlite(items, directory))
        note = None
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            note = "asyncpg not installed (pip install 'enphase-battery[postgres]')"
        if dsn is None or note is not None:
            rows.append(Row("sinks: PostgreSQL sink vs bare asyncpg COPY", None, "intervals/s",
                            note=note or "no PostgreSQL server"))  # fmt: skip
        else:
            rows.append(asyncio.run(bench_postgres(items, dsn)))
        server = start_influxd(directory / "influxdb")
        if server is None:
            rows.append(Row("sinks: InfluxDB sink vs one bare POST a batch", None, "intervals/s",
                            note="no influxd binary (make test installs it)"))  # fmt: skip
        else:
            process, url = server
            try:
                rows.append(asyncio.run(bench_influx(items, url)))
            finally:
                process.terminate()
                process.wait(timeout=30)
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        rows.append(Row("serve: GET /metrics p99, 3,000 series", None, "ms",
                        note="prometheus-client not installed (the exporter extra)"))  # fmt: skip
    else:
        rows.append(asyncio.run(bench_metrics(20 if smoke else 500)))
    rows.append(bench_memory(10 if smoke else 1000, 1 if smoke else 7))
    emit(rows, smoke=smoke)


if __name__ == "__main__":
    main()
