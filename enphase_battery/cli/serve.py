"""``enphase-battery serve``: a long-running exporter.

It follows the systems (``--system``, repeatable, or ``--all-systems``) with a
:class:`~enphase_battery.FleetPoller` on a SQLite checkpoint (or, on a ``postgresql://``
checkpoint, as one worker of a ``LeasedFleet``: several ``serve`` and ``stream`` runs
share the systems), delivers every interval
exactly once to ``--out`` when given (the sinks of ``stream``), and serves, on
``--listen HOST:PORT``:

* ``GET /metrics``: the Prometheus text format of what it has cached
  (:mod:`enphase_battery.sinks.metrics`); a scrape never sends an API request;
* ``GET /healthz``: 200 while polling works, 503 with a one-line reason once it has
  stalled (no answered API request for ``--stall-after``), the token was refused or the
  quota is spent.

SIGTERM and SIGINT finish the batch in hand, save the checkpoint and exit 0 (within
:data:`STOP_GRACE_S`: a batch a sink cannot take by then is not committed and comes
again on the next start).  One log line per event worth knowing on stderr: start,
caught up, a system's problem and its recovery, quota warnings, stop.

``prometheus-client`` renders the text format (the ``exporter`` extra).  It does not
fight asyncio: its own HTTP server (a thread) is not used; aiohttp serves the two
routes on the command's event loop and asks the library only to render the cached
state, which takes no lock the poll loop holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from enphase_battery.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from enphase_battery.exceptions import (
    AuthenticationError,
    EnphaseError,
    QuotaExceededError,
    RateLimitError,
)

if TYPE_CHECKING:
    from aiohttp import web

    from enphase_battery.cli.settings import _Context
    from enphase_battery.cli.sinks import SinkOutput
    from enphase_battery.poll import Batch, FleetPoller
    from enphase_battery.sinks.metrics import ExporterState, RequestCounter

__all__ = ["DEFAULT_LISTEN", "STOP_GRACE_S"]

_LOGGER = logging.getLogger("enphase_battery.serve")

#: Where ``serve`` listens by default (loopback: put a reverse proxy in front to expose it).
DEFAULT_LISTEN = "127.0.0.1:9830"
#: How long a stop waits for the batch in hand before giving it up (it comes again).
STOP_GRACE_S = 10.0
#: How often the cached progress (quota, lag, problems) is refreshed from the poller.
REFRESH_S = 5.0
#: How long a poller stopped by a refused token or a spent quota waits before it tries
#: again (the exporter stays up, /healthz saying why).
RETRY_FATAL_S = 300.0


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliError(f"--listen takes HOST:PORT, got {value!r}", EXIT_USAGE)
    return host.strip("[]"), int(port)


def _setup_logging() -> None:
    """One line per event on stderr (journald adds the time under systemd)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(logging.INFO)
    _LOGGER.propagate = False
    # The SDK's own warnings (a sink retrying, a refused token...), one line each.
    sdk = logging.getLogger("enphase_battery")
    if not sdk.handlers:
        sdk.addHandler(handler)
        sdk.setLevel(logging.WARNING)


async def _cmd_serve(ctx: _Context) -> int:
    args = ctx.args
    host, port = _listen(args.listen)
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise CliError(
            "serve needs prometheus-client: pip install 'enphase-battery[exporter]'", EXIT_USAGE
        ) from None
    from enphase_battery.cli.pg_stream import is_dsn
    from enphase_battery.cli.sinks import SinkOutput, sink_target
    from enphase_battery.cli.stream import _stream_since
    from enphase_battery.sinks.metrics import ExporterState

    if args.all_systems and args.systems:
        raise CliError("give --all-systems or --system, not both", EXIT_USAGE)
    target = sink_target(args)
    if args.out is not None and target is None:
        raise CliError(
            "serve writes to a database: --out sqlite:///PATH or influxdb://HOST:PORT/DB",
            EXIT_USAGE,
        )
    dsn: str | None = args.checkpoint if is_dsn(args.checkpoint) else None
    checkpoint: Path | str
    if dsn is None:
        from enphase_battery.cli.hourly import check_mode

        checkpoint = _serve_checkpoint(ctx)
        check_mode(checkpoint, hourly=False)
        since = _stream_since(checkpoint, args.since)
    else:
        # Shared with other runs (serve or stream) through PostgreSQL: leases split the
        # systems; the schema's mode is checked once the database is open.
        checkpoint, since = dsn, args.since
    systems = None if args.all_systems else (args.systems or [ctx.system_id()])
    _setup_logging()
    state = ExporterState(stall_after_s=args.stall_after)
    output = (
        SinkOutput(ctx, target, checkpoint if isinstance(checkpoint, Path) else None)
        if target is not None
        else None
    )
    runner = await _start_http(state, host, port)
    stop = asyncio.Event()
    work = asyncio.create_task(
        _supervise(ctx, state, output, checkpoint, since, systems, stop), name="serve-poll"
    )
    _LOGGER.info(
        "serving http://%s:%s/metrics and /healthz; %s; checkpoint %s%s",
        host,
        port,
        "every system" if systems is None else f"systems {', '.join(map(str, systems))}",
        "in PostgreSQL" if dsn is not None else checkpoint,
        f"; writing to {target.kind}" if target is not None else "",
    )
    try:
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            # A stop signal (or Ctrl-C): the batch in hand is delivered and the poller
            # saves its checkpoint as it closes.
            _LOGGER.info("stopping: finishing the batch in hand, saving the checkpoint")
            stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(work), STOP_GRACE_S)
            except TimeoutError:
                _LOGGER.warning(
                    "the batch in hand was not delivered within %.0f s: it comes again"
                    " on the next start",
                    STOP_GRACE_S,
                )
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
            _LOGGER.info("stopped: %s intervals delivered", state.intervals_delivered)
            args.stopped_gracefully = True
    finally:
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        await runner.cleanup()
    return EXIT_OK


