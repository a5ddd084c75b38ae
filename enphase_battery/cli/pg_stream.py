"""``stream --checkpoint postgresql://...``: several terminals (or hosts) share the systems.

Each run is one worker of :class:`~enphase_battery.poll.LeasedFleet`: it follows the
systems whose leases it holds, writes their rows and commits each batch to the shared
checkpoint; the quota governor's count lives in the same database, so every run on the
API key keeps to the plan together.  Start more runs and the systems spread over them;
stop one (Ctrl-C) and the others take its systems at once; kill one and they take them
after the lease TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from enphase_battery.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from enphase_battery.cli.session import _open_client
from enphase_battery.cli.settings import _Context
from enphase_battery.poll.batch import Batch

__all__ = ["is_dsn"]

#: Lease TTL of a CLI run: a killed terminal's systems move after about this long.
LEASE_TTL_S = 30.0


def is_dsn(value: object) -> bool:
    """Whether a ``--checkpoint`` value names a PostgreSQL database."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


async def _next_batch(
    batches: AsyncIterator[Batch], idle: asyncio.Future[None] | None
) -> Batch | None:
    """The next batch; ``None`` once ``idle`` (the poller waits, nothing pending) is done."""
    fetch: asyncio.Future[Batch] = asyncio.ensure_future(anext(batches))
    if idle is None:
        return await fetch
    try:
        waiting: list[asyncio.Future[Any]] = [fetch, idle]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        idle.cancel()
    if fetch.done():
        return fetch.result()
    fetch.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await fetch
    return None


async def _cmd_stream_leased(ctx: _Context, system_ids: list[int] | None) -> int:
    """Stream the systems this run holds the leases of (``None``: every system listed)."""
    try:
        from enphase_battery.poll import LeasedFleet
        from enphase_battery.postgres import Database, PostgresGovernorBackend, quote_ident
        from enphase_battery.sinks import postgres as pg_sinks
    except ImportError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    from enphase_battery.cli.fleet_stream import _FleetProgress, _sink_output
    from enphase_battery.cli.hourly import _HourlyWriter
    from enphase_battery.cli.hourly_pg import PgHourlyState, check_pg_mode
    from enphase_battery.cli.stream import _IntervalWriter, _open_output

    args = ctx.args
    schema = getattr(args, "pg_schema", None) or "enphase"
    db = Database(args.checkpoint)
    try:
        await check_pg_mode(db, schema, hourly=args.hourly)
    except BaseException:
        await db.close()
        raise
    output = _sink_output(ctx, None)
    # A PostgreSQL sink is this database: its rows go into the checkpoint's transaction.
    pg_sink = output is not None and output.target.kind == "postgresql"
    if output is not None:
        out_handle, owns_handle, header = sys.stdout, False, False
    else:
        out_handle, owns_handle, header = _open_output(args.out)
    # One writer on the handle: each writes its own CSV header.
    hourly_writer = (
        _HourlyWriter(out_handle, args.format, header=header)
        if args.hourly and output is None
        else None
    )
    writer = (
        None
        if args.hourly or output is not None
        else _IntervalWriter(out_handle, args.format, header=header)
    )
    hourly = PgHourlyState(db, schema) if args.hourly else None
    progress = _FleetProgress(sys.stderr)
    if hourly is not None:
        progress.rows = 0
    # One interval a batch under --max-intervals, so the run stops exactly there.
    size = 1 if args.max_intervals is not None else 200
    governor_backend = PostgresGovernorBackend(db, schema=schema)
    try:
        if output is not None:
            await output.open()
        async with (
            _open_client(ctx, governor_backend=governor_backend) as client,
            LeasedFleet(
                client,
                db,
                systems=system_ids,
                schema=schema,
                ttl=LEASE_TTL_S,
                start_at=args.since,
                # Per-Encharge telemetry needs Kilowatt or above.
                encharges=ctx.plan != "watt",
                revise_for=args.revise_for,
            ) as fleet,
        ):
            # Under --until-caught-up a batch goes out as soon as it has something, so
            # "idle" is never seen while intervals sit in a batch still being gathered.
            max_wait = 0.0 if args.until_caught_up else 1.0
            batches = aiter(fleet.batches(max_size=size, max_wait=max_wait))
            if hourly is not None or pg_sink:
                await fleet.checkpoint.ensure_ready()
            if hourly is not None:
                await hourly.create()
            if pg_sink:
                await db.run(
                    lambda conn: pg_sinks.create_tables(conn, quote_ident(schema)),
                    what="creating the sink's tables",
                )
            while args.max_intervals is None or progress.written < args.max_intervals:
                # Caught up: this run idle and no system left without a holder (one
                # given up to a run that has stopped already is taken here first).
                idle = (
                    asyncio.ensure_future(fleet.wait_caught_up()) if args.until_caught_up else None
                )
                batch = await _next_batch(batches, idle)
                if batch is None:
                    break
                if hourly is not None:
                    rows, states = await hourly.rows_of(batch)
                    also = None
                    if pg_sink:
                        also = pg_sinks.hour_writer(quote_ident(schema), rows)
                    elif output is not None:
                        await output.write(rows)
                    else:
                        assert hourly_writer is not None
                        hourly_writer.write(rows)
                    # Written and flushed: the state it was built from moves on with
                    # the batch's checkpoint, in one transaction (or neither does).
                    if await hourly.commit(fleet, batch, states, also=also):
                        hourly.rows_written += len(rows)
                        progress.rows = hourly.rows_written
                elif pg_sink:
                    # The rows and the checkpoint in one fenced transaction.
                    await fleet.commit_batch(batch, pg_sinks.interval_writer(quote_ident(schema)))
                elif output is not None:
                    # Acknowledged by the sink: only now does it count as delivered.
                    await output.write_intervals(batch.intervals)
                    await fleet.commit(batch)
                else:
                    assert writer is not None
                    for interval in batch:
                        writer.write(interval)
                    # Written and flushed: only now does it count as delivered.
                    await fleet.commit(batch)
                for interval in batch:
                    progress.record(interval)
                progress.update(fleet.poller)
            progress.update(fleet.poller, force=True)
    finally:
        progress.close()
        if owns_handle:
            out_handle.close()
        if output is not None:
            await output.close()
        await db.close()
    return EXIT_OK
