"""Three worker processes follow 200 simulated systems through PostgreSQL leases while
random workers are killed with SIGKILL ten times (and replaced), and the database restarts
once in the middle: every interval ends up in the consumer's table exactly once, and the
server never saw more than the plan allows."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from enphase_battery import RateLimits, TelemetryInterval
from enphase_battery.postgres import LeaseWorker, PostgresCheckpoint
from enphase_battery.simulator import EnphaseSimulator
from tests.support.fleet import check_exactly_once, streams_of
from tests.support.postgres import CTL_VARIABLE, PrivateServer

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = 200


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def restartable(request: pytest.FixtureRequest) -> tuple[str, Callable[[], None] | None]:
    """A DSN, and how to restart its server: a server of the test's own under `make test`
    (restarting the shared one would cut other workers off); a user's own server is never
    restarted, and the rest of the test runs on it, in this process's own database."""
    if os.environ.get(CTL_VARIABLE):
        server: PrivateServer = request.getfixturevalue("private_postgres")
        return server.dsn, server.restart
    return request.getfixturevalue("postgres_dsn"), None


@pytest.mark.slow
async def test_three_workers_200_systems_kill_9_ten_times_exactly_once(
    restartable: tuple[str, Callable[[], None] | None],
) -> None:
    dsn, restart = restartable
    async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:
        await _kill_9_ten_times(dsn, pool, "enphase_test", restart)


async def _kill_9_ten_times(
    postgres_dsn: str, pool: asyncpg.Pool, pg_schema: str, restart: Callable[[], None] | None
) -> None:
    rng = random.Random(11)
    plan = RateLimits(6000, 60.0, 10_000_000)
    checkpoint = PostgresCheckpoint(pool, schema=pg_schema)
    await checkpoint.ensure_ready()
    await pool.execute(
        f'CREATE TABLE "{pg_schema}".sink (system_id bigint, source text, end_at bigint,'
        " charge_wh int, partial boolean, PRIMARY KEY (system_id, source, end_at))"
    )
    async with EnphaseSimulator(
        seed=4, systems=SYSTEMS, encharges=1, plan=plan, history=timedelta(days=1)
    ) as sim:
        start = sim.clock.epoch() - 86_400
        start -= start % 900
        token = sim.token
        base: dict[str, Any] = {
            "dsn": postgres_dsn,
            "schema": pg_schema,
            "max_rate": plan.max_rate * 0.95,  # a margin for send jitter across processes
            "monthly_quota": plan.monthly_quota,
            "api_key": sim.api_key,
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": token.expires_at.isoformat(),
            "token_url": sim.token_url,
            "base_url": sim.base_url,
            "ttl": 2.0,
            "start": start,
        }
        started = 0

        async def spawn() -> asyncio.subprocess.Process:
            nonlocal started
            started += 1
            spec = {**base, "name": f"worker-{started}"}
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.fleet_worker", json.dumps(spec), cwd=ROOT
            )

        workers = [await spawn() for _ in range(3)]
        restarted = False
        try:
            for kill in range(10):
                await asyncio.sleep(rng.uniform(0.3, 2.0))
                for worker in workers:
                    assert worker.returncode is None, "a worker died on its own"
                victim = rng.choice(workers)
                victim.kill()  # SIGKILL: no cleanup, leases left to expire
                await victim.wait()
                workers[workers.index(victim)] = await spawn()
                if kill == 4 and restart is not None:
                    await asyncio.to_thread(restart)
                    restarted = True
            # Let the survivors finish the day of history.
            done_rows = -1
            for _ in range(120):
                await asyncio.sleep(1.0)
                for worker in workers:
                    assert worker.returncode is None, "a worker died on its own"
                rows = await pool.fetchval(f'SELECT count(*) FROM "{pg_schema}".sink')
                behind = await pool.fetchval(
                    f'SELECT count(*) FROM "{pg_schema}".stream_checkpoint WHERE watermark < $1',
                    sim.clock.epoch() - 3600,
                )
                if rows == done_rows and behind == 0 and rows > 0:
                    break
                done_rows = rows
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        lease_rows = await LeaseWorker(pool, schema=pg_schema).registered()
        assert len(lease_rows) == SYSTEMS
        stored = [
            TelemetryInterval(
                r["system_id"],
                r["source"],
                _utc(r["end_at"]),
                r["charge_wh"],
                0,
                None,
                None,
                None,
                r["partial"],
            )
            for r in await pool.fetch(f'SELECT * FROM "{pg_schema}".sink')
        ]
        keys = [k for k in streams_of(sim, sim.system_ids) if k[1] == "battery"]
        checked = await check_exactly_once(
            sim, PostgresCheckpoint(pool, schema=pg_schema), stored, keys, start
        )
        # A day of history for every system (less the newest interval or two, not reported
        # yet), none lost, none twice (the primary key would have refused it).
        assert checked == len(stored)
        assert checked > 0.95 * SYSTEMS * 96
        # The server's side: never a request over the minute window, nor the month.
        assert sim.limiter.refused == {"minute": 0, "month": 0}
        assert sim.limiter.month_used <= 0.8 * plan.monthly_quota  # type: ignore[operator]
        assert restarted or not os.environ.get(CTL_VARIABLE)


