"""Pending revisions in the PostgreSQL checkpoint: kept across restarts, and a database
from before revisions (schema version 1) upgraded in place."""

from __future__ import annotations

import random
from datetime import timedelta

import asyncpg

from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.postgres import PostgresCheckpoint
from enphase_battery.postgres.schema import SCHEMA_VERSION, _version_1
from enphase_battery.store.checkpoint import PendingRevision, StreamState
from tests.support.poller import (
    HOUR,
    LATE,
    NO_WAIT,
    STOPS,
    check_exactly_once,
    epoch,
    open_env,
    run_with_restarts,
    wrong_final,
)


async def test_pending_revisions_round_trip_and_a_version_1_database_is_upgraded(
    postgres_dsn: str, pg_schema: str
) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        # A database written before revisions: version 1, one stream saved.
        await conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        for statement in _version_1(f'"{pg_schema}"'):
            await conn.execute(statement)
        await conn.execute(f'INSERT INTO "{pg_schema}".schema_version (version) VALUES (1)')
        await conn.execute(
            f'INSERT INTO "{pg_schema}".stream_checkpoint (stream, watermark, delivered)'
            " VALUES ('1/battery', 900, '{2700}')"
        )
    finally:
        await conn.close()
    store = PostgresCheckpoint(postgres_dsn, schema=pg_schema)
    try:
        assert await store.load("1/battery") == StreamState(900, (2700,))
        pending = (
            PendingRevision(1800, 0, 120, 0, 40, 1),
            PendingRevision(3600, 2, 99, 7, None, None),
        )
        await store.save("1/battery", StreamState(3600, (), pending))
        await store.save("1/other", StreamState(900, (), pending[:1], (5400, 900)))
    finally:
        await store.close()
    again = PostgresCheckpoint(postgres_dsn, schema=pg_schema)
    try:
        assert await again.load("1/battery") == StreamState(3600, (), pending)
        assert await again.load("1/other") == StreamState(900, (), pending[:1], (5400, 900))
    finally:
        await again.close()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        version = await conn.fetchval(f'SELECT version FROM "{pg_schema}".schema_version')
        assert version == SCHEMA_VERSION == 2
    finally:
        await conn.close()


async def test_random_restarts_on_postgres_lose_no_revision_and_repeat_none(
    postgres_dsn: str, pg_schema: str
) -> None:
    rng = random.Random(21)
    async with open_env(seed=21, history=timedelta(days=1), **LATE) as env:
        start_at = env.sim.clock.now() - timedelta(hours=3)
        store = PostgresCheckpoint(postgres_dsn, schema=pg_schema)

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=store,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        try:
            plan = [(rng.randint(1, 60), rng.choice(STOPS)) for _ in range(8)]
            run = await run_with_restarts(
                env,
                make_poller,
                plan,
                [timedelta(minutes=15)] * 48,
                final_advance=timedelta(hours=2, minutes=15),
            )
        finally:
            await store.close()
        check_exactly_once(env, run.emitted, epoch(start_at), may_repeat=run.in_hand_at_crash)
        assert not wrong_final(env, run.emitted, epoch(start_at))
        assert any(iv.revision for iv in run.emitted)
