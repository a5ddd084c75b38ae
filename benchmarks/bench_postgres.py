"""PostgreSQL: the transactional sink's throughput, and how fast a dead worker's systems move.

Figures (one table row each, see benchtable.py):

* committed intervals per second through ``PostgresCheckpoint`` with the transactional
  sink (``commit(states, write_rows)``: the rows by ``executemany`` and the checkpoint
  compare-and-set in one fenced transaction), batches of 1,000 intervals, for one worker
  process and for each of three running at once (goal >= 10,000/s per worker);
* takeover time after ``kill -9`` of a worker holding half the systems, against the lease
  TTL (goal: within TTL + one heartbeat, i.e. <= 1.33x the TTL).

The server: ``ENPHASE_BENCH_POSTGRES_DSN`` or ``ENPHASE_TEST_POSTGRES_DSN`` when set (under
``make test`` the test server), else a throwaway one started through
``scripts/with-postgres.sh`` with its durable defaults (fsync on).  No server at all: the
rows say so.  ``--smoke``: a few batches and one short takeover.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from benchtable import Row, emit, is_smoke

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BATCH = 1000
STREAMS_PER_WORKER = 30
SYSTEMS_PER_WORKER = 10


def server_dsn() -> str | None:
    return os.environ.get("ENPHASE_BENCH_POSTGRES_DSN") or os.environ.get(
        "ENPHASE_TEST_POSTGRES_DSN"
    )


def unmeasured(note: str) -> list[Row]:
    return [
        Row(
            "postgres: sink, 1 worker",
            None,
            "intervals/s",
            goal_op=">=",
            goal_value=10_000,
            goal_on="sdk",
            note=note,
        ),
        Row(
            "postgres: sink, each of 3 workers",
            None,
            "intervals/s",
            goal_op=">=",
            goal_value=10_000,
            goal_on="sdk",
            note=note,
        ),
        Row(
            "postgres: takeover after kill -9", None, "s", goal_op="<=", goal_value=1.34, note=note
        ),
    ]


# -- the sink worker (a process of its own) ------------------------------------------------


async def sink_worker(dsn: str, schema: str, batches: int) -> dict[str, float]:
    import asyncpg

    from enphase_battery.checkpoint import StreamState
    from enphase_battery.postgres import LeaseWorker, PostgresCheckpoint

    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2)
    worker = LeaseWorker(pool, schema=schema, worker_id=f"bench-{os.getpid()}", ttl=60.0)
    systems = list(range(1, SYSTEMS_PER_WORKER + 1))
    await worker.register(systems)
    await worker.heartbeat()
    store = PostgresCheckpoint(pool, schema=schema).fenced(worker)
    await store.ensure_ready()
    await pool.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}".battery_interval (system_id bigint, source text,'
        " end_at timestamptz, charge_wh int, discharge_wh int, soc_percent int, partial boolean,"
        " PRIMARY KEY (system_id, source, end_at))"
    )
    keys = [f"{systems[i % len(systems)]}/src{i}" for i in range(STREAMS_PER_WORKER)]
    for key in keys:
        await store.load(key)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    watermark = {key: int(start.timestamp()) for key in keys}
    per_stream = BATCH // len(keys)

    async def one_batch() -> None:
        rows = []
        states = {}
        for key in keys:
            system_id, source = key.split("/")
            for _ in range(per_stream):
                watermark[key] += 900
                end_at = datetime.fromtimestamp(watermark[key], UTC)
                rows.append((int(system_id), source, end_at, 120, 80, 55, False))
            states[key] = StreamState(watermark[key])

        async def write_rows(conn: asyncpg.Connection) -> None:
            await conn.executemany(
                f'INSERT INTO "{schema}".battery_interval VALUES ($1, $2, $3, $4, $5, $6, $7)',
                rows,
            )

        await store.commit(states, write_rows)

    await one_batch()  # warm-up: statements prepared, pool full
    began = time.perf_counter()
    for _ in range(batches):
        await one_batch()
    elapsed = time.perf_counter() - began
    await pool.close()
    return {"intervals_per_s": batches * per_stream * len(keys) / elapsed, "elapsed_s": elapsed}


def run_sink_workers(dsn: str, count: int, batches: int) -> list[float]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--sink-worker",
                dsn,
                f"bench_{uuid.uuid4().hex[:10]}",
                str(batches),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(count)
    ]
    rates = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"sink worker failed: {out}")
        rates.append(json.loads(out.strip().splitlines()[-1])["intervals_per_s"])
    return rates


# -- takeover --------------------------------------------------------------------------------


async def lease_holder(dsn: str, schema: str, ttl: float) -> None:
    from enphase_battery.postgres import LeaseWorker

    async with LeaseWorker(dsn, schema=schema, worker_id="victim", ttl=ttl) as worker:
        print("joined", flush=True)
        del worker
        await asyncio.Event().wait()  # until kill -9


async def takeover_times(dsn: str, ttl: float, rounds: int) -> list[float]:
    from enphase_battery.postgres import LeaseWorker

    times = []
    for _ in range(rounds):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        survivor = LeaseWorker(dsn, schema=schema, worker_id="survivor", ttl=ttl)
        await survivor.register(range(1, 21))
        victim = subprocess.Popen(
            [sys.executable, __file__, "--lease-holder", dsn, schema, str(ttl)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert victim.stdout is not None
        await asyncio.to_thread(victim.stdout.readline)
        await survivor.start()
        while len(survivor.held) != 10:  # the two have split the systems
            await survivor.wait_changed()
        await asyncio.sleep(random.uniform(0, ttl / 3))  # at a random point of its heartbeat
        victim.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        victim.wait()
        while len(survivor.held) != 20:
            await survivor.wait_changed()
        times.append(time.perf_counter() - killed)
        await survivor.stop()
    return times


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sink-worker":
        result = asyncio.run(sink_worker(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        print(json.dumps(result))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--lease-holder":
        asyncio.run(lease_holder(sys.argv[2], sys.argv[3], float(sys.argv[4])))
        return
    smoke = is_smoke()
    dsn = server_dsn()
    if dsn is None and not os.environ.get("ENPHASE_BENCH_WRAPPED"):
        # Start a throwaway server for this run (durable defaults) and come back.
        env = {**os.environ, "ENPHASE_BENCH_WRAPPED": "1", "ENPHASE_PG_DURABLE": "1"}
        os.execve(
            str(ROOT / "scripts" / "with-postgres.sh"),
            [str(ROOT / "scripts" / "with-postgres.sh"), sys.executable, *sys.argv],
            env,
        )
    if dsn is None:
        emit(unmeasured("no PostgreSQL server"), smoke=smoke)
        return
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        emit(
            unmeasured("asyncpg not installed (pip install 'enphase-battery[postgres]')"),
            smoke=smoke,
        )
        return
    batches = 3 if smoke else 60
    one = run_sink_workers(dsn, 1, batches)[0]
    three = run_sink_workers(dsn, 3, batches)
    print(f"sink, 1 worker: {one:,.0f} intervals/s (batches of {BATCH}, {batches} batches)")
    print("sink, 3 workers: " + ", ".join(f"{r:,.0f}" for r in three) + " intervals/s each")
    ttl = 1.0 if smoke else 6.0
    takeovers = asyncio.run(takeover_times(dsn, ttl, 1 if smoke else 5))
    print(
        "takeover after kill -9: "
        + ", ".join(f"{t:.2f}" for t in takeovers)
        + f" s (TTL {ttl:g} s, heartbeat {ttl / 3:g} s)"
    )
    durable = (
        "durable server"
        if os.environ.get("ENPHASE_PG_DURABLE") == "1"
        else ("test server (fsync off)")
    )
    emit(
        [
            Row(
                "postgres: sink, 1 worker",
                one,
                "intervals/s",
                goal_op=">=",
                goal_value=10_000,
                goal_on="sdk",
                note=durable,
            ),
            Row(
                "postgres: sink, each of 3 workers",
                min(three),
                "intervals/s",
                goal_op=">=",
                goal_value=10_000,
                goal_on="sdk",
                note=f"slowest of 3; {durable}",
            ),
            Row(
                "postgres: takeover after kill -9",
                max(takeovers),
                "s",
                baseline=ttl,
                goal_op="<=",
                goal_value=1.34,
                note="worst of the rounds vs the TTL",
            ),
        ],
        smoke=smoke,
    )


if __name__ == "__main__":
    main()
