"""The transactional sink on a real PostgreSQL server: the poller's batches written into the
consumer's own table together with the checkpoint, so that crashes in any place leave every
interval there exactly once, with a plain primary key and no ON CONFLICT."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest

from enphase_battery import InvalidRequestError
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.batch import Batch
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.postgres import PostgresCheckpoint
from enphase_battery.postgres._db import Connection
from tests.support.poller import HOUR, NO_WAIT, check_exactly_once, open_env, wake

TABLE_SQL = (
    'CREATE TABLE "{schema}".battery_interval ('
    " system_id bigint, source text, end_at timestamptz, charge_wh int, discharge_wh int,"
    " soc_percent int, devices_reporting int, total_devices int, partial boolean,"
    " PRIMARY KEY (system_id, source, end_at))"
)


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


def inserter(schema: str) -> Callable[[Connection, tuple[TelemetryInterval, ...]], Awaitable[None]]:
    async def insert(conn: Connection, intervals: tuple[TelemetryInterval, ...]) -> None:
        # A plain INSERT: a duplicate would raise UniqueViolationError and fail the test.
        await conn.executemany(
            f'INSERT INTO "{schema}".battery_interval VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
            [
                (
                    iv.system_id,
                    iv.source,
                    iv.end_at,
                    iv.charge_wh,
                    iv.discharge_wh,
                    iv.soc_percent,
                    iv.devices_reporting,
                    iv.total_devices,
                    iv.partial,
                )
                for iv in intervals
            ],
        )

    return insert


async def stored(pool: asyncpg.Pool, schema: str) -> list[TelemetryInterval]:
    rows = await pool.fetch(f'SELECT * FROM "{schema}".battery_interval')
    return [
        TelemetryInterval(
            r["system_id"],
            r["source"],
            r["end_at"],
            r["charge_wh"],
            r["discharge_wh"],
            r["soc_percent"],
            r["devices_reporting"],
            r["total_devices"],
            r["partial"],
        )
        for r in rows
    ]


async def run_batches(poller: TelemetryPoller, handle: Callable[[Batch], Awaitable[bool]]) -> int:
    """Batches until the poller has caught up, or ``handle`` says stop; returns how many."""
    batches = poller.batches(max_size=40, max_wait=0.0)
    count = 0
    while True:
        following = asyncio.ensure_future(anext(batches))
        idle = asyncio.ensure_future(poller.wait_idle())
        await asyncio.wait({following, idle}, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        if not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            return count
        count += 1
        if not await handle(following.result()):
            return count


async def test_batches_into_own_table_exactly_once_across_crashes(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    checkpoint = PostgresCheckpoint(pool, schema=pg_schema)
    await checkpoint.ensure_ready()
    await pool.execute(TABLE_SQL.format(schema=pg_schema))
    insert = inserter(pg_schema)
    async with open_env(history=timedelta(days=2)) as env:
        start_at = env.sim.clock.now() - timedelta(hours=30)

        def make_poller() -> tuple[TelemetryPoller, PostgresCheckpoint]:
            # A new store object each time: what a restarted process has.
            store = PostgresCheckpoint(pool, schema=pg_schema)
            poller = TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=store,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )
            return poller, store

        # Crash shapes: after the rows went in but before the commit (the transaction
        # dies with the process), between batches, and mid-way through writing rows.
        # And the connection dropping inside commit_batch, after the rows went in: the
        # commit is retried on a new connection, the rows land once.
        shapes = [(2, "before-commit"), (3, "between"), (1, "mid-rows"), (1, "conn-drops")]
        for crash_after, shape in shapes:
            poller, store = make_poller()
            done = 0

            async def handle(
                batch: Batch,
                crash_after: int = crash_after,
                shape: str = shape,
                store: PostgresCheckpoint = store,
            ) -> bool:
                nonlocal done
                if done == crash_after and shape == "conn-drops":
                    drops = [True]

                    async def flaky(conn: Connection, rows: tuple[TelemetryInterval, ...]) -> None:
                        await insert(conn, rows)
                        if drops:
                            drops.pop()
                            conn.terminate()

                    outages = store.database.outages
                    await store.commit_batch(batch, flaky)
                    assert not drops
                    assert store.database.outages == outages + 1  # waited out, once
                    done += 1
                    return True
                if done == crash_after:
                    async with pool.acquire() as conn:
                        tx = conn.transaction()
                        await tx.start()
                        rows = batch.intervals if shape != "mid-rows" else batch.intervals[:5]
                        await insert(conn, rows)
                        conn.terminate()  # kill -9: the open transaction never commits
                    return False
                await store.commit_batch(batch, insert)
                done += 1
                return shape != "between" or done < crash_after

            await run_batches(poller, handle)
            # No aclose(): a crashed process closes nothing.
            env.sim.clock.advance(timedelta(minutes=50))
        poller, store = make_poller()

        async def commit_all(batch: Batch) -> bool:
            await store.commit_batch(batch, insert)
            return True

        await run_batches(poller, commit_all)
        env.sim.clock.advance(timedelta(hours=2))
        await wake(poller)
        await run_batches(poller, commit_all)
        await poller.aclose()
        rows = await stored(pool, pg_schema)
        check_exactly_once(env, rows, int(start_at.timestamp()))
        assert len(rows) > 150


async def test_batch_commit_inside_your_own_transaction(pool: asyncpg.Pool, pg_schema: str) -> None:
    checkpoint = PostgresCheckpoint(pool, schema=pg_schema)
    await checkpoint.ensure_ready()
    await pool.execute(TABLE_SQL.format(schema=pg_schema))
    insert = inserter(pg_schema)
    async with open_env(history=timedelta(days=1)) as env:
        start_at = env.sim.clock.now() - timedelta(hours=6)
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            checkpoint=checkpoint,
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        batches = poller.batches(max_size=30, max_wait=0.0)
        first = await anext(batches)
        async with pool.acquire() as conn:
            with pytest.raises(InvalidRequestError, match="inside a transaction"):
                await first.commit(conn)
            async with conn.transaction():
                await insert(conn, first.intervals)
                await first.commit(conn)
        assert first.committed
        # Your rows fail: nothing commits, the batch is not delivered.
        second = await anext(batches)

        async def failing_commit() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await insert(conn, second.intervals + first.intervals[:1])
                await second.commit(conn)

        with pytest.raises(asyncpg.UniqueViolationError):
            await failing_commit()
        assert not second.committed
        await poller.aclose()
        rows = await stored(pool, pg_schema)
        assert sorted(iv.end_at for iv in rows) == sorted(iv.end_at for iv in first.intervals)
        # A restart hands out the second batch again, once.
        again = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            checkpoint=PostgresCheckpoint(pool, schema=pg_schema),
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        redelivered = await anext(again.batches(max_size=30, max_wait=0.0))
        assert redelivered.intervals == second.intervals
        await again.aclose()


class CuttingProxy:
    """A TCP proxy to the server that, once armed, forwards the next ``COMMIT`` and then
    cuts the connection before the server's answer comes back: a commit whose
    acknowledgement is lost (the server did commit)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.armed = False
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        cut = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()
                if self.armed and b"COMMIT\x00" in data:
                    self.armed = False
                    self.cuts += 1
                    await asyncio.sleep(0.2)  # the server has it, and commits
                    cut.set()
                    return

        async def downstream() -> None:
            while not cut.is_set() and (data := await server_r.read(65536)):
                if cut.is_set():
                    return
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        await asyncio.wait(
            [*tasks, asyncio.ensure_future(cut.wait())], return_when="FIRST_COMPLETED"
        )
        for task in tasks:
            task.cancel()
        client_w.close()
        server_w.close()


