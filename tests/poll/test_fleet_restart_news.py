"""A fleet that restarts polls only the systems the systems list shows news of since their
checkpoint (issue 18, item 8): the rest were caught up when the last run stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from enphase_battery import (
    EnphaseClient,
    FleetPoller,
    QuotaGovernor,
    RateLimits,
    SqliteCheckpoint,
    TelemetryInterval,
)
from enphase_battery.simulator import EnphaseSimulator
from tests.support.fleet import check_exactly_once, consume_until_idle, fleet_simulator, streams_of

#: No limit worth pacing to: the data's clock (the simulator's) stands still between the
#: runs, and the fleet schedules on real time, so only the test decides when there is news.
PLAN = RateLimits(100_000, 60.0, 10**9)


def client_of(sim: EnphaseSimulator) -> EnphaseClient:
    return sim.make_client(governor=QuotaGovernor(PLAN), max_retry_time=30.0)


def fleet(client: EnphaseClient, path: Path, start: int) -> FleetPoller:
    return FleetPoller(
        client,
        checkpoint=path,
        start_at=datetime.fromtimestamp(start, UTC),
        encharges=False,
        gather=timedelta(0),
    )


def telemetry_requests(sim: object) -> int:
    counts = sim.path_counts  # type: ignore[attr-defined]
    return sum(n for path, n in counts.items() if "/telemetry/" in path)


async def test_a_restart_polls_only_the_systems_with_news(tmp_path: Path) -> None:
    async with fleet_simulator(
        systems=20, fleet_mix=None, history=timedelta(hours=6), plan=PLAN, speed=0.0
    ) as sim:
        start = sim.clock.epoch() - 6 * 3600
        start -= start % 900
        path = tmp_path / "fleet.sqlite"
        sink: list[TelemetryInterval] = []
        async with client_of(sim) as client:
            await consume_until_idle(fleet(client, path, start), sink)
        first_run = len(sink)
        assert first_run > 20 * 15  # about 6 h of every system
        # A restart with no news: the systems list is read, no system is polled again.
        before = telemetry_requests(sim)
        async with client_of(sim) as client:
            await consume_until_idle(fleet(client, path, start), sink)
        assert telemetry_requests(sim) == before
        assert len(sink) == first_run
        # News for every system: the next restart polls them and delivers what is new.
        sim.clock.advance(timedelta(minutes=45))
        async with client_of(sim) as client:
            await consume_until_idle(fleet(client, path, start), sink)
        assert telemetry_requests(sim) - before >= 20
        assert len(sink) > first_run
        store = SqliteCheckpoint(path)
        try:
            keys = [k for k in streams_of(sim, sim.system_ids) if k[1] == "battery"]
            await check_exactly_once(sim, store, sink, keys, start)
        finally:
            await store.close()
