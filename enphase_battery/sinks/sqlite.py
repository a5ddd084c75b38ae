"""Intervals and hourly rows into SQLite tables, committed with the poller's checkpoint.

Tables (created when missing):

* ``battery_interval (system_id, source, end_at, charge_wh, discharge_wh, soc_percent,
  partial, revision)``, primary key ``(system_id, source, end_at)``;
* ``battery_hour (system_id, source, start_at, charge_wh, discharge_wh, charge_sum_wh,
  discharge_sum_wh, soc_mean, soc_min, soc_max, intervals, partial)``, primary key
  ``(system_id, source, start_at)``.

Times are ISO 8601 text in UTC (``2026-05-03T06:15:00+00:00``), which sorts as time does;
``partial`` is 0 or 1.  A revision updates its row (an older revision never replaces a
newer one), and an hour written again replaces its row.

When the checkpoint is the same file (the CLI's default for ``--out sqlite:///PATH``),
:meth:`SqliteSink.deliver` writes a batch's rows and the checkpoint in one transaction
(``Batch.commit(conn)``): after ``kill -9`` at any moment nothing is lost and nothing comes
twice.  With the checkpoint elsewhere the rows commit first, then the checkpoint; after a
crash between the two the batch comes again and its upserts leave the table as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from enphase_battery.exceptions import CheckpointError
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
    from enphase_battery.poll.batch import Batch

__all__ = ["SqliteSink", "create_tables", "upsert_hours", "upsert_intervals"]

_CREATE_INTERVAL = (
    f"CREATE TABLE IF NOT EXISTS {INTERVAL_TABLE} ("
    " system_id INTEGER NOT NULL, source TEXT NOT NULL, end_at TEXT NOT NULL,"
    " charge_wh INTEGER NOT NULL, discharge_wh INTEGER NOT NULL, soc_percent INTEGER,"
    " partial INTEGER NOT NULL, revision INTEGER NOT NULL,"
    " PRIMARY KEY (system_id, source, end_at))"
)
_CREATE_HOUR = (
    f"CREATE TABLE IF NOT EXISTS {HOUR_TABLE} ("
    " system_id INTEGER NOT NULL, source TEXT NOT NULL, start_at TEXT NOT NULL,"
    " charge_wh INTEGER NOT NULL, discharge_wh INTEGER NOT NULL,"
    " charge_sum_wh INTEGER NOT NULL, discharge_sum_wh INTEGER NOT NULL,"
    " soc_mean REAL, soc_min INTEGER, soc_max INTEGER, intervals INTEGER NOT NULL,"
    " partial INTEGER NOT NULL, PRIMARY KEY (system_id, source, start_at))"
)


def _upsert(table: str, columns: tuple[str, ...], key: int, guard: str = "") -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[key:])
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks})"
        f" ON CONFLICT ({', '.join(columns[:key])}) DO UPDATE SET {updates}{guard}"
    )


#: An older revision (a batch replayed after a crash with the checkpoint elsewhere)
#: never replaces a newer one.
_UPSERT_INTERVAL = _upsert(
    INTERVAL_TABLE,
    INTERVAL_COLUMNS,
    3,
    f" WHERE excluded.revision >= {INTERVAL_TABLE}.revision",
)
_UPSERT_HOUR = _upsert(HOUR_TABLE, HOUR_COLUMNS, 3)


def create_tables(conn: sqlite3.Connection) -> None:
    """Create ``battery_interval`` and ``battery_hour`` when missing (no commit)."""
    conn.execute(_CREATE_INTERVAL)
    conn.execute(_CREATE_HOUR)


def upsert_intervals(conn: sqlite3.Connection, intervals: Iterable[TelemetryInterval]) -> None:
    """Upsert ``intervals`` into ``battery_interval`` (no commit)."""
    conn.executemany(
        _UPSERT_INTERVAL,
        [
            (s, src, end.isoformat(), c, d, soc, int(p), r)
            for (s, src, end, c, d, soc, p, r) in interval_tuples(intervals)
        ],
    )


def upsert_hours(conn: sqlite3.Connection, rows: Iterable[HourlyRow]) -> None:
    """Upsert hourly ``rows`` into ``battery_hour`` (no commit)."""
    conn.executemany(
        _UPSERT_HOUR,
        [(*t[:2], t[2].isoformat(), *t[3:11], int(t[11])) for t in hour_tuples(rows)],
    )


class SqliteSink:
    """``battery_interval`` / ``battery_hour`` in the SQLite file ``path``.

    Args:
        path: the database file (created when missing).
        shares_checkpoint: whether the poller's :class:`~enphase_battery.SqliteCheckpoint`
            is this same file: then :meth:`deliver` commits rows and checkpoint in one
            transaction.
    """

    def __init__(self, path: Path | str, *, shares_checkpoint: bool) -> None:
        self.path = Path(path)
        self.shares_checkpoint = shares_checkpoint
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection (opened by :meth:`open`)."""
        if self._conn is None:
            raise RuntimeError("SqliteSink.open() was not called")
        return self._conn

    def open(self) -> None:
        """Open the file and create the tables.

        Raises:
            CheckpointError: the file cannot be opened or written.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0)
        except (OSError, sqlite3.Error) as err:
            raise self._error(f"cannot open it ({err})") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives kill -9 (a power cut may lose the last commits, and
            # the checkpoint with them: still nothing twice, nothing skipped).
            conn.execute("PRAGMA synchronous=NORMAL")
            create_tables(conn)
            conn.commit()
        except sqlite3.Error as err:
            conn.close()
            raise self._error(f"cannot create its tables ({err})") from None
        self._conn = conn

    def write_intervals(self, intervals: Iterable[TelemetryInterval]) -> None:
        """Upsert ``intervals``; committed now unless the checkpoint shares the file."""
        self._write(lambda: upsert_intervals(self.conn, intervals))

    def write_hours(self, rows: Iterable[HourlyRow]) -> None:
        """Upsert hourly ``rows``; committed now unless the checkpoint shares the file."""
        self._write(lambda: upsert_hours(self.conn, rows))

    def _write(self, write: Callable[[], None]) -> None:
        try:
            write()
            if not self.shares_checkpoint:
                self.conn.commit()
        except sqlite3.Error as err:
            self.conn.rollback()
            raise self._error(f"cannot write its rows ({err})") from None

    async def deliver(self, batch: Batch) -> None:
        """``batch``'s rows, then the batch counted as delivered: in one transaction when
        the checkpoint shares the file.  If it raises, nothing of the batch counts."""
        self.write_intervals(batch)
        try:
            if self.shares_checkpoint:
                await batch.commit(self.conn)
            else:
                await batch.commit()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.conn.rollback()
            raise

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, what: str) -> CheckpointError:
        return CheckpointError(f"sink {self.path}: {what}", path=str(self.path))
