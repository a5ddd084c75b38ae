"""``stream --hourly``: hourly rows instead of intervals, with the intervals' exactly-once rule.

The poller hands out batches; each goes through a :class:`~enphase_battery.HourlyEnergy`
and the rows it returns (the batch's hours and every later hour whose running sum
changed) are written and flushed; then the aggregator's state of the streams the batch
touched and the poller's checkpoint commit in **one SQLite transaction**, in the
checkpoint's own file (table ``hourly_energy``, one row per stream).  So a restart,
however abrupt (``kill -9``), resumes with the state that matches the checkpoint: no
interval is counted twice or missed by the sums, no hour's correction is lost, and at
most the rows of the batch in hand at the crash are written again, recomputed from the
same saved state (an upsert on ``(system_id, source, start)`` absorbs them).

A checkpoint is either hourly or not for its whole life: intervals a plain ``stream``
delivered never went into the sums, so ``--hourly`` on such a checkpoint (and a plain
``stream`` on an hourly one) is refused before anything is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import attrs

from enphase_battery.cli.errors import EXIT_USAGE, CliError
from enphase_battery.cli.output import _csv_row, _jsonable
from enphase_battery.cli.waiting import next_while_ticking
from enphase_battery.exceptions import CheckpointError
from enphase_battery.models.delivered import StreamKey, TelemetryInterval
from enphase_battery.poll.batch import Batch
from enphase_battery.poll.stream_log import checkpoint_key
from enphase_battery.statistics import HourlyEnergy, HourlyRow
from enphase_battery.store.checkpoint import CheckpointStore

if TYPE_CHECKING:
    from enphase_battery.poll.front import PollerFront

#: The table of the aggregator's state, in the checkpoint's file.
TABLE = "hourly_energy"
_CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (stream TEXT PRIMARY KEY, state TEXT NOT NULL)"
_UPSERT = (
    f"INSERT INTO {TABLE} (stream, state) VALUES (?, ?)"
    " ON CONFLICT(stream) DO UPDATE SET state = excluded.state"
)
#: Intervals per batch: a day of four streams.  After a crash the rows of at most one
#: batch are written again; a smaller batch is a transaction (and a state save) more often.
BATCH_SIZE = 400

_ROW_FIELDS = [f.name for f in attrs.fields(HourlyRow)]


def batch_options(args: argparse.Namespace) -> dict[str, Any]:
    """``batches()`` options of a run: one interval a batch under ``--max-intervals``
    (it stops exactly there); under ``--until-caught-up`` a batch goes out as soon as it
    has something, so "caught up" is never seen while intervals wait in one."""
    return {
        "max_size": 1 if args.max_intervals is not None else BATCH_SIZE,
        "max_wait": 0.0 if args.until_caught_up else 1.0,
    }


def _row_record(row: HourlyRow) -> dict[str, Any]:
    data: dict[str, Any] = _jsonable(row)
    data["start"] = row.start.astimezone(UTC).isoformat()
    return data


class _HourlyWriter:
    """Writes hourly rows as JSON lines or CSV rows: a batch's rows in one write, flushed."""

    def __init__(self, handle: TextIO, fmt: str, *, header: bool) -> None:
        self.handle = handle
        self.fmt = fmt
        self._buffer = io.StringIO()
        self._csv = csv.DictWriter(self._buffer, fieldnames=_ROW_FIELDS, lineterminator="\n")
        if fmt == "csv" and header:
            self._csv.writeheader()
            self._flush()

    def write(self, rows: Iterable[HourlyRow]) -> None:
        """Write ``rows`` in one write call, flushed."""
        for row in rows:
            record = _row_record(row)
            if self.fmt == "csv":
                self._csv.writerow(_csv_row(record))
            else:
                self._buffer.write(json.dumps(record, separators=(",", ":")) + "\n")
        # Flushed before the batch commits: the commit is what makes them delivered.
        self._flush()

    def _flush(self) -> None:
        # One write call for the whole batch, not one per row.
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        if text:
            self.handle.write(text)
            self.handle.flush()


