"""The one-system poller on the fleet's engine, seen by a user: its requests are background
work of the client's governor, it paces itself on the governor's clock, and on a small plan
the governor neither starves nor stalls it (loopback HTTP against the simulator)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from enphase_battery import MemoryCheckpoint, QuotaGovernor, RateLimits, TelemetryInterval
from enphase_battery.poll.pacing import poll_interval_for
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.simulator import EnphaseSimulator, SimClock
from tests.support.fleet import check_exactly_once as check_delivered
from tests.support.poller import FAST, HOUR, NO_WAIT, open_env

Interval = TelemetryInterval


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def consuming(
    poller: TelemetryPoller, got: list[Interval]
) -> AsyncIterator[asyncio.Task[None]]:
    """Consume ``poller`` into ``got`` in a task, then stop it and close the poller."""

    async def consume() -> None:
        async for interval in poller:
            got.append(interval)

    task = asyncio.create_task(consume())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await poller.aclose()


async def test_the_pollers_requests_are_background_work_and_leave_the_users_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 10-request month: the poller (background, 80 %) stops at 8 and waits; the user's
    own call through the same client still goes out at once.  (Before, the poller's
    requests were the user's: it spent all 10 and both it and the user's call raised
    QuotaExceededError.)"""
    async with open_env(
        rate_limits=RateLimits(100000, 60.0, 10),
        governor_options={"burst_s": 31 * 86_400.0},
        history=timedelta(days=1),
    ) as env:
        sim, client = env.sim, env.client
        poller = TelemetryPoller(
            client,
            env.system_id,
            start_at=sim.clock.now() - timedelta(hours=2),
            poll_interval=0,
            retry_wait_s=NO_WAIT,
        )
        sim.reset_counters()
        got: list[Interval] = []
        with caplog.at_level(logging.WARNING):
            async with consuming(poller, got):
                # Discovery + 3 streams, 3 more, then the 9th waits for next month.
                await until(lambda: poller.requests == 9)
                await asyncio.sleep(0.2)  # it stays parked: nothing more goes out
                usage = client.governor.usage_now()
                assert (usage.used, usage.used_background) == (8, 8)
                assert sim.request_count == 8
                assert got  # it delivered what it fetched
                devices = await asyncio.wait_for(client.get_system_devices(env.system_id), 5)
                assert devices.encharge_serials
                usage = client.governor.usage_now()
                assert (usage.used, usage.used_background) == (9, 8)
                assert sim.request_count == 9
                assert poller.requests == 9
        assert any("waits for next month" in r.getMessage() for r in caplog.records)


async def test_polls_are_paced_on_the_governors_clock_and_poll_now_still_works() -> None:
    """Moving the simulator's clock (the governor's) by the pacing interval starts the next
    poll without poll_now(); poll_now() starts one at once; wait_idle() and
    wait_caught_up() follow both."""
    async with EnphaseSimulator(
        seed=1, systems=1, encharges=2, history=timedelta(days=1), speed=1.0
    ) as sim:
        governor = QuotaGovernor(FAST, clock=sim.clock)
        async with sim.make_client(governor=governor) as client:
            poller = TelemetryPoller(
                client,
                sim.system_ids[0],
                start_at=sim.clock.now() - timedelta(hours=2),
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )
            got: list[Interval] = []
            async with consuming(poller, got):
                await asyncio.wait_for(poller.wait_caught_up(), 20)
                await asyncio.wait_for(poller.wait_idle(), 20)
                assert poller.requests == 4  # discovery, 3 streams
                assert poller.last_poll_wait_s == pytest.approx(HOUR, abs=60)
                first = len(got)

                sim.clock.advance(timedelta(hours=1))
                await until(lambda: poller.requests > 4)
                await asyncio.wait_for(poller.wait_idle(), 20)
                await asyncio.wait_for(poller.wait_caught_up(), 20)
                assert poller.requests == 4 + 3
                assert len(got) >= first + 3 * 3  # an hour more of 3 streams, minus latency

                sim.clock.advance(timedelta(minutes=30))  # half an interval: no poll yet
                await asyncio.sleep(0.2)
                assert poller.requests == 7
                second = len(got)
                poller.poll_now()
                await asyncio.wait_for(poller.wait_idle(), 20)
                assert poller.requests == 7 + 3
                await asyncio.wait_for(poller.wait_caught_up(), 20)
                assert len(got) >= second + 3
                assert poller.progress.caught_up
                assert governor.usage_now().used_background == poller.requests


class JumpingClock:
    """The simulator's frozen clock, moved on by whoever sleeps on it: one poller's pacing
    and the governor's waits run a simulated week in a moment, in order."""

    def __init__(self, sim_clock: SimClock) -> None:
        self.sim_clock = sim_clock

    def time(self) -> float:
        return self.sim_clock.time()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sim_clock.advance(seconds)
        await asyncio.sleep(0)


@pytest.mark.parametrize("backfill", [None, timedelta(days=21)])
async def test_on_the_watt_plan_the_governor_neither_starves_nor_stalls_one_poller(
    backfill: timedelta | None,
) -> None:
    """A simulated week on Watt (1,000 requests a month), default pacing: the polls come
    at the pacing interval (the governor's budget line keeps up with them), every interval
    comes out once, and background spending stays on the month's 80 % line.  With three
    weeks to catch up, the catch-up beyond the governor's burst is spread along that line
    (hours, not days) and the live edge follows."""
    async with EnphaseSimulator(seed=2, systems=1, encharges=2, history=timedelta(days=25)) as sim:
        clock = JumpingClock(sim.clock)
        governor = QuotaGovernor(RateLimits.WATT, clock=clock)
        async with sim.make_client(governor=governor) as client:
            system_id = sim.system_ids[0]
            began = sim.clock.epoch()
            start_at = sim.clock.now() - backfill if backfill else None
            store = MemoryCheckpoint()
            poller = TelemetryPoller(client, system_id, start_at=start_at, checkpoint=store)
            interval = poll_interval_for(client, 3, extra_calls=30.4375)
            got: list[Interval] = []
            live: dict[str, float] = {}  # when each stream's newest hour first came out
            async with poller, asyncio.timeout(60):
                async for iv in poller:
                    got.append(iv)
                    if iv.end_at.timestamp() >= began - 3600:
                        live.setdefault(iv.source, sim.clock.time())
                    if sim.clock.time() >= began + 7 * 86_400:
                        await poller.commit()
                        break
            elapsed = sim.clock.time() - began
            usage = governor.usage_now()
            assert usage.used_background == poller.requests == sim.request_count
            # On the budget line: 80 % of a 30-day June, pro rata, plus the 6 h burst.
            line = 800 * (elapsed + 6 * 3600) / (30 * 86_400)
            assert usage.used_background <= line
            assert len(live) == 3
            live_at = max(live.values())
            if backfill is None:
                # Not starved: a poll every pacing interval (3 requests; a discovery a
                # day), none held back by the governor.
                polls = (poller.requests - 8) / 3
                assert polls >= elapsed // interval
                assert live_at - began < 60
            else:
                # 3 weeks x 3 streams: 12 windows, about 6 beyond the burst, spread along
                # the budget line: hours, not days.
                assert 3600 < live_at - began < 12 * 3600
            start = int(start_at.timestamp()) if start_at else None
            keys = [(system_id, source) for source in poller.sources]
            first = start or min(int(iv.end_at.timestamp()) for iv in got) - 900
            checked = await check_delivered(sim, store, got, keys, first)
            assert checked >= 3 * 96 * 6
