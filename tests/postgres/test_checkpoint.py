"""PostgresCheckpoint on a real PostgreSQL server: schema on first use, versioned; the
poller's exactly-once contract across crashes; compare-and-set against a second writer; a
commit whose acknowledgement was lost is not applied twice; rows and checkpoint commit
together or not at all; a server restart is waited out."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
import pytest

from enphase_battery import InvalidRequestError
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.postgres import (
    SCHEMA_VERSION,
    CheckpointConflictError,
    PostgresCheckpoint,
    SchemaVersionError,
)
from enphase_battery.postgres._db import Connection
from enphase_battery.store.checkpoint import CheckpointStore, StreamState
from tests.support.poller import HOUR, NO_WAIT, check_exactly_once, open_env, run_with_restarts
from tests.support.postgres import PrivateServer

KEY = "3546743/battery"


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_schema_created_once_on_first_use_and_versioned(
    postgres_dsn: str, pg_schema: str, pool: asyncpg.Pool
) -> None:
    # Five workers start at once against an empty database: one creates, none fails.
    stores = [PostgresCheckpoint(postgres_dsn, schema=pg_schema) for _ in range(5)]
    await asyncio.gather(*(s.load(KEY) for s in stores))
    for store in stores:
        await store.close()
    versions = await pool.fetch(f'SELECT version FROM "{pg_schema}".schema_version')
    assert [r["version"] for r in versions] == [SCHEMA_VERSION]
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", pg_schema
    )
    assert {r["table_name"] for r in tables} >= {
        "schema_version",
        "stream_checkpoint",
        "lease",
        "worker",
        "governor_state",
    }
    # A layout from a newer SDK is refused, not guessed at.
    await pool.execute(f'UPDATE "{pg_schema}".schema_version SET version = $1', SCHEMA_VERSION + 1)
    newer = PostgresCheckpoint(pool, schema=pg_schema)
    with pytest.raises(SchemaVersionError, match="upgrade enphase-battery"):
        await newer.load(KEY)


async def test_round_trip_shared_between_processes_pools(
    postgres_dsn: str, pg_schema: str, pool: asyncpg.Pool
) -> None:
    store = PostgresCheckpoint(pool, schema=pg_schema)
    assert isinstance(store, CheckpointStore)
    assert await store.load(KEY) is None
    await store.save(KEY, StreamState(900, (2700,)))
    await store.save(KEY, StreamState(1800, (2700, 3600)))  # replaces
    await store.save("1/other", StreamState(5))
    # Another pool (another process) sees every committed save.
    other = PostgresCheckpoint(postgres_dsn, schema=pg_schema)
    assert await other.load(KEY) == StreamState(1800, (2700, 3600))
    assert await other.load("1/other") == StreamState(5)
    assert await other.load("1/missing") is None
    await other.close()
    await store.close()
    # The caller's pool stays open.
    assert await pool.fetchval("SELECT 1") == 1


async def test_repr_and_errors_hide_the_dsn_password(postgres_dsn: str, pg_schema: str) -> None:
    secret_dsn = postgres_dsn.replace("postgres@", "postgres:hunter2-secret@")
    store = PostgresCheckpoint(secret_dsn, schema=pg_schema)
    assert "hunter2" not in repr(store)
    assert repr(store) == f"PostgresCheckpoint(schema={pg_schema!r}, fenced=False)"
    await store.save(KEY, StreamState(900))  # trust auth: the password is not needed
    await store.close()


def test_bad_arguments_fail_before_any_connection() -> None:
    with pytest.raises(InvalidRequestError, match="lower-case SQL identifier"):
        PostgresCheckpoint("postgresql://nowhere.invalid/db", schema='x"; DROP TABLE y; --')
    with pytest.raises(InvalidRequestError, match="postgresql://"):
        PostgresCheckpoint("mysql://nowhere.invalid/db")
    with pytest.raises(InvalidRequestError):
        PostgresCheckpoint(42)  # type: ignore[arg-type]


async def test_second_writer_of_a_stream_is_refused(pool: asyncpg.Pool, pg_schema: str) -> None:
    first = PostgresCheckpoint(pool, schema=pg_schema)
    second = PostgresCheckpoint(pool, schema=pg_schema)
    await first.save(KEY, StreamState(900))
    assert await second.load(KEY) == StreamState(900)
    await first.save(KEY, StreamState(1800))
    # The second writer read revision 1; the row has moved on: nothing is written.
    with pytest.raises(CheckpointConflictError):
        await second.save(KEY, StreamState(2700))
    assert await PostgresCheckpoint(pool, schema=pg_schema).load(KEY) == StreamState(1800)
    # Two new writers of the same new stream: only one insert wins.
    a, b = PostgresCheckpoint(pool, schema=pg_schema), PostgresCheckpoint(pool, schema=pg_schema)
    assert await a.load("9/new") is None
    assert await b.load("9/new") is None
    await a.save("9/new", StreamState(100))
    with pytest.raises(CheckpointConflictError):
        await b.save("9/new", StreamState(200))


async def _create_sink(pool: asyncpg.Pool, schema: str) -> None:
    await pool.execute(
        f'CREATE TABLE "{schema}".sink (stream text, end_at bigint, PRIMARY KEY (stream, end_at))'
    )


def _row_writer(schema: str, ends: list[int]) -> Callable[[Connection], object]:
    async def write_rows(conn: Connection) -> None:
        await conn.executemany(
            f'INSERT INTO "{schema}".sink (stream, end_at) VALUES ($1, $2)',
            [(KEY, end) for end in ends],
        )

    return write_rows


async def test_commit_whose_acknowledgement_was_lost_is_not_applied_twice(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    store = PostgresCheckpoint(pool, schema=pg_schema)
    await store.save(KEY, StreamState(900))
    await store.ensure_ready()
    await _create_sink(pool, pg_schema)
    state = StreamState(2700)
    # The transaction commits, but the process never learns it (the connection broke
    # during COMMIT): confirm() is never called.
    async with pool.acquire() as conn, conn.transaction():
        assert await store.write(conn, {KEY: state}) is True
        await _row_writer(pg_schema, [1800, 2700])(conn)
    # The retry recognises the committed state: no second copy of the rows (the primary
    # key would have refused it: no ON CONFLICT needed to hide anything).
    assert await store.commit({KEY: state}, _row_writer(pg_schema, [1800, 2700])) is False
    assert await pool.fetchval(f'SELECT count(*) FROM "{pg_schema}".sink') == 2
    # And the next commit goes on from there.
    assert await store.commit({KEY: StreamState(3600)}, _row_writer(pg_schema, [3600])) is True
    assert await pool.fetchval(f'SELECT count(*) FROM "{pg_schema}".sink') == 3
    assert await PostgresCheckpoint(pool, schema=pg_schema).load(KEY) == StreamState(3600)


async def test_rows_and_checkpoint_commit_together_or_not_at_all(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    store = PostgresCheckpoint(pool, schema=pg_schema)
    await store.save(KEY, StreamState(900))
    await _create_sink(pool, pg_schema)

    async def failing_writer(conn: Connection) -> None:
        await _row_writer(pg_schema, [1800])(conn)
        raise RuntimeError("the consumer's own insert failed")

    with pytest.raises(RuntimeError, match="own insert failed"):
        await store.commit({KEY: StreamState(1800)}, failing_writer)
    assert await pool.fetchval(f'SELECT count(*) FROM "{pg_schema}".sink') == 0
    assert await PostgresCheckpoint(pool, schema=pg_schema).load(KEY) == StreamState(900)
    # The rolled-back attempt does not wedge the store.
    assert await store.commit({KEY: StreamState(1800)}, _row_writer(pg_schema, [1800])) is True
    assert await pool.fetchval(f'SELECT count(*) FROM "{pg_schema}".sink') == 1


async def test_poller_exactly_once_across_crashes_with_postgres_checkpoint(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    store = PostgresCheckpoint(pool, schema=pg_schema)
    async with open_env(history=timedelta(days=2)) as env:
        start_at = env.sim.clock.now() - timedelta(hours=30)

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=store,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        run = await run_with_restarts(
            env,
            make_poller,
            [(25, "crash"), (40, "break"), (7, "crash"), (30, "cancel")],
            [timedelta(minutes=45)] * 6,
            final_advance=timedelta(hours=3),
        )
        check_exactly_once(
            env, run.emitted, int(start_at.timestamp()), may_repeat=run.in_hand_at_crash
        )
        assert sum(run.segments) > 100


@pytest.mark.slow
async def test_server_restart_is_waited_out(
    private_postgres: PrivateServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The server is the test's own: restarting the shared one would cut other workers off.
    async with asyncpg.create_pool(private_postgres.dsn, min_size=1, max_size=4) as pool:
        await _restart_is_waited_out(pool, "enphase_test", private_postgres.restart, caplog)


async def _restart_is_waited_out(
    pool: asyncpg.Pool,
    pg_schema: str,
    restart_postgres: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two stores on one pool (a worker's checkpoint and its leases, say) write at once.
    store = PostgresCheckpoint(pool, schema=pg_schema)
    other = PostgresCheckpoint(pool, schema=pg_schema)
    await store.save(KEY, StreamState(0))
    await other.save("1/other", StreamState(0))
    outages = store.database.outages
    saved: list[int] = []

    async def writer(target: PostgresCheckpoint, key: str, log: list[int]) -> None:
        for step in range(1, 400):
            await target.save(key, StreamState(step * 900))
            log.append(step)
            await asyncio.sleep(0.005)

    caplog.set_level(logging.WARNING, logger="enphase_battery.postgres")
    other_saved: list[int] = []
    tasks = [
        asyncio.create_task(writer(store, KEY, saved)),
        asyncio.create_task(writer(other, "1/other", other_saved)),
    ]
    while len(saved) < 20:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(restart_postgres)
    await asyncio.gather(*tasks)
    # Every save returned, in order, none raised.
    assert saved == other_saved == list(range(1, 400))
    assert await PostgresCheckpoint(pool, schema=pg_schema).load(KEY) == StreamState(399 * 900)
    # Each outage said once for the pool (its start and its end), not once per store or
    # per call.  Usually the restart is one outage; on a loaded machine the server's
    # shutdown can drop one connection while another still answers a save, which ends
    # that outage for real, and the shutdown proper is a second one.
    seen = store.database.outages - outages
    assert other.database.outages == store.database.outages
    ours = [r.getMessage() for r in caplog.records if r.name == "enphase_battery.postgres"]
    paused = [m for m in ours if m.startswith("PostgreSQL unreachable")]
    back = [m for m in ours if m.startswith("PostgreSQL is back")]
    assert 1 <= seen <= 2, ours
    assert len(paused) == len(back) == seen, ours


async def test_a_dsn_as_checkpoint_argument_is_the_postgres_store(
    postgres_dsn: str, pool: asyncpg.Pool
) -> None:
    # Not a SQLite file named "postgresql:...": the poller opens (and closes) the store.
    async with open_env(history=timedelta(days=1)) as env:
        start_at = env.sim.clock.now() - timedelta(hours=3)
        try:
            async with TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=postgres_dsn,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            ) as poller:
                got = [await anext(poller) for _ in range(5)]
                await poller.commit()
            key = f"{env.system_id}/{got[-1].source}"
            state = await PostgresCheckpoint(pool).load(key)
            assert state is not None
            assert state.watermark >= int(got[-1].end_at.timestamp()) or state.delivered
        finally:
            await pool.execute('DROP SCHEMA IF EXISTS "enphase" CASCADE')


def test_core_imports_without_the_driver() -> None:
    code = (
        "import sys; sys.modules['asyncpg'] = None\n"
        "import enphase_battery, enphase_battery.poll.poller, enphase_battery.store.checkpoint\n"
        "try:\n"
        "    import enphase_battery.postgres\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'enphase-battery[postgres]'" in result.stdout
