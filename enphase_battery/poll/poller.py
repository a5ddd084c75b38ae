"""The telemetry poller: every 15-minute battery and Encharge interval, exactly once.

How it stays correct against the real service:

* **What is new comes from the API and the checkpoint, never the local clock.**  Each
  stream (each Encharge, and the system's ``"battery"`` aggregate) keeps a watermark
  (:mod:`enphase_battery.poll.stream_log`).  Each poll asks for the week after the watermark (the
  widest window, 672 intervals, one request) and keeps going window by window while the
  API answers with full windows, so catch-up after downtime costs one request per stream
  per week of history.  The clock only paces the polls (:mod:`enphase_battery.poll.pacing`).
* **Delivery** (:mod:`enphase_battery.poll.delivery`): an interval counts as delivered when
  the consumer asks for the next one or calls :meth:`TelemetryPoller.commit`; the
  checkpoint is saved before the next interval is handed out.  An exception or a
  cancellation in the consumer never delivers the interval in hand: after a restart (or
  a crash) at most that one interval comes again.
* **Quota**: polls are paced so that, in steady state, the poller spends at most
  ``quota_share`` (80 %) of the plan's monthly quota, leaving the rest for the user's
  other calls; its requests are background work of the client's governor, so the user's
  own calls never queue behind them.

The poller is a thin front over the engine the fleet runs on (:mod:`.engine`), with the
one-system policy (:class:`OneSystemPolicy`): one system, no systems list, a poll every
pacing interval that fetches every stream and catches up within the poll, one request at
a time and only when the consumer wants more, and errors raised to the consumer instead
of isolated.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from enphase_battery.exceptions import (
    EnphaseError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ResponseFormatError,
)
from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.poll.batch import Batch
from enphase_battery.poll.engine import EngineOps, PollEngine
from enphase_battery.poll.followed import FollowedSystem
from enphase_battery.poll.front import PollerFront, collect
from enphase_battery.poll.pacing import (
    MIN_POLL_INTERVAL_S,
    MONTH_S,
    check_month,
    is_transient,
    poll_interval_for,
    retry_wait,
    share_spent,
)
from enphase_battery.poll.scheduler import Discover, FleetScheduler, Poll
from enphase_battery.poll.settings import (
    DEFAULT_REVISE_FOR,
    MAX_BACKFILL,
    PollSettings,
    check_start_at,
)
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.store.checkpoint import CheckpointStore

if TYPE_CHECKING:
    from enphase_battery.client.client import EnphaseClient

__all__ = [
    "BATTERY",
    "MAX_BACKFILL",
    "MIN_POLL_INTERVAL_S",
    "Batch",
    "OneSystemPolicy",
    "PollerProgress",
    "TelemetryInterval",
    "TelemetryPoller",
    "check_start_at",
    "collect",
    "poll_interval_for",
]

_LOGGER = logging.getLogger("enphase_battery.poller")


@attrs.frozen
class PollerProgress:
    """A snapshot of the poller's work, e.g. for a progress line."""

    intervals_emitted: int
    requests: int
    newest_end_at: datetime | None
    caught_up: bool
    retries: int
    watermarks: dict[str, datetime | None]


#: The poller's own retries of an answer that does not parse (after the client's).
FORMAT_RETRIES = 3


