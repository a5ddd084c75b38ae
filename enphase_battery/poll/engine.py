"""The poll engine both pollers run on: one implementation of the stream logic.

A :class:`~enphase_battery.FleetPoller` (many systems) and a
:class:`~enphase_battery.TelemetryPoller` (one) are thin fronts that each hold one
:class:`PollEngine`.  The engine owns its parts:

* the checkpoint store (opened for a path, held for the poller's life, saved on exit);
* the :class:`~enphase_battery.poll.delivery.Delivery`, which hands out what was fetched under
  the commit rule;
* the :class:`~enphase_battery.poll.scheduler.FleetScheduler`, which says which job is next
  (poll a system, list its devices, list the systems);
* the :class:`~enphase_battery.poll.workers.WorkerPool`, which runs the jobs as
  background work of the client's :class:`~enphase_battery.QuotaGovernor`, sleeping on
  the engine's :class:`~enphase_battery.util.clock.Clock`;
* the followed systems and their stream logs; a job's requests go stream by stream
  through :func:`~enphase_battery.poll.window.fetch_window` (one request for one stream) into
  the delivery, with the checkpoint saved as the stream moves.

It reads its :class:`~enphase_battery.poll.settings.PollSettings` (validated before the
engine exists) and asks a small :class:`PollPolicy` what differs between one system and
many: which streams a poll visits and how many windows each (:meth:`PollPolicy.visit`),
what a failure does (:meth:`PollPolicy.failed`: backed off and reported for a fleet,
retried or raised for one system) and whether the systems list is read
(:meth:`PollPolicy.relist`).
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from enphase_battery.exceptions import (
    AuthenticationError,
    EnphaseError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)
from enphase_battery.models.delivered import BATTERY, StreamKey
from enphase_battery.poll.delivery import Delivery
from enphase_battery.poll.followed import FollowedSystem
from enphase_battery.poll.scheduler import Discover, FleetScheduler, Job, Poll, Relist
from enphase_battery.poll.settings import PollSettings
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.poll.window import fetch_window
from enphase_battery.poll.workers import WorkerPool
from enphase_battery.store.checkpoint import (
    CheckpointStore,
    LockingCheckpointStore,
    MemoryCheckpoint,
)
from enphase_battery.util.clock import Clock

if TYPE_CHECKING:
    from enphase_battery.client.client import EnphaseClient

__all__ = ["EngineOps", "PollEngine", "PollPolicy", "StreamOutcome", "open_store"]

_LOGGER = logging.getLogger("enphase_battery.engine")


def open_store(checkpoint: CheckpointStore | str | os.PathLike[str] | None) -> CheckpointStore:
    """The store for the poller's ``checkpoint`` argument."""
    if checkpoint is None:
        return MemoryCheckpoint()
    if isinstance(checkpoint, str) and checkpoint.startswith(("postgresql://", "postgres://")):
        # A DSN, not a file name: the PostgreSQL store (the [postgres] extra).
        from enphase_battery.postgres import PostgresCheckpoint

        return PostgresCheckpoint(checkpoint)
    if isinstance(checkpoint, str | os.PathLike):
        from enphase_battery.store.sqlite import SqliteCheckpoint

        return SqliteCheckpoint(checkpoint)
    if isinstance(checkpoint, CheckpointStore):
        return checkpoint
    raise TypeError("checkpoint must be None, a path or a CheckpointStore")


class StreamOutcome(enum.Enum):
    """How a visit of one stream ended."""

    #: It reached the newest data the API has (or it is no longer followed).
    DONE = "done"
    #: Its windows came back full up to the limit: more history to fetch.
    MORE = "more"
    #: Its system is no longer followed: deliver nothing more of it.
    STOP = "stop"


