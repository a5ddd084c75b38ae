"""What a fleet poller fetches next: pure bookkeeping over the followed systems, no I/O.

Rules (see :class:`~enphase_battery.FleetPoller`):

* **Change detection.**  The systems list (``last_report_at``, up to 100 systems a
  request) says which systems have reported since their last poll; only those are
  polled.  A cellular gateway that uploads every 6 hours costs nothing in between.  A
  system that stays quiet longer than ``max_quiet_s`` is polled anyway (a safety net
  against a list that lags the data).
* **Stalest first.**  Systems with news are polled in order of their last poll (urgent
  ones, ``priority``, before all others), so when the quota cannot cover everyone,
  freshness degrades evenly.
* **Spare budget.**  History (a stream whose window came back full: more to fetch) and
  Encharge discovery run when there is no live work, and otherwise get one pick in
  ``secondary_every``, so they are never starved and never starve the live edge.
* **Isolation.**  A system that fails is backed off on its own (exponentially, longer
  for a 403/404) and comes back when its backoff ends; the others are not delayed.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math

import attrs

__all__ = [
    "Discover",
    "FleetScheduler",
    "Job",
    "Poll",
    "Relist",
    "SystemEntry",
    "relist_interval",
]

#: The part of the background budget change detection may take while the polls keep up.
RELIST_SHARE = 0.1
#: Never list the systems more often than this (seconds).
MIN_RELIST_S = 60.0


def relist_interval(pages: int, rate_per_s: float | None, *, keeping_up: bool) -> float:
    """Seconds until the next systems list: ``pages`` requests for the whole list.

    Listing costs a request per 100 systems and is what finds the news.  While systems
    with news still wait for a poll (the quota is what limits freshness), listing more
    often finds nothing that could be fetched sooner: list every 15 minutes to an hour,
    by the list's size.  While the polls keep up, the time from a report to its delivery
    is the time until the next list: list as often as ``RELIST_SHARE`` of the budget's
    pace (``rate_per_s``, requests a second; ``None``: no monthly cap) pays for, down to
    once a minute.
    """
    slow = min(3600.0, max(900.0, pages * 120.0))
    if not keeping_up or (rate_per_s is not None and rate_per_s <= 0):
        return slow
    if rate_per_s is None:
        return MIN_RELIST_S
    return min(slow, max(MIN_RELIST_S, pages / (RELIST_SHARE * rate_per_s)))


@attrs.frozen
class Relist:
    """List every system (``last_report_at`` for change detection, additions, removals)."""


@attrs.frozen
class Poll:
    """Poll a system's streams; ``backfill``: continue the streams that have history left."""

    system_id: int
    backfill: bool = False


@attrs.frozen
class Discover:
    """List a system's devices (its Encharges)."""

    system_id: int


Job = Relist | Poll | Discover


@attrs.define(slots=True)
class SystemEntry:
    """What the scheduler knows of one followed system."""

    system_id: int
    priority: bool = False
    #: ``last_report_at`` (epoch) from the latest systems list.
    listed_report_at: int | None = None
    #: ``listed_report_at`` as it was when the latest poll began.
    seen_report_at: int | None = None
    last_polled_at: float = -math.inf
    discovered_at: float | None = None
    #: Streams with history left (their window came back full).
    backlog: bool = False
    in_flight: bool = False
    queued_live: bool = False
    queued_secondary: bool = False
    failures: int = 0
    backoff_until: float = 0.0
    requests: int = 0
    #: Polled because it stayed quiet too long: fetch every stream, whatever the list says.
    forced: bool = False
    #: When it is to be polled whatever the list says (:meth:`FleetScheduler.poll_at`).
    poll_due_at: float | None = None

    @property
    def has_news(self) -> bool:
        """Reported since its latest poll began (or never polled)."""
        if self.seen_report_at is None or self.last_polled_at == -math.inf:
            return True
        return self.listed_report_at is not None and self.listed_report_at > self.seen_report_at


