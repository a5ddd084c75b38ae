"""Intervals and hourly rows into PostgreSQL tables, inside the checkpoint's transaction.

The tables sit in the checkpoint's schema (``--pg-schema``, default ``enphase``):

* ``battery_interval (system_id bigint, source text, end_at timestamptz, charge_wh bigint,
  discharge_wh bigint, soc_percent integer, partial boolean, revision integer)``, primary
  key ``(system_id, source, end_at)``;
* ``battery_hour (system_id, source, start_at timestamptz, charge_wh, discharge_wh,
  charge_sum_wh, discharge_sum_wh, soc_mean double precision, soc_min, soc_max, intervals,
  partial)``, primary key ``(system_id, source, start_at)``.

:func:`interval_writer` and :func:`hour_writer` return the row writers
:meth:`~enphase_battery.poll.LeasedFleet.commit_batch` runs inside its fenced
transaction, so rows and checkpoint commit together (or neither does), and several
processes share the systems through their leases.  Needs the ``postgres`` extra.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.sinks.rows import (
    HOUR_COLUMNS,
    HOUR_TABLE,
    INTERVAL_COLUMNS,
    INTERVAL_TABLE,
    hour_tuples,
    interval_tuples,
)
from enphase_battery.statistics import HourlyRow

if TYPE_CHECKING:
    from enphase_battery.postgres import Connection

__all__ = ["create_tables", "hour_writer", "interval_writer", "upsert_hours", "upsert_intervals"]


def _upsert(schema: str, table: str, columns: tuple[str, ...], guard: str = "") -> str:
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[3:])
    return (
        f"INSERT INTO {schema}.{table} ({', '.join(columns)}) VALUES ({marks})"
        f" ON CONFLICT ({', '.join(columns[:3])}) DO UPDATE SET {updates}{guard}"
    )


async def create_tables(conn: Connection, schema: str) -> None:
    """Create both tables in ``schema`` (a quoted identifier) when missing."""
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.{INTERVAL_TABLE} ("
        " system_id bigint NOT NULL, source text NOT NULL, end_at timestamptz NOT NULL,"
        " charge_wh bigint NOT NULL, discharge_wh bigint NOT NULL, soc_percent integer,"
        " partial boolean NOT NULL, revision integer NOT NULL,"
        " PRIMARY KEY (system_id, source, end_at))"
    )
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.{HOUR_TABLE} ("
        " system_id bigint NOT NULL, source text NOT NULL, start_at timestamptz NOT NULL,"
        " charge_wh bigint NOT NULL, discharge_wh bigint NOT NULL,"
        " charge_sum_wh bigint NOT NULL, discharge_sum_wh bigint NOT NULL,"
        " soc_mean double precision, soc_min integer, soc_max integer,"
        " intervals integer NOT NULL, partial boolean NOT NULL,"
        " PRIMARY KEY (system_id, source, start_at))"
    )


async def upsert_intervals(
    conn: Connection, schema: str, intervals: Sequence[TelemetryInterval]
) -> None:
    """Upsert ``intervals`` into ``schema.battery_interval`` (an older revision never
    replaces a newer one)."""
    if intervals:
        guard = f" WHERE excluded.revision >= {schema}.{INTERVAL_TABLE}.revision"
        await conn.executemany(
            _upsert(schema, INTERVAL_TABLE, INTERVAL_COLUMNS, guard), interval_tuples(intervals)
        )


async def upsert_hours(conn: Connection, schema: str, rows: Sequence[HourlyRow]) -> None:
    """Upsert hourly ``rows`` into ``schema.battery_hour``."""
    if rows:
        await conn.executemany(_upsert(schema, HOUR_TABLE, HOUR_COLUMNS), hour_tuples(rows))


def interval_writer(
    schema: str,
) -> Callable[[Connection, tuple[TelemetryInterval, ...]], Awaitable[None]]:
    """A :data:`~enphase_battery.postgres.BatchWriter` upserting a batch's intervals."""

    async def write(conn: Connection, intervals: tuple[TelemetryInterval, ...]) -> None:
        await upsert_intervals(conn, schema, intervals)

    return write


def hour_writer(schema: str, rows: Sequence[HourlyRow]) -> Callable[[Connection], Awaitable[None]]:
    """Upserting ``rows`` on a connection (inside the batch's transaction)."""

    async def write(conn: Connection) -> None:
        await upsert_hours(conn, schema, rows)

    return write
