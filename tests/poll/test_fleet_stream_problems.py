"""No stream stops silently (issue 17, item 4), on the simulator over loopback HTTP.

A 403 or a 404 on one Encharge's telemetry: the fleet keeps that stream followed, puts it
in ``problems`` with its reason, backs it off on its own and retries it, while the
system's other streams go on; ``progress_of()`` shows the lag of a stream no longer
fetched.  The one-system poller raises instead of dropping the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from enphase_battery import (
    FleetPoller,
    MemoryCheckpoint,
    NotFoundError,
    PermissionDeniedError,
    TelemetryInterval,
)
from enphase_battery.poll.poller import TelemetryPoller
from tests.support.fleet import check_exactly_once, fleet_client, fleet_simulator, streams_of
from tests.support.poller import HOUR, NO_WAIT, Driver, open_env

#: Simulated seconds a real second (a simulated hour in a second).
SPEED = 3600.0


def newest_by_stream(sink: list[TelemetryInterval]) -> dict[tuple[int, str], int]:
    newest: dict[tuple[int, str], int] = {}
    for iv in sink:
        key = (iv.system_id, iv.source)
        newest[key] = max(newest.get(key, 0), int(iv.end_at.timestamp()))
    return newest


@contextlib.asynccontextmanager
async def running(poller: FleetPoller, sink: list[TelemetryInterval]) -> AsyncIterator[None]:
    """The poller running, every interval stored in ``sink``, for the ``with`` body."""

    async def take() -> None:
        async for interval in poller:
            sink.append(interval)

    async with poller:
        consumer = asyncio.ensure_future(take())
        try:
            yield
            assert not consumer.done(), "the poller stopped"
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)


def encharge_path(system_id: int, serial: str) -> str:
    return f"/systems/{system_id}/devices/encharges/{serial}/telemetry"


@pytest.mark.slow
@pytest.mark.parametrize("status", [403, 404])
async def test_one_refusal_of_one_encharge_stops_no_stream(status: int) -> None:
    # The measurement: one 403 (or 404) on one Encharge's telemetry, then the API
    # answers normally again; hours later every stream is caught up, nothing lost.
    async with fleet_simulator(systems=3, encharges=2, fleet_mix=None, speed=SPEED) as sim:
        hit = sim.system_ids[0]
        serial = sim.encharge_serials(hit)[0]
        start = sim.clock.epoch() - 3600
        start -= start % 900
        store = MemoryCheckpoint()
        sink: list[TelemetryInterval] = []
        async with fleet_client(sim) as client:
            poller = FleetPoller(
                client,
                checkpoint=store,
                start_at=datetime.fromtimestamp(start, UTC),
                rediscover_every=timedelta(hours=24),
            )
            async with running(poller, sink):
                # Caught up first, then the one refusal on the live edge.
                await asyncio.sleep(1.0)
                assert poller.progress_of(hit).streams == 3
                sim.faults.fail_next(1, status, path=encharge_path(hit, serial))
                await asyncio.sleep(8.0)  # ~8 simulated hours
                sim.clock.speed = 0
                now = sim.clock.time()
            assert not sim.faults.pending, "the refusal was never hit"
            newest = newest_by_stream(sink)
            behind = {
                key: (now - end) / 3600
                for key, end in newest.items()
                if now - end > 2 * 3600  # the live edge is ~0.5 h old
            }
            problems = {(p.system_id, p.source) for p in poller.problems}
            for key in streams_of(sim, sim.system_ids):
                assert key in newest, f"{key}: nothing delivered"
                if key in behind:
                    assert key in problems, f"{key} is {behind[key]:.1f} h behind, unreported"
            assert not behind, f"streams behind after the refusal passed: {behind}"
            assert not poller.problems  # it answered again: recovered
            for system_id in sim.system_ids:
                lag = poller.progress_of(system_id).lag_s
                assert lag is not None
                assert lag < 2 * 3600
        await check_exactly_once(sim, store, sink, streams_of(sim, sim.system_ids), start)


async def test_an_encharge_refused_for_good_is_reported_backed_off_and_shows_its_lag() -> None:
    async with fleet_simulator(systems=2, encharges=2, fleet_mix=None, speed=SPEED) as sim:
        hit, other = sim.system_ids
        denied, sibling = sim.encharge_serials(hit)
        sink: list[TelemetryInterval] = []
        async with fleet_client(sim) as client:
            poller = FleetPoller(client, checkpoint=MemoryCheckpoint())
            async with running(poller, sink):
                await asyncio.sleep(1.0)
                sim.faults.fail_next(10**6, 403, path=encharge_path(hit, denied))
                await asyncio.sleep(5.0)  # ~5 simulated hours
                sim.clock.speed = 0
                now = sim.clock.time()
            problems = poller.problems
            assert [(p.system_id, p.source, p.status, p.error) for p in problems] == [
                (hit, denied, 403, "PermissionDeniedError")
            ]
            # Backed off (hourly, doubling), not one try per poll.
            assert 1 <= problems[0].failures <= 4
            assert problems[0].retry_at.timestamp() > now
            newest = newest_by_stream(sink)
            # The system's other Encharge and its battery stream go on.
            for key in [(hit, "battery"), (hit, sibling), (other, "battery")]:
                assert now - newest[key] < 2 * 3600, key
            assert now - newest[(hit, denied)] > 3 * 3600
            progress = poller.progress_of(hit)
            assert progress.streams == 3  # still followed, at its watermark
            assert progress.in_backoff
            assert progress.lag_s is not None
            assert progress.lag_s > 3 * 3600  # against what the system has shown
            assert poller.progress_of(other).lag_s is not None
            assert poller.progress_of(other).lag_s < 2 * 3600
            assert poller.progress.max_lag_s == progress.lag_s


# -- the one-system poller -------------------------------------------------------------


@pytest.mark.parametrize("discover", [True, False])
@pytest.mark.parametrize(("status", "error"), [(404, NotFoundError), (403, PermissionDeniedError)])
async def test_the_one_system_poller_raises_an_encharge_refusal(
    discover: bool, status: int, error: type[Exception]
) -> None:
    async with open_env(history=timedelta(days=1)) as env:
        serials = env.serials()
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            encharges=None if discover else serials,
            start_at=env.sim.clock.now() - timedelta(hours=3),
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        await driver.pull()
        env.sim.faults.fail_next(1, status, path=encharge_path(env.system_id, serials[0]))
        # A 404 on an Encharge discovery still lists (or one given by serial) is the
        # consumer's to see, like a 403: never a stream dropped without a word.
        with pytest.raises(error):
            await driver.tick(env.sim, timedelta(hours=1))
        await driver.cancel()
        await poller.aclose()
        assert serials[0] in poller.sources
