"""The quota governor's state in PostgreSQL: several processes on one API key together keep
to the plan (the month's count and the spacing), counted on the simulator's side; the
backend's own contract (atomic updates, delete, states)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from enphase_battery import QuotaExceededError, QuotaGovernor, RateLimits
from enphase_battery.postgres import PostgresGovernorBackend
from enphase_battery.quota.state import GovernorState
from enphase_battery.simulator import EnphaseSimulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


def race(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one tests.support.governor_racer process per spec, starting together; their reports."""
    start_at = time.time() + 1.5  # after every interpreter has started
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.governor_racer",
                json.dumps({**s, "start_at": start_at}),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for s in specs
    ]
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def test_three_processes_admit_exactly_the_quota_spaced_apart(
    postgres_dsn: str, pg_schema: str
) -> None:
    spacing = 0.01
    spec = {
        "mode": "admit",
        "dsn": postgres_dsn,
        "schema": pg_schema,
        "max_rate": 60 / spacing,
        "time_period": 60.0,
        "monthly_quota": 150,
    }
    reports = race([spec] * 3)
    slots = sorted(slot for r in reports for slot in r["slots"])
    # Together exactly the month's quota, however the three interleaved...
    assert len(slots) == 150
    assert all(r["slots"] for r in reports), [len(r["slots"]) for r in reports]
    # ...and no two send slots closer than the plan's spacing, across processes.
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= spacing - 1e-6


@pytest.mark.slow
async def test_three_clients_on_one_key_keep_to_the_plan_on_the_server(
    postgres_dsn: str, pg_schema: str
) -> None:
    # The server's plan: 40 requests per 2-second window, 60 a month.  The clients' governor
    # keeps under the window's limit (32) so that send jitter on a loaded machine cannot
    # cross it; what is tested is that the three processes share one count and one pace.
    plan = RateLimits(40, 2.0, 60)
    async with EnphaseSimulator(plan=plan, systems=1) as sim:

        def spec(backend: str) -> dict[str, Any]:
            token = sim.token
            return {
                "mode": "client",
                "backend": backend,
                "dsn": postgres_dsn,
                "schema": pg_schema,
                "max_rate": 32,
                "time_period": 2.0,
                "monthly_quota": 60,
                "api_key": sim.api_key,
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
                "access_token": token.access_token,
                "refresh_token": token.refresh_token,
                "expires_at": token.expires_at.isoformat(),
                "token_url": sim.token_url,
                "base_url": sim.base_url,
            }

        reports = await asyncio.to_thread(race, [spec("postgres")] * 3)
        assert sum(r["calls"] for r in reports) == 60
        assert all(r["calls"] > 0 for r in reports), reports
        # Counted where it matters: the server saw the month's quota and not one request
        # more, and never refused a request for the minute window.
        assert sim.limiter.month_used == 60
        assert sim.limiter.refused == {"minute": 0, "month": 0}
        # The control: three processes counting alone send past the month's quota (the
        # server refuses those) and crowd the window.
        sim.limiter.reset()
        sim.limiter.refused.update(minute=0, month=0)
        await asyncio.to_thread(race, [spec("memory")] * 3)
        assert sim.limiter.month_used == 60
        assert sim.limiter.refused["month"] > 0, sim.limiter.refused


async def test_backend_contract(pool: asyncpg.Pool, pg_schema: str) -> None:
    backend = PostgresGovernorBackend(pool, schema=pg_schema)
    assert "PostgreSQL" in backend.describe()
    governor = QuotaGovernor(RateLimits(6000, 60.0, 5), key="k", backend=backend)
    for _ in range(5):
        await governor.admit()
    with pytest.raises(QuotaExceededError, match="in PostgreSQL"):
        await governor.admit()
    # Another governor on the same key and plan (another process) sees the count.
    other = QuotaGovernor(RateLimits(6000, 60.0, 5), key="k", backend=backend)
    usage = await other.usage()
    assert (usage.used, usage.remaining) == (5, 0)
    states = await backend.states()
    assert list(states) == [governor.key]
    assert isinstance(states[governor.key], GovernorState)

    # Many concurrent updates on one key: none lost.
    def bump(state: GovernorState | None) -> tuple[GovernorState, int]:
        assert state is not None
        new = GovernorState(state.plan, state.month_start, state.month_end, used=state.used + 1)
        return new, new.used

    results = await asyncio.gather(*(backend.transact(governor.key, bump) for _ in range(40)))
    assert sorted(results) == list(range(6, 46))
    await backend.delete("k:*")
    assert await backend.states() == {}
    assert (await other.usage()).used == 0
