"""``stream``: follow new intervals with the poller, resuming from its checkpoint."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from enphase_battery.cli.argtypes import _moment
from enphase_battery.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from enphase_battery.cli.output import _cell, _csv_row, _plural, _StatusLine, _warn
from enphase_battery.cli.pg_stream import is_dsn
from enphase_battery.cli.session import _known_encharges, _open_client
from enphase_battery.cli.settings import _Context, _write_private_text
from enphase_battery.cli.telemetry import _RECORD_FIELDS, _interval_record
from enphase_battery.cli.waiting import next_while_ticking
from enphase_battery.client.client import EnphaseClient
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.poll.settings import check_start_at

if TYPE_CHECKING:
    from enphase_battery.cli.hourly import RowWriter
    from enphase_battery.cli.sinks import SinkOutput


class _IntervalWriter:
    """Writes intervals as JSON lines or CSV rows, flushed one at a time."""

    def __init__(self, handle: TextIO, fmt: str, *, header: bool) -> None:
        self.handle = handle
        self.fmt = fmt
        self._csv = csv.DictWriter(handle, fieldnames=_RECORD_FIELDS, lineterminator="\n")
        if fmt == "csv" and header:
            self._csv.writeheader()
            handle.flush()

    def write(self, interval: TelemetryInterval) -> None:
        record = _interval_record(interval)
        if self.fmt == "csv":
            self._csv.writerow(_csv_row(record))
        else:
            self.handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        # Flushed before the poller is asked for the next interval: that request is what
        # marks this one delivered in the checkpoint.
        self.handle.flush()


class _ProgressLine(_StatusLine):
    """The stream's progress on stderr: rewritten in place on a terminal, else throttled.

    Every line says what is true at that moment: intervals written (and flushed), the
    newest written, and the phase: ``backfilling`` until a poll has reached the end of
    what the API shows *and* all of it is written, ``live`` from then on.  A last line
    always ends the run (``done``, ``interrupted`` or ``stopped``), with the final count.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._live = False
        self._shown_phase: str | None = None
        self.written = 0
        self.newest_written: datetime | None = None
        #: Hourly rows written (``stream --hourly``); ``None``: intervals are written.
        self.rows: int | None = None

    def record(self, interval: TelemetryInterval) -> None:
        """Count one interval written."""
        self.written += 1
        if self.newest_written is None or interval.end_at > self.newest_written:
            self.newest_written = interval.end_at

    def _text(self, phase: str, poller: TelemetryPoller, client: EnphaseClient) -> str:
        left = client.quota_remaining
        newest = "" if self.newest_written is None else f", up to {_cell(self.newest_written)}"
        written = _plural(self.written, "interval")
        if self.rows is not None:
            written += f" in {_plural(self.rows, 'hourly row')}"
        return (
            f"{phase}: {written} written{newest};"
            f" {_plural(poller.progress.requests, 'request')}"
            + ("" if left is None else f", {left} left this month")
        )

    def update(
        self, poller: TelemetryPoller, client: EnphaseClient, *, force: bool = False
    ) -> None:
        """Show the progress, unless it was shown very recently (``force``: show now)."""
        loop_time = asyncio.get_running_loop().time()
        if not self._live and poller.progress.caught_up and poller.pending == 0:
            # Sticky: each later poll starts "not caught up" until it has fetched.
            self._live = True
        phase = "live" if self._live else "backfilling"
        if phase != self._shown_phase:
            force = True
        if not self._due(loop_time, force=force):
            return
        self._shown_phase = phase
        text = self._text(phase, poller, client)
        if self._live:
            text += f"; next poll every {_every(poller.current_poll_interval())}"
        self._show(text)

    def finish(self, outcome: str, poller: TelemetryPoller, client: EnphaseClient) -> None:
        """The last line: how the run ended and the final count."""
        self._show(self._text(outcome, poller, client))
        self.close()