async def test_lost_commit_acknowledgement_in_commit_batch_writes_rows_once(
    postgres_dsn: str, pool: asyncpg.Pool, pg_schema: str
) -> None:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(postgres_dsn)
    assert parts.hostname is not None
    assert parts.port is not None
    proxy = CuttingProxy(parts.hostname, parts.port)
    await proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    await PostgresCheckpoint(pool, schema=pg_schema).ensure_ready()
    await pool.execute(TABLE_SQL.format(schema=pg_schema))
    store = PostgresCheckpoint(via_proxy, schema=pg_schema)
    try:
        async with open_env(history=timedelta(days=1)) as env:
            poller = TelemetryPoller(
                env.client,
                env.system_id,
                start_at=env.sim.clock.now() - timedelta(hours=6),
                checkpoint=store,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )
            batches = poller.batches(max_size=30, max_wait=0.0)
            batch = await anext(batches)
            proxy.armed = True
            outages = store.database.outages
            await store.commit_batch(batch, inserter(pg_schema))
            assert proxy.cuts == 1  # the first COMMIT's answer was lost...
            assert store.database.outages == outages + 1  # ...and the retry waited it out
            assert batch.committed
            rows = await stored(pool, pg_schema)
            assert sorted(iv.end_at for iv in rows) == sorted(iv.end_at for iv in batch.intervals)
            following = await anext(batches)  # goes on after the batch, nothing again
            again = {(iv.source, iv.end_at) for iv in following} & {
                (iv.source, iv.end_at) for iv in batch
            }
            assert not again
            await poller.aclose()
    finally:
        await store.close()
        await proxy.close()