class FleetScheduler:
    """Chooses the next job; the engine reports back with :meth:`finished`."""

    def __init__(
        self,
        *,
        relist_every_s: float | None,
        rediscover_every_s: float,
        max_quiet_s: float,
        secondary_every: int = 4,
        discover: bool = True,
        gather_s: float = 0.0,
    ) -> None:
        self.relist_every_s = relist_every_s
        self.rediscover_every_s = rediscover_every_s
        self.max_quiet_s = max_quiet_s
        self.secondary_every = max(1, secondary_every)
        self.discover = discover
        #: How long a poll waits after the list first shows news (see :meth:`listed`).
        self.gather_s = gather_s
        self.systems: dict[int, SystemEntry] = {}
        self._seq = itertools.count()
        self._live: list[tuple[int, float, int, int]] = []
        self._secondary: collections.deque[int] = collections.deque()
        # (when, seq, system_id): quiet safety net, backoff ends, rediscovery.
        self._timers: list[tuple[float, int, int]] = []
        self._relist_due: float | None = 0.0 if relist_every_s is not None else None
        self._relisting = False
        self._picks = 0

    # -- the followed set -------------------------------------------------------------

    def add(self, system_id: int, *, priority: bool = False, now: float) -> SystemEntry:
        """Follow ``system_id`` (polled soon: it has never been polled)."""
        entry = self.systems.get(system_id)
        if entry is None:
            entry = SystemEntry(system_id, priority=priority)
            self.systems[system_id] = entry
            self._push_live(entry)
        elif priority and not entry.priority:
            entry.priority = True
        return entry

    def remove(self, system_id: int) -> None:
        """Stop following ``system_id`` (queued jobs of it are skipped)."""
        self.systems.pop(system_id, None)

    def listed(self, system_id: int, last_report_at: int | None, now: float | None = None) -> None:
        """The systems list says ``system_id`` last reported at ``last_report_at``.

        With ``gather_s`` (and ``now``), news of a system polled before is polled
        ``gather_s`` later: a gateway's upload lands device by device over a minute or
        so, and a poll at the first device's report would find the others missing (a
        partial interval held back) and pay again at the next upload to get them.
        """
        entry = self.systems.get(system_id)
        if entry is None:
            return
        news_before = entry.has_news
        entry.listed_report_at = last_report_at
        if not entry.has_news:
            return
        if (
            self.gather_s > 0
            and now is not None
            and not news_before
            and entry.last_polled_at != -math.inf
        ):
            self._timer(now + self.gather_s, entry)
        else:
            self._push_live(entry)

    def relisted(self, now: float, *, ok: bool) -> None:
        """A relist finished (``ok=False``: it failed; try again in a while)."""
        self._relisting = False
        if self.relist_every_s is not None:
            self._relist_due = now + (self.relist_every_s if ok else min(self.relist_every_s, 60))

    def stop_relisting(self, *, poll_every_s: float) -> None:
        """No more change detection: poll every system ``poll_every_s`` after its last poll."""
        self.relist_every_s = None
        self._relist_due = None
        self.max_quiet_s = poll_every_s
        for entry in self.systems.values():
            # What the one listing said goes stale; timers set under the old max_quiet
            # lie too far out.
            entry.listed_report_at = None
            self._timer(max(0.0, entry.last_polled_at) + poll_every_s, entry)

    def poll_at(self, system_id: int, when: float) -> None:
        """Poll ``system_id`` at ``when`` whatever the list says (a paced poll, or one
        asked for now); a poll in flight or a backoff comes first."""
        entry = self.systems.get(system_id)
        if entry is None:
            return
        entry.poll_due_at = when
        self._timer(when, entry)

    def relist_soon(self) -> None:
        """Relist at the next pick (after :meth:`add` of systems not listed yet)."""
        if self.relist_every_s is not None:
            self._relist_due = 0.0

    # -- queues -----------------------------------------------------------------------

    def _push_live(self, entry: SystemEntry) -> None:
        if entry.queued_live or entry.in_flight:
            return
        entry.queued_live = True
        rank = 0 if entry.priority else 1
        heapq.heappush(self._live, (rank, entry.last_polled_at, next(self._seq), entry.system_id))

    def _push_secondary(self, entry: SystemEntry) -> None:
        if entry.queued_secondary:
            return
        entry.queued_secondary = True
        self._secondary.append(entry.system_id)

    def _timer(self, when: float, entry: SystemEntry) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), entry.system_id))

    def _wants_secondary(self, entry: SystemEntry, now: float) -> bool:
        if entry.backlog:
            return True
        if not self.discover:
            return False
        return entry.discovered_at is None or now - entry.discovered_at >= self.rediscover_every_s

    # -- picking ----------------------------------------------------------------------

    def next_job(self, now: float) -> Job | float | None:
        """The next job, or when one will be due (``None``: nothing until told)."""
        self._fire_timers(now)
        if self._relist_due is not None and not self._relisting and self._relist_due <= now:
            self._relisting = True
            return Relist()
        self._picks += 1
        secondary_turn = self._picks % self.secondary_every == 0
        if secondary_turn or not self._live:
            job = self._pop_secondary(now)
            if job is not None:
                return job
        job = self._pop_live(now)
        if job is not None:
            return job
        job = self._pop_secondary(now)
        if job is not None:
            return job
        due = [t for t, _, _ in self._timers[:1]]
        if self._relist_due is not None and not self._relisting:
            due.append(self._relist_due)
        return min(due) if due else None

    def next_due(self) -> float | None:
        """When the next timed job (a system's poll or retry, the systems list) is due,
        without taking it; ``None``: nothing is timed."""
        due = [t for t, _, _ in self._timers[:1]]
        if self._relist_due is not None and not self._relisting:
            due.append(self._relist_due)
        return min(due) if due else None

    def _pop_live(self, now: float) -> Poll | None:
        while self._live:
            _, _, _, system_id = heapq.heappop(self._live)
            entry = self.systems.get(system_id)
            if entry is None:
                continue
            entry.queued_live = False
            if entry.in_flight or entry.backoff_until > now:
                continue
            entry.in_flight = True
            return Poll(system_id)
        return None

    def _pop_secondary(self, now: float) -> Poll | Discover | None:
        for _ in range(len(self._secondary)):
            system_id = self._secondary.popleft()
            entry = self.systems.get(system_id)
            if entry is None:
                continue
            entry.queued_secondary = False
            if entry.in_flight or entry.backoff_until > now:
                if entry.backoff_until <= now:
                    self._push_secondary(entry)  # busy now: keep its place for later
                continue
            if entry.backlog:
                entry.in_flight = True
                return Poll(system_id, backfill=True)
            if self._wants_secondary(entry, now):
                entry.in_flight = True
                return Discover(system_id)
        return None

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, system_id = heapq.heappop(self._timers)
            entry = self.systems.get(system_id)
            if entry is None or entry.in_flight or entry.backoff_until > now:
                continue
            if self._wants_secondary(entry, now):
                self._push_secondary(entry)
            due = entry.poll_due_at is not None and entry.poll_due_at <= now
            if entry.has_news or due or now - entry.last_polled_at >= self.max_quiet_s:
                if not entry.has_news:
                    entry.seen_report_at = None  # quiet too long (or due): poll it anyway
                    entry.forced = True
                entry.poll_due_at = None
                self._push_live(entry)
            elif not entry.queued_live and math.isfinite(self.max_quiet_s):
                self._timer(entry.last_polled_at + self.max_quiet_s, entry)

    # -- results ----------------------------------------------------------------------

    def started(self, job: Poll, now: float) -> None:
        """A live poll of the system begins: what the list says now is what it sees."""
        entry = self.systems.get(job.system_id)
        if entry is not None and not job.backfill:
            entry.seen_report_at = entry.listed_report_at if entry.listed_report_at else 0

    def finished(
        self,
        job: Poll | Discover,
        now: float,
        *,
        ok: bool,
        backlog: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        """A job is over: ``ok``, or it failed and the system waits ``retry_after_s``."""
        entry = self.systems.get(job.system_id)
        if entry is None:
            return
        entry.in_flight = False
        if not ok:
            entry.failures += 1
            entry.backoff_until = now + (60.0 if retry_after_s is None else retry_after_s)
            if isinstance(job, Poll) and not job.backfill:
                entry.seen_report_at = None  # poll again once the backoff ends
            self._timer(entry.backoff_until, entry)
            return
        entry.failures = 0
        entry.backoff_until = 0.0
        if isinstance(job, Discover):
            entry.discovered_at = now
            self._timer(now + self.rediscover_every_s, entry)
        else:
            if not job.backfill:
                entry.last_polled_at = now
            entry.backlog = backlog
            if math.isfinite(self.max_quiet_s):
                self._timer(now + self.max_quiet_s, entry)
        if self._wants_secondary(entry, now):
            self._push_secondary(entry)
        if entry.has_news:
            self._push_live(entry)

    def waiting_live(self) -> int:
        """Systems queued with news (a measure of how far the quota is behind)."""
        return sum(1 for *_, sid in self._live if sid in self.systems)
