"""Issue 17, item 4 through the PostgreSQL workers: a ``LeasedFleet`` runs the same engine,
so an Encharge refused (403) is a problem of that stream, and the system's other
Encharge and battery stream are delivered in full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from enphase_battery import RateLimits, TelemetryInterval
from enphase_battery.poll import LeasedFleet
from enphase_battery.postgres import PostgresCheckpoint
from enphase_battery.simulator import EnphaseSimulator
from tests.support.fleet import check_exactly_once, streams_of


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_a_refused_encharge_is_a_problem_of_its_own_in_a_leased_fleet(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    plan = RateLimits(60_000, 60.0, 10_000_000)
    async with EnphaseSimulator(
        seed=8, systems=3, encharges=2, plan=plan, history=timedelta(hours=8)
    ) as sim:
        start = sim.clock.epoch() - 6 * 3600
        start -= start % 900
        hit = sim.system_ids[0]
        denied, sibling = sim.encharge_serials(hit)
        sim.faults.fail_next(
            10**6, 403, path=f"/systems/{hit}/devices/encharges/{denied}/telemetry"
        )
        sink: list[TelemetryInterval] = []
        async with (
            sim.make_client(max_retry_time=30.0) as client,
            LeasedFleet(
                client,
                pool,
                schema=pg_schema,
                ttl=3.0,
                worker_id="only",
                start_at=datetime.fromtimestamp(start, UTC),
            ) as fleet,
        ):
            batches = aiter(fleet.batches(max_size=500, max_wait=0.0))
            async with asyncio.timeout(60):
                while True:
                    fetch = asyncio.ensure_future(anext(batches))
                    caught_up = asyncio.ensure_future(fleet.wait_caught_up())
                    await asyncio.wait({fetch, caught_up}, return_when=asyncio.FIRST_COMPLETED)
                    caught_up.cancel()
                    if not fetch.done():
                        fetch.cancel()
                        await asyncio.gather(fetch, return_exceptions=True)
                        break
                    batch = fetch.result()
                    sink.extend(batch)
                    assert await fleet.commit(batch)
            problems = fleet.poller.problems
            assert [(p.system_id, p.source, p.status) for p in problems] == [(hit, denied, 403)]
            progress = fleet.poller.progress_of(hit)
            assert progress.streams == 3
            assert progress.lag_s is not None
            assert progress.lag_s > 4 * 3600  # the refused stream never moved
        keys = [k for k in streams_of(sim, sim.system_ids) if k != (hit, denied)]
        assert (hit, sibling) in keys
        checked = await check_exactly_once(
            sim, PostgresCheckpoint(pool, schema=pg_schema), sink, keys, start
        )
        assert checked > 0.9 * (3 * 3 - 1) * 24
