"""A process on a shared API key for the governor tests: ``python -m tests.support.governor_racer
SPEC_JSON``.

Modes (``spec["mode"]``):

* ``"admit"``: a ``QuotaGovernor`` on the PostgreSQL backend admits requests (no HTTP)
  until the month is spent; prints the send slots it was given.
* ``"client"``: an ``EnphaseClient`` of the simulator, governed through the same backend,
  calls ``list_systems`` until the governor refuses; prints how many calls it made.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from typing import Any

import asyncpg

from enphase_battery import (
    EnphaseClient,
    OAuth2Token,
    QuotaExceededError,
    QuotaGovernor,
    RateLimits,
    TokenManager,
)
from enphase_battery.postgres import PostgresGovernorBackend


def governor(spec: dict[str, Any], pool: asyncpg.Pool) -> QuotaGovernor:
    limits = RateLimits(spec["max_rate"], spec["time_period"], spec["monthly_quota"])
    if spec.get("backend") == "memory":
        # The control: each process counts alone, as before the shared backend.
        return QuotaGovernor(limits, key="shared-key")
    return QuotaGovernor(
        limits, key="shared-key", backend=PostgresGovernorBackend(pool, schema=spec["schema"])
    )


async def main(spec: dict[str, Any]) -> None:
    pool = await asyncpg.create_pool(spec["dsn"], min_size=1, max_size=2)
    gov = governor(spec, pool)
    # All processes start together, so they really contend.
    await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))
    if spec["mode"] == "admit":
        slots: list[float] = []
        while True:
            try:
                admission = await gov.admit()
            except QuotaExceededError:
                break
            slots.append(admission.slot_at)
        print(json.dumps({"slots": slots}))
    else:
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
        calls = 0
        async with (
            auth,
            EnphaseClient(
                api_key=spec["api_key"], auth=auth, base_url=spec["base_url"], governor=gov
            ) as client,
        ):
            while True:
                try:
                    await client.list_systems()
                except QuotaExceededError:
                    break
                calls += 1
        print(json.dumps({"calls": calls}))
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
