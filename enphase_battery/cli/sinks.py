"""``stream --out sqlite:///PATH | postgresql://DSN | influxdb://HOST:PORT/DB``: the CLI's
side of :mod:`enphase_battery.sinks` (which sink, its checkpoint, its batch loop)."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from enphase_battery.cli.errors import EXIT_USAGE, CliError
from enphase_battery.cli.waiting import next_while_ticking
from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.sinks.url import SinkURL, parse_sink_url
from enphase_battery.statistics import HourlyRow

if TYPE_CHECKING:
    from enphase_battery.cli.settings import _Context
    from enphase_battery.poll.batch import Batch
    from enphase_battery.poll.front import PollerFront
    from enphase_battery.sinks.influxdb import InfluxWriter
    from enphase_battery.sinks.sqlite import SqliteSink

__all__ = ["SinkOutput", "run_sink", "sink_target"]


def sink_target(args: argparse.Namespace) -> SinkURL | None:
    """The sink ``--out`` names (``None``: a file or stdout), checked against the other
    options before anything is sent; a PostgreSQL sink becomes the checkpoint too."""
    out = getattr(args, "out", None)
    if out is None:
        return None
    try:
        target = parse_sink_url(out)
    except InvalidRequestError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    if target is None:
        return None
    if args.format != "jsonl":
        raise CliError(f"--format is for files; --out {target.kind} writes tables", EXIT_USAGE)
    if target.kind == "postgresql":
        # Rows and checkpoint in one transaction: the checkpoint is that database.
        if args.checkpoint is not None and args.checkpoint != out:
            raise CliError(
                "--out postgresql:// keeps its checkpoint in the same database (rows and"
                " checkpoint commit together): leave out --checkpoint",
                EXIT_USAGE,
            )
        args.checkpoint = out
    elif target.kind == "sqlite" and args.checkpoint is None:
        # Unless --checkpoint says otherwise: the same file, the same transaction.
        args.checkpoint = str(target.path)
    return target


class SinkOutput:
    """The sink of one run: opened, written batch by batch, closed.

    Args:
        ctx: the run's settings (InfluxDB credentials come from the environment or the
            config file).
        target: the parsed ``--out``.
        checkpoint: the SQLite checkpoint file of the run (``None``: PostgreSQL).
    """

    def __init__(self, ctx: _Context, target: SinkURL, checkpoint: Path | None) -> None:
        self.ctx = ctx
        self.target = target
        self.checkpoint = checkpoint
        self.sqlite: SqliteSink | None = None
        self.influx: InfluxWriter | None = None
        self._hour_conn: sqlite3.Connection | None = None

    @property
    def shares_checkpoint(self) -> bool:
        """Whether rows and checkpoint commit in one transaction."""
        if self.target.kind == "postgresql":
            return True
        if self.target.kind != "sqlite" or self.checkpoint is None:
            return False
        assert self.target.path is not None
        return _same_file(self.target.path, self.checkpoint)

    async def open(self) -> None:
        """Open the sink and create its tables (or database)."""
        if self.target.kind == "sqlite":
            from enphase_battery.sinks.sqlite import SqliteSink

            assert self.target.path is not None
            self.sqlite = SqliteSink(self.target.path, shares_checkpoint=self.shares_checkpoint)
            self.sqlite.open()
        elif self.target.kind == "influxdb":
            from enphase_battery.sinks.influxdb import InfluxCredentials, InfluxWriter

            assert self.target.database is not None
            self.influx = InfluxWriter(
                self.target.base_url,
                self.target.database,
                credentials=InfluxCredentials.load(self.ctx.config),
            )
            await self.influx.open()

    async def close(self) -> None:
        """Close the sink (an uncommitted batch is rolled back)."""
        if self.sqlite is not None:
            self.sqlite.close()
        if self.influx is not None:
            await self.influx.close()

    async def write_intervals(self, intervals: Sequence[TelemetryInterval]) -> None:
        """Write (and, unless they share the checkpoint's transaction, commit) rows."""
        if self.sqlite is not None:
            self.sqlite.write_intervals(intervals)
        elif self.influx is not None:
            await self.influx.write_intervals(intervals)

    async def deliver(self, batch: Batch) -> None:
        """A batch's rows, then the batch counted as delivered (SQLite checkpoint)."""
        if self.sqlite is not None:
            await self.sqlite.deliver(batch)
        else:
            await self.write_intervals(batch.intervals)
            await batch.commit()

    # -- hourly rows (the writer ``stream_hourly`` is given) -------------------------

    def bind(self, conn: sqlite3.Connection) -> None:
        """The hourly state's connection to the checkpoint file: when the sink is that
        file, the rows go into its transaction."""
        if self.sqlite is not None and self.sqlite.shares_checkpoint:
            from enphase_battery.sinks.sqlite import create_tables

            create_tables(conn)
            conn.commit()
            self._hour_conn = conn

    async def write(self, rows: Sequence[HourlyRow]) -> None:
        """Hourly rows: into the hourly state's transaction (same file), else written
        and acknowledged before the batch commits."""
        if self._hour_conn is not None:
            from enphase_battery.sinks.sqlite import upsert_hours

            upsert_hours(self._hour_conn, rows)
        elif self.sqlite is not None:
            self.sqlite.write_hours(rows)
        elif self.influx is not None:
            await self.influx.write_hours(rows)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


async def run_sink(
    poller: PollerFront,
    output: SinkOutput,
    args: argparse.Namespace,
    *,
    caught_up: Callable[[], Awaitable[None]] | None,
    record: Callable[[TelemetryInterval], None],
    tick: Callable[[], None],
) -> None:
    """The poller's batches into the sink until stopped (``--max-intervals`` taken, or
    ``caught_up`` first): each batch's rows, then its checkpoint (in one transaction
    when they share a file)."""
    from enphase_battery.cli.hourly import batch_options

    batches = aiter(poller.batches(**batch_options(args)))
    taken = 0
    while args.max_intervals is None or taken < args.max_intervals:
        batch = await next_while_ticking(batches, tick=tick, caught_up=caught_up)
        if batch is None:
            break
        await output.deliver(batch)
        taken += len(batch)
        for interval in batch:
            record(interval)
        tick()
