"""A worker joining a ``LeasedFleet`` while the first one is gathering a batch: the systems
it hands over go between batches, so nothing is restarted and nothing comes twice."""

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

SYSTEMS = 12


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=6)
    yield pool
    await pool.close()


async def test_a_worker_joining_while_a_batch_is_gathered_restarts_nothing(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    plan = RateLimits(60_000, 60.0, 10_000_000)
    async with EnphaseSimulator(
        seed=3, systems=SYSTEMS, encharges=1, plan=plan, history=timedelta(days=1)
    ) as sim:
        start = sim.clock.epoch() - 86_400
        start -= start % 900
        sink: list[TelemetryInterval] = []
        fleets: dict[str, LeasedFleet] = {}
        first_in = asyncio.Event()
        commits: dict[str, int] = {}
        refused: list[str] = []

        async def run_worker(name: str, max_wait: float) -> None:
            async with (
                sim.make_client(max_retry_time=30.0) as client,
                LeasedFleet(
                    client,
                    pool,
                    schema=pg_schema,
                    ttl=3.0,
                    worker_id=name,
                    start_at=datetime.fromtimestamp(start, UTC),
                    encharges=False,
                ) as fleet,
            ):
                fleets[name] = fleet
                first_in.set()
                # One batch gathers for max_wait once it has an interval: the first
                # worker's heartbeat finds its surplus while that batch is being gathered
                # (the whole backlog of every system it holds is fetched meanwhile).
                async for batch in fleet.batches(max_size=100_000, max_wait=max_wait):
                    sink.extend(batch)  # a sink outside the database, like the CLI's file
                    if not await fleet.commit(batch):
                        refused.append(name)  # a lost lease: this batch comes again
                    commits[name] = commits.get(name, 0) + 1

        first = asyncio.create_task(run_worker("first", 4.0))
        await asyncio.wait_for(first_in.wait(), 30)
        assert len(fleets["first"].worker.held) == SYSTEMS
        second = asyncio.create_task(run_worker("second", 0.05))
        try:
            async with asyncio.timeout(60):
                while True:
                    await asyncio.sleep(0.1)
                    for task in (first, second):
                        if task.done():
                            task.result()  # a failed commit fails the test here
                    shares = [len(f.worker.held) for f in fleets.values()]
                    caught_up = await pool.fetchval(
                        f'SELECT count(*) FROM "{pg_schema}".stream_checkpoint'
                        " WHERE watermark >= $1",
                        sim.clock.epoch() - 3600,
                    )
                    # Each worker's commit has returned, so a refused one is on record.
                    committed = [commits.get(name, 0) > 0 for name in ("first", "second")]
                    if shares == [SYSTEMS // 2] * 2 and caught_up == SYSTEMS and all(committed):
                        break
        finally:
            for task in (first, second):
                task.cancel()
            await asyncio.gather(first, second, return_exceptions=True)
        # The handover happened between batches: no commit refused for a system given up
        # (for a file sink that batch would come again), no poller started afresh for it
        # (which throws the gathered work away).
        assert refused == []
        assert [f.restarts for f in fleets.values()] == [0, 0]
        keys = [k for k in streams_of(sim, sim.system_ids) if k[1] == "battery"]
        checked = await check_exactly_once(
            sim, PostgresCheckpoint(pool, schema=pg_schema), sink, keys, start
        )
        assert checked > 0.95 * SYSTEMS * 96


async def test_caught_up_waits_for_systems_given_up_to_a_worker_that_left(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    from enphase_battery.postgres import LeaseWorker

    plan = RateLimits(60_000, 60.0, 10_000_000)
    async with EnphaseSimulator(
        seed=8, systems=4, encharges=1, plan=plan, history=timedelta(hours=8)
    ) as sim:
        start = sim.clock.epoch() - 6 * 3600
        start -= start % 900
        sink: list[TelemetryInterval] = []
        async with (
            sim.make_client(max_retry_time=30.0) as client,
            LeasedFleet(
                client,
                pool,
                schema=pg_schema,
                ttl=3.0,
                worker_id="stays",
                start_at=datetime.fromtimestamp(start, UTC),
                encharges=False,
            ) as fleet,
        ):
            assert len(fleet.worker.held) == 4
            # A second run joins (the stayer gives up half at its next heartbeat) and
            # stops before its own heartbeat took them: two systems nobody holds.
            brief = LeaseWorker(pool, schema=pg_schema, worker_id="brief", ttl=3.0)
            await brief.heartbeat()
            async with asyncio.timeout(30):
                while len(fleet.worker.held) != 2:
                    await asyncio.sleep(0.05)
            await brief.leave()
            # As `stream --until-caught-up` does: batches until caught up.
            batches = aiter(fleet.batches(max_size=200, max_wait=0.0))
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
            # Caught up means every system, the two left behind included.
            assert len(fleet.worker.held) == 4
        assert {iv.system_id for iv in sink} == set(sim.system_ids)
        keys = [k for k in streams_of(sim, sim.system_ids) if k[1] == "battery"]
        checked = await check_exactly_once(
            sim, PostgresCheckpoint(pool, schema=pg_schema), sink, keys, start
        )
        assert checked > 0.9 * 4 * 24
