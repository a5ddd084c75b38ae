"""Issue 20, item 3: a worker killed with ``kill -9`` (it never leaves) expires from
``enphase.worker`` with its leases, at the next heartbeat of any worker, not an hour later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from enphase_battery.postgres import LeaseWorker


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_a_dead_worker_leaves_the_worker_table_with_its_leases(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    dead = LeaseWorker(pool, schema=pg_schema, worker_id="dead", ttl=1.0)
    alive = LeaseWorker(pool, schema=pg_schema, worker_id="alive", ttl=30.0)
    await dead.register([1, 2])
    await dead.heartbeat()
    await alive.heartbeat()
    workers = f'SELECT worker_id FROM "{pg_schema}".worker ORDER BY 1'
    assert [r["worker_id"] for r in await pool.fetch(workers)] == ["alive", "dead"]
    # "dead" stops beating (killed): past its TTL, the next heartbeat of another worker
    # takes its systems and removes its row.
    await asyncio.sleep(1.5)
    change = await alive.heartbeat()
    assert sorted(lease.system_id for lease in change.acquired) == [1, 2]
    assert [r["worker_id"] for r in await pool.fetch(workers)] == ["alive"]
