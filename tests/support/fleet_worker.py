"""One fleet worker process for the kill -9 test:
``python -m tests.support.fleet_worker SPEC_JSON``.

A ``LeasedFleet`` on the simulator, its client governed through PostgreSQL with the other
workers, committing every batch into ``sink`` (a plain primary key: a duplicate fails the
commit, and the worker with it) together with the checkpoint.  Runs until killed.

Optional in the spec: ``sim_clock`` ``[simulated epoch, time.monotonic(), speed]`` read
together in the simulator's process (the worker then paces on a replica of the fast
simulated clock, with a governor of its own), ``encharges`` (follow them too) and
``revisions`` (the rows then carry revision, discharge, SoC and the worker's name: the
test's sink has those columns, and the revision in its primary key).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from enphase_battery import EnphaseClient, OAuth2Token, QuotaGovernor, RateLimits, TokenManager
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll import LeasedFleet
from enphase_battery.postgres import PostgresGovernorBackend
from enphase_battery.postgres._db import Connection
from enphase_battery.simulator.clock import SimClock


async def main(spec: dict[str, Any]) -> None:
    schema = spec["schema"]
    pool = await asyncpg.create_pool(spec["dsn"], min_size=0, max_size=6)
    limits = RateLimits(spec["max_rate"], 60.0, spec["monthly_quota"])
    if "sim_clock" in spec:
        epoch, monotonic, speed = spec["sim_clock"]
        now = epoch + (time.monotonic() - monotonic) * speed  # one clock for all processes
        clock = SimClock(datetime.fromtimestamp(now, UTC), speed=speed)
        governor = QuotaGovernor(limits, clock=clock)
    else:
        governor = QuotaGovernor(
            limits, key="fleet-key", backend=PostgresGovernorBackend(pool, schema=schema)
        )
    auth = TokenManager(
        client_id=spec["client_id"],
        client_secret=spec["client_secret"],
        token=OAuth2Token(
            access_token=spec["access_token"],
            refresh_token=spec["refresh_token"],
            expires_at=datetime.fromisoformat(spec["expires_at"]),
        ),
        token_url=spec["token_url"],
    )

    async def insert(conn: Connection, intervals: tuple[TelemetryInterval, ...]) -> None:
        if spec.get("revisions"):
            await conn.executemany(
                f'INSERT INTO "{schema}".sink VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
                [
                    (
                        iv.system_id,
                        iv.source,
                        int(iv.end_at.timestamp()),
                        iv.revision,
                        iv.charge_wh,
                        iv.discharge_wh,
                        iv.soc_percent,
                        iv.partial,
                        spec["name"],
                    )
                    for iv in intervals
                ],
            )
            return
        await conn.executemany(
            f'INSERT INTO "{schema}".sink VALUES ($1, $2, $3, $4, $5)',
            [
                (iv.system_id, iv.source, int(iv.end_at.timestamp()), iv.charge_wh, iv.partial)
                for iv in intervals
            ],
        )

    async with (
        auth,
        EnphaseClient(
            api_key=spec["api_key"],
            auth=auth,
            base_url=spec["base_url"],
            governor=governor,
            max_retry_time=30.0,
        ) as client,
        LeasedFleet(
            client,
            pool,
            schema=schema,
            ttl=spec["ttl"],
            worker_id=spec["name"],
            start_at=datetime.fromtimestamp(spec["start"], UTC),
            encharges=spec.get("encharges", False),
        ) as fleet,
    ):
        async for batch in fleet.batches(max_size=100, max_wait=0.1):
            await fleet.commit_batch(batch, insert)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