class TelemetryPoller(PollerFront):
    """Async iterator over new battery and Encharge intervals of one system, exactly once.

    Args:
        client: the :class:`~enphase_battery.EnphaseClient` to poll with.
        system_id: the system.
        encharges: Encharge serials to follow; ``None`` discovers them with
            ``get_system_devices`` (and again every ``rediscover_every``, so Encharges
            added later are picked up); ``()`` follows none.
        include_battery: follow the system-level ``"battery"`` stream.
        start_at: where to begin when the checkpoint has no state (up to two years back);
            ``None`` starts at the beginning of the system's current day.
        checkpoint: ``None`` (memory), a path (a SQLite file), a ``postgresql://`` DSN
            (:class:`~enphase_battery.postgres.PostgresCheckpoint`), or a
            :class:`~enphase_battery.store.checkpoint.CheckpointStore`.
        poll_interval: seconds between polls; ``None`` paces from the client's
            :class:`~enphase_battery.RateLimits` (see :func:`poll_interval_for`).
        settle: how long a partial interval is held back, relative to the newest data.
        late_horizon: how long a missing interval is waited for, relative to the newest
            data; must stay under a week so one request still covers it.
        revise_for: how long an interval that went out ``partial`` is re-read,
            relative to the newest data: when its values change (the late Encharge's
            part came in), it goes out again with ``revision`` one up and ``partial``
            updated; an unchanged re-read sends nothing.  The re-read rides on the
            window each poll reads anyway.  ``timedelta(0)``: never (a partial interval
            keeps its first values); else longer than ``settle``, under a week.
        quota_share: the part of the monthly quota the poller's pacing plans for.
        rediscover_every: how often ``encharges=None`` looks for new Encharges.
        retry_wait_s: first and longest wait (seconds, doubling, jittered) of the
            poller's own retries, after the client's retries of a request gave up.  A
            429's reset time is waited for too, but no longer than the longest wait.

    Use ``async with TelemetryPoller(...) as poller: async for interval in poller: ...``
    so that the checkpoint is saved and released on any exit.  An interval counts as
    delivered when the next one is asked for or at ``await poller.commit()``; leaving
    the loop (``break``, an exception, a cancellation) without ``commit()`` leaves the
    last interval to come again after a restart.  :meth:`batches` hands out
    :class:`~enphase_battery.poll.delivery.Batch` es instead.

    Time and quota: the poller paces itself on the clock of the client's
    :class:`~enphase_battery.QuotaGovernor` (real time unless the governor has another,
    such as a simulator's), and its requests are *background work* of that governor: they
    count in ``client.governor.usage_now().used_background``, never take more than the
    governor's ``quota_share`` of the month, and your own calls through the client go
    first.  The default pacing plans for that share, so steady polling is held back
    little if at all (in a 31-day month its last days are stretched a little).  A
    poller that wants more (a short ``poll_interval``, frequent :meth:`poll_now`, a long
    catch-up on a small plan) goes at full speed for the governor's ``burst_s`` (6 h) of
    budget, then along the month's budget line: on Watt about 6 requests at once, then
    one every ~55 minutes.  Once that share is spent it waits for next month (logged
    once); when the whole month is spent it raises :class:`~enphase_battery.QuotaExceededError`.

    Raises out of the iterator: :class:`~enphase_battery.AuthenticationError` (the user
    must sign in again), :class:`~enphase_battery.NotFoundError` (the system is gone, or
    an Encharge's telemetry answers 404: one given in ``encharges``, or one discovery
    still lists; a discovered Encharge no longer listed is dropped with a log line),
    :class:`~enphase_battery.PermissionDeniedError` (a 403 on any stream, the system
    battery's or an Encharge's) and :class:`~enphase_battery.QuotaExceededError`: no
    stream stops without the consumer seeing it.  Transient failures (429, 5xx,
    network) are retried inside with backoff.

    Where streams start without a checkpoint: at ``start_at``, else at the system's
    current day (the API's day window); an Encharge discovered later in the run starts
    where the battery stream started (not where it has got to), but no more than a week
    before the battery stream's watermark.
    """

    def __init__(
        self,
        client: EnphaseClient,
        system_id: int,
        *,
        encharges: Iterable[str] | None = None,
        include_battery: bool = True,
        start_at: datetime | None = None,
        checkpoint: CheckpointStore | str | os.PathLike[str] | None = None,
        poll_interval: float | timedelta | None = None,
        settle: timedelta = timedelta(hours=1),
        late_horizon: timedelta = timedelta(days=6),
        revise_for: timedelta = DEFAULT_REVISE_FOR,
        quota_share: float = 0.8,
        rediscover_every: timedelta = timedelta(hours=24),
        retry_wait_s: tuple[float, float] = (5.0, 900.0),
    ) -> None:
        from enphase_battery.models import validation

        self.system_id = validation.system_id(system_id)
        explicit = (
            None if encharges is None else tuple(validation.serial_number(s) for s in encharges)
        )
        self.include_battery = include_battery
        if start_at is not None:
            validation.aware_datetime("start_at", start_at)
            check_start_at(start_at)
        if not 0 < quota_share <= 1:
            raise InvalidRequestError("quota_share must be in (0, 1]")
        if poll_interval is not None:
            poll_interval = validation.seconds("poll_interval", poll_interval)
        retry_wait = validation.wait_range("retry_wait_s", retry_wait_s, allow_zero=True)
        # 0: look for new Encharges at every poll (discovery runs inside a poll, once).
        validation.duration("rediscover_every", rediscover_every, allow_zero=True)
        if not include_battery and explicit == ():
            raise InvalidRequestError("nothing to poll: no battery stream and no Encharges")
        settings = PollSettings(
            start_at=start_at,
            settle=settle,
            late_horizon=late_horizon,
            revise_for=revise_for,
            concurrency=1,
            max_pending=0,
            on_demand=True,
        )
        rediscover_s = rediscover_every.total_seconds()
        self._policy = policy = OneSystemPolicy(
            self.system_id,
            include_battery=include_battery,
            encharges=explicit,
            poll_interval=poll_interval,
            quota_share=quota_share,
            rediscover_s=rediscover_s,
            retry_wait_s=retry_wait,
        )
        self._engine = PollEngine(
            client,
            settings,
            checkpoint=checkpoint,
            # One system: no systems list, no change detection, discovery inside the
            # poll; polls come when paced (poll_at), never "when quiet".
            scheduler=FleetScheduler(
                relist_every_s=None,
                rediscover_every_s=rediscover_s,
                max_quiet_s=math.inf,
                discover=False,
            ),
            policy=policy,
        )
        self._delivery = self._engine.delivery

    def __repr__(self) -> str:
        streams = [(self.system_id, source) for source in self._policy.system.streams]
        return f"TelemetryPoller(system_id={self.system_id}, streams={streams})"

    # -- views and controls ---------------------------------------------------------

    @property
    def retries(self) -> int:
        """Retries of the poller's own, after the client gave up on a request."""
        return self._policy.retries

    @property
    def last_poll_wait_s(self) -> float | None:
        """Seconds the poller chose to wait before its latest poll (``None``: none yet)."""
        return self._policy.last_poll_wait_s

    @property
    def sources(self) -> tuple[str, ...]:
        """The streams followed so far."""
        return tuple(self._policy.system.streams)

    @property
    def progress(self) -> PollerProgress:
        """How far the poller has come."""
        policy = self._policy
        logs = policy.system.streams.values()
        newest = [s.newest for s in logs if s.newest is not None]
        return PollerProgress(
            intervals_emitted=self.intervals_emitted,
            requests=self.requests,
            newest_end_at=datetime.fromtimestamp(max(newest), UTC) if newest else None,
            caught_up=policy.caught_up,
            retries=policy.retries,
            watermarks={
                s.source: datetime.fromtimestamp(s.watermark, UTC)
                if s.watermark is not None
                else None
                for s in logs
            },
        )

    async def wait_caught_up(self) -> None:
        """Return once a poll has reached the end of what the API shows and everything it
        found has been handed out; at once while that still holds (no later poll has
        found anything new).  Decided from the API's answers, never from timing, so it
        holds with ``poll_interval=0`` too; ``enphase-battery stream --until-caught-up``
        stops on it.
        """
        await self._policy.drained.wait()

    def poll_now(self) -> None:
        """Start the next poll now instead of waiting for the pacing interval.

        For a "refresh" command of a bot or a dashboard; every poll costs one request per
        stream, so calling this often spends the quota faster than the pacing would (the
        governor then slows the poller down to its share of the month).
        """
        self._policy.poll_now()

    def current_poll_interval(self) -> float:
        """Seconds between polls in steady state."""
        return self._policy.current_poll_interval()