class EngineOps(Protocol):
    """What a policy may use of its engine: the followed systems, the operations on
    streams (follow, discover, fetch), the scheduler and the clock; never the
    delivery or the workers directly."""

    @property
    def client(self) -> EnphaseClient: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def scheduler(self) -> FleetScheduler: ...
    @property
    def systems(self) -> Mapping[int, FollowedSystem]: ...
    @property
    def requests(self) -> int: ...
    @property
    def pending(self) -> int: ...

    def add(self, system_id: int, *, priority: bool) -> FollowedSystem: ...
    def drop(self, system_id: int) -> None: ...
    def wake(self) -> None: ...
    def count_request(self, system: FollowedSystem | None) -> None: ...
    async def discover(self, system: FollowedSystem) -> None: ...
    async def stream(self, system: FollowedSystem, source: str) -> StreamLog | None: ...
    async def fetch_stream(
        self, system: FollowedSystem, log: StreamLog, *, windows: int | None
    ) -> StreamOutcome: ...


class PollPolicy(Protocol):
    """What differs between one system and a fleet; the engine calls it, and it acts
    on the engine only through :class:`EngineOps`."""

    #: Whether the current poll has fetched all it will (a batch then goes out at once
    #: rather than wait for data that cannot come yet); ``None``: never known.
    poll_over: Callable[[], bool] | None

    async def begin(self) -> None:
        """Follow the first streams or systems (the checkpoint is held by then; the
        workers start right after)."""

    async def visit(self, system: FollowedSystem, job: Poll) -> bool:
        """One poll of ``system``'s streams; returns whether history is left."""

    def failed(self, system: FollowedSystem, job: Poll | Discover, err: EnphaseError) -> None:
        """A job of ``system`` failed with ``err``: report the scheduler, or raise."""

    def succeeded(self, system: FollowedSystem, job: Poll | Discover) -> None:
        """A job of ``system`` is over (after the scheduler has been told)."""

    async def relist(self) -> None:
        """Read the systems list (when the scheduler has a :class:`Relist` job)."""

    async def stream_failed(
        self, system: FollowedSystem, log: StreamLog, err: PermissionDeniedError | NotFoundError
    ) -> None:
        """An Encharge stream answered 403 or 404: raise it for the consumer to see, or
        keep the stream followed and retry it (on record, backed off on its own)."""

    def before_request(self) -> None:
        """A request is about to be spent (may raise to refuse it)."""

    def window_done(self, ready: bool) -> None:
        """A window was fetched and its intervals (``ready``: any) offered."""

    def emptied(self) -> None:
        """Handing out an interval or a batch has left nothing pending."""

    def attach(self, engine: EngineOps) -> None:
        """Keep ``engine``; called once by the engine when its parts are built."""


