"""A system unfollowed while one of its checkpoints is being loaded: nothing of it is
saved or fetched afterwards (a fenced store refuses writes for a system another worker
holds, failing a whole commit)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest

from enphase_battery import FleetPoller, MemoryCheckpoint, TelemetryInterval
from enphase_battery.store.checkpoint import StreamState
from tests.support.fleet import fleet_client, fleet_simulator


class GatedCheckpoint(MemoryCheckpoint):
    """A memory checkpoint whose loads of ``held`` keys wait until the test lets them go."""

    def __init__(self, held: set[str]) -> None:
        super().__init__()
        self.held = held
        self.loading = asyncio.Event()
        self.let_go = asyncio.Event()

    async def load(self, key: str) -> StreamState | None:
        if key in self.held:
            self.loading.set()
            await self.let_go.wait()
        return await super().load(key)


async def _take(poller: FleetPoller, sink: list[TelemetryInterval], batches: bool) -> None:
    if not batches:
        async for interval in poller:
            sink.append(interval)
        return
    # While batches are handed out, a new stream's save goes with the next commit.
    async for batch in poller.batches(max_size=50, max_wait=0.05):
        sink.extend(batch)
        await batch.commit()


@pytest.mark.parametrize("batches", [False, True], ids=["one_by_one", "batches"])
@pytest.mark.parametrize("stream", ["battery", "encharge"])
async def test_a_system_unfollowed_during_its_checkpoint_load_is_neither_saved_nor_polled(
    stream: str, batches: bool
) -> None:
    # "battery": the system's first poll loads its battery stream; "encharge": its
    # device listing, after polls of the battery, loads a new Encharge stream.
    async with fleet_simulator(systems=2, fleet_mix=None) as sim:
        kept, dropped = sim.system_ids
        (serial,) = sim.encharge_serials(dropped)
        held_key = f"{dropped}/{'battery' if stream == 'battery' else serial}"
        store = GatedCheckpoint({held_key})
        start = sim.clock.epoch() - 6 * 3600
        since = datetime.fromtimestamp(start - start % 900, UTC)
        sink: list[TelemetryInterval] = []
        async with fleet_client(sim) as client:
            poller = FleetPoller(client, [kept, dropped], checkpoint=store, start_at=since)
            async with poller:
                consumer = asyncio.ensure_future(_take(poller, sink, batches))
                try:
                    async with asyncio.timeout(60):
                        await store.loading.wait()
                    poller.unfollow(dropped)
                    store.let_go.set()
                    async with asyncio.timeout(120):
                        await poller.wait_idle()
                    assert not consumer.done()
                finally:
                    consumer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await consumer
        assert held_key not in store.states
        telemetry = (
            f"/api/v4/systems/{dropped}/telemetry/battery"
            if stream == "battery"
            else f"/api/v4/systems/{dropped}/devices/encharges/{serial}/telemetry"
        )
        assert sim.path_counts[telemetry] == 0
        assert sim.path_counts[f"/api/v4/systems/{kept}/telemetry/battery"] > 0
        if stream == "battery":
            assert not any(iv.system_id == dropped for iv in sink)
        # The system still followed went on as usual.
        assert f"{kept}/battery" in store.states
        assert {iv.source for iv in sink if iv.system_id == kept} == {
            "battery",
            *sim.encharge_serials(kept),
        }
