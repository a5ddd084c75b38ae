"""Revisions benchmark: what re-reading partial intervals costs and what it fixes.

The issue's late mix on the simulator: 30 systems x 3 Encharges, 5 % of Encharge uploads
2 h late, settle 1 h, 30 simulated hours, a ``FleetPoller`` run twice on the same fleet
(same seed): with ``revise_for=timedelta(0)`` (the baseline: no revisions) and with the
default.  Rows:

1. requests per delivered interval, default / baseline (goal <= 1.05x: the re-read rides
   on the window each poll reads anyway);
2. battery intervals whose last emission is not their final value although every device
   has reported it (goal 0 with revisions; the baseline's count is the defect);
3. the one-system ``TelemetryPoller`` on the same mix: requests per interval (goal <= 1.05x)
   and wrong final values (goal 0).

``--smoke`` runs 5 systems for 2 hours, the fleet's clock twice as fast (it only proves the
script runs: ``make test``).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from benchtable import Row, emit, is_smoke

from enphase_battery import FleetPoller, QuotaGovernor, RateLimits, TelemetryPoller
from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.simulator import EnphaseSimulator

LATE = {"late_probability": 0.05, "late_delay": timedelta(hours=2)}
#: No per-minute or monthly limit: the clock stands still between steps, so a governor
#: pacing to a budget line would wait forever; requests are what is counted here.
UNLIMITED = RateLimits(100_000)
START = datetime(2026, 6, 3, 6, tzinfo=UTC)
OFF = timedelta(0)
FLEET_SPEED = 1800.0
SMOKE_FLEET_SPEED = 3600.0
DEFAULT = timedelta(hours=6)


def _simulator(systems: int, seed: int = 17) -> EnphaseSimulator:
    return EnphaseSimulator(
        seed=seed,
        systems=systems,
        encharges=3,
        plan=UNLIMITED,
        start=START,
        history=timedelta(hours=2),
        speed=0.0,
        minute_clock="simulated",
        **LATE,
    )


def _wrong_final(
    sim: EnphaseSimulator, emitted: list[TelemetryInterval], margin_s: float = 0.0
) -> tuple[int, int]:
    """(battery intervals emitted, those whose last emission is not final although every
    device of the system has reported them)."""
    last: dict[tuple[int, int], TelemetryInterval] = {}
    for iv in emitted:
        if iv.source == BATTERY:
            key = (iv.system_id, int(iv.end_at.timestamp()))
            if key not in last or iv.revision >= last[key].revision:
                last[key] = iv
    now = sim.clock.timestamp()
    known = now - margin_s
    wrong = 0
    by_system: dict[int, dict[int, tuple[int, int, int | None]]] = {}
    for system_id, _ in last:
        if system_id not in by_system:
            by_system[system_id] = {
                t.end_at: (t.charge_wh, t.discharge_wh, t.soc_percent)
                for t in sim.ground_truth_battery(system_id, 0, now)
            }
    for (system_id, end), iv in last.items():
        devices = sim.fleet.systems[system_id].encharges
        indexes = [(d, d.index(end)) for d in devices]
        if not all(0 <= i < len(d) and sim.arrival.visible_at(d, i) <= known for d, i in indexes):
            continue  # not final yet: nobody can know its final value
        final = by_system[system_id].get(end)
        if iv.partial or (iv.charge_wh, iv.discharge_wh, iv.soc_percent) != final:
            wrong += 1
    return len(last), wrong


async def _drain_idle(poller: Any, emitted: list[TelemetryInterval]) -> None:
    """Take intervals until the poller has nothing due and nothing pending."""

    async def take() -> None:
        async for iv in poller:
            emitted.append(iv)

    consumer = asyncio.ensure_future(take())
    idle = asyncio.ensure_future(poller.wait_idle())
    try:
        await asyncio.wait({consumer, idle}, return_when=asyncio.FIRST_COMPLETED)
        if consumer.done():
            consumer.result()
    finally:
        for task in (consumer, idle):
            task.cancel()
        await asyncio.gather(consumer, idle, return_exceptions=True)


async def _fleet(
    systems: int, hours: int, revise_for: timedelta, speed: float = FLEET_SPEED
) -> dict[str, float]:
    async with _simulator(systems) as sim:
        governor = QuotaGovernor(UNLIMITED, clock=sim.clock)
        emitted: list[TelemetryInterval] = []
        async with sim.make_client(governor=governor) as client:
            poller = FleetPoller(client, concurrency=4, revise_for=revise_for)
            # The fleet paces on the simulated clock: let it run (at FLEET_SPEED, 1 s = 30
            # simulated minutes), plus 3 h for every late upload and the polls that find them.
            end = sim.clock.timestamp() + (hours + 3) * 3600
            sim.clock.speed = speed
            async with poller:
                async for batch in poller.batches(max_size=2000, max_wait=0.05):
                    emitted.extend(batch)
                    await batch.commit()
                    if sim.clock.timestamp() >= end:
                        break
            sim.clock.speed = 0
        intervals = len({(iv.system_id, iv.source, iv.end_at) for iv in emitted})
        # Judged only where the last device reported 1.5 h before the end (the fleet polls
        # a system once its news is listed; an upload in the last minutes is not seen yet).
        battery, wrong = _wrong_final(sim, emitted, margin_s=5400)
        return {
            "requests": sim.request_count,
            "intervals": intervals,
            "battery": battery,
            "wrong": wrong,
            "revisions": sum(1 for iv in emitted if iv.revision),
        }


async def _one_system(hours: int, revise_for: timedelta) -> dict[str, float]:
    async with _simulator(1, seed=23) as sim:
        emitted: list[TelemetryInterval] = []
        async with sim.make_client() as client:
            poller = TelemetryPoller(
                client,
                sim.system_ids[0],
                start_at=sim.clock.now() - timedelta(hours=2),
                poll_interval=3600.0,
                revise_for=revise_for,
                retry_wait_s=(0.0, 0.0),
            )
            async with poller:
                await _drain_idle(poller, emitted)
                for _ in range(hours * 4 + 12):
                    sim.clock.advance(timedelta(minutes=15))
                    poller.poll_now()
                    await _drain_idle(poller, emitted)
            requests = poller.requests
        intervals = len({(iv.source, iv.end_at) for iv in emitted})
        battery, wrong = _wrong_final(sim, emitted)
        return {
            "requests": requests,
            "intervals": intervals,
            "battery": battery,
            "wrong": wrong,
            "revisions": sum(1 for iv in emitted if iv.revision),
        }


def _rows(label: str, off: dict[str, float], on: dict[str, float]) -> list[Row]:
    per_off = off["requests"] / max(1, off["intervals"])
    per_on = on["requests"] / max(1, on["intervals"])
    print(
        f"[{label}] without revisions: {off['requests']:.0f} requests for"
        f" {off['intervals']:.0f} intervals, {off['wrong']:.0f} of {off['battery']:.0f} battery"
        f" intervals wrong for good; with: {on['requests']:.0f} requests for"
        f" {on['intervals']:.0f} intervals, {on['wrong']:.0f} wrong, {on['revisions']:.0f}"
        " revisions"
    )
    return [
        Row(
            f"{label}: requests per interval, revisions vs none",
            per_on,
            "req",
            baseline=per_off,
            goal_op="<=",
            goal_value=1.05,
        ),
        Row(
            f"{label}: battery intervals wrong for good (baseline: no revisions)",
            on["wrong"],
            "intervals",
            baseline=off["wrong"],
            goal_op="<=",
            goal_value=0,
            goal_on="sdk",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    smoke = args.smoke or is_smoke()
    systems, hours = (5, 2) if smoke else (30, 30)
    speed = SMOKE_FLEET_SPEED if smoke else FLEET_SPEED
    rows = _rows(
        f"fleet {systems}x3, {hours} h",
        asyncio.run(_fleet(systems, hours, OFF, speed)),
        asyncio.run(_fleet(systems, hours, DEFAULT, speed)),
    )
    rows += _rows(
        f"one system, {hours} h",
        asyncio.run(_one_system(hours, OFF)),
        asyncio.run(_one_system(hours, DEFAULT)),
    )
    emit(rows, smoke=smoke)


if __name__ == "__main__":
    main()
