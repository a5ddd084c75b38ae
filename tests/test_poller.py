"""The telemetry poller against the embedded simulator, over real loopback HTTP.

Every test drives the poller with the simulated clock (``speed=0``): the poller's wait for
its next poll is parked by :class:`~tests.poller_helpers.PollGate` until the test moves
the clock and calls ``poll_now()``; see ``tests/poller_helpers.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import enphase_battery.poller as poller_module
from enphase_battery.checkpoint import MemoryCheckpoint, StreamState
from enphase_battery.poller import TelemetryInterval, TelemetryPoller

from .poller_helpers import (
    HOUR,
    STOPS,
    Driver,
    PollGate,
    check_exactly_once,
    key_of,
    open_env,
    run_with_restarts,
)

START = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> PollGate:
    g = PollGate()
    monkeypatch.setattr(poller_module, "asyncio", g)
    return g


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


async def test_backfill_every_interval_once_with_one_request_per_week(gate: PollGate) -> None:
    async with open_env(history=timedelta(days=16)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(days=15, minutes=50)
        store = MemoryCheckpoint()
        poller = TelemetryPoller(
            env.client, env.system_id, start_at=start_at, checkpoint=store, poll_interval=HOUR
        )
        driver = Driver(poller, gate)
        sim.reset_counters()
        emitted = await driver.pull()
        expected = check_exactly_once(env, emitted, epoch(start_at))
        assert len(emitted) == len([k for k in expected if k[1] <= epoch(sim.clock.now()) - 990])
        await driver.cancel()
        await poller.aclose()


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@pytest.mark.parametrize("stop", STOPS)
async def test_restarts_continue_without_loss_or_duplicates(
    gate: PollGate, tmp_path: Path, stop: str, store_kind: str
) -> None:
    async with open_env(history=timedelta(days=2)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=30)
        memory = MemoryCheckpoint()
        path = tmp_path / "state" / "checkpoint.db"

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=memory if store_kind == "memory" else path,
                poll_interval=HOUR,
            )

        plan = [(1, stop), (2, stop), (97, stop), (121, stop), (250, stop), (30, stop)]
        ticks = [timedelta(minutes=30)] * 24
        run = await run_with_restarts(
            env, gate, make_poller, plan, ticks, final_advance=timedelta(hours=1)
        )
        check_exactly_once(env, run.emitted, epoch(start_at), may_repeat=run.in_hand_at_crash)
        counts = Counter(key_of(iv) for iv in run.emitted)
        repeated = sorted(k for k, n in counts.items() if n > 1)
        if stop == "crash":
            # The interval in hand at each crash comes again, and nothing else.
            assert repeated == sorted(key_of(iv) for iv in run.in_hand_at_crash)
        else:
            assert repeated == []
        assert run.segments[:5] == [1, 2, 97, 121, 250] or stop == "cancel"
        assert len(run.emitted) > 5 * 96


class BlockingStore(MemoryCheckpoint):
    """A store whose ``save`` can be made to hang (an async database round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.saving = asyncio.Event()

    async def save(self, key: str, state: StreamState) -> None:
        if self.armed:
            self.saving.set()
            await asyncio.Event().wait()  # until cancelled
        await super().save(key, state)


async def test_cancellation_during_the_checkpoint_save_still_counts_the_delivery(
    gate: PollGate,
) -> None:
    """Cancelled while the save of the interval in hand is in flight: ``async with`` closes
    the poller, which must still record that interval as delivered."""
    async with open_env(history=timedelta(days=1)) as env:
        start_at = env.sim.clock.now() - timedelta(hours=3)
        store = BlockingStore()
        got: list[TelemetryInterval] = []
        have_three = asyncio.Event()
        go_on = asyncio.Event()

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client, env.system_id, start_at=start_at, checkpoint=store, poll_interval=HOUR
            )

        async def consumer() -> None:
            async with make_poller() as poller:
                async for interval in poller:
                    got.append(interval)
                    if len(got) == 3:
                        have_three.set()
                        await go_on.wait()

        task = asyncio.create_task(consumer())
        await have_three.wait()
        store.armed = True
        go_on.set()
        await store.saving.wait()  # the next anext is saving the delivery of the third
        store.armed = False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert len(got) == 3
        poller = make_poller()
        driver = Driver(poller, gate)
        rest = await driver.pull()
        await driver.cancel()
        await poller.aclose()
        assert key_of(got[2]) not in {key_of(iv) for iv in rest}
        check_exactly_once(env, got + rest, epoch(start_at))
