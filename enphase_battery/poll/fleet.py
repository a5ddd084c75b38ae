"""The fleet poller: every interval of every followed system, exactly once, under one quota.

``async for iv in FleetPoller(client, systems=None, checkpoint=...)`` yields the
:class:`~enphase_battery.TelemetryInterval` s of every system the token can see (or of the
ids given) with the same exactly-once, late and partial semantics as
:class:`~enphase_battery.TelemetryPoller`: the same per-stream logic
(:mod:`.streams`), the same request-for-a-stream logic (:mod:`.window`), the same
delivery front and commit rule (:mod:`.delivery`) and the same engine (:mod:`.engine`,
which the one-system poller runs on too); :class:`FleetPoller` is a thin front over it
with the fleet's policy (:class:`FleetPolicy`).  What it adds:

* every request goes through the client's :class:`~enphase_battery.QuotaGovernor` as
  background work, so the fleet spends at most ``quota_share`` of the month, evenly;
* :mod:`.scheduler` decides what to fetch: change detection from the systems list,
  stalest system first, history and discovery from spare budget, ``priority``;
* a system that fails (403, 404, keeps failing) is reported in :attr:`FleetPoller.problems`
  with one log line, backed off and retried, and never stops or slows the others; so is
  one Encharge stream whose telemetry answers 403 or 404 (the system's other streams
  go on; a 404 also lists the system's devices again soon).
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from enphase_battery.exceptions import (
    AuthenticationError,
    EnphaseError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
)
from enphase_battery.models import validation
from enphase_battery.models.delivered import BATTERY
from enphase_battery.poll.engine import EngineOps, PollEngine, StreamOutcome
from enphase_battery.poll.followed import FollowedSystem
from enphase_battery.poll.front import PollerFront
from enphase_battery.poll.scheduler import Discover, FleetScheduler, Poll, relist_interval
from enphase_battery.poll.settings import DEFAULT_REVISE_FOR, PollSettings, check_start_at
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.poll.views import FleetProgress, SystemProblem, SystemProgress, fleet_progress
from enphase_battery.store.checkpoint import CheckpointStore
from enphase_battery.util.clock import Clock

if TYPE_CHECKING:
    from enphase_battery.client.client import EnphaseClient

__all__ = ["FleetPolicy", "FleetPoller"]

_LOGGER = logging.getLogger("enphase_battery.fleet")
#: A live poll fetches at most this many windows of a stream; the rest is backfill.
_LIVE_WINDOWS = 1


class FleetPoller(PollerFront):
    """Async iterator over new intervals of many systems, exactly once, under one quota.

    Args:
        client: the client (its governor paces and counts every request).
        systems: ``None`` follows every system ``list_systems`` shows, re-listed every
            ``relist_every`` (systems added and removed are picked up); a list of ids
            follows those (:meth:`follow` / :meth:`unfollow` change it at run time).
        checkpoint: ``None`` (memory), a path (SQLite), a ``postgresql://`` DSN or a
            ``CheckpointStore``; one for the whole fleet, keyed ``"{system_id}/{source}"``.
        start_at: where new streams begin (default: the system's current day).
        priority: ids polled before all others when they have news.
        clock: what time it is (default: the governor's clock).
        settle / late_horizon / revise_for: as for :class:`~enphase_battery.TelemetryPoller`.
        relist_every: how often the systems list is read for change detection
            (``None``: adapt to the fleet's size, 15 minutes to an hour).
        rediscover_every: how often each system's Encharges are listed.
        max_quiet: a system the list shows no news of is polled anyway after this long.
        encharges: follow each system's Encharges (Kilowatt plan and up).
        concurrency: requests in flight at once (the governor still spaces them).
        backoff: first and longest wait (seconds) of a failing system.
        max_pending: fetched intervals waiting for the consumer above which the workers
            fetch nothing more.
        gather: how long after the systems list first shows a system's news its poll
            waits, so that every device of the gateway's upload is in (a poll at the
            first device's report would find the rest missing and pay again later).
    """

    def __init__(
        self,
        client: EnphaseClient,
        systems: Iterable[int] | None = None,
        *,
        checkpoint: CheckpointStore | str | os.PathLike[str] | None = None,
        start_at: datetime | None = None,
        priority: Iterable[int] = (),
        clock: Clock | None = None,
        settle: timedelta = timedelta(hours=1),
        late_horizon: timedelta = timedelta(days=6),
        revise_for: timedelta = DEFAULT_REVISE_FOR,
        relist_every: timedelta | None = None,
        rediscover_every: timedelta = timedelta(hours=24),
        max_quiet: timedelta = timedelta(hours=24),
        encharges: bool = True,
        concurrency: int = 4,
        backoff: tuple[float, float] = (60.0, 6 * 3600.0),
        max_pending: int = 20_000,
        gather: timedelta = timedelta(minutes=2),
    ) -> None:
        explicit = None if systems is None else [validation.system_id(s) for s in systems]
        priority_ids = {validation.system_id(s) for s in priority}
        if start_at is not None:
            validation.aware_datetime("start_at", start_at)
            # Judged on the poller's clock (a simulated one in a simulation).
            check_start_at(start_at, None if clock is None else _utc(clock.time()))
        backoff_s = validation.wait_range("backoff", backoff)
        if relist_every is not None:
            validation.duration("relist_every", relist_every)
        validation.duration("rediscover_every", rediscover_every)
        validation.duration("max_quiet", max_quiet)
        validation.positive_int("max_pending", max_pending)
        if not isinstance(gather, timedelta) or gather < timedelta(0):
            raise InvalidRequestError("gather must be a non-negative timedelta")
        settings = PollSettings(
            start_at=start_at,
            settle=settle,
            late_horizon=late_horizon,
            revise_for=revise_for,
            concurrency=concurrency,
            max_pending=max_pending,
        )
        fixed_relist = relist_every.total_seconds() if relist_every else None
        self._policy = policy = FleetPolicy(
            explicit,
            priority=priority_ids,
            backoff=backoff_s,
            fixed_relist_s=fixed_relist,
        )
        self._engine = PollEngine(
            client,
            settings,
            checkpoint=checkpoint,
            scheduler=FleetScheduler(
                relist_every_s=fixed_relist or 900.0,
                rediscover_every_s=rediscover_every.total_seconds(),
                max_quiet_s=max_quiet.total_seconds(),
                discover=encharges,
                gather_s=gather.total_seconds(),
            ),
            policy=policy,
            clock=clock,
        )
        self._delivery = self._engine.delivery

    def __repr__(self) -> str:
        return f"FleetPoller(systems={len(self._engine.systems)}, requests={self.requests})"

    # -- following ----------------------------------------------------------------

    def follow(self, system_id: int, *, priority: bool = False) -> None:
        """Follow one more system from now on (its battery stream first)."""
        self._policy.follow(validation.system_id(system_id), priority=priority)

    def unfollow(self, system_id: int) -> None:
        """Stop following a system; what is queued of it is dropped, its checkpoint kept."""
        self._policy.unfollow(validation.system_id(system_id))

    @property
    def system_ids(self) -> tuple[int, ...]:
        """The systems followed now."""
        return tuple(self._engine.systems)

    # -- views --------------------------------------------------------------------

    @property
    def problems(self) -> tuple[SystemProblem, ...]:
        """Systems, and streams of systems (``source``: an Encharge serial), that could
        not be polled lately (backed off, retried later).  A stream that falls behind
        is here with its reason until it answers again."""
        found: list[SystemProblem] = []
        for system in self._engine.systems.values():
            if system.problem is not None:
                found.append(system.problem)
            found.extend(system.stream_problems.values())
        return tuple(found)

    def next_poll_in(self) -> float | None:
        """Seconds until the next timed poll (or look at the systems list); 0 when one is
        due now, ``None`` when nothing is timed.  What an idle progress line shows."""
        engine = self._engine
        due = engine.scheduler.next_due()
        return None if due is None else max(0.0, due - engine.clock.time())

    def progress_of(self, system_id: int) -> SystemProgress:
        """One system's progress."""
        engine = self._engine
        return engine.systems[system_id].progress(engine.clock.time())

    @property
    def progress(self) -> FleetProgress:
        """The fleet's progress in total (see :meth:`progress_of` for one system)."""
        engine = self._engine
        day, today = engine.requests_day
        return fleet_progress(
            [self.progress_of(sid) for sid in engine.systems],
            engine.client.governor.usage_now(),
            intervals_delivered=engine.delivery.handed_out,
            requests=engine.requests,
            requests_today=today if day == int(engine.clock.time() // 86_400) else 0,
            systems_waiting=engine.scheduler.waiting_live(),
        )


class FleetPolicy:
    """The fleet's choices in the engine (:class:`~enphase_battery.poll.engine.PollEngine`):
    systems from the systems list (or the ids given), a live poll reads one window of
    each stream with news and backfill visits fetch the rest, and a failing system (or
    one Encharge stream) is reported, backed off and retried while the others go on.
    """

    engine: EngineOps

    def __init__(
        self,
        explicit: list[int] | None,
        *,
        priority: set[int],
        backoff: tuple[float, float],
        fixed_relist_s: float | None,
    ) -> None:
        self._explicit = explicit
        self._priority = priority
        # Unfollowed by the caller: a relist (systems=None) doesn't bring them back.
        self._excluded: set[int] = set()
        self._backoff = backoff
        self._fixed_relist = fixed_relist_s
        #: When the systems were listed in the last hour, and ``requests`` then.
        self._relist_marks: collections.deque[tuple[float, int]] = collections.deque()
        self.poll_over: Callable[[], bool] | None = None

    def attach(self, engine: EngineOps) -> None:
        self.engine = engine

    # -- following (the front's) ----------------------------------------------------

    def follow(self, system_id: int, *, priority: bool) -> None:
        """Follow ``system_id`` from now on (see :meth:`FleetPoller.follow`)."""
        self._excluded.discard(system_id)
        if self._explicit is not None and system_id not in self._explicit:
            self._explicit.append(system_id)
        self.engine.add(system_id, priority=priority or system_id in self._priority)
        self.engine.wake()

    def unfollow(self, system_id: int) -> None:
        """Follow ``system_id`` no more, not even when a relist shows it."""
        self._excluded.add(system_id)
        self._drop(system_id)

    def _drop(self, system_id: int) -> None:
        if self._explicit is not None and system_id in self._explicit:
            self._explicit.remove(system_id)
        self.engine.drop(system_id)

    # -- what the engine asks -------------------------------------------------------

    async def begin(self) -> None:
        if self._explicit is not None:
            for system_id in self._explicit:
                self.engine.add(system_id, priority=system_id in self._priority)

    def before_request(self) -> None:
        pass

    def window_done(self, ready: bool) -> None:
        pass

    def emptied(self) -> None:
        pass

    def failed(self, system: FollowedSystem, job: Poll | Discover, err: EnphaseError) -> None:
        # Isolated: reported and backed off, never raised (the others go on).
        engine = self.engine
        now = engine.clock.time()
        wait = system.failed(err, self._backoff, now)
        engine.scheduler.finished(job, now, ok=False, retry_after_s=wait)

    async def stream_failed(
        self, system: FollowedSystem, log: StreamLog, err: PermissionDeniedError | NotFoundError
    ) -> None:
        # One Encharge's 403 (no grant, or a passing refusal) or 404 (removed?): that
        # stream alone is on record and backed off; it stays followed at its watermark
        # and is retried, the system's other streams go on.  (A plan without
        # per-Encharge telemetry: FleetPoller(encharges=False).)
        system.stream_failed(log.source, err, self._backoff, self.engine.clock.time())
        if isinstance(err, NotFoundError):
            system.entry.discovered_at = None  # list its devices soon: still there?

    def succeeded(self, system: FollowedSystem, job: Poll | Discover) -> None:
        if system.problem is not None:
            _LOGGER.info("system %s recovered from %s", job.system_id, system.problem.error)
            system.problem = None
        due = system.next_retry()
        if due is not None:
            # A stream backed off on its own: poll the system when it is due, whatever
            # the systems list says.
            self.engine.scheduler.poll_at(job.system_id, due)

    async def relist(self) -> None:
        engine = self.engine
        # The fleet keeps up with the news when it spent clearly less than the budget's
        # pace over the last half hour or more (uploads come in bursts: a shorter look
        # would see a burst, not the pace); then the list's interval is what delays news.
        now = engine.clock.time()
        marks = self._relist_marks
        marks.append((now, engine.requests))
        while len(marks) > 1 and now - marks[1][0] >= 3600:
            marks.popleft()
        since, requests_then = marks[0]
        rate = engine.client.governor.background_rate(now)
        keeping_up = (
            now - since >= 1800 and (engine.requests - requests_then) / (now - since) < 0.8 * rate
        )
        try:
            listed = await engine.client.list_systems()
        except (AuthenticationError, QuotaExceededError):
            raise
        except EnphaseError as err:
            _LOGGER.warning(
                "listing the systems failed (%s: %s); trying again", type(err).__name__, err
            )
            engine.scheduler.relisted(engine.clock.time(), ok=False)
            return
        pages = max(1, -(-len(listed) // 100))
        for _ in range(pages):
            engine.count_request(None)
        seen = {s.system_id for s in listed}
        if self._explicit is None:
            for system in listed:
                if system.system_id not in self._excluded:
                    engine.add(system.system_id, priority=system.system_id in self._priority)
            for system_id in [sid for sid in engine.systems if sid not in seen]:
                _LOGGER.info("system %s is no longer listed; not following it", system_id)
                self._drop(system_id)
        for system in listed:
            report = system.last_report_at
            engine.scheduler.listed(
                system.system_id,
                int(report.timestamp()) if report is not None else None,
                engine.clock.time(),
            )
        engine.scheduler.relisted(engine.clock.time(), ok=True)
        if self._fixed_relist is not None:
            return
        if self._explicit is not None and pages > len(self._explicit):
            # Listing a big account costs more than polling the few systems followed:
            # poll each every 15 minutes instead (follow() of more systems keeps it so).
            _LOGGER.info(
                "following %d of %d systems: polling them every 15 min instead of"
                " listing %d pages for change detection",
                len(self._explicit),
                len(listed),
                pages,
            )
            engine.scheduler.stop_relisting(poll_every_s=900.0)
            return
        engine.scheduler.relist_every_s = relist_interval(pages, rate, keeping_up=keeping_up)
        engine.scheduler.relisted(engine.clock.time(), ok=True)

    async def visit(self, system: FollowedSystem, job: Poll) -> bool:
        """One visit of a system's streams; returns whether history is left."""
        engine = self.engine
        backfill = job.backfill
        if await engine.stream(system, BATTERY) is None:
            return False  # unfollowed while its checkpoint loaded
        system.last_reports.clear()
        # Encharges first: their last report times can spare the battery stream a request.
        logs = sorted(system.streams.values(), key=lambda log: log.source == BATTERY)
        backlog = False
        now = engine.clock.time()
        for log in logs:
            if system.streams.get(log.source) is not log:
                continue  # dropped meanwhile (no longer listed)
            if system.stream_problems and system.stream_waiting(log.source, now):
                continue  # backed off after a 403/404 of its own (in ``problems``)
            if log.cursor is not None and not backfill:
                backlog = True  # this stream's history is fetched by backfill visits
                continue
            if backfill and log.cursor is None:
                continue
            reported = system.entry.listed_report_at
            if (
                not backfill
                and not system.entry.forced
                and reported is not None
                and log.shown_through(reported)
            ):
                continue  # this stream has shown everything the system has reported
            if not backfill:
                log.cursor = log.poll_start()
            outcome = await engine.fetch_stream(system, log, windows=_LIVE_WINDOWS)
            if outcome is StreamOutcome.STOP:
                return False
            if outcome is StreamOutcome.MORE:
                backlog = True  # the window came back full: more history to fetch
        return backlog


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
