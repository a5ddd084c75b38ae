"""A rerun without ``start_at`` resumes every stream where the first run began it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from enphase_battery import RateLimits, TelemetryInterval
from enphase_battery.models.delivered import BATTERY
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.simulator import EnphaseSimulator

START = datetime(2026, 6, 1, 12, tzinfo=UTC)


async def _until_idle(poller: TelemetryPoller) -> list[TelemetryInterval]:
    """Every interval the poller delivers until it waits for its next poll."""
    got: list[TelemetryInterval] = []
    iterator = aiter(poller)
    while True:
        step = asyncio.ensure_future(anext(iterator))
        idle = asyncio.ensure_future(poller.wait_idle())
        done, _ = await asyncio.wait({step, idle}, return_when=asyncio.FIRST_COMPLETED)
        if step in done:
            idle.cancel()
            got.append(step.result())
            continue
        step.cancel()
        return got


async def test_rerun_without_start_at_skips_nothing(tmp_path: Path) -> None:
    checkpoint = tmp_path / "stream.sqlite"
    async with (
        EnphaseSimulator(
            seed=21, systems=1, encharges=2, start=START, history=timedelta(days=4)
        ) as sim,
        sim.make_client(rate_limits=RateLimits(10**6)) as client,
    ):
        system_id = sim.system_ids[0]
        since = START - timedelta(days=3)
        first: list[TelemetryInterval] = []
        # Stop after a few intervals: only the first stream polled has been reached.
        async with TelemetryPoller(
            client, system_id, start_at=since, checkpoint=checkpoint, poll_interval=3600
        ) as poller:
            async for interval in poller:
                first.append(interval)
                if len(first) == 5:
                    await poller.commit()
                    break
        assert len({iv.source for iv in first}) == 1
        async with TelemetryPoller(
            client, system_id, checkpoint=checkpoint, poll_interval=3600
        ) as poller:
            second = await _until_idle(poller)

        delivered = [(iv.source, iv.end_at) for iv in first + second]
        assert len(delivered) == len(set(delivered))  # nothing twice
        for source in (BATTERY, *sim.encharge_serials(system_id)):
            ends = sorted(end for src, end in delivered if src == source)
            assert ends[0] == since + timedelta(minutes=15), source  # nothing skipped
            assert len(ends) == (ends[-1] - ends[0]) // timedelta(minutes=15) + 1, source