class PollEngine:
    """The engine under both pollers (see the module docstring); a front holds one.

    Args:
        client: the client; its governor paces and counts every request.
        settings: the validated settings.
        checkpoint: ``None`` (memory), a path, a DSN or a store (refused before the
            client is looked at).
        scheduler: which job is next.
        policy: the one-system or fleet choices; the engine calls
            ``policy.attach(engine)`` once its parts are built.
        clock: what time it is (default: the governor's clock).
    """

    policy: PollPolicy

    def __init__(
        self,
        client: EnphaseClient,
        settings: PollSettings,
        *,
        checkpoint: CheckpointStore | str | os.PathLike[str] | None,
        scheduler: FleetScheduler,
        policy: PollPolicy,
        clock: Clock | None = None,
    ) -> None:
        try:
            self.store = open_store(checkpoint)
        except TypeError as err:
            raise InvalidRequestError(str(err)) from None
        self._owns_store = checkpoint is None or isinstance(checkpoint, str | os.PathLike)
        self.settings = settings
        self.client = client
        self.clock: Clock = clock or client.governor.clock
        self.scheduler = scheduler
        self.policy = policy
        #: The systems followed now, by id.
        self.systems: dict[int, FollowedSystem] = {}
        self.delivery = Delivery(
            self.store,
            self.fill,
            settings.late_horizon_s,
            poll_over=policy.poll_over,
            emptied=policy.emptied,
        )
        self.workers = WorkerPool(
            concurrency=settings.concurrency,
            clock=self.clock,
            next_job=scheduler.next_job,
            run=self._run,
            pending=lambda: self.delivery.pending,
            max_pending=settings.max_pending,
            on_demand=settings.on_demand,
            ready=lambda: self.delivery.ready,
        )
        #: Requests spent (polls, discovery, listing).
        self.requests = 0
        #: The day (epoch days) of the latest request, and the requests spent on it.
        self.requests_day: tuple[int, int] = (0, 0)
        #: Started and not closed: the consumer's next interval is the delivery's.
        self.running = False
        self.started = False
        self.closed = False
        self._held = False
        policy.attach(self)

    # -- lifecycle ------------------------------------------------------------------

    async def acquire(self) -> None:
        """Hold the checkpoint for this poller's life (a second poller is refused)."""
        if self._held or self.closed:
            return
        if isinstance(self.store, LockingCheckpointStore):
            await self.store.acquire()
        self._held = True

    async def start(self) -> None:
        """Hold the checkpoint, follow the first streams, start the workers (once)."""
        if self.started:
            return
        await self.acquire()
        self.started = True
        self.running = True
        await self.policy.begin()
        self.workers.start()

    async def fill(self) -> None:
        """Wait until the workers have offered something (or one failed for good)."""
        await self.start()
        await self.workers.wait_progress()

    async def close(self) -> None:
        """Stop the workers, save what was committed and release the checkpoint."""
        if self.closed:
            return
        self.closed = True
        self.running = False
        try:
            await self.workers.stop()
            streams = [log for system in self.systems.values() for log in system.streams.values()]
            await self.delivery.close(streams)
        finally:
            try:
                if self._held and isinstance(self.store, LockingCheckpointStore):
                    await self.store.release()
            finally:
                self._held = False
                if self._owns_store:
                    await self.store.close()

    # -- what the policies use (:class:`EngineOps`) -----------------------------------

    @property
    def pending(self) -> int:
        """Intervals fetched and not yet handed out."""
        return self.delivery.pending

    def wake(self) -> None:
        """Have the sleeping workers ask the scheduler again (something new to do)."""
        self.workers.wake()

    def add(self, system_id: int, *, priority: bool) -> FollowedSystem:
        """Follow ``system_id`` (scheduled; ``priority`` first when it has news)."""
        system = self.systems.get(system_id)
        if system is not None:
            if priority:
                self.scheduler.add(system_id, priority=True, now=self.clock.time())
            return system
        entry = self.scheduler.add(system_id, priority=priority, now=self.clock.time())
        system = self.systems[system_id] = FollowedSystem(entry)
        return system

    def drop(self, system_id: int) -> None:
        """Follow ``system_id`` no more: what is queued of it is dropped, its checkpoint kept."""
        system = self.systems.pop(system_id, None)
        self.scheduler.remove(system_id)
        if system is not None:
            for log in system.streams.values():
                self.delivery.forget(log)

    def count_request(self, system: FollowedSystem | None) -> None:
        """One request more (``system``'s, or the systems list's)."""
        self.policy.before_request()
        self.requests += 1
        day = int(self.clock.time() // 86_400)
        seen_day, count = self.requests_day
        self.requests_day = (day, count + 1 if seen_day == day else 1)
        if system is not None:
            system.entry.requests += 1

    async def discover(self, system: FollowedSystem) -> None:
        """List the system's devices: follow new Encharges, drop those no longer listed."""
        self.count_request(system)
        devices = await self.client.get_system_devices(system.entry.system_id)
        current = set(devices.encharge_serials)
        for serial in sorted(current):
            if serial not in system.streams:
                if await self.stream(system, serial) is None:
                    return  # unfollowed while its checkpoint loaded
                # A new stream has history to fetch: poll the system soon.
                system.entry.seen_report_at = None
        for source, log in list(system.streams.items()):
            if source != BATTERY and source not in current:
                _LOGGER.info("Encharge %s is no longer listed; not following it", source)
                del system.streams[source]
                system.stream_problems.pop(source, None)
                self.delivery.forget(log)

    async def stream(self, system: FollowedSystem, source: str) -> StreamLog | None:
        """The stream ``source`` of ``system``, followed from its checkpoint on
        (``None``: the system was unfollowed while the checkpoint loaded)."""
        log = system.streams.get(source)
        if log is not None:
            return log
        system_id = system.entry.system_id
        log = await self._load_stream(
            (system_id, source), self.settings.start_at_s, system.start_for_new()
        )
        if self.systems.get(system_id) is not system:
            # Dropped meanwhile (unfollowed, no longer listed, handed to another worker):
            # saving its new stream would write for a system this poller no longer holds.
            return None
        system.streams[source] = log
        await self.delivery.save(log)
        return log

    async def fetch_stream(
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
        settings = self.settings
        fetched = 0
        while windows is None or fetched < windows:
            await self.workers.room()
            self.count_request(system)
            fresh = log.watermark is None
            try:
                result = await fetch_window(
                    self.client,
                    log,
                    settle_s=settings.settle_s,
                    late_horizon_s=settings.late_horizon_s,
                    revise_s=settings.revise_s,
                    last_reports=system.last_reports,
                )
            except (PermissionDeniedError, NotFoundError) as err:
                if battery:
                    raise
                log.cursor = None  # the next poll starts it again from its watermark
                await self.policy.stream_failed(system, log, err)
                if self.systems.get(system.entry.system_id) is not system:
                    return StreamOutcome.STOP
                return StreamOutcome.DONE
            if self.systems.get(system.entry.system_id) is not system:
                return StreamOutcome.STOP  # unfollowed meanwhile: deliver nothing more of it
            if battery and fresh and system.began is None:
                system.began = log.watermark  # where the system's new Encharges start
            if system.stream_problems:
                system.stream_recovered(log.source)
            ready = bool(result.ready)
            self.delivery.offer(log, result.ready, result.ends)
            self.policy.window_done(ready)
            if ready:
                self.workers.offered()
            seen = system.entry.seen_report_at
            if result.done and seen:
                # Saved with this window: after a restart, a systems list showing no
                # later report spares the stream a request (a one-system poller lists
                # nothing, so it records nothing).
                log.reached(seen)
            await self.delivery.save(log)
            if result.done:
                log.cursor = None
                return StreamOutcome.DONE
            fetched += 1
        return StreamOutcome.MORE

    # -- the engine -----------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        policy = self.policy
        if isinstance(job, Relist):
            await policy.relist()
            return
        system = self.systems.get(job.system_id)
        if system is None:
            self.scheduler.finished(job, self.clock.time(), ok=True)
            return
        try:
            if isinstance(job, Discover):
                await self.discover(system)
                backlog = system.entry.backlog
            else:
                self.scheduler.started(job, self.clock.time())
                backlog = await policy.visit(system, job)
                if not job.backfill:
                    system.entry.forced = False
        except (AuthenticationError, QuotaExceededError):
            self.scheduler.finished(job, self.clock.time(), ok=False)
            raise
        except EnphaseError as err:
            policy.failed(system, job, err)
            return
        self.scheduler.finished(job, self.clock.time(), ok=True, backlog=backlog)
        policy.succeeded(system, job)

    async def _load_stream(
        self, key: StreamKey, start_at: int | None, began: int | None
    ) -> StreamLog:
        """A stream to follow from now on: where its checkpoint says, else at
        ``start_at``, else (an Encharge) where its system's battery stream ``began`` in
        this run, else nowhere yet.

        Every stream of a system starts at the same place: ``start_at``, or the
        system's current day as the API's day window answers it.  ``began`` (see
        :meth:`~enphase_battery.poll.followed.FollowedSystem.start_for_new`) is where the
        battery stream started in this run when it had no checkpoint, not where it has
        got to since: the Encharge's intervals in between would never be fetched.  A
        stream without a position asks the API's day window at its first poll, like the
        battery stream of a first run; so does an Encharge first listed in a later run
        (its system's battery stream came from the checkpoint).

        The caller keeps it, then saves it with ``self.delivery.save`` at once: a run
        that stops before polling it must not leave a rerun (without ``start_at``) to
        begin at "today" and skip history.
        """
        stream = StreamLog(key, None)
        saved = await self.store.load(stream.store_key)
        if saved is not None:
            stream = StreamLog(key, saved)
        elif start_at is not None:
            stream.start_at(start_at)
        elif key[1] != BATTERY and began is not None:
            stream.start_at(began)  # a new Encharge starts where its system's streams did
        _LOGGER.debug("following stream %s from %s", stream.store_key, stream.watermark)
        return stream
