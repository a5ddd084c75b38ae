"""Helpers for the fleet tests: a fast-clock simulator, a consumer, the ground truth."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from enphase_battery import EnphaseClient, FleetPoller, QuotaGovernor, RateLimits, TelemetryInterval
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.uplink import FleetMix
from enphase_battery.store.checkpoint import CheckpointStore

Key = tuple[int, str]


def fleet_simulator(**overrides: Any) -> EnphaseSimulator:
    """A simulator on a fast clock whose minute window counts simulated time."""
    options: dict[str, Any] = {
        "seed": 7,
        "systems": 6,
        "encharges": 1,
        "plan": RateLimits(300, 60.0, 1_500_000, name="partner"),
        "history": timedelta(days=2),
        "speed": 1800.0,
        "minute_clock": "simulated",
        "fleet_mix": FleetMix(
            cellular=0.2,
            offline=0.2,
            batch_period_s=2 * 3600,
            offline_within_s=3600,
            offline_for_s=3 * 3600,
            backfill_s=1800,
        ),
    }
    options.update(overrides)
    return EnphaseSimulator(**options)


def fleet_client(sim: EnphaseSimulator, **governor_options: Any) -> EnphaseClient:
    """A client whose governor paces on the simulator's clock."""
    limits = sim.limiter.limits
    assert limits is not None
    governor = QuotaGovernor(limits, clock=sim.clock, **governor_options)
    return sim.make_client(governor=governor, max_retry_time=30.0)


async def consume(poller: FleetPoller, sink: list[TelemetryInterval], real_seconds: float) -> None:
    """Store every interval in ``sink`` for ``real_seconds``, then stop (cancelled)."""
    async with poller:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(real_seconds):
                async for interval in poller:
                    sink.append(interval)


async def consume_until_idle(
    poller: FleetPoller, sink: list[TelemetryInterval], deadline_s: float = 120.0
) -> None:
    """Store every interval in ``sink`` until the poller has nothing due and nothing
    pending (``wait_idle``), then stop: a run to the end of what is there, however long
    a loaded machine takes (``deadline_s`` only guards against a hang)."""

    async def take() -> None:
        async for interval in poller:
            sink.append(interval)

    async with poller:
        consumer = asyncio.ensure_future(take())
        idle = asyncio.ensure_future(poller.wait_idle())
        try:
            async with asyncio.timeout(deadline_s):
                done, _ = await asyncio.wait({consumer, idle}, return_when=asyncio.FIRST_COMPLETED)
            if consumer in done:
                consumer.result()  # the poller's error fails the test here
                raise AssertionError("the poller stopped before it was idle")
        finally:
            for task in (consumer, idle):
                task.cancel()
            await asyncio.gather(consumer, idle, return_exceptions=True)


async def until(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    """Wait until ``condition()`` holds (checked every 20 ms); fail naming ``what`` after
    ``deadline_s``, a guard against a hang rather than a timing expectation."""
    try:
        async with asyncio.timeout(deadline_s):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {deadline_s:.0f} s: {what}") from None


def streams_of(sim: EnphaseSimulator, system_ids: Iterable[int]) -> list[Key]:
    keys: list[Key] = []
    for system_id in system_ids:
        keys.append((system_id, "battery"))
        keys.extend((system_id, serial) for serial in sim.encharge_serials(system_id))
    return keys


async def check_exactly_once(
    sim: EnphaseSimulator,
    store: CheckpointStore,
    sink: list[TelemetryInterval],
    keys: Iterable[Key],
    start: int,
) -> int:
    """No interval twice; every interval up to each stream's saved watermark delivered,
    with the simulator's final values unless flagged partial.  Returns how many checked."""
    counts = Counter(
        (iv.system_id, iv.source, int(iv.end_at.timestamp()), iv.revision) for iv in sink
    )
    repeated = [k for k, n in counts.items() if n > 1]
    assert not repeated, f"delivered twice: {repeated[:5]}"
    # The newest revision of each interval: what an upserting consumer holds.
    by_key: dict[tuple[int, str, int], TelemetryInterval] = {}
    for iv in sink:
        key = (iv.system_id, iv.source, int(iv.end_at.timestamp()))
        if key not in by_key or iv.revision > by_key[key].revision:
            by_key[key] = iv
    revisions = Counter(key[:3] for key in counts)
    for key, iv in by_key.items():
        # Revision n goes out only after revision n - 1: 0..n, each once.
        assert revisions[key] == iv.revision + 1, f"revisions of {key}: gap before {iv}"
    checked = 0
    for system_id, source in keys:
        state = await store.load(f"{system_id}/{source}")
        assert state is not None, f"stream {system_id}/{source} was never started"
        truth: list[tuple[int, int]]
        if source == "battery":
            truth = [
                (t.end_at, t.charge_wh)
                for t in sim.ground_truth_battery(system_id, start, state.watermark)
            ]
        else:
            truth = [
                (t.end_at, t.charge_wh)
                for t in sim.ground_truth_encharge(system_id, source, start, state.watermark)
            ]
        for end_at, charge_wh in truth:
            got = by_key.get((system_id, source, end_at))
            assert got is not None, f"lost {system_id}/{source} @ {end_at}"
            if not got.partial:
                assert got.charge_wh == charge_wh, (system_id, source, end_at)
            checked += 1
    return checked