class OneSystemPolicy:
    """The one-system choices in the engine (:class:`~enphase_battery.poll.engine.PollEngine`):
    every stream of the system each poll, caught up within the poll; a poll every pacing
    interval (or at :meth:`poll_now`); transient failures retried with backoff, anything
    else raised to the consumer; discovery inside the poll; no systems list.
    """

    engine: EngineOps
    system: FollowedSystem

    def __init__(
        self,
        system_id: int,
        *,
        include_battery: bool,
        encharges: tuple[str, ...] | None,
        poll_interval: float | None,
        quota_share: float,
        rediscover_s: float,
        retry_wait_s: tuple[float, float],
    ) -> None:
        self.system_id = system_id
        self._include_battery = include_battery
        self._explicit_encharges = encharges
        self._poll_interval = poll_interval
        self._quota_share = quota_share
        self._rediscover_s = rediscover_s
        self._retry_wait_s = retry_wait_s
        # The streams still to visit in the current poll (None: between polls); a retry
        # after a failure goes on from the stream that failed, at its cursor.
        self._plan: collections.deque[StreamLog] | None = None
        self.poll_over: Callable[[], bool] | None = lambda: self._plan is None
        self._poll_began = 0.0
        self._poll_interval_s = 0.0
        self._poll_requested = False
        self.caught_up = False
        self._poll_complete = False
        self.drained = asyncio.Event()
        self._failures = 0
        self._format_failures = 0
        self._warned_share = False
        #: Retries of the poller's own, after the client gave up on a request.
        self.retries = 0
        #: Seconds the poller chose to wait before its latest poll (``None``: none yet).
        self.last_poll_wait_s: float | None = None

    def attach(self, engine: EngineOps) -> None:
        self.engine = engine
        self.system = engine.add(self.system_id, priority=False)

    # -- controls (the front's) -----------------------------------------------------

    def poll_now(self) -> None:
        """Poll now (see :meth:`TelemetryPoller.poll_now`)."""
        engine = self.engine
        self.caught_up = False
        self._poll_requested = True
        engine.scheduler.poll_at(self.system_id, engine.clock.time())
        engine.wake()

    def current_poll_interval(self) -> float:
        """Seconds between polls in steady state."""
        if self._poll_interval is not None:
            return self._poll_interval
        discovery = MONTH_S / self._rediscover_s if self._explicit_encharges is None else 0.0
        return poll_interval_for(
            self.engine.client,
            max(1, len(self.system.streams)),
            quota_share=self._quota_share,
            extra_calls=discovery,
        )

    # -- what the engine asks -------------------------------------------------------

    def emptied(self) -> None:
        if self._poll_complete:
            self._signal_drained()

    async def begin(self) -> None:
        engine = self.engine
        if self._include_battery:
            await engine.stream(self.system, BATTERY)
        for serial in self._explicit_encharges or ():
            await engine.stream(self.system, serial)

    async def relist(self) -> None:
        raise NotImplementedError("one system: the systems list is never read")

    async def visit(self, system: FollowedSystem, job: Poll) -> bool:
        if self._plan is None:
            await self._begin_poll(system)
        plan = self._plan
        assert plan is not None
        fetch_stream = self.engine.fetch_stream
        while plan:
            log = plan[0]
            if system.streams.get(log.source) is log:
                await fetch_stream(system, log, windows=None)
            plan.popleft()
        self._plan = None
        return False

    async def _begin_poll(self, system: FollowedSystem) -> None:
        engine = self.engine
        clock = engine.clock
        self._poll_requested = False
        self.caught_up = False
        self._poll_complete = False
        system.last_reports.clear()
        entry = system.entry
        if self._explicit_encharges is None and (
            entry.discovered_at is None or clock.time() - entry.discovered_at >= self._rediscover_s
        ):
            # Discovery too: a transient failure of it is retried like any other.
            await engine.discover(system)
            entry.discovered_at = clock.time()
            entry.seen_report_at = 0  # new Encharges are fetched by this very poll
        self._poll_began = clock.time()
        self._poll_interval_s = self.current_poll_interval()
        for log in system.streams.values():
            log.cursor = log.poll_start()
        # Encharges first: their last report times can spare the battery stream the request
        # that would only find the end of the data.
        self._plan = collections.deque(
            sorted(system.streams.values(), key=lambda s: s.source == BATTERY)
        )

    def before_request(self) -> None:
        usage = self.engine.client.governor.usage_now()
        # Background work would wait for next month; one poller says so instead.
        check_month(usage)
        if share_spent(usage) and not self._warned_share:
            self._warned_share = True
            _LOGGER.warning(
                "system %s: background work has spent its %s requests of the month;"
                " the poller waits for next month (your own calls keep the rest)",
                self.system_id,
                usage.background_budget,
            )

    def window_done(self, ready: bool) -> None:
        self._failures = 0
        self._format_failures = 0
        if ready:
            self.drained.clear()  # new intervals: not caught up until they are out

    def failed(self, system: FollowedSystem, job: Poll | Discover, err: EnphaseError) -> None:
        if not is_transient(err):
            raise err
        self._failures += 1
        if isinstance(err, ResponseFormatError):
            self._format_failures += 1
            if self._format_failures > FORMAT_RETRIES:
                # The same answer, unreadable every time: not a glitch.  Say so rather
                # than retry (and warn) forever.
                raise err
        self.retries += 1
        wait = retry_wait(err, self._failures, self._retry_wait_s)
        where = self._plan[0].store_key if self._plan else f"{self.system_id}/devices"
        _LOGGER.warning(
            "poll of %s failed (%s: %s); retrying in %.0f s", where, type(err).__name__, err, wait
        )
        engine = self.engine
        engine.scheduler.finished(job, engine.clock.time(), ok=False, retry_after_s=wait)

    async def stream_failed(
        self, system: FollowedSystem, log: StreamLog, err: PermissionDeniedError | NotFoundError
    ) -> None:
        # A 404 on a discovered Encharge may mean it was removed: list the devices now.
        # One no longer listed is dropped (logged); any other 403/404 of an Encharge is
        # raised, as the battery stream's: no stream stops without the consumer seeing.
        if isinstance(err, NotFoundError) and self._explicit_encharges is None:
            engine = self.engine
            await engine.discover(system)
            system.entry.discovered_at = engine.clock.time()
            if system.streams.get(log.source) is not log:
                return
        raise err

    def succeeded(self, system: FollowedSystem, job: Poll | Discover) -> None:
        engine = self.engine
        now = engine.clock.time()
        self.caught_up = True
        self._poll_complete = True
        self._signal_drained()
        due = now if self._poll_requested else self._poll_began + self._poll_interval_s
        self.last_poll_wait_s = max(0.0, due - now)
        engine.scheduler.poll_at(self.system_id, due)

    def _signal_drained(self) -> None:
        """A poll has come to the end of what the API shows, and all of it is out.

        Latched until a later poll finds new intervals: a consumer that asks once it has
        stored the last one still sees it, even when the next poll has begun.
        """
        if self._poll_complete and self.engine.pending == 0:
            self.drained.set()
