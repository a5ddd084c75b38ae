"""A worker process for the lease race test: ``python -m tests.support.lease_racer DSN SCHEMA NAME
SECONDS``.

It keeps one system's lease when it can, and while it holds it commits a counter (the
checkpoint) together with one numbered row of its own table, fenced by the lease.  Now and
then it stops heartbeating for longer than the TTL (a paused process), then tries to
commit anyway: the fence must refuse it.  It prints a JSON summary at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import asyncpg

from enphase_battery.postgres import LeaseLostError, LeaseWorker, PostgresCheckpoint
from enphase_battery.postgres._db import Connection
from enphase_battery.store.checkpoint import StreamState

SYSTEM_ID = 1
KEY = f"{SYSTEM_ID}/battery"
TTL_S = 0.6


async def main(dsn: str, schema: str, name: str, seconds: float) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    worker = LeaseWorker(pool, schema=schema, worker_id=name, ttl=TTL_S, heartbeat=0.15)
    tokens: list[int] = []
    commits = refused = pauses = 0
    deadline = time.monotonic() + seconds
    store: PostgresCheckpoint | None = None
    count = 0
    rng = random.Random(name)
    while time.monotonic() < deadline:
        change = await worker.heartbeat()
        for lease in change.acquired:
            tokens.append(lease.token)
            store = PostgresCheckpoint(pool, schema=schema).fenced(worker)
            # Read once per takeover and counted on locally: if the fence ever let a
            # stale holder write, its next number would collide with the new holder's.
            state = await store.load(KEY)
            count = (state.watermark // 900) if state else 0
        if worker.token_for(SYSTEM_ID) is None or store is None:
            await asyncio.sleep(rng.uniform(0.01, 0.1))
            continue
        for _ in range(rng.randint(1, 8)):
            token = worker.token_for(SYSTEM_ID)

            async def write_row(
                conn: Connection, seq: int = count + 1, tok: object = token
            ) -> None:
                await conn.execute(
                    f'INSERT INTO "{schema}".counted (seq, worker, token) VALUES ($1, $2, $3)',
                    seq,
                    name,
                    tok,
                )

            if rng.random() < 0.12:
                # Paused past the TTL without a heartbeat; the other worker takes over.
                pauses += 1
                await asyncio.sleep(TTL_S * 2)
            try:
                await store.commit({KEY: StreamState((count + 1) * 900)}, write_row)
                commits += 1
                count += 1
            except LeaseLostError:
                refused += 1
                break
            await asyncio.sleep(rng.uniform(0.0, 0.03))
    await worker.stop(leave=True)
    await pool.close()
    print(json.dumps({"tokens": tokens, "commits": commits, "refused": refused, "pauses": pauses}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