def _serve_checkpoint(ctx: _Context) -> Path:
    """``--checkpoint``, else ``<config dir>/serve.sqlite``."""
    if ctx.args.checkpoint:
        return Path(ctx.args.checkpoint).expanduser()
    return ctx.directory / "serve.sqlite"


async def _start_http(state: ExporterState, host: str, port: int) -> web.AppRunner:
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from enphase_battery.sinks.metrics import registry

    metrics = registry(state)

    async def get_metrics(_: web.Request) -> web.Response:
        # Rendered from the cached state: no API request, no await in between.
        response = web.Response(body=generate_latest(metrics))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def get_healthz(_: web.Request) -> web.Response:
        healthy, line = state.health()
        return web.Response(status=200 if healthy else 503, text=line + "\n")

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", get_healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise CliError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return runner


async def _supervise(
    ctx: _Context,
    state: ExporterState,
    output: SinkOutput | None,
    checkpoint: Path | str,
    since: datetime | None,
    systems: list[int] | None,
    stop: asyncio.Event,
) -> None:
    """Poll and deliver until ``stop``; a refused token or a spent quota stops the
    poller for a while (``/healthz`` says why) and it starts again."""
    delay = 5.0
    while not stop.is_set():
        try:
            await _poll(ctx, state, output, checkpoint, since, systems, stop)
            return
        except (AuthenticationError, QuotaExceededError, RateLimitError) as err:
            what = "token refused" if isinstance(err, AuthenticationError) else "quota spent"
            state.stopped = f"{what}: {err}"
            _LOGGER.error("%s: %s; trying again in %.0f s", what, err, RETRY_FATAL_S)
            wait = RETRY_FATAL_S
        except (EnphaseError, OSError) as err:
            state.stopped = None
            state.failed(f"{type(err).__name__}: {err}")
            _LOGGER.error("polling failed: %s: %s; trying again in %.0f s", type(err).__name__,
                          err, delay)  # fmt: skip
            wait, delay = delay, min(delay * 2, RETRY_FATAL_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def _poll(
    ctx: _Context,
    state: ExporterState,
    output: SinkOutput | None,
    checkpoint: Path | str,
    since: datetime | None,
    systems: list[int] | None,
    stop: asyncio.Event,
) -> None:
    """One run of the poller (a :class:`FleetPoller` on SQLite, or this worker's
    ``LeasedFleet`` on a PostgreSQL checkpoint) until ``stop``."""
    from enphase_battery.cli.session import _open_client
    from enphase_battery.cli.waiting import next_while_ticking
    from enphase_battery.poll import FleetPoller
    from enphase_battery.sinks.metrics import RequestCounter

    args = ctx.args
    async with contextlib.AsyncExitStack() as stack:
        if output is not None:
            await output.open()
            stack.push_async_callback(output.close)
        deliver: Callable[[Batch], Awaitable[object]]
        current: Callable[[], FleetPoller]
        batches: AsyncIterator[Batch]
        if isinstance(checkpoint, Path):
            client = await stack.enter_async_context(_open_client(ctx))
            stack.callback(client.observe_requests(RequestCounter(state)))
            poller = FleetPoller(
                client,
                systems=systems,
                checkpoint=checkpoint,
                start_at=since,
                encharges=ctx.plan != "watt",
                revise_for=args.revise_for,
                relist_every=args.relist_every,
            )
            await stack.enter_async_context(poller)
            batches = aiter(poller.batches(max_size=1000, max_wait=1.0))
            current = lambda: poller  # noqa: E731
            deliver = output.deliver if output is not None else _commit
        else:
            batches, current, deliver = await _leased(
                ctx, stack, output, checkpoint, since, systems, RequestCounter(state)
            )
        state.stopped = None
        events = _Events(state, current)
        refresher = asyncio.create_task(_refresh(events))
        stack.push_async_callback(_cancel, refresher)
        idle = _Idle(state, current)

        async def stopping() -> None:
            await stop.wait()

        while not stop.is_set():
            batch = await next_while_ticking(batches, tick=idle.check, caught_up=stopping)
            if batch is None:
                break
            if await deliver(batch) is not False:
                state.record(batch)
        events.refresh()


async def _commit(batch: Batch) -> None:
    await batch.commit()


async def _leased(
    ctx: _Context,
    stack: contextlib.AsyncExitStack,
    output: SinkOutput | None,
    dsn: str,
    since: datetime | None,
    systems: list[int] | None,
    counter: RequestCounter,
) -> tuple[AsyncIterator[Batch], Callable[[], FleetPoller], Callable[[Batch], Awaitable[object]]]:
    """This run as one worker of a ``LeasedFleet`` on the PostgreSQL checkpoint ``dsn``:
    its batches, its current poller, and how a batch is delivered (``False``: a lease
    was lost with it in hand; nothing written, it comes again)."""
    from enphase_battery.cli.hourly_pg import check_pg_mode
    from enphase_battery.cli.pg_stream import LEASE_TTL_S
    from enphase_battery.cli.session import _open_client

    try:
        from enphase_battery.poll import LeasedFleet
        from enphase_battery.postgres import Database, PostgresGovernorBackend, quote_ident
        from enphase_battery.sinks import postgres as pg_sinks
    except ImportError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    schema = ctx.args.pg_schema
    db = Database(dsn)
    stack.push_async_callback(db.close)
    await check_pg_mode(db, schema, hourly=False)
    client = await stack.enter_async_context(
        _open_client(ctx, governor_backend=PostgresGovernorBackend(db, schema=schema))
    )
    stack.callback(client.observe_requests(counter))
    fleet = await stack.enter_async_context(
        LeasedFleet(
            client,
            db,
            systems=systems,
            schema=schema,
            ttl=LEASE_TTL_S,
            start_at=since,
            encharges=ctx.plan != "watt",
            revise_for=ctx.args.revise_for,
        )
    )
    in_db = output is not None and output.target.kind == "postgresql"
    if in_db:
        await fleet.checkpoint.ensure_ready()
        await db.run(
            lambda conn: pg_sinks.create_tables(conn, quote_ident(schema)),
            what="creating the sink's tables",
        )
    writer = pg_sinks.interval_writer(quote_ident(schema))

    async def deliver(batch: Batch) -> bool:
        if in_db:
            # The rows and the checkpoint in one fenced transaction.
            return await fleet.commit_batch(batch, writer)
        if output is not None:
            await output.write_intervals(batch.intervals)
        return await fleet.commit(batch)

    return aiter(fleet.batches(max_size=1000, max_wait=1.0)), lambda: fleet.poller, deliver


class _Idle:
    """Says "caught up" once per stretch of catching up: no system with history to
    fetch or news not polled yet, nothing fetched and not delivered (read from the
    cached progress, refreshed every :data:`REFRESH_S`)."""

    def __init__(self, state: ExporterState, poller: Callable[[], FleetPoller]) -> None:
        self.state = state
        self.poller = poller
        self.shown = False

    def check(self) -> None:
        progress = self.state.progress
        if progress is None or not progress.systems:
            return
        if progress.systems_with_backlog or progress.systems_waiting:
            self.shown = False
        elif not self.shown and self.poller().pending == 0:
            self.shown = True
            _LOGGER.info(
                "caught up: %s systems, %s streams, %s intervals delivered; %s requests"
                " this month (forecast %s)",
                progress.systems,
                progress.streams,
                self.state.intervals_delivered,
                progress.requests_this_month,
                progress.forecast_this_month,
            )


class _Events:
    """The cached progress, and a log line when a system's problem starts or ends and
    when the month's quota is in danger."""

    def __init__(self, state: ExporterState, poller: Callable[[], FleetPoller]) -> None:
        self.state = state
        self.poller = poller
        self._problems: dict[tuple[int, str | None], str] = {}
        self._quota_warned = False

    def refresh(self) -> None:
        poller, state = self.poller(), self.state
        progress = poller.progress
        state.progress = progress
        state.lag_s = {
            sid: lag
            for sid in poller.system_ids
            if (lag := poller.progress_of(sid).lag_s) is not None
        }
        problems = poller.problems
        state.problems = problems
        now = {(p.system_id, p.source): f"{p.error} ({p.status or 'no status'}): {p.message}"
               for p in problems}  # fmt: skip
        for key, text in now.items():
            if self._problems.get(key) != text:
                where = f", Encharge {key[1]}" if key[1] else ""
                _LOGGER.warning("system %s%s: %s", key[0], where, text)
        for key in self._problems.keys() - now.keys():
            where = f", Encharge {key[1]}" if key[1] else ""
            _LOGGER.info("system %s%s: recovered", key[0], where)
        self._problems = now
        quota = progress.monthly_quota
        if (
            quota
            and not self._quota_warned
            and (progress.forecast_this_month > quota or progress.requests_this_month > 0.9 * quota)
        ):
            self._quota_warned = True
            _LOGGER.warning(
                "quota: %s of %s requests used this month, forecast %s",
                progress.requests_this_month,
                quota,
                progress.forecast_this_month,
            )


async def _refresh(events: _Events) -> None:
    while True:
        events.refresh()
        await asyncio.sleep(REFRESH_S)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
