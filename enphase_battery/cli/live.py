"""``now``, ``live`` and ``check``: the battery this moment, staying live, the hole check.

* ``now`` prints one line (SoC, power, mode, grid) from ``battery_now()``;
* ``live`` follows the budgeted live stream: one line updated in place on a terminal,
  JSON lines when piped, and what it spent on stderr when it stops (Ctrl-C included);
* ``check`` runs ``reconcile()`` and exits :data:`EXIT_HOLES` when a span does not add up.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from enphase_battery.cli.argtypes import _moment, _positive_int, _positive_seconds
from enphase_battery.cli.errors import EXIT_OK, PROG
from enphase_battery.cli.output import _cell, _jsonable, _out, _plural, _print_json, _table
from enphase_battery.cli.session import _open_client
from enphase_battery.cli.settings import _Context
from enphase_battery.live import LiveBudget, LiveSession
from enphase_battery.live.now import battery_now
from enphase_battery.models.live import LiveFrame

__all__ = ["DEFAULT_BUDGET", "EXIT_HOLES", "add_live_commands"]

#: ``check`` found spans that do not add up.
EXIT_HOLES = 5
#: At most US$1.20 an hour and US$9.60 a day at $0.10 a connection.
DEFAULT_BUDGET = "12/h,96/day"
#: Plans whose grants include system configuration (grid_status).
_CONFIG_PLANS = frozenset({"megawatt", "partner"})


def _budget(text: str) -> LiveBudget:
    try:
        return LiveBudget.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _step(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)\s*([dhm])", text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected e.g. 1d, 6h or 90m, got {text!r}")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
    step = timedelta(**{unit: int(match[1])})
    if step < timedelta(minutes=15):
        raise argparse.ArgumentTypeError("the step must be at least 15 minutes")
    return step


async def _cmd_now(ctx: _Context) -> int:
    system_id = ctx.system_id()
    args = ctx.args
    grid = ctx.plan in _CONFIG_PLANS
    async with _open_client(ctx) as client:
        now = await battery_now(client, system_id, grid=grid, live=bool(args.live))
    if ctx.json:
        data = _jsonable(now)
        data["battery_discharge_w"] = now.battery_discharge_w
        _print_json(data)
    else:
        _out(now.describe())
    return EXIT_OK


def _frame_line(frame: LiveFrame) -> str:
    soc = "?" if frame.battery_soc is None else f"{frame.battery_soc:>3} %"
    out_w = frame.battery_discharge_w
    power = "?" if out_w is None else f"{out_w:+6d} W"
    mode = frame.battery_mode.value if frame.battery_mode else "?"
    grid = frame.grid_status.value if frame.grid_status else "?"
    solar = "" if frame.pv_power is None else f" | PV {frame.pv_power} W"
    home = "" if frame.consumption_power is None else f" | home {frame.consumption_power} W"
    return (
        f"{frame.timestamp:%H:%M:%SZ} {frame.source.value:<6} | SoC {soc} | battery {power}"
        f" | {mode} | {grid}{solar}{home}"
    )


def _spend_line(session: LiveSession) -> str:
    spend = session.spend
    stats = session.stats
    reason = f"; on latest_telemetry: {stats.fallback_reason}" if stats.fallback_reason else ""
    return (
        f"{PROG} live: {spend.connections} connection(s), ${spend.spent} spent"
        f" (budget {session.ledger.budget.describe()}), {stats.live_frames} live and"
        f" {stats.latest_frames} polled frame(s){reason}"
    )


def _span_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(seconds, 3600)
    return f"{hours:.0f} h {rest / 60:.0f} min"


def _note_source(session: LiveSession, tty: bool) -> None:
    """Say on stderr when the session leaves or regains live data, and why."""
    reason = session.stats.fallback_reason
    if reason is None:
        note = "live data again"
    else:
        every = _span_text(session.fallback_interval_s)
        note = f"no live data ({reason}); polling latest_telemetry every {every}"
    sys.stderr.write(("\n" if tty else "") + f"{PROG} live: {note}\n")
    sys.stderr.flush()


async def _cmd_live(ctx: _Context) -> int:
    system_id = ctx.system_id()
    args = ctx.args
    tty = sys.stdout.isatty() and not ctx.json
    write: Callable[[LiveFrame], None]
    if tty:

        def write(frame: LiveFrame) -> None:
            # \r and "clear to end of line": the line updates in place.
            sys.stdout.write("\r" + _frame_line(frame) + "\x1b[K")
            sys.stdout.flush()
    else:

        def write(frame: LiveFrame) -> None:
            record: dict[str, Any] = _jsonable(frame)
            record["battery_discharge_w"] = frame.battery_discharge_w
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()

    options: dict[str, Any] = {"duration_s": args.duration, "fallback": not args.no_fallback}
    if args.poll_interval is not None:
        options["fallback_interval_s"] = args.poll_interval
    count = 0
    reason: str | None = None
    async with _open_client(ctx) as client:
        session = client.live(system_id, budget=args.budget, **options)
        try:
            async with session:
                async for frame in session:
                    stats = session.stats
                    if stats.fallback_reason != reason:
                        reason = stats.fallback_reason
                        _note_source(session, tty)
                    write(frame)
                    count += 1
                    if args.max_frames is not None and count >= args.max_frames:
                        break
        finally:
            if tty:
                sys.stdout.write("\n")
                sys.stdout.flush()
            sys.stderr.write(_spend_line(session) + "\n")
            sys.stderr.flush()
    return EXIT_OK


async def _cmd_check(ctx: _Context) -> int:
    system_id = ctx.system_id()
    args = ctx.args
    async with _open_client(ctx) as client:
        result = await client.reconcile(
            system_id,
            args.since,
            args.until,
            step=args.step,
            # The Watt plan has no per-Encharge telemetry: the system battery it is.
            per_encharge=not args.battery and ctx.plan != "watt",
        )
    if ctx.json:
        data = _jsonable(result)
        for span, out in zip(result.spans, data["spans"], strict=True):
            out["verdict"] = span.verdict.value
        _print_json(data)
    else:
        rows = [
            (
                s.source,
                s.start,
                s.end,
                s.counter_charge_wh,
                s.intervals_charge_wh,
                s.counter_discharge_wh,
                s.intervals_discharge_wh,
                len(s.missing),
                s.verdict.value,
            )
            for s in result.spans
        ]
        headers = ["SOURCE", "FROM", "TO", "METER C", "INTERVALS C", "METER D", "INTERVALS D"]
        _out(_table([*headers, "MISSING", "VERDICT"], rows))
        for span in result.problems:
            for when in span.missing[:20]:
                _out(f"missing: {span.source} interval ending {when:%Y-%m-%d %H:%MZ}")
        for note in result.skipped:
            _out(f"skipped: {note}")
        problems = len(result.problems)
        if problems:
            verdict = f"{problems} span(s) do not add up"
        elif not result.spans:
            # Nothing to add up is not "every span adds up": say why there was none.
            verdict = (
                "nothing was checked: no span with counter readings at both ends"
                f" from {_cell(args.since)} (is it after the newest reading?)"
            )
        else:
            verdict = "every span adds up"
        requests = _plural(result.requests, "request")
        _out(f"{verdict} (tolerance 1 Wh per interval + 2 Wh; {requests})")
    return EXIT_HOLES if result.problems else EXIT_OK


def add_live_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``now``, ``live`` and ``check`` with the parser's ``command()`` helper."""
    now = command("now", "one line: state of charge, battery power, mode, grid")
    now.add_argument(
        "--live",
        action="store_true",
        help="read one live_data event (Kilowatt plan and up; one billed connection, ~$0.10)",
    )
    now.set_defaults(handler=_cmd_now)

    live = command("live", "follow the live stream (billed per connection) within a budget")
    live.add_argument(
        "--budget",
        type=_budget,
        default=LiveBudget.parse(DEFAULT_BUDGET),
        metavar="LIMITS",
        help=f"connections per hour/day, in all, or dollars: e.g. 12/h, 100/day, 50, $5,"
        f" joined by commas (default {DEFAULT_BUDGET})",
    )
    live.add_argument(
        "--duration",
        type=int,
        default=300,
        metavar="S",
        help="seconds each stream is asked to last, 30-300 (default 300: fewest connections)",
    )
    live.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        metavar="S",
        help="seconds between latest_telemetry polls when live is unavailable"
        " (default: a quarter of the plan's monthly quota)",
    )
    live.add_argument(
        "--no-fallback", action="store_true", help="fail instead of polling latest_telemetry"
    )
    live.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
    live.set_defaults(handler=_cmd_live)

    check = command("check", "hole check: do the 15-minute intervals add up to the meters?")
    check.add_argument(
        "--since",
        type=_moment,
        required=True,
        metavar="WHEN",
        help="YYYY-MM-DD (midnight UTC) or an ISO 8601 date-time",
    )
    check.add_argument("--until", type=_moment, metavar="WHEN", help="default: now")
    check.add_argument(
        "--step",
        type=_step,
        default=timedelta(days=1),
        metavar="STEP",
        help="one meter reading per step: 1d (default), 6h, 90m... (one request each)",
    )
    check.add_argument(
        "--battery",
        action="store_true",
        help="check the system battery against the sum of the meters instead of each"
        " Encharge (always so on the Watt plan)",
    )
    check.set_defaults(handler=_cmd_check)