def _utc(epoch: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


async def test_a_worker_joining_takes_its_share_without_anything_twice(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    from enphase_battery.poll import LeasedFleet

    plan = RateLimits(60_000, 60.0, 10_000_000)
    async with EnphaseSimulator(
        seed=5, systems=20, encharges=1, plan=plan, history=timedelta(days=1)
    ) as sim:
        start = sim.clock.epoch() - 86_400
        start -= start % 900
        sink: list[TelemetryInterval] = []
        fleets: list[LeasedFleet] = []

        async def run_worker(name: str) -> None:
            async with (
                sim.make_client(max_retry_time=30.0) as client,
                LeasedFleet(
                    client,
                    pool,
                    schema=pg_schema,
                    ttl=3.0,
                    worker_id=name,
                    start_at=_utc(start),
                    encharges=False,
                ) as fleet,
            ):
                fleets.append(fleet)
                async for batch in fleet.batches(max_size=25, max_wait=0.05):
                    sink.extend(batch)  # a sink outside the database, like the CLI's file
                    await asyncio.sleep(0.05)  # a slow sink: a batch is in hand most of the time
                    assert await fleet.commit(batch)

        first = asyncio.create_task(run_worker("first"))
        second: asyncio.Task[None] | None = None
        shares: list[int] = []
        try:
            # Conditions, not durations: a loaded machine only takes longer.
            async with asyncio.timeout(180):
                # The second joins while the first works on systems it will hand over
                # (the highest ids go in a rebalance).
                handed_over = set(sorted(sim.system_ids)[10:])
                while not (sink and sink[-1].system_id in handed_over):
                    _raise_if_failed(first)
                    await asyncio.sleep(0.01)
                second = asyncio.create_task(run_worker("second"))
                while True:
                    await asyncio.sleep(0.1)
                    _raise_if_failed(first, second)
                    # Every stream saved within the last hour of data: the day is done.
                    caught_up = await pool.fetchval(
                        f'SELECT count(*) FROM "{pg_schema}".stream_checkpoint'
                        " WHERE watermark >= $1",
                        sim.clock.epoch() - 3600,
                    )
                    shares = [len(f.worker.held) for f in fleets]
                    if caught_up == 20 and shares == [10, 10]:
                        break
        finally:
            tasks = [t for t in (first, second) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # The second worker got its share, handed over between batches: nothing lost,
        # nothing twice, no poller restarted for a lost lease.
        assert shares == [10, 10]
        assert [f.restarts for f in fleets] == [0, 0]
        keys = [k for k in streams_of(sim, sim.system_ids) if k[1] == "battery"]
        checked = await check_exactly_once(
            sim, PostgresCheckpoint(pool, schema=pg_schema), sink, keys, start
        )
        assert checked > 0.95 * 20 * 96


def _raise_if_failed(*tasks: asyncio.Task[None]) -> None:
    """A worker that ended (a failed commit, an error) fails the test with its error."""
    for task in tasks:
        if task.done():
            task.result()
            raise AssertionError("a worker stopped on its own")
