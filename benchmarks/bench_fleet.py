"""Fleet benchmark: one API key, many systems, a simulated week on the Partner plan.

Side by side in one run, on the same simulated fleet (same seed):

* the SDK: :class:`~enphase_battery.FleetPoller` (change detection, stalest first,
  under the client's quota governor at ``quota_share`` 0.8);
* the baseline: every stream polled round-robin, one request at a time, with exactly as
  many requests as the fleet poller spent (the same stream logic, only the choice of
  what to fetch differs).

Prints and emits (benchtable rows):

1. requests spent vs ``quota_share`` of the month's quota pro rata for the period
   (goal <= 1.0), counted on the server side, and per-minute 429s (goal 0);
2. requests per delivered interval vs the minimum possible (one week window per stream
   per week);
3. freshness: from an interval becoming visible (all its devices reported) to its
   delivery, p50 / p95, fleet vs round-robin (goal: baseline p50 at least 3x the fleet's);
4. at the larger size: event-loop lag p99 (goal < 50 ms), CPU seconds per 1,000 delivered
   intervals (the simulator shares the process: an upper bound), and memory held per
   stream by the poller (goal <= 2 KB).

Realistic mix: 80 % Wi-Fi (every 15 min), 15 % cellular (a batch every 6 h), 5 % offline
for a day then backfilling.  The simulated clock runs ``--speed`` times real time and the
plan's minute window counts simulated time, so a week takes minutes, not days.

Run: ``.venv/bin/python benchmarks/bench_fleet.py`` (defaults: 1,000 systems for one
simulated day at 600x, then 10,000 systems for 6 hours at 300x: about 10 minutes);
``--days 7`` is the issue's week (about 20 minutes per side); ``--large 0`` skips the
large fleet; ``--smoke`` runs 30 systems for 2.4 h.

A whole month (does the budget line repay the start-up burst?): ``--month`` starts on the
first of the simulator's month and runs to its end; ``--scale 10`` divides the fleet and
the plan (per-minute limit and monthly quota) by 10, which keeps every system's share of
the quota, and so its freshness, the same while the run costs a tenth; ``--no-baseline``
skips the round-robin side.  The issue's month:
``bench_fleet.py --month --scale 10 --no-baseline --large 0 --speed 3000``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from benchtable import Row, emit, is_smoke

from enphase_battery import FleetPoller, QuotaGovernor, RateLimits, TelemetryInterval
from enphase_battery.models.delivered import BATTERY
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.poll.window import fetch_window
from enphase_battery.quota.state import background_work, calendar_month
from enphase_battery.simulator import DEFAULT_START, EnphaseSimulator
from enphase_battery.simulator.uplink import FleetMix

SHARE = 0.8


@dataclass(frozen=True)
class Setup:
    """What every side of one run shares: the plan and where the simulated clock starts."""

    plan: RateLimits = RateLimits.PARTNER
    start: datetime = DEFAULT_START

    def scaled(self, scale: float) -> Setup:
        """The plan divided by ``scale`` (for a fleet divided by as much)."""
        if scale == 1:
            return self
        quota = self.plan.monthly_quota
        assert quota is not None
        plan = RateLimits(max_rate=self.plan.max_rate / scale, monthly_quota=int(quota / scale))
        return Setup(plan, self.start)


MIX = FleetMix(cellular=0.15, offline=0.05, offline_within_s=5 * 86_400, offline_for_s=86_400)


def _simulator(systems: int, speed: float, setup: Setup) -> EnphaseSimulator:
    return EnphaseSimulator(
        seed=11,
        systems=systems,
        encharges=2,
        plan=setup.plan,
        start=setup.start,
        history=timedelta(hours=2),
        speed=0.0,
        minute_clock="simulated",
        fleet_mix=MIX,
    )


class _Freshness:
    """Delivery minus visibility (simulated seconds) of every delivered interval."""

    def __init__(self, sim: EnphaseSimulator) -> None:
        self.sim = sim
        self.samples: list[float] = []

    def record(self, iv: TelemetryInterval) -> None:
        sim = self.sim
        system = sim.fleet.systems.get(iv.system_id)
        if system is None:
            return
        end = int(iv.end_at.timestamp())
        devices = (
            system.encharges
            if iv.source == BATTERY
            else [d for d in system.encharges if d.serial == iv.source]
        )
        seen = [sim.arrival.visible_at(d, i) for d in devices if 0 <= (i := d.index(end)) < len(d)]
        if seen:
            self.samples.append(max(0.0, sim.clock.timestamp() - max(seen)))

    def quantile(self, q: float) -> float:
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.01)
        samples.append(max(0.0, loop.time() - before - 0.01))


def _deep_size(obj: Any, seen: set[int]) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(_deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__slots__"):
        size += sum(_deep_size(getattr(obj, s), seen) for s in obj.__slots__ if hasattr(obj, s))
    return size


async def _run_fleet(systems: int, days: float, speed: float, setup: Setup) -> dict[str, Any]:
    async with _simulator(systems, speed, setup) as sim:
        governor = QuotaGovernor(setup.plan, clock=sim.clock, quota_share=SHARE)
        fresh = _Freshness(sim)
        lag: list[float] = []
        stop = asyncio.Event()
        async with sim.make_client(governor=governor) as client:
            poller = FleetPoller(client, concurrency=8)
            started = sim.clock.timestamp()
            end = started + days * 86_400
            cpu = time.process_time()
            wall = time.monotonic()
            sim.clock.speed = speed
            ticker = asyncio.ensure_future(_loop_lag(lag, stop))
            delivered = 0
            async with poller:
                async for batch in poller.batches(max_size=2000, max_wait=0.05):
                    for iv in batch:
                        fresh.record(iv)
                    delivered += len(batch)
                    await batch.commit()
                    if sim.clock.timestamp() >= end:
                        break
                sim.clock.speed = 0
                memory = _deep_size(poller._engine.systems, set())
                streams = poller.progress.streams
                per_system = [poller.progress_of(s).requests for s in poller.system_ids]
            stop.set()
            await ticker
            cpu = time.process_time() - cpu
            wall = time.monotonic() - wall
        elapsed = sim.clock.timestamp() - started
        first_month = int(calendar_month(started)[0])
        month_requests = sim.limiter.past_months.get(first_month, sim.limiter.month_used)
        return {
            "started": started,
            "requests": sim.request_count,
            "month_requests": month_requests,
            "minute_429": sim.limiter.refused["minute"],
            "delivered": delivered,
            "elapsed_s": elapsed,
            "streams": streams,
            "fresh": fresh,
            "lag_p99": sorted(lag)[int(0.99 * (len(lag) - 1))] if lag else float("nan"),
            "cpu_s": cpu,
            "wall_s": wall,
            "memory_per_stream": memory / max(1, streams),
            "per_system": per_system,
        }


async def _run_round_robin(
    systems: int, days: float, speed: float, requests: int, setup: Setup
) -> _Freshness:
    """Every stream in turn, ``requests`` requests spread evenly over the period."""
    async with _simulator(systems, speed, setup) as sim:
        governor = QuotaGovernor(setup.plan, clock=sim.clock, quota_share=1.0)
        fresh = _Freshness(sim)
        async with sim.make_client(governor=governor) as client:
            logs: list[StreamLog] = []
            for system_id in sim.system_ids:
                logs.append(StreamLog((system_id, BATTERY), None))
                logs.extend(
                    StreamLog((system_id, s), None) for s in sim.encharge_serials(system_id)
                )
            started = sim.clock.timestamp()
            spacing = days * 86_400 / max(1, requests)
            sim.clock.speed = speed
            reports: dict[int, dict[str, int]] = {}
            with background_work():
                for n in range(requests):
                    due = started + n * spacing
                    if due > sim.clock.timestamp():
                        await sim.clock.sleep(due - sim.clock.timestamp())
                    log = logs[n % len(logs)]
                    log.cursor = log.watermark
                    result = await fetch_window(
                        client,
                        log,
                        settle_s=3600.0,
                        late_horizon_s=6 * 86_400.0,
                        last_reports=reports.setdefault(log.system_id, {}),
                    )
                    for iv in result.ready:
                        fresh.record(iv)
                        log.mark_delivered(int(iv.end_at.timestamp()), 6 * 86_400.0)
            sim.clock.speed = 0
    return fresh


def _report(
    label: str,
    systems: int,
    fleet: dict[str, Any],
    rr: _Freshness | None,
    setup: Setup,
    rr_factor: float = 1.0,
) -> list[Row]:
    quota = setup.plan.monthly_quota or 0
    month_start, month_end = calendar_month(fleet["started"])
    month_s = month_end - month_start  # the simulated month (June: 30 days)
    budget = quota * SHARE * fleet["elapsed_s"] / month_s
    # The governor lets background work run up to burst_s (6 h) of budget ahead of its
    # line at start-up, and slows down by as much later in the month.
    burst = quota * SHARE * 6 * 3600 / month_s
    streams = fleet["streams"] or systems * 3
    minimum = streams * max(1.0, fleet["elapsed_s"] / (7 * 86_400))
    delivered = max(1, fleet["delivered"])
    f50, f95 = fleet["fresh"].quantile(0.5), fleet["fresh"].quantile(0.95)
    print(
        f"[{label}] {systems} systems x 3 streams, {fleet['elapsed_s'] / 86_400:.2f} simulated days"
        f" in {fleet['wall_s']:.0f} s: {fleet['requests']} requests (budget {budget:.0f}),"
        f" {fleet['minute_429']} minute 429s, {fleet['delivered']} intervals delivered"
    )
    print(
        f"[{label}] freshness p50 {f50 / 60:.0f} min, p95 {f95 / 60:.0f} min;"
        f" requests per system min/median/max {min(fleet['per_system'])}/"
        f"{statistics.median(fleet['per_system']):.0f}/{max(fleet['per_system'])}"
    )
    whole_month = fleet["started"] <= month_start and fleet["elapsed_s"] >= month_s - 3600
    spent = (
        "in the whole month / quota_share of it"
        if whole_month
        else ("/ quota_share of the month (pro rata)")
    )
    if whole_month:
        # The server's count for the month itself (not what ran over into the next).
        spent_figure, budget = fleet["month_requests"], quota * SHARE
    else:
        spent_figure = fleet["requests"]
    rows = [
        Row(
            f"{label}: requests spent {spent}",
            spent_figure,
            "requests",
            baseline=budget,
            goal_op="<=",
            goal_value=1.0,
            note="includes the start-up burst, repaid over the rest of the month",
        ),
        Row(
            f"{label}: requests spent / (pro rata share + 6 h start-up burst)",
            fleet["requests"],
            "requests",
            baseline=budget + burst,
            goal_op="<=",
            goal_value=1.0,
        ),
        Row(
            f"{label}: per-minute 429s (server side)",
            fleet["minute_429"],
            "429s",
            goal_op="<=",
            goal_value=0,
            goal_on="sdk",
        ),
        Row(
            f"{label}: requests per delivered interval vs the minimum",
            fleet["requests"] / delivered,
            "req/interval",
            baseline=minimum / delivered,
            note="minimum: one week window per stream per week",
        ),
        Row(f"{label}: freshness p95", f95 / 60, "min"),
    ]
    if rr is not None:
        r50, r95 = rr.quantile(0.5), rr.quantile(0.95)
        same = "the same requests" if rr_factor == 1 else f"{rr_factor:g}x the requests"
        print(f"[{label}] round-robin with {same}: p50 {r50 / 60:.0f} min, p95 {r95 / 60:.0f} min")
        if rr_factor == 1:
            rows.append(
                Row(
                    f"{label}: freshness p50, fleet vs round-robin (same requests)",
                    f50 / 60,
                    "min",
                    baseline=r50 / 60,
                    goal_op="<=",
                    goal_value=1 / 3,
                    note="goal: at least 3x better p50",
                )
            )
        else:
            rows.append(
                Row(
                    f"{label}: freshness p50, fleet vs round-robin with {same}",
                    f50 / 60,
                    "min",
                    baseline=r50 / 60,
                    goal_op="<=",
                    goal_value=1.0,
                    note=f"goal: {rr_factor:g}x fewer requests at the same p50 (or better)",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--large-days", type=float, default=0.25)
    parser.add_argument("--speed", type=float, default=600.0)
    parser.add_argument("--large-speed", type=float, default=300.0)
    parser.add_argument(
        "--month", action="store_true", help="run the simulator's whole month from its first"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="divide the fleet and the plan by this"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the round-robin side")
    parser.add_argument(
        "--rr-factor",
        type=float,
        default=1.0,
        help="give round-robin this many times the fleet's requests (3: '3x fewer requests')",
    )
    args = parser.parse_args()
    smoke = args.smoke or is_smoke()
    if smoke:
        args.systems, args.days, args.large, args.speed = 30, 0.1, 0, 3000.0
    setup = Setup()
    if args.month:
        first = DEFAULT_START.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        month_start, month_end = calendar_month(first.timestamp())
        setup = Setup(start=datetime.fromtimestamp(month_start, UTC))
        args.days = (month_end - month_start) / 86_400
    setup = setup.scaled(args.scale)
    systems = max(1, round(args.systems / args.scale))
    label = f"{systems} systems" + (f" (1/{args.scale:g} plan)" if args.scale != 1 else "")
    rows: list[Row] = []
    fleet = asyncio.run(_run_fleet(systems, args.days, args.speed, setup))
    rr = None
    if not args.no_baseline:
        # The baseline's plan has no monthly cap: with --rr-factor above 1 it may spend
        # more than the share, so that it shows what freshness those requests would buy.
        unlimited = Setup(RateLimits(max_rate=setup.plan.max_rate), setup.start)
        budget = round(fleet["requests"] * args.rr_factor)
        rr = asyncio.run(_run_round_robin(systems, args.days, args.speed, budget, unlimited))
    rows += _report(label, systems, fleet, rr, setup, args.rr_factor)
    if args.large:
        big = asyncio.run(_run_fleet(args.large, args.large_days, args.large_speed, Setup()))
        rows += _report(f"{args.large} systems", args.large, big, None, Setup())
        per_1000 = big["cpu_s"] / max(1, big["delivered"]) * 1000
        print(
            f"[{args.large} systems] loop lag p99 {big['lag_p99'] * 1000:.1f} ms,"
            f" CPU {per_1000:.2f} s per 1,000 intervals,"
            f" {big['memory_per_stream']:.0f} B per stream"
        )
        rows += [
            Row(
                f"{args.large} systems: event-loop lag p99",
                big["lag_p99"] * 1000,
                "ms",
                goal_op="<=",
                goal_value=50,
                goal_on="sdk",
            ),
            Row(
                f"{args.large} systems: CPU per 1,000 delivered intervals",
                per_1000,
                "s",
                note="simulator in the same process: an upper bound",
            ),
            Row(
                f"{args.large} systems: memory held per stream",
                big["memory_per_stream"],
                "B",
                goal_op="<=",
                goal_value=2048,
                goal_on="sdk",
            ),
        ]
    # Figures without a goal are printed above; the shared table takes the rows with one.
    for row in rows:
        if row.goal_op is None:
            print(
                f"{row.figure}: {row.sdk:,.3g} {row.unit}"
                + (f" (baseline {row.baseline:,.3g})" if row.baseline else "")
            )
    emit([row for row in rows if row.goal_op is not None], smoke=smoke)


if __name__ == "__main__":
    main()
