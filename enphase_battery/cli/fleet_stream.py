"""``stream --all-systems`` / ``stream --system A --system B``: many systems, one checkpoint.

The fleet poller follows every system the token can see (or the ids given) under the
plan's quota; every row carries its ``system_id``.  One SQLite checkpoint holds every
stream, so a rerun resumes each where it stopped.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from enphase_battery.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from enphase_battery.cli.output import _cell, _StatusLine
from enphase_battery.cli.session import _open_client
from enphase_battery.cli.settings import _Context
from enphase_battery.cli.waiting import next_while_ticking
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.fleet import FleetPoller

if TYPE_CHECKING:
    from enphase_battery.cli.hourly import RowWriter
    from enphase_battery.cli.sinks import SinkOutput


def _fleet_checkpoint(ctx: _Context) -> Path:
    """``--checkpoint``, else ``<config dir>/stream-fleet.sqlite``."""
    if ctx.args.checkpoint:
        return Path(ctx.args.checkpoint).expanduser()
    return ctx.directory / "stream-fleet.sqlite"


class _FleetProgress(_StatusLine):
    """One progress line on stderr: rewritten in place on a terminal, else every 5 s."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.written = 0
        self.newest: datetime | None = None
        #: Hourly rows written (``stream --hourly``); ``None``: intervals are written.
        self.rows: int | None = None

    def record(self, interval: TelemetryInterval) -> None:
        self.written += 1
        if self.newest is None or interval.end_at > self.newest:
            self.newest = interval.end_at

    def _text(self, poller: FleetPoller) -> str:
        p = poller.progress
        text = (
            f"{p.systems} systems, {p.streams} streams: {self.written} intervals"
            + ("" if self.rows is None else f" in {self.rows} hourly rows")
            + " written,"
            f" up to {_cell(self.newest)}; {p.requests} requests"
            f" ({p.requests_this_month} this month, forecast {p.forecast_this_month})"
        )
        if p.systems_in_backoff:
            text += f"; {p.systems_in_backoff} in backoff"
        return text

    def update(self, poller: FleetPoller, *, force: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        if not self._due(now, force=force):
            return
        text = self._text(poller)
        # Idle (nothing fetched and waiting to be written): say when the next poll is due,
        # or the line would sit still and look hung.
        due = poller.next_poll_in() if poller.pending == 0 else None
        if due is not None and due >= 1:
            text += f"; next poll in {_duration_text(due)}"
        self._show(text)

    def finish(self, outcome: str, poller: FleetPoller) -> None:
        """The last line, as a single-system stream's: how the run ended, the final count."""
        self._show(f"{outcome}: {self._text(poller)}")
        self.close()


def _duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


async def _cmd_stream_fleet(ctx: _Context, system_ids: list[int] | None) -> int:
    """Stream many systems (``None``: every system the token can see)."""
    from enphase_battery.cli.pg_stream import _cmd_stream_leased, is_dsn
    from enphase_battery.cli.stream import _IntervalWriter, _open_output, _stream_since

    args = ctx.args
    if args.encharge or args.no_battery:
        raise CliError(
            "--encharge and --no-battery pick streams of one system; with several systems"
            " every system's battery and Encharges are followed",
            EXIT_USAGE,
        )
    if args.poll_interval is not None:
        raise CliError(
            "--poll-interval is for one system; several systems are paced by the plan's"
            " quota and polled when they report",
            EXIT_USAGE,
        )
    if is_dsn(args.checkpoint):
        # Shared with other runs through PostgreSQL: leases decide who follows what.
        return await _cmd_stream_leased(ctx, system_ids)
    checkpoint = _fleet_checkpoint(ctx)
    from enphase_battery.cli.hourly import _HourlyWriter, check_mode

    check_mode(checkpoint, hourly=args.hourly)
    since = _stream_since(checkpoint, args.since)
    output = _sink_output(ctx, checkpoint)
    if output is not None:
        out_handle, owns_handle, header = sys.stdout, False, False
    else:
        out_handle, owns_handle, header = _open_output(args.out)
    hourly_writer: RowWriter | None = None
    if args.hourly:
        hourly_writer = output or _HourlyWriter(out_handle, args.format, header=header)
    writer = (
        None if hourly_writer or output else _IntervalWriter(out_handle, args.format, header=header)
    )
    progress = _FleetProgress(sys.stderr)
    running: list[FleetPoller] = []
    outcome = "stopped"
    try:
        if output is not None:
            await output.open()
        async with _open_client(ctx) as client:
            poller = FleetPoller(
                client,
                systems=system_ids,
                checkpoint=checkpoint,
                start_at=since,
                # Per-Encharge telemetry needs Kilowatt or above.
                encharges=ctx.plan != "watt",
                revise_for=args.revise_for,
            )
            async with poller:
                running.append(poller)
                if hourly_writer is not None:
                    from enphase_battery.cli.hourly import stream_hourly

                    await stream_hourly(
                        poller,
                        checkpoint,
                        hourly_writer,
                        args,
                        caught_up=poller.wait_idle if args.until_caught_up else None,
                        progress=progress,
                        refresh=lambda: progress.update(poller),
                    )
                elif output is not None:
                    from enphase_battery.cli.sinks import run_sink

                    await run_sink(
                        poller,
                        output,
                        args,
                        caught_up=poller.wait_idle if args.until_caught_up else None,
                        record=progress.record,
                        tick=lambda: progress.update(poller),
                    )
                while writer is not None and (
                    args.max_intervals is None or progress.written < args.max_intervals
                ):
                    interval = await next_while_ticking(
                        poller,
                        tick=lambda: progress.update(poller),
                        caught_up=poller.wait_idle if args.until_caught_up else None,
                    )
                    if interval is None:
                        break
                    writer.write(interval)
                    # Written and flushed: only now does it count as delivered.
                    await poller.commit()
                    progress.record(interval)
                    progress.update(poller)
                outcome = "done"
                for problem in poller.problems:
                    where = f", Encharge {problem.source}" if problem.source else ""
                    sys.stderr.write(
                        f"system {problem.system_id}{where}: {problem.error}"
                        f" ({problem.status or 'no status'}): {problem.message}\n"
                    )
    except (asyncio.CancelledError, KeyboardInterrupt):
        outcome = "interrupted"
        raise
    finally:
        if running:
            progress.finish(outcome, running[0])
        progress.close()
        if owns_handle:
            out_handle.close()
        if output is not None:
            await output.close()
    return EXIT_OK


def _sink_output(ctx: _Context, checkpoint: Path | None) -> SinkOutput | None:
    """The run's ``--out`` sink (``None``: a file or stdout); ``stream`` checked it."""
    out = ctx.args.out
    if out is None:
        return None
    from enphase_battery.cli.sinks import SinkOutput
    from enphase_battery.sinks.url import parse_sink_url

    target = parse_sink_url(out)
    return None if target is None else SinkOutput(ctx, target, checkpoint)