def check_mode(checkpoint: Path, *, hourly: bool) -> None:
    """Refuse a checkpoint written in the other mode (read-only peek; a file that is not
    a readable checkpoint is left for the poller to report)."""
    if not checkpoint.is_file():
        return
    try:
        conn = sqlite3.connect(f"{checkpoint.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            positioned = "stream_checkpoint" in tables and bool(
                conn.execute("SELECT EXISTS (SELECT 1 FROM stream_checkpoint)").fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return
    if hourly and positioned and TABLE not in tables:
        raise CliError(
            f"checkpoint {checkpoint} was written by a stream without --hourly: the"
            " intervals it delivered are in no hourly sum; give --hourly a new --checkpoint",
            EXIT_USAGE,
        )
    if not hourly and TABLE in tables:
        raise CliError(
            f"checkpoint {checkpoint} is an --hourly one: intervals streamed without"
            " --hourly would be missing from its sums; add --hourly, or give another"
            " --checkpoint",
            EXIT_USAGE,
        )


class HourlyState:
    """The aggregator, and its state saved in the checkpoint's file with each batch."""

    def __init__(self, path: Path, conn: sqlite3.Connection, energy: HourlyEnergy) -> None:
        self.path = path
        self.conn = conn
        self.energy = energy
        self.rows_written = 0

    @classmethod
    async def open(cls, store: CheckpointStore, path: Path) -> HourlyState:
        """Load the state saved in ``path``, the file of the poller's SQLite ``store``."""
        # Any read opens the store's file first: a file that is not a checkpoint is its
        # CheckpointError naming it, and the file is in WAL mode before our connection.
        await store.load(TABLE)
        try:
            conn = sqlite3.connect(path)
        except sqlite3.Error as err:
            raise _error(path, f"cannot open it ({err})") from None
        try:
            conn.execute(_CREATE)
            conn.commit()
            saved = [state for (state,) in conn.execute(f"SELECT state FROM {TABLE}")]
            energy = HourlyEnergy.from_json(*saved)
        except (sqlite3.Error, ValueError) as err:
            conn.close()
            raise _error(path, f"cannot read its hourly state ({err})") from None
        return cls(path, conn, energy)

    async def commit(self, batch: Batch) -> None:
        """The state of the streams ``batch`` touched and the checkpoint, in one
        transaction (``batch.commit(conn)``)."""
        keys: dict[StreamKey, None] = dict.fromkeys(
            (interval.system_id, interval.source) for interval in batch
        )
        try:
            self.conn.executemany(
                _UPSERT, [(checkpoint_key(key), self.energy.to_json([key])) for key in keys]
            )
        except sqlite3.Error as err:
            self.conn.rollback()
            raise _error(self.path, f"cannot save its hourly state ({err})") from None
        try:
            await batch.commit(self.conn)
        except BaseException:
            # Cancelled before the commit began, or it failed: nothing of the batch was
            # committed, and the poller's own last save must not wait on our lock.
            with contextlib.suppress(sqlite3.Error):
                self.conn.rollback()
            raise

    def close(self) -> None:
        self.conn.close()


def _error(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {what}", path=str(path))


async def next_batch(
    batches: AsyncIterator[Batch],
    *,
    caught_up: Callable[[], Awaitable[None]] | None,
    tick: Callable[[], None],
) -> Batch | None:
    """The next batch, calling ``tick`` while waiting; ``None`` once ``caught_up()``
    returns first (everything available is handed out)."""
    return await next_while_ticking(batches, tick=tick, caught_up=caught_up)


class RowWriter(Protocol):
    """Where ``--hourly`` rows go: a file (:class:`_HourlyWriter`) or a sink
    (:class:`~enphase_battery.cli.sinks.SinkOutput`, whose ``write`` is a coroutine and
    which is given the hourly state's connection by ``bind`` when it may write into it)."""

    def write(self, rows: Sequence[HourlyRow]) -> Awaitable[None] | None: ...


class _Progress(Protocol):
    """The stream's progress line, as the hourly loop feeds it."""

    rows: int | None

    def record(self, interval: TelemetryInterval) -> None: ...


async def stream_hourly(
    poller: PollerFront,
    checkpoint: Path,
    writer: RowWriter,
    args: argparse.Namespace,
    *,
    caught_up: Callable[[], Awaitable[None]] | None,
    progress: _Progress,
    refresh: Callable[[], None],
) -> None:
    """``--hourly`` for any poller: its batches through the aggregator, whose state is
    opened from and committed with the SQLite checkpoint file ``checkpoint``;
    ``refresh`` redraws the progress line."""
    state = await HourlyState.open(poller.checkpoint, checkpoint)
    progress.rows = 0
    try:
        bind = getattr(writer, "bind", None)
        if bind is not None:
            # A sink in the checkpoint's file writes its rows in the state's transaction.
            bind(state.conn)

        def tick() -> None:
            progress.rows = state.rows_written
            refresh()

        await run_hourly(
            aiter(poller.batches(**batch_options(args))),
            state,
            writer,
            max_intervals=args.max_intervals,
            caught_up=caught_up,
            record=progress.record,
            tick=tick,
        )
    finally:
        progress.rows = state.rows_written
        state.close()


async def run_hourly(
    batches: AsyncIterator[Batch],
    state: HourlyState,
    writer: RowWriter,
    *,
    max_intervals: int | None,
    caught_up: Callable[[], Awaitable[None]] | None,
    record: Callable[[TelemetryInterval], None],
    tick: Callable[[], None],
) -> None:
    """Batches in, rows out, state and checkpoint committed together, until stopped
    (``max_intervals`` taken, or ``caught_up`` first)."""
    taken = 0
    while max_intervals is None or taken < max_intervals:
        batch = await next_batch(batches, caught_up=caught_up, tick=tick)
        if batch is None:
            break
        rows = state.energy.add_many(batch)
        written = writer.write(rows)
        if inspect.isawaitable(written):
            await written
        # Written and flushed: only now does the batch count, with the state it built.
        await state.commit(batch)
        taken += len(batch)
        state.rows_written += len(rows)
        for interval in batch:
            record(interval)
        tick()
