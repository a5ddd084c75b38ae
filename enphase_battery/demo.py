"""``make demo``: the whole SDK against the embedded simulator, offline, in under a minute.

Starts the simulator in-process with its clock running an hour per second, reads the
battery settings and grid status, then runs the telemetry poller for the system battery
and each Encharge: a day of backfill, then live intervals as the simulated gateway
uploads them.  Prints a compact table on a terminal, JSON lines when piped, and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import TextIO

from . import RateLimits
from .models import converter
from .poller import BATTERY, TelemetryInterval, TelemetryPoller
from .simulator import EnphaseSimulator

_HEADER = (
    f"{'interval end (UTC)':<17}  {'source':<13} {'charge':>7} {'dischg':>7} {'SoC':>4}  devices"
)


def _row(interval: TelemetryInterval) -> str:
    flag = " partial" if interval.partial else ""
    soc = "-" if interval.soc_percent is None else f"{interval.soc_percent}%"
    return (
        f"{interval.end_at:%Y-%m-%d %H:%M}  {interval.source:<13} "
        f"{interval.charge_wh:>5}Wh {interval.discharge_wh:>5}Wh {soc:>4}  "
        f"{interval.devices_reporting}/{interval.total_devices}{flag}"
    )


def _json_line(interval: TelemetryInterval) -> str:
    data = converter.unstructure(interval)
    data["end_at"] = interval.end_at.isoformat()
    return json.dumps(data, separators=(",", ":"))


async def run_demo(*, live_seconds: float, speed: float, out: TextIO, table: bool) -> int:
    """Run the demo; returns the exit code."""
    log = sys.stderr
    async with EnphaseSimulator(
        seed=7,
        systems=1,
        encharges=2,
        speed=speed,
        history=timedelta(days=2),
        # Now and then a device uploads an interval hours late, as cellular gateways do.
        late_probability=0.03,
    ) as sim:
        system_id = sim.system_ids[0]
        print(f"simulator on {sim.base_url} (clock x{speed:g}: an hour per second)", file=log)
        async with sim.make_client(rate_limits=RateLimits.PARTNER) as client:
            settings = await client.get_system_battery_settings(system_id)
            grid = await client.get_system_grid_status(system_id)
            storm = await client.get_system_storm_guard(system_id)
            print(
                f"system {system_id}: profile {settings.battery_mode}, reserve "
                f"{settings.reserve_soc}%, grid {grid.grid_state}, storm guard "
                f"{'on' if storm.storm_guard_status else 'off'}",
                file=log,
            )
            start_at = sim.clock.now() - timedelta(days=1)
            counts: Counter[str] = Counter()
            partial = late = 0
            newest: dict[str, datetime] = {}
            if table:
                print(_HEADER, file=out)
            deadline = time.monotonic() + live_seconds
            async with TelemetryPoller(
                client,
                system_id,
                start_at=start_at,
                poll_interval=1.0,
                # Simulated hours pass in real seconds: settle after two simulated hours.
                settle=timedelta(hours=2),
            ) as poller:
                iterator = aiter(poller)
                while (remaining := deadline - time.monotonic()) > 0:
                    try:
                        interval = await asyncio.wait_for(anext(iterator), remaining)
                    except TimeoutError:
                        break
                    counts[interval.source] += 1
                    partial += interval.partial
                    if interval.end_at < newest.get(interval.source, interval.end_at):
                        late += 1  # arrived after later intervals of its stream
                    newest[interval.source] = max(
                        interval.end_at, newest.get(interval.source, interval.end_at)
                    )
                    print(_row(interval) if table else _json_line(interval), file=out, flush=True)
            progress = poller.progress
            print("\nsummary", file=log)
            for source, count in sorted(counts.items(), key=lambda kv: kv[0] != BATTERY):
                print(f"  {source:<13} {count:>5} intervals", file=log)
            print(
                f"  {sum(counts.values())} intervals ({partial} partial, {late} late) from "
                f"{progress.requests} poller requests; {client.quota_used} API calls in all, "
                f"{client.quota_remaining} left in the month's quota",
                file=log,
            )
            print(f"  newest interval: {progress.newest_end_at}", file=log)
    return 0 if counts.get(BATTERY) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m enphase_battery.demo``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="live phase length")
    parser.add_argument("--speed", type=float, default=3600.0, help="simulated s per real s")
    parser.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    args = parser.parse_args(argv)
    table = sys.stdout.isatty() and not args.json
    try:
        return asyncio.run(
            run_demo(live_seconds=args.seconds, speed=args.speed, out=sys.stdout, table=table)
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
