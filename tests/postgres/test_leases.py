"""Leases on a real PostgreSQL server: systems spread evenly over the workers that join and
leave; a dead worker's systems taken over once its TTL has passed and not before; a worker
paused past its TTL is fenced (writes nothing); two processes racing for one lease never
both write."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from enphase_battery import InvalidRequestError
from enphase_battery.postgres import LeaseLostError, LeaseWorker, PostgresCheckpoint
from enphase_battery.store.checkpoint import StreamState

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=8)
    yield pool
    await pool.close()


async def owners(pool: asyncpg.Pool, schema: str) -> dict[int, str | None]:
    rows = await pool.fetch(
        f'SELECT system_id, owner, expires_at > now() AS live FROM "{schema}".lease'
    )
    return {r["system_id"]: r["owner"] if r["live"] else None for r in rows}


async def settle(workers: list[LeaseWorker], rounds: int = 4) -> None:
    for _ in range(rounds):
        for worker in workers:
            await worker.heartbeat()


async def test_systems_spread_evenly_as_workers_join_and_leave(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    def make(name: str) -> LeaseWorker:
        return LeaseWorker(pool, schema=pg_schema, worker_id=name, ttl=30.0)

    first = make("w1")
    await first.register(range(1, 11))
    change = await first.heartbeat()
    assert [lease.system_id for lease in change.acquired] == list(range(1, 11))
    assert all(lease.token == 1 for lease in change.acquired)
    workers = [first, make("w2"), make("w3")]
    await settle(workers)
    sizes = sorted(len(w.held) for w in workers)
    assert sizes == [3, 3, 4]
    # Exactly one holder per system, and the database agrees with each worker's view.
    table = await owners(pool, pg_schema)
    assert set(table) == set(range(1, 11))
    for worker in workers:
        assert {lease.system_id for lease in worker.held} == {
            s for s, owner in table.items() if owner == worker.owner
        }
    # A system registered later goes to someone; a leaving worker's go to the others.
    await first.register([11, 12])
    await settle(workers)
    assert sorted(len(w.held) for w in workers) == [4, 4, 4]
    await workers[1].leave()
    remaining = [workers[0], workers[2]]
    await settle(remaining, rounds=2)
    assert sorted(len(w.held) for w in remaining) == [6, 6]
    table = await owners(pool, pg_schema)
    assert set(table.values()) == {"w1", "w3"}
    # Unregistered systems are lost by their holder at its next heartbeat.
    held_by_first = [lease.system_id for lease in workers[0].held]
    await workers[0].unregister(held_by_first[:2])
    change = await workers[0].heartbeat()
    assert set(held_by_first[:2]) <= set(change.lost)


async def test_dead_worker_taken_over_after_ttl_and_fenced(
    pool: asyncpg.Pool, pg_schema: str
) -> None:
    paused = LeaseWorker(pool, schema=pg_schema, worker_id="paused", ttl=1.5, heartbeat=0.3)
    other = LeaseWorker(pool, schema=pg_schema, worker_id="other", ttl=1.5, heartbeat=0.3)
    await paused.register([42])
    await paused.heartbeat()
    assert paused.token_for(42) == 1
    fenced = PostgresCheckpoint(pool, schema=pg_schema).fenced(paused)
    assert await fenced.load("42/battery") is None
    await fenced.save("42/battery", StreamState(900))
    # Within the TTL the lease is not taken, however often the other one asks.
    for _ in range(2):
        await other.heartbeat()
        assert other.token_for(42) is None
    # The holder stops heartbeating (paused: SIGSTOP, a long GC, a frozen VM).
    await asyncio.sleep(1.8)
    change = await other.heartbeat()
    assert [(lease.system_id, lease.token) for lease in change.acquired] == [(42, 2)]
    theirs = PostgresCheckpoint(pool, schema=pg_schema).fenced(other)
    assert await theirs.load("42/battery") == StreamState(900)
    await theirs.save("42/battery", StreamState(1800))
    # The paused worker wakes up and tries to write: refused, nothing written.
    with pytest.raises(LeaseLostError) as caught:
        await fenced.save("42/battery", StreamState(2700))
    assert caught.value.system_id == 42
    assert await PostgresCheckpoint(pool, schema=pg_schema).load("42/battery") == StreamState(1800)
    # Its next heartbeat tells it so.
    change = await paused.heartbeat()
    assert change.lost == (42,)
    assert paused.token_for(42) is None
    # A store fenced by a worker refuses systems it never held, before any write.
    with pytest.raises(LeaseLostError):
        await fenced.save("7/battery", StreamState(900))


async def test_background_heartbeat_and_graceful_leave(pool: asyncpg.Pool, pg_schema: str) -> None:
    async with LeaseWorker(pool, schema=pg_schema, worker_id="a", ttl=0.6) as a:
        await a.register([1, 2])
        await a.wait_changed()
        assert len(a.held) == 2
        await asyncio.sleep(1.5)  # well past the TTL: the heartbeat keeps the leases
        assert len(a.held) == 2
        b = LeaseWorker(pool, schema=pg_schema, worker_id="b", ttl=0.6)
        await b.heartbeat()
        assert b.held == ()
    # Leaving gave the leases back: taken at once, no TTL to wait for.
    change = await b.heartbeat()
    assert [lease.system_id for lease in change.acquired] == [1, 2]


def test_bad_lease_settings() -> None:
    with pytest.raises(InvalidRequestError, match="ttl"):
        LeaseWorker("postgresql://nowhere.invalid/db", ttl=0)
    with pytest.raises(InvalidRequestError, match="heartbeat"):
        LeaseWorker("postgresql://nowhere.invalid/db", ttl=1.0, heartbeat=2.0)


async def test_two_processes_racing_for_one_lease_never_both_write(
    postgres_dsn: str, pool: asyncpg.Pool, pg_schema: str
) -> None:
    setup = LeaseWorker(pool, schema=pg_schema, worker_id="setup")
    await setup.register([1])
    await pool.execute(
        f'CREATE TABLE "{pg_schema}".counted (seq bigint PRIMARY KEY, worker text, token bigint)'
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.lease_racer", postgres_dsn, pg_schema, name, "4"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("racer-a", "racer-b")
    ]
    reports = {}
    for name, racer in zip(("racer-a", "racer-b"), racers, strict=True):
        out, _ = racer.communicate(timeout=60)
        assert racer.returncode == 0, out
        reports[name] = json.loads(out.strip().splitlines()[-1])
    rows = await pool.fetch(f'SELECT seq, worker, token FROM "{pg_schema}".counted ORDER BY seq')
    state = await PostgresCheckpoint(pool, schema=pg_schema).load("1/battery")
    # Every committed step is there once, in order, and the checkpoint agrees.
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert state == StreamState(len(rows) * 900)
    assert len(rows) == sum(r["commits"] for r in reports.values())
    # Each takeover got its own token; each row was written under a token its writer held.
    tokens = {name: set(r["tokens"]) for name, r in reports.items()}
    assert not tokens["racer-a"] & tokens["racer-b"]
    for row in rows:
        assert row["token"] in tokens[row["worker"]]
    # Both held the lease at some point, and paused holders were refused.
    assert all(r["commits"] > 0 for r in reports.values()), reports
    assert sum(r["refused"] for r in reports.values()) > 0, reports