def _every(seconds: float) -> str:
    """A poll interval as people say it: ``5 s``, ``90 s``, ``15 min``, ``1.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _checkpoint_path(ctx: _Context, system_id: int) -> Path:
    """``--checkpoint``, else one SQLite file per system next to the token."""
    if ctx.args.checkpoint:
        return Path(ctx.args.checkpoint).expanduser()
    return ctx.directory / f"stream-{system_id}.sqlite"


def _stream_encharges(ctx: _Context) -> list[str] | tuple[()] | None:
    """``--encharge`` serials; else all (``None``: discovered), or none on the Watt plan.

    Per-Encharge telemetry needs Kilowatt or above: on Watt the API would answer 403.
    """
    if ctx.args.encharge:
        return list(ctx.args.encharge)
    if ctx.plan == "watt":
        if ctx.args.no_battery:
            raise CliError(
                "the Watt plan has no per-Encharge telemetry: drop --no-battery, or give"
                " --plan and --encharge if your plan has it",
                EXIT_USAGE,
            )
        return ()
    return None


def _has_position(checkpoint: Path) -> bool:
    """Whether the SQLite checkpoint already holds a saved position for some stream."""
    if not checkpoint.is_file():
        return False
    import sqlite3  # here, not at the top: `enphase-battery --help` must not load SQLite

    try:
        # Read-only: a peek must not create the file or its table.
        conn = sqlite3.connect(f"{checkpoint.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM stream_checkpoint)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False  # not readable as a checkpoint: the poller says why when it opens it
    return bool(row and row[0])


def _read_since(sidecar: Path) -> datetime | None:
    try:
        text = sidecar.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    try:
        return _moment(text)
    except argparse.ArgumentTypeError:
        return None


def _stream_since(checkpoint: Path, since: datetime | None) -> datetime | None:
    """``--since``, remembered next to the checkpoint for runs that do not repeat it.

    The poller saves a stream's position once it has delivered from it; a stream that a
    short first run never reached has no saved position yet, and must start from the
    same ``--since`` when a later run is given none, or the intervals in between would
    be skipped.  The caller calls this as soon as ``--since`` is known valid, before any
    request: a run stopped (Ctrl-C) or failing before its first delivery keeps it too.
    Once the checkpoint has a position, a different ``--since`` does not replace the
    remembered one (streams it has not seen start from the first), and the run says so
    on stderr rather than ignoring it silently.  Written atomically, mode 0600.
    """
    sidecar = checkpoint.with_name(checkpoint.name + ".since")
    remembered = _read_since(sidecar)
    if since is None:
        return remembered
    if remembered != since and _has_position(checkpoint):
        # The same --since as before (a rerun of the same command) is no news: silent.
        _warn(
            f"checkpoint {checkpoint} already has a position: its streams resume from"
            " there; --since only applies to streams it has not seen yet"
        )
        if remembered is not None:
            _warn(
                f"keeping the --since remembered for this checkpoint,"
                f" {remembered.isoformat()} (not {since.isoformat()}); delete {sidecar}"
                " to change it"
            )
            return remembered
    if remembered != since:
        _write_private_text(sidecar, since.isoformat() + "\n")
    return since


def _open_output(path: str | None) -> tuple[TextIO, bool, bool]:
    """(handle, whether we own it, whether a CSV header is due): ``path`` opened to append."""
    if path is None:
        return sys.stdout, False, True
    out_path = Path(path).expanduser()
    header = not out_path.exists() or out_path.stat().st_size == 0
    return out_path.open("a", encoding="utf-8", newline=""), True, header


async def _cmd_stream(ctx: _Context) -> int:
    args = ctx.args
    if args.since is not None:
        # Before any request, and before it is remembered, on every path.
        check_start_at(args.since)
    from enphase_battery.cli.sinks import sink_target

    # Before the paths split: a PostgreSQL sink is the checkpoint too, a SQLite one is
    # unless --checkpoint says otherwise.
    target = sink_target(args)
    systems = getattr(args, "systems", None) or []
    if args.all_systems or len(systems) > 1 or is_dsn(args.checkpoint):
        # A PostgreSQL checkpoint is shared with other runs: the fleet path, with leases.
        if args.all_systems and systems:
            raise CliError("give --all-systems or --system, not both", EXIT_USAGE)
        from enphase_battery.cli.fleet_stream import _cmd_stream_fleet

        if not args.all_systems and not systems:
            systems = [ctx.system_id()]
        return await _cmd_stream_fleet(ctx, None if args.all_systems else systems)
    if systems:
        args.system = systems[0]
    system_id = ctx.system_id()
    encharges = _stream_encharges(ctx)
    checkpoint = _checkpoint_path(ctx, system_id)
    # Here, not at the top: `enphase-battery --help` must not load SQLite.
    from enphase_battery.cli.hourly import _HourlyWriter, check_mode

    check_mode(checkpoint, hourly=args.hourly)
    # The arguments are valid: remember --since now, not once the poller is built, so
    # that a Ctrl-C or a failure in between does not leave a rerun starting "today".
    since = _stream_since(checkpoint, args.since)
    output: SinkOutput | None = None
    if target is not None:
        from enphase_battery.cli.sinks import SinkOutput

        output = SinkOutput(ctx, target, checkpoint)
        out_handle, owns_handle, header = sys.stdout, False, False
    else:
        out_handle, owns_handle, header = _open_output(args.out)
    hourly_writer: RowWriter | None = None
    if args.hourly:
        hourly_writer = output or _HourlyWriter(out_handle, args.format, header=header)
    writer = (
        None if hourly_writer or output else _IntervalWriter(out_handle, args.format, header=header)
    )
    progress = _ProgressLine(sys.stderr)
    running: list[tuple[TelemetryPoller, EnphaseClient]] = []
    outcome = "stopped"
    try:
        if output is not None:
            await output.open()
        async with _open_client(ctx) as client:
            poller = TelemetryPoller(
                client,
                system_id,
                encharges=await _known_encharges(client, system_id, encharges),
                include_battery=not args.no_battery,
                start_at=since,
                checkpoint=checkpoint,
                poll_interval=args.poll_interval,
                revise_for=args.revise_for,
            )
            async with poller:
                running.append((poller, client))
                if hourly_writer is not None:
                    from enphase_battery.cli.hourly import stream_hourly

                    await stream_hourly(
                        poller,
                        checkpoint,
                        hourly_writer,
                        args,
                        caught_up=poller.wait_caught_up if args.until_caught_up else None,
                        progress=progress,
                        refresh=lambda: progress.update(poller, client),
                    )
                elif output is not None:
                    from enphase_battery.cli.sinks import run_sink

                    await run_sink(
                        poller,
                        output,
                        args,
                        caught_up=poller.wait_caught_up if args.until_caught_up else None,
                        record=progress.record,
                        tick=lambda: progress.update(poller, client),
                    )
                while writer is not None and (
                    args.max_intervals is None or progress.written < args.max_intervals
                ):
                    interval = await _next_interval(
                        poller,
                        until_caught_up=args.until_caught_up,
                        tick=lambda: progress.update(poller, client),
                    )
                    if interval is None:
                        break
                    writer.write(interval)
                    # Written and flushed: only now does it count as delivered.
                    await poller.commit()
                    progress.record(interval)
                    progress.update(poller, client)
        outcome = "done"
    except (asyncio.CancelledError, KeyboardInterrupt):
        outcome = "interrupted"
        raise
    finally:
        if running and (outcome != "stopped" or progress.written or running[0][0].requests):
            # A failure before any work (a checkpoint fault) is its error line alone.
            progress.finish(outcome, *running[0])
        progress.close()
        if owns_handle:
            out_handle.close()
        if output is not None:
            await output.close()
    return EXIT_OK


async def _next_interval(
    poller: TelemetryPoller, *, until_caught_up: bool, tick: Callable[[], None]
) -> TelemetryInterval | None:
    """The poller's next interval, calling ``tick`` while waiting for it; with
    ``until_caught_up``, ``None`` once ``poller.wait_caught_up()`` returns first."""
    caught_up = poller.wait_caught_up if until_caught_up else None
    return await next_while_ticking(poller, tick=tick, caught_up=caught_up)
