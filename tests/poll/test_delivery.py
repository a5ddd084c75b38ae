"""The commit rule: an interval counts as delivered only when the consumer asks for the
next one or calls ``commit()``; an exception or a cancellation in the consumer never
delivers the interval in hand.

Each test runs 200 consumers one after another on one checkpoint against the simulator,
each stopped at a random point, and checks what was *stored* against ground truth: 0
lost, and (since a failed store is never half done) 0 repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.store.checkpoint import MemoryCheckpoint
from tests.support.poller import HOUR, NO_WAIT, Driver, check_exactly_once, open_env

RUNS = 200


class SinkError(Exception):
    """The consumer's store failed."""


async def _drain_rest(poller: TelemetryPoller) -> list[TelemetryInterval]:
    driver = Driver(poller)
    rest = await driver.pull()
    await driver.cancel()
    await poller.aclose()
    return rest


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
async def test_a_sink_that_raises_at_random_points_loses_nothing(
    tmp_path: Path, store_kind: str
) -> None:
    rng = random.Random(8)
    async with open_env(history=timedelta(days=1), late_probability=0.05, plan="unlimited") as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=4)
        memory = MemoryCheckpoint()

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                encharges=env.serials(),
                start_at=start_at,
                checkpoint=memory if store_kind == "memory" else tmp_path / "cp.sqlite",
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        stored: list[TelemetryInterval] = []
        raised = 0
        for _ in range(RUNS):
            sim.clock.advance(timedelta(minutes=rng.choice((0, 15, 30))))
            poller = make_poller()

            async def consumer(poller: TelemetryPoller = poller) -> None:
                async with poller:
                    async for interval in poller:
                        if rng.random() < 0.25:
                            raise SinkError(interval)
                        stored.append(interval)

            task = asyncio.create_task(consumer())
            idle = asyncio.create_task(poller.wait_idle())
            await asyncio.wait({task, idle}, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            if task.done():
                with pytest.raises(SinkError):
                    task.result()
                raised += 1
            else:  # caught up without a failure: stop it while it waits
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert raised > RUNS // 2
        sim.clock.advance(timedelta(hours=1))
        stored += await _drain_rest(make_poller())
        check_exactly_once(env, stored, int(start_at.timestamp()))


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
async def test_a_consumer_cancelled_at_random_points_loses_nothing(
    tmp_path: Path, store_kind: str
) -> None:
    rng = random.Random(9)
    async with open_env(history=timedelta(days=1), late_probability=0.05, plan="unlimited") as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=4)
        memory = MemoryCheckpoint()

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                encharges=env.serials(),
                start_at=start_at,
                checkpoint=memory if store_kind == "memory" else tmp_path / "cp.sqlite",
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        stored: list[TelemetryInterval] = []
        mid_store = mid_fetch = 0
        for _ in range(RUNS):
            sim.clock.advance(timedelta(minutes=rng.choice((0, 15, 30))))
            poller = make_poller()
            in_sink: list[TelemetryInterval] = []
            # Half the runs are cancelled from outside after a random number of loop
            # turns (inside a fetch or a checkpoint save, mostly); the other half while
            # the sink is storing its k-th interval (Ctrl-C while the database works).
            k = rng.randrange(1, 40) if rng.random() < 0.5 else None

            async def consumer(
                poller: TelemetryPoller = poller,
                in_sink: list[TelemetryInterval] = in_sink,
                k: int | None = k,
            ) -> None:
                taken = 0
                async with poller:
                    async for interval in poller:
                        in_sink.append(interval)
                        taken += 1
                        if taken == k:
                            task = asyncio.current_task()
                            assert task is not None
                            task.cancel()
                        # Storing takes a moment (a database round trip).
                        for _ in range(rng.randrange(1, 4)):
                            await asyncio.sleep(0)
                        stored.append(interval)
                        in_sink.clear()

            task = asyncio.create_task(consumer())
            idle = asyncio.ensure_future(poller.wait_idle())
            if k is None:
                for _ in range(rng.randrange(1, 60)):
                    await asyncio.sleep(0)
                    if task.done():
                        break
            else:
                await asyncio.wait({task, idle}, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            mid_store += bool(in_sink)
            mid_fetch += not in_sink
        # Both cases happened, many times.
        assert mid_store > 10, mid_store
        assert mid_fetch > 10, mid_fetch
        sim.clock.advance(timedelta(hours=1))
        stored += await _drain_rest(make_poller())
        check_exactly_once(env, stored, int(start_at.timestamp()))
