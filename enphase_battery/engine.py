"""The poll engine both pollers run on: one implementation of the stream logic.

A :class:`~enphase_battery.FleetPoller` (many systems) and a
:class:`~enphase_battery.TelemetryPoller` (one) are fronts over this engine:

* the :class:`~enphase_battery.scheduler.FleetScheduler` says which job is next (poll a
  system, list its devices, list the systems);
* the :class:`~enphase_battery.fleet_workers.WorkerPool` runs the jobs, as background
  work of the client's :class:`~enphase_battery.QuotaGovernor`, sleeping on the engine's
  :class:`~enphase_battery.Clock`;
* a job's requests go stream by stream through :func:`~enphase_battery.window.fetch_window`
  (one request for one stream) into the :class:`~enphase_battery.delivery.Delivery`,
  with the checkpoint saved as the stream moves.

What differs between one system and many is a handful of choices a front makes here:
which streams a poll visits and how many windows each (:meth:`PollEngine._visit`), what a
failure does (:meth:`PollEngine._failed`: backed off and reported for a fleet, retried or
raised for one system), and whether the systems list is read (:meth:`PollEngine._relist`).
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .checkpoint import CheckpointStore
from .clock import Clock
from .exceptions import (
    AuthenticationError,
    EnphaseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)
from .fleet_system import FollowedSystem
from .fleet_workers import WorkerPool
from .front import PollerFront
from .scheduler import Discover, FleetScheduler, Job, Poll, Relist
from .streams import BATTERY, StreamLog
from .window import fetch_window

if TYPE_CHECKING:
    from .client import EnphaseClient

__all__ = ["PollEngine", "StreamOutcome"]

_LOGGER = logging.getLogger(__name__)


class StreamOutcome(enum.Enum):
    """How a visit of one stream ended."""

    #: It reached the newest data the API has (or it is no longer followed).
    DONE = "done"
    #: Its windows came back full up to the limit: more history to fetch.
    MORE = "more"
    #: Its system is no longer followed: deliver nothing more of it.
    STOP = "stop"


class PollEngine(PollerFront):
    """The engine under both pollers (see the module docstring); a front subclasses it.

    Args:
        client: the client; its governor paces and counts every request.
        checkpoint / settle / late_horizon / revise_for / poll_over: for
            :class:`.PollerFront`.
        start_at: where new streams begin (``None``: the system's current day).
        clock: what time it is (default: the governor's clock).
        scheduler: which job is next.
        concurrency: workers (requests in flight at once).
        max_pending: above this, the workers fetch (and pay for) nothing more.
        on_demand: fetch only while the consumer waits with nothing ready (one system:
            a request is spent only when the consumer needs it).
    """

    def __init__(
        self,
        client: EnphaseClient,
        *,
        checkpoint: CheckpointStore | str | os.PathLike[str] | None,
        start_at: datetime | None,
        clock: Clock | None,
        settle: timedelta,
        late_horizon: timedelta,
        revise_for: timedelta,
        scheduler: FleetScheduler,
        concurrency: int,
        max_pending: int,
        on_demand: bool = False,
        poll_over: Callable[[], bool] | None = None,
    ) -> None:
        # The front first: a bad checkpoint is refused before the client is looked at.
        super().__init__(
            checkpoint,
            settle=settle,
            late_horizon=late_horizon,
            revise_for=revise_for,
            poll_over=poll_over,
        )
        self.client = client
        self.clock: Clock = clock or client.governor.clock
        self.start_at = start_at
        self.scheduler = scheduler
        self._systems: dict[int, FollowedSystem] = {}
        self._workers = WorkerPool(
            concurrency=concurrency,
            clock=self.clock,
            next_job=self.scheduler.next_job,
            run=self._run,
            pending=lambda: self._delivery.pending,
            max_pending=max_pending,
            on_demand=on_demand,
            ready=lambda: self._delivery.ready,
        )
        #: Requests this poller spent (polls, discovery, listing).
        self.requests = 0
        self._requests_day: tuple[int, int] = (0, 0)

    # -- the engine's part of the front (:class:`~enphase_battery.front.PollerFront`) --

    async def _begin(self) -> None:
        self._workers.start()

    async def _stop(self) -> None:
        await self._workers.stop()

    def _streams_now(self) -> list[StreamLog]:
        return [log for system in self._systems.values() for log in system.streams.values()]

    async def _fill(self) -> None:
        """Wait until the workers have offered something (or one failed for good)."""
        await self._start()
        await self._workers.wait_progress()

    @property
    def idle(self) -> bool:
        """Whether nothing is due and everything fetched has been handed out."""
        return self._workers.idle

    async def wait_idle(self) -> None:
        """Return once every worker waits for something to become due, nothing pending."""
        await self._workers.wait_idle()

    # -- what a front decides -------------------------------------------------------

    async def _visit(self, system: FollowedSystem, job: Poll) -> bool:
        """One poll of ``system``'s streams; returns whether history is left."""
        raise NotImplementedError

    def _failed(self, system: FollowedSystem, job: Poll | Discover, err: EnphaseError) -> None:
        """A job of ``system`` failed with ``err``: report the scheduler, or raise."""
        raise NotImplementedError

    def _succeeded(self, system: FollowedSystem, job: Poll | Discover) -> None:
        """A job of ``system`` is over (after the scheduler has been told)."""

    async def _relist(self) -> None:
        """Read the systems list (a front that schedules :class:`Relist` implements it)."""
        raise NotImplementedError

    async def _stream_failed(
        self, system: FollowedSystem, log: StreamLog, err: PermissionDeniedError | NotFoundError
    ) -> None:
        """An Encharge stream answered 403 or 404; by default that is the caller's to see.

        A front that goes on instead must not let the stream fall behind unseen: it
        keeps the stream followed and retries it (the fleet: on record in ``problems``,
        backed off on its own).
        """
        raise err

    def _window_done(self, ready: bool) -> None:
        """A window was fetched and its intervals (``ready``: any) offered."""
        if ready:
            self._workers.offered()

    # -- the engine -----------------------------------------------------------------

    def _add(self, system_id: int, *, priority: bool) -> FollowedSystem:
        system = self._systems.get(system_id)
        if system is not None:
            if priority:
                self.scheduler.add(system_id, priority=True, now=self.clock.time())
            return system
        entry = self.scheduler.add(system_id, priority=priority, now=self.clock.time())
        system = self._systems[system_id] = FollowedSystem(entry)
        return system

    def _count_request(self, system: FollowedSystem | None) -> None:
        self.requests += 1
        day = int(self.clock.time() // 86_400)
        seen_day, count = self._requests_day
        self._requests_day = (day, count + 1 if seen_day == day else 1)
        if system is not None:
            system.entry.requests += 1

    async def _run(self, job: Job) -> None:
        if isinstance(job, Relist):
            await self._relist()
            return
        system = self._systems.get(job.system_id)
        if system is None:
            self.scheduler.finished(job, self.clock.time(), ok=True)
            return
        try:
            if isinstance(job, Discover):
                await self._discover(system)
                backlog = system.entry.backlog
            else:
                self.scheduler.started(job, self.clock.time())
                backlog = await self._visit(system, job)
                if not job.backfill:
                    system.entry.forced = False
        except (AuthenticationError, QuotaExceededError):
            self.scheduler.finished(job, self.clock.time(), ok=False)
            raise
        except EnphaseError as err:
            self._failed(system, job, err)
            return
        self.scheduler.finished(job, self.clock.time(), ok=True, backlog=backlog)
        self._succeeded(system, job)

    async def _discover(self, system: FollowedSystem) -> None:
        """List the system's devices: follow new Encharges, drop those no longer listed."""
        self._count_request(system)
        devices = await self.client.get_system_devices(system.entry.system_id)
        current = set(devices.encharge_serials)
        for serial in sorted(current):
            if serial not in system.streams:
                if await self._stream(system, serial) is None:
                    return  # unfollowed while its checkpoint loaded
                # A new stream has history to fetch: poll the system soon.
                system.entry.seen_report_at = None
        for source, log in list(system.streams.items()):
            if source != BATTERY and source not in current:
                _LOGGER.info("Encharge %s is no longer listed; not following it", source)
                del system.streams[source]
                system.stream_problems.pop(source, None)
                self._delivery.forget(log)

    async def _stream(self, system: FollowedSystem, source: str) -> StreamLog | None:
        """The stream ``source`` of ``system``, followed from its checkpoint on
        (``None``: the system was unfollowed while the checkpoint loaded)."""
        log = system.streams.get(source)
        if log is not None:
            return log
        start_at = int(self.start_at.timestamp()) if self.start_at is not None else None
        system_id = system.entry.system_id
        log = await self._load_stream((system_id, source), start_at, system.start_for_new())
        if self._systems.get(system_id) is not system:
            # Dropped meanwhile (unfollowed, no longer listed, handed to another worker):
            # saving its new stream would write for a system this poller no longer holds.
            return None
        system.streams[source] = log
        await self._delivery.save(log)
        return log

    async def _fetch_stream(
        self, system: FollowedSystem, log: StreamLog, *, windows: int | None
    ) -> StreamOutcome:
        """Windows of ``log`` from its cursor, up to ``windows`` (``None``: until the
        newest data), each offered to the consumer and the checkpoint saved."""
        battery = log.source == BATTERY
        began = None if battery or log.watermark is not None else system.start_for_new()
        if began is not None:
            # Listed before the battery stream started, fetched after: it starts where
            # the battery stream did, not at a later "current day".
            log.start_at(began)
            log.cursor = log.poll_start()
        fetched = 0
        while windows is None or fetched < windows:
            await self._workers.room()
            self._count_request(system)
            fresh = log.watermark is None
            try:
                result = await fetch_window(
                    self.client,
                    log,
                    settle_s=self._settle_s,
                    late_horizon_s=self._late_horizon_s,
                    revise_s=self._revise_s,
                    last_reports=system.last_reports,
                )
            except (PermissionDeniedError, NotFoundError) as err:
                if battery:
                    raise
                log.cursor = None  # the next poll starts it again from its watermark
                await self._stream_failed(system, log, err)
                if self._systems.get(system.entry.system_id) is not system:
                    return StreamOutcome.STOP
                return StreamOutcome.DONE
            if self._systems.get(system.entry.system_id) is not system:
                return StreamOutcome.STOP  # unfollowed meanwhile: deliver nothing more of it
            if battery and fresh and system.began is None:
                system.began = log.watermark  # where the system's new Encharges start
            if system.stream_problems:
                system.stream_recovered(log.source)
            self._delivery.offer(log, result.ready, result.ends)
            self._window_done(bool(result.ready))
            await self._delivery.save(log)
            if result.done:
                log.cursor = None
                return StreamOutcome.DONE
            fetched += 1
        return StreamOutcome.MORE
