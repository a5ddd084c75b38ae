"""Revisions end to end: the poller on the simulator over loopback HTTP, late Encharge
uploads, restarts at random moments, counted against the simulator's ground truth.

"Exactly right": every interval's last emission (its newest revision, what an upserting
consumer holds) carries its final values; each (interval, revision) comes once, apart
from the one in the consumer's hands at a crash.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery import MemoryCheckpoint
from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.poll.poller import TelemetryPoller
from tests.support.poller import (
    HOUR,
    LATE,
    NO_WAIT,
    STOPS,
    Driver,
    Env,
    check_exactly_once,
    epoch,
    last_emissions,
    open_env,
    run_with_restarts,
    wrong_final,
)


async def follow(
    env: Env, revise_for: timedelta, hours: int
) -> tuple[list[TelemetryInterval], int]:
    """Intervals of ``hours`` of 15-minute polls from 2 h back, and the requests spent."""
    sim = env.sim
    start_at = sim.clock.now() - timedelta(hours=2)
    poller = TelemetryPoller(
        env.client,
        env.system_id,
        start_at=start_at,
        poll_interval=HOUR,
        retry_wait_s=NO_WAIT,
        revise_for=revise_for,
    )
    driver = Driver(poller)
    emitted = await driver.pull()
    for _ in range(hours * 4):
        emitted += await driver.tick(sim, timedelta(minutes=15))
    # Long enough for every late upload to be in, then one more poll.
    emitted += await driver.tick(sim, timedelta(hours=2, minutes=15))
    await driver.cancel()
    await poller.aclose()
    check_exactly_once(env, emitted, epoch(start_at))
    return emitted, poller.requests


async def test_late_uploads_end_with_final_values_only_with_revisions() -> None:
    """Before (``revise_for=0``) some battery intervals keep a partial value for good;
    with the default every one ends final, and the revisions cost no extra request."""
    counts: dict[str, tuple[int, int, int]] = {}
    requests: dict[str, int] = {}
    for name, revise_for in (("off", timedelta(0)), ("default", timedelta(hours=6))):
        async with open_env(seed=7, history=timedelta(days=1), **LATE) as env:
            emitted, requests[name] = await follow(env, revise_for, hours=12)
            battery = [iv for iv in emitted if iv.source == BATTERY]
            wrong = wrong_final(env, emitted, min(epoch(iv.start_at) for iv in emitted))
            revised = sum(1 for iv in emitted if iv.revision)
            counts[name] = (len(last_emissions(battery)), len(wrong), revised)
    total_off, wrong_off, revised_off = counts["off"]
    total_on, wrong_on, revised_on = counts["default"]
    print(
        f"battery intervals {total_off}: wrong final without revisions {wrong_off},"
        f" with {wrong_on} ({revised_on} revisions); requests {requests}"
    )
    assert total_on == total_off
    assert wrong_off > 0  # the defect the revisions fix shows in this mix
    assert revised_off == 0
    assert wrong_on == 0
    assert revised_on >= wrong_off
    # The re-reads ride on the windows each poll reads anyway.
    assert requests["default"] == requests["off"]


async def test_an_unchanged_reread_emits_nothing() -> None:
    # No late uploads: partial intervals never happen, so nothing is ever revised.
    async with open_env(seed=3, history=timedelta(days=1)) as env:
        emitted, _ = await follow(env, timedelta(hours=6), hours=3)
        assert not any(iv.revision for iv in emitted)
        assert not any(iv.partial for iv in emitted)


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
async def test_random_restarts_lose_no_revision_and_repeat_none(
    tmp_path: Path, seed: int, store_kind: str
) -> None:
    """Consumers stopped every way (break, aclose, cancel, crash, uncommitted) after a
    random number of intervals, each followed by a new poller on the same checkpoint."""
    rng = random.Random(seed)
    async with open_env(seed=seed, history=timedelta(days=1), **LATE) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=3)
        memory = MemoryCheckpoint()
        path = tmp_path / "checkpoint.db"

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=memory if store_kind == "memory" else path,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        plan = [(rng.randint(1, 60), rng.choice(STOPS)) for _ in range(8)]
        ticks = [timedelta(minutes=15)] * 48
        run = await run_with_restarts(
            env, make_poller, plan, ticks, final_advance=timedelta(hours=2, minutes=15)
        )
        check_exactly_once(env, run.emitted, epoch(start_at), may_repeat=run.in_hand_at_crash)
        assert not wrong_final(env, run.emitted, epoch(start_at))
        assert any(iv.revision for iv in run.emitted)
