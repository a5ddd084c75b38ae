"""PostgreSQL: the transactional sink's throughput, and how fast a dead worker's systems move.

Figures (one table row each, see benchtable.py):

* committed intervals per second through ``PostgresCheckpoint`` with the transactional
  sink (``commit(states, write_rows)``: the rows by ``executemany`` and the checkpoint
  compare-and-set in one fenced transaction), batches of 1,000 intervals, for one worker
  process and for each of three running at once (goal >= 10,000/s per worker);
* takeover time after ``kill -9`` of a worker holding half the systems, against the lease
  TTL (goal: within TTL + one heartbeat, i.e. <= 1.33x the TTL);
* the shared quota governor: the cost of one admission through ``PostgresGovernorBackend``
  (p95, goal <= 2 ms on loopback), and three processes on one key admitting as fast as the
  plan allows: the rate achieved against the plan's limit (goal >= 95 %) and the most seen
  in any sliding window (never over the limit).

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
        *governor_rows(None, None, None, None, 30.0, note),
    ]


def governor_rows(
    p95: float | None,
    p50: float | None,
    achieved: float | None,
    worst: int | None,
    rate: float,
    note: str = "",
    sent: int | None = None,
) -> list[Row]:
    return [
        Row(
            "postgres: governor admit() p95",
            p95,
            "ms",
            goal_op="<=",
            goal_value=2.0,
            goal_on="sdk",
            note=note or f"p50 {p50:.2f} ms; loopback",
        ),
        Row(
            "postgres: 3 workers' rate vs plan limit",
            achieved,
            "req/window",
            baseline=rate,
            goal_op=">=",
            goal_value=0.95,
            note=note or "steady state, one key",
        ),
        Row(
            "postgres: 3 workers' worst window vs limit",
            None if worst is None else float(worst),
            "req/window",
            baseline=rate,
            goal_op="<=",
            goal_value=1.0,
            note=note
            or f"governor's slots, any sliding window; actual sends (wake-up jitter): {sent}",
        ),
    ]


# -- the sink worker (a process of its own) ------------------------------------------------


async def sink_worker(dsn: str, schema: str, batches: int) -> dict[str, float]:
    import asyncpg

    from enphase_battery.postgres import LeaseWorker, PostgresCheckpoint
    from enphase_battery.store.checkpoint import StreamState

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


# -- the shared quota governor ------------------------------------------------------------------


def governor_for(pool: object, schema: str, max_rate: float, period: float) -> object:
    from enphase_battery import QuotaGovernor, RateLimits
    from enphase_battery.postgres import PostgresGovernorBackend

    backend = PostgresGovernorBackend(pool, schema=schema)  # type: ignore[arg-type]
    return QuotaGovernor(RateLimits(max_rate, period), key="bench", backend=backend)


async def admission_cost_ms(dsn: str, count: int) -> list[float]:
    """Wall time of ``admit()`` with a plan that never makes it wait: the backend's cost."""
    import asyncpg

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    governor = governor_for(pool, f"bench_{uuid.uuid4().hex[:10]}", 1e9, 60.0)
    costs = []
    for i in range(count + 20):
        began = time.perf_counter()
        await governor.admit()  # type: ignore[attr-defined]
        if i >= 20:  # after the warm-up (schema, prepared statements)
            costs.append((time.perf_counter() - began) * 1000)
    await pool.close()
    return costs


async def governor_worker(
    dsn: str, schema: str, seconds: float, rate: float, period: float
) -> dict[str, list[float]]:
    import asyncpg

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    governor = governor_for(pool, schema, rate, period)
    await governor.usage()  # type: ignore[attr-defined]
    slots, sent = [], []
    deadline = time.time() + seconds
    while time.time() < deadline:
        admission = await governor.admit()  # type: ignore[attr-defined]
        slots.append(admission.slot_at)  # the governor's schedule
        sent.append(time.time())  # when this process would really send
    await pool.close()
    return {"slots": slots, "sent": sent}


def most_in_a_window(times: list[float], period: float) -> int:
    """The most of ``times`` in any half-open window ``(t - period, t]``."""
    times = sorted(times)
    worst = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - period:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


def shared_rate(dsn: str, seconds: float, rate: float, period: float) -> tuple[float, int, int]:
    """Three processes admitting as fast as the plan lets them: achieved requests per
    ``period``, and the most in any sliding window of ``period`` by the governor's slots
    and by the times the processes would actually send."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--governor-worker",
                dsn,
                schema,
                str(seconds),
                str(rate),
                str(period),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    slots: list[float] = []
    sent: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"governor worker failed: {out}")
        report = json.loads(out.strip().splitlines()[-1])
        slots += report["slots"]
        sent += report["sent"]
    slots.sort()
    span = slots[-1] - slots[0]
    achieved = (len(slots) - 1) / span * period if span > 0 else 0.0
    return achieved, most_in_a_window(slots, period), most_in_a_window(sent, period)


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sink-worker":
        result = asyncio.run(sink_worker(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        print(json.dumps(result))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--governor-worker":
        report = asyncio.run(
            governor_worker(sys.argv[2], sys.argv[3], *(float(v) for v in sys.argv[4:7]))
        )
        print(json.dumps(report))
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
    costs = sorted(asyncio.run(admission_cost_ms(dsn, 100 if smoke else 2000)))
    p50 = costs[len(costs) // 2]
    p95 = costs[int(len(costs) * 0.95) - 1]
    print(f"governor admit(): p50 {p50:.2f} ms, p95 {p95:.2f} ms ({len(costs)} admissions)")
    # The Partner plan's pace (300 a minute), on a 6-second window to keep the run short.
    period, rate = 6.0, 30.0
    achieved, worst, worst_sent = shared_rate(dsn, 4.0 if smoke else 30.0, rate, period)
    print(
        f"3 processes, one key: {achieved:.1f} requests per {period:g} s (limit {rate:g}),"
        f" at most {worst} slots (and {worst_sent} actual sends) in any {period:g} s window"
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
            *governor_rows(p95, p50, achieved, worst, rate, sent=worst_sent),
        ],
        smoke=smoke,
    )


if __name__ == "__main__":
    main()
