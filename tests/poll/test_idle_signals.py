"""``wait_idle()`` / ``idle`` and ``wait_caught_up()`` of a batch consumer: they say "all
of it is out" only once the batch being gathered has been handed out."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from enphase_battery import Batch, FleetPoller, MemoryCheckpoint, TelemetryInterval
from enphase_battery.poll.poller import TelemetryPoller
from tests.support.fleet import consume_until_idle, fleet_simulator
from tests.support.poller import FAST, open_env


async def test_fleet_wait_idle_waits_for_the_batch_being_gathered() -> None:
    # A frozen simulated clock (and a client pacing on real time): once the history is
    # fetched nothing more is due, so the workers go idle while the consumer's batch
    # still waits out max_wait for more.
    async with fleet_simulator(systems=3, speed=0.0, fleet_mix=None) as sim:
        start = sim.clock.epoch() - 6 * 3600
        start -= start % 900
        store = MemoryCheckpoint()
        sink: list[TelemetryInterval] = []
        async with sim.make_client(rate_limits=FAST) as client:
            poller = FleetPoller(
                client, checkpoint=store, start_at=datetime.fromtimestamp(start, UTC)
            )

            async def take() -> None:
                async for batch in poller.batches(max_size=100_000, max_wait=5.0):
                    sink.extend(batch)
                    await batch.commit()

            async with poller:
                consumer = asyncio.ensure_future(take())
                try:
                    await asyncio.wait_for(poller.wait_idle(), 60)
                    # Idle: the consumer has everything fetched, nothing is left in a batch.
                    held_at_idle = len(sink)
                    assert poller.idle
                    assert poller.pending == 0
                finally:
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)
            assert held_at_idle > 3 * 2 * 20  # 3 systems x 2 streams x ~6 hours
            # A rerun on the same checkpoint finds nothing the first run had not handed out.
            async with sim.make_client(rate_limits=FAST) as client:
                again: list[TelemetryInterval] = []
                await consume_until_idle(FleetPoller(client, checkpoint=store), again)
            assert again == []


async def test_wait_caught_up_of_a_batch_consumer_returns_once_the_batch_is_out() -> None:
    async with open_env(history=timedelta(hours=6)) as env:
        since = datetime.fromtimestamp(env.sim.clock.epoch() - 4 * 3600, UTC)
        batches: list[Batch] = []
        async with TelemetryPoller(
            env.client, env.system_id, start_at=since, poll_interval=3600
        ) as poller:

            async def take() -> None:
                async for batch in poller.batches(max_size=1000, max_wait=2.0):
                    batches.append(batch)
                    await batch.commit()

            consumer = asyncio.ensure_future(take())
            try:
                # The first poll reaches the newest data and all of it goes out in a
                # batch; then the poller waits an hour for the next poll.
                await asyncio.wait_for(poller.wait_caught_up(), 30)
            finally:
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
        assert batches
        assert all(b.committed for b in batches)
        sources = {iv.source for b in batches for iv in b}
        assert sources == {"battery", *env.serials()}


async def test_a_batch_cancelled_while_gathered_comes_out_in_the_next_one() -> None:
    async with fleet_simulator(systems=3, speed=0.0, fleet_mix=None) as sim:
        start = sim.clock.epoch() - 6 * 3600
        start -= start % 900
        store = MemoryCheckpoint()
        got: list[TelemetryInterval] = []
        async with sim.make_client(rate_limits=FAST) as client:
            poller = FleetPoller(
                client, checkpoint=store, start_at=datetime.fromtimestamp(start, UTC)
            )
            async with poller:
                # A consumer that gives up waiting for a batch (a timeout of its own)
                # while the poller gathers one...
                slow = aiter(poller.batches(max_size=100_000, max_wait=30.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(anext(slow), 2.0)

                # ... then asks again: what was gathered comes now, nothing is skipped.
                async def take() -> None:
                    async for batch in poller.batches(max_size=100_000, max_wait=0.0):
                        got.extend(batch)
                        await batch.commit()

                consumer = asyncio.ensure_future(take())
                try:
                    await asyncio.wait_for(poller.wait_idle(), 60)
                finally:
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)
            keys = [(iv.system_id, iv.source, iv.end_at) for iv in got]
            assert len(keys) == len(set(keys))
            assert len(got) > 3 * 2 * 20
            async with sim.make_client(rate_limits=FAST) as client:
                again: list[TelemetryInterval] = []
                await consume_until_idle(FleetPoller(client, checkpoint=store), again)
            assert again == []
