"""``make demo``: the whole SDK against the embedded simulator, offline, in a few seconds.

Starts the simulator in-process with its clock running an hour per second, reads the
battery settings and grid status, then runs the telemetry poller for the system battery
and each Encharge: a day of backfill, then live intervals as the simulated gateway
uploads them.  Ends on a summary: intervals per stream (partial, late, revised), requests
spent and the quota left.  ``--json`` prints every interval as a JSON line (the summary
then goes to stderr), ``--rows`` as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timedelta
from typing import TextIO

import attrs

from enphase_battery.models import converter
from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.quota import RateLimits
from enphase_battery.simulator import EnphaseSimulator

_HEADER = (
    f"{'interval end (UTC)':<17}  {'source':<13} {'charge':>7} {'dischg':>7} {'SoC':>4}  devices"
)


def _row(interval: TelemetryInterval) -> str:
    flag = " partial" if interval.partial else ""
    revised = f" revision {interval.revision}" if interval.revision else ""
    soc = "-" if interval.soc_percent is None else f"{interval.soc_percent}%"
    return (
        f"{interval.end_at:%Y-%m-%d %H:%M}  {interval.source:<13} "
        f"{interval.charge_wh:>5}Wh {interval.discharge_wh:>5}Wh {soc:>4}  "
        f"{interval.devices_reporting}/{interval.total_devices}{flag}{revised}"
    )


def _json_line(interval: TelemetryInterval) -> str:
    data = converter.unstructure(interval)
    data["end_at"] = interval.end_at.isoformat()
    return json.dumps(data, separators=(",", ":"))


@attrs.define
class StreamTally:
    """What the demo saw of one stream (the system battery or an Encharge)."""

    intervals: int = 0
    partial: int = 0
    #: Arrived after a later interval of the same stream had been handed out.
    late: int = 0
    #: Came again with new values (``revision`` > 0).
    revised: int = 0
    charge_wh: int = 0
    discharge_wh: int = 0
    first_end_at: datetime | None = None
    newest_end_at: datetime | None = None
    last_soc_percent: int | None = None

    def add(self, interval: TelemetryInterval) -> None:
        """Count ``interval`` in (a revision replaces the energy counted for it before)."""
        if interval.revision:
            self.revised += 1
        else:
            self.intervals += 1
            self.partial += interval.partial
            self.charge_wh += interval.charge_wh
            self.discharge_wh += interval.discharge_wh
        if self.newest_end_at is not None and interval.end_at < self.newest_end_at:
            self.late += not interval.revision
        else:
            self.newest_end_at = interval.end_at
            if interval.soc_percent is not None:
                self.last_soc_percent = interval.soc_percent
        if self.first_end_at is None or interval.end_at < self.first_end_at:
            self.first_end_at = interval.end_at


def summary_lines(
    tallies: dict[str, StreamTally],
    *,
    poller_requests: int,
    requests_sent: int,
    quota_used: int,
    quota_left: int | None,
    plan: str,
    seconds: float,
    repeats: int = 0,
) -> list[str]:
    """The demo's closing summary: one row per stream, then what it cost."""
    lines = [
        f"{'stream':<13} {'intervals':>9} {'partial':>7} {'late':>4} {'revised':>7}"
        f" {'charged':>9} {'discharged':>10}  {'SoC':>4}  from .. to (UTC)"
    ]
    ordered = sorted(tallies.items(), key=lambda kv: (kv[0] != BATTERY, kv[0]))
    for source, t in ordered:
        span = (
            f"{t.first_end_at:%m-%d %H:%M} .. {t.newest_end_at:%m-%d %H:%M}"
            if t.first_end_at and t.newest_end_at
            else "-"
        )
        soc = "-" if t.last_soc_percent is None else f"{t.last_soc_percent}%"
        lines.append(
            f"{source:<13} {t.intervals:>9} {t.partial:>7} {t.late:>4} {t.revised:>7}"
            f" {t.charge_wh:>7}Wh {t.discharge_wh:>8}Wh  {soc:>4}  {span}"
        )
    total = sum(t.intervals for t in tallies.values())
    left = "no monthly cap" if quota_left is None else f"{quota_left:,} left this month"
    once = "each delivered once" if not repeats else f"{repeats} delivered twice (a bug!)"
    lines += [
        f"{total} intervals in {seconds:.1f} s, {once};"
        f" {sum(t.revised for t in tallies.values())} revisions of partial ones",
        f"requests: {poller_requests} by the poller, {requests_sent} sent in all;"
        f" quota ({plan}): {quota_used:,} used, {left}",
    ]
    return lines


async def run_demo(
    *, live_seconds: float, speed: float, out: TextIO, each: str | None = None
) -> int:
    """Run the demo; returns the exit code.

    ``each``: ``"json"`` prints every interval as a JSON line on ``out`` (the summary
    then goes to stderr), ``"rows"`` as a table row; ``None`` prints only the summary.
    """
    report = sys.stderr if each == "json" else out
    started = time.monotonic()
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
        print(f"simulator on {sim.base_url} (clock x{speed:g}: an hour per second)", file=report)
        async with sim.make_client(rate_limits=RateLimits.PARTNER) as client:
            settings = await client.get_system_battery_settings(system_id)
            grid = await client.get_system_grid_status(system_id)
            storm = await client.get_system_storm_guard(system_id)
            print(
                f"system {system_id}: profile {settings.battery_mode}, reserve "
                f"{settings.reserve_soc}%, grid {grid.grid_state}, storm guard "
                f"{'on' if storm.storm_guard_status else 'off'}",
                file=report,
            )
            print(
                f"polling a day of backfill, then {live_seconds:g} s of live intervals"
                f" ({live_seconds * speed / 3600:g} simulated hours)...",
                file=report,
                flush=True,
            )
            start_at = sim.clock.now() - timedelta(days=1)
            tallies: dict[str, StreamTally] = {}
            seen: set[tuple[str, datetime, int]] = set()
            repeats = 0
            if each == "rows":
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
                    tallies.setdefault(interval.source, StreamTally()).add(interval)
                    key = (interval.source, interval.end_at, interval.revision)
                    repeats += key in seen
                    seen.add(key)
                    if each is not None:
                        line = _json_line(interval) if each == "json" else _row(interval)
                        print(line, file=out, flush=True)
            usage = client.governor.usage_now()
            lines = summary_lines(
                tallies,
                poller_requests=poller.progress.requests,
                requests_sent=client.requests_sent,
                quota_used=usage.used,
                quota_left=usage.remaining,
                plan=usage.plan,
                seconds=time.monotonic() - started,
                repeats=repeats,
            )
    print("\nsummary", file=report)
    for line in lines:
        print(f"  {line}", file=report)
    if each is None:
        print(
            "\n(every interval: `python -m enphase_battery.cli.demo --rows`, or `--json`;"
            " your own code: README, Quick start)",
            file=report,
        )
    return 0 if BATTERY in tallies and not repeats else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m enphase_battery.cli.demo``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="live phase length")
    parser.add_argument("--speed", type=float, default=3600.0, help="simulated s per real s")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="every interval as a JSON line")
    shown.add_argument("--rows", action="store_true", help="every interval as a table row")
    args = parser.parse_args(argv)
    each = "json" if args.json else "rows" if args.rows else None
    try:
        return asyncio.run(
            run_demo(live_seconds=args.seconds, speed=args.speed, out=sys.stdout, each=each)
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
