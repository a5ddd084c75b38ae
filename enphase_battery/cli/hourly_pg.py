"""``stream --hourly`` on a PostgreSQL checkpoint: the aggregator's state in a table of
the checkpoint's schema, committed with each batch in the workers' fenced transaction.

Runs that share the schema trade systems (leases), so no run keeps a stream's hourly
state in memory between batches: each batch reads the state of its streams from the
table, adds its intervals, and writes the new state in the same transaction as the
batch's checkpoint.  A run that takes a system over therefore goes on from exactly what
the previous holder committed, and after a crash (or a lost lease) the batch comes again
with the state it was built from: its rows are recomputed the same, written again at most
once, and no correction is lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from enphase_battery.cli.errors import EXIT_USAGE, CliError
from enphase_battery.models.delivered import StreamKey, TelemetryInterval
from enphase_battery.poll import LeasedFleet
from enphase_battery.poll.batch import Batch
from enphase_battery.poll.stream_log import checkpoint_key
from enphase_battery.postgres import Connection, Database, quote_ident
from enphase_battery.statistics import HourlyEnergy, HourlyRow

__all__ = ["PgHourlyState", "check_pg_mode"]

#: The hourly state's table, beside ``stream_checkpoint`` in the checkpoint's schema.
TABLE = "hourly_energy"


async def check_pg_mode(db: Database, schema: str, *, hourly: bool) -> None:
    """Refuse a schema written in the other mode (intervals with and without
    ``--hourly`` would leave sums missing intervals), before any API request."""
    s = quote_ident(schema)

    async def peek(conn: Connection) -> tuple[bool, bool]:
        table = bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{s}.{TABLE}"))
        checkpoint = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{s}.stream_checkpoint"
        )
        positioned = bool(checkpoint) and bool(
            await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {s}.stream_checkpoint)")
        )
        return table, positioned

    table, positioned = await db.run(peek, what="reading the checkpoint's mode")
    if hourly and positioned and not table:
        raise CliError(
            f"schema {schema} was written by a stream without --hourly: the intervals it"
            " delivered are in no hourly sum; give --hourly another --pg-schema",
            EXIT_USAGE,
        )
    if not hourly and table:
        raise CliError(
            f"schema {schema} is an --hourly one: intervals streamed without --hourly would"
            " be missing from its sums; add --hourly, or give another --pg-schema",
            EXIT_USAGE,
        )


class PgHourlyState:
    """The hourly state of the streams in the schema's ``hourly_energy`` table."""

    def __init__(self, db: Database, schema: str) -> None:
        self._db = db
        self._s = quote_ident(schema)
        self.rows_written = 0

    async def create(self) -> None:
        """Create the table (``IF NOT EXISTS``: runs starting together race harmlessly)."""

        async def op(conn: Connection) -> None:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._s}.{TABLE}"
                " (stream text PRIMARY KEY, state text NOT NULL)"
            )

        await self._db.run(op, what="creating the hourly state's table")

    async def rows_of(self, batch: Batch) -> tuple[list[HourlyRow], list[tuple[str, str]]]:
        """The rows ``batch`` (re-)emits and the new state of each stream it touched,
        from the state committed for those streams."""
        keys: list[StreamKey] = list(
            dict.fromkeys((interval.system_id, interval.source) for interval in batch)
        )
        names = [checkpoint_key(key) for key in keys]

        async def op(conn: Connection) -> list[str]:
            found = await conn.fetch(
                f"SELECT state FROM {self._s}.{TABLE} WHERE stream = ANY($1::text[])", names
            )
            return [row["state"] for row in found]

        saved = await self._db.run(op, what="reading the hourly state")
        try:
            energy = HourlyEnergy.from_json(*saved)
        except ValueError as err:
            raise CliError(f"schema {self._s}: cannot read its hourly state ({err})") from None
        rows = energy.add_many(batch)
        return rows, [(name, energy.to_json([key])) for name, key in zip(names, keys, strict=True)]

    async def commit(
        self,
        fleet: LeasedFleet,
        batch: Batch,
        states: Sequence[tuple[str, str]],
        *,
        also: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> bool:
        """The new states and the batch's checkpoint in one fenced transaction, with
        ``also`` (the rows of a PostgreSQL sink) in it; ``False`` (nothing written) when
        a system of the batch was lost meanwhile."""
        upsert = (
            f"INSERT INTO {self._s}.{TABLE} (stream, state) VALUES ($1, $2)"
            " ON CONFLICT (stream) DO UPDATE SET state = excluded.state"
        )

        async def write(conn: Connection, _: tuple[TelemetryInterval, ...]) -> None:
            await conn.executemany(upsert, list(states))
            if also is not None:
                await also(conn)

        return await fleet.commit_batch(batch, write)
