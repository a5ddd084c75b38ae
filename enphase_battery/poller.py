"""The telemetry poller: every 15-minute battery and Encharge interval, exactly once.

How it stays correct against the real service:

* **What is new comes from the API and the checkpoint, never the local clock.**  Each
  stream (each Encharge, and the system's ``"battery"`` aggregate) keeps a watermark
  (:mod:`enphase_battery.streams`).  Each poll asks for the week after the watermark (the
  widest window, 672 intervals, one request) and keeps going window by window while the
  API answers with full windows, so catch-up after downtime costs one request per stream
  per week of history.  The local clock only paces the polls
  (:mod:`enphase_battery.pacing`).
* **Delivery** (:mod:`enphase_battery.delivery`): an interval counts as delivered when
  the consumer asks for the next one or calls :meth:`TelemetryPoller.commit`; the
  checkpoint is saved before the next interval is handed out.  An exception or a
  cancellation in the consumer never delivers the interval in hand: after a restart (or
  a crash) at most that one interval comes again.
* **Quota**: polls are paced so that, in steady state, the poller spends at most
  ``quota_share`` (80 %) of the plan's monthly quota, leaving the rest for the user's
  other calls.

This module is the one-system engine on the common front (:mod:`.front`): discovery,
what to fetch next, pacing and retries.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from .checkpoint import CheckpointStore
from .delivery import Batch
from .exceptions import (
    ApiError,
    EnphaseConnectionError,
    InvalidRequestError,
    RateLimitError,
    ResponseFormatError,
)
from .front import MAX_BACKFILL, PollerFront, check_start_at, collect
from .models import Granularity
from .pacing import (
    MIN_POLL_INTERVAL_S,
    MONTH_S,
    PollPacer,
    is_transient,
    poll_interval_for,
    retry_wait,
)
from .streams import BATTERY, StreamKey, StreamLog, TelemetryInterval
from .window import fetch_window

if TYPE_CHECKING:
    from .client import EnphaseClient

__all__ = [
    "BATTERY",
    "MAX_BACKFILL",
    "MIN_POLL_INTERVAL_S",
    "Batch",
    "PollerProgress",
    "TelemetryInterval",
    "TelemetryPoller",
    "check_start_at",
    "collect",
    "poll_interval_for",
]

_LOGGER = logging.getLogger(__name__)

WEEK_S = Granularity.WEEK.span_s


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
            :class:`~enphase_battery.checkpoint.CheckpointStore`.
        poll_interval: seconds between polls; ``None`` paces from the client's
            :class:`~enphase_battery.RateLimits` (see :func:`poll_interval_for`).
        settle: how long a partial interval is held back, relative to the newest data.
        late_horizon: how long a missing interval is waited for, relative to the newest
            data; must stay under a week so one request still covers it.
        quota_share: the part of the monthly quota the poller may spend.
        rediscover_every: how often ``encharges=None`` looks for new Encharges.
        retry_wait_s: first and longest wait (seconds, doubling, jittered) of the
            poller's own retries, after the client's retries of a request gave up.  A
            429's reset time is waited for too, but no longer than the longest wait.

    Use ``async with TelemetryPoller(...) as poller: async for interval in poller: ...``
    so that the checkpoint is saved and released on any exit.  An interval counts as
    delivered when the next one is asked for or at ``await poller.commit()``; leaving
    the loop (``break``, an exception, a cancellation) without ``commit()`` leaves the
    last interval to come again after a restart.  :meth:`batches` hands out
    :class:`~enphase_battery.delivery.Batch` es instead.

    Raises out of the iterator: :class:`~enphase_battery.AuthenticationError` (the user
    must sign in again), :class:`~enphase_battery.NotFoundError` (the system is gone),
    :class:`~enphase_battery.PermissionDeniedError` and
    :class:`~enphase_battery.QuotaExceededError`.  Transient failures (429, 5xx, network)
    are retried inside with backoff.
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
        quota_share: float = 0.8,
        rediscover_every: timedelta = timedelta(hours=24),
        retry_wait_s: tuple[float, float] = (5.0, 900.0),
    ) -> None:
        from . import validation

        self.client = client
        self.system_id = validation.system_id(system_id)
        self._explicit_encharges = (
            None if encharges is None else tuple(validation.serial_number(s) for s in encharges)
        )
        self.include_battery = include_battery
        if start_at is not None:
            validation.aware_datetime("start_at", start_at)
            check_start_at(start_at)
        self.start_at = start_at
        if not 0 < quota_share <= 1:
            raise InvalidRequestError("quota_share must be in (0, 1]")
        if isinstance(poll_interval, timedelta):
            poll_interval = poll_interval.total_seconds()
        if poll_interval is not None and poll_interval < 0:
            raise InvalidRequestError("poll_interval must be >= 0")
        first_wait, max_wait = retry_wait_s
        if not 0 <= first_wait <= max_wait:
            raise InvalidRequestError("retry_wait_s must be (first, longest) with 0 <= first")
        self._retry_wait_s = (float(first_wait), float(max_wait))
        if not include_battery and self._explicit_encharges == ():
            raise InvalidRequestError("nothing to poll: no battery stream and no Encharges")
        super().__init__(
            checkpoint, settle=settle, late_horizon=late_horizon, poll_over=lambda: not self._plan
        )
        self._poll_interval = poll_interval
        self._quota_share = quota_share
        self._rediscover_s = rediscover_every.total_seconds()
        self._streams: dict[StreamKey, StreamLog] = {}
        self._plan: collections.deque[StreamLog] = collections.deque()
        self._pacer = PollPacer()
        # Latest report time of each Encharge seen in the current poll (epoch seconds).
        self._last_reports: dict[str, int] = {}
        self._discovered_at: float | None = None
        self._caught_up = False
        self._poll_complete = False
        self._drained = asyncio.Event()
        self._failures = 0
        self._format_failures = 0
        self.requests = 0
        #: Retries of the poller's own, after the client gave up on a request.
        self.retries = 0

    def __repr__(self) -> str:
        return f"TelemetryPoller(system_id={self.system_id}, streams={list(self._streams)})"

    # -- views and controls ---------------------------------------------------------

    def _handed(self) -> None:
        if self._poll_complete and self._delivery.pending == 0:
            self._signal_drained()

    def _streams_now(self) -> Iterable[StreamLog]:
        return self._streams.values()

    @property
    def sources(self) -> tuple[str, ...]:
        """The streams followed so far."""
        return tuple(s.source for s in self._streams.values())

    @property
    def progress(self) -> PollerProgress:
        """How far the poller has come."""
        newest = [s.newest for s in self._streams.values() if s.newest is not None]
        return PollerProgress(
            intervals_emitted=self.intervals_emitted,
            requests=self.requests,
            newest_end_at=datetime.fromtimestamp(max(newest), UTC) if newest else None,
            caught_up=self._caught_up,
            retries=self.retries,
            watermarks={
                s.source: datetime.fromtimestamp(s.watermark, UTC)
                if s.watermark is not None
                else None
                for s in self._streams.values()
            },
        )

    @property
    def idle(self) -> bool:
        """Whether the poller is waiting for its next poll, with everything delivered."""
        return self._pacer.idle

    async def wait_idle(self) -> None:
        """Return once the poller is waiting for its next poll with nothing left to deliver.

        For another task than the consumer's: a health check, a "caught up" signal, or a
        test that moves a simulator's clock between polls.
        """
        await self._pacer.wait_idle()

    async def wait_caught_up(self) -> None:
        """Return once a poll has reached the end of what the API shows and everything it
        found has been handed out; at once while that still holds (no later poll has
        found anything new).  Decided from the API's answers, never from timing, so it
        holds with ``poll_interval=0`` too; ``enphase-battery stream --until-caught-up``
        stops on it.
        """
        await self._drained.wait()

    def poll_now(self) -> None:
        """Start the next poll now instead of waiting for the pacing interval.

        For a "refresh" command of a bot or a dashboard; every poll costs one request per
        stream, so calling this often spends the quota faster than the pacing would.
        """
        self._caught_up = False
        self._pacer.poll_now()

    @property
    def last_poll_wait_s(self) -> float | None:
        """Seconds the poller chose to wait before its latest poll (``None``: none yet)."""
        return self._pacer.last_wait_s

    def current_poll_interval(self) -> float:
        """Seconds between polls in steady state."""
        if self._poll_interval is not None:
            return self._poll_interval
        discovery = MONTH_S / self._rediscover_s if self._explicit_encharges is None else 0.0
        return poll_interval_for(
            self.client,
            max(1, len(self._streams)),
            quota_share=self._quota_share,
            extra_calls=discovery,
        )

    # -- internals ----------------------------------------------------------------

    async def _begin(self) -> None:
        if self.include_battery:
            await self._add_stream(BATTERY)
        if self._explicit_encharges is not None:
            for serial in self._explicit_encharges:
                await self._add_stream(serial)

    async def _add_stream(self, source: str) -> None:
        key = (self.system_id, source)
        if key in self._streams:
            return
        start_at = int(self.start_at.timestamp()) if self.start_at is not None else None
        battery = self._streams.get((self.system_id, BATTERY))
        stream = await self._load_stream(key, start_at, battery)
        self._streams[key] = stream
        await self._delivery.save(stream)

    async def _discover(self) -> None:
        self.requests += 1
        devices = await self.client.get_system_devices(self.system_id)
        self._discovered_at = time.monotonic()
        current = set(devices.encharge_serials)
        for serial in sorted(current):
            await self._add_stream(serial)
        for key, stream in list(self._streams.items()):
            if stream.source != BATTERY and stream.source not in current:
                _LOGGER.info("Encharge %s is no longer listed; not following it", stream.source)
                del self._streams[key]
                self._delivery.forget(stream)

    async def _fill(self) -> None:
        """Fetch the next window of the current poll, or wait for the next poll."""
        stream: StreamLog | None = None
        try:
            if not self._plan:
                # Discovery too: a transient failure of it is retried like any other.
                await self._begin_poll()
                if not self._plan:
                    return  # nothing to follow yet; the next poll may discover Encharges
            stream = self._plan[0]
            done = await self._fetch_window(stream)
        except (RateLimitError, EnphaseConnectionError, ResponseFormatError, ApiError) as err:
            if not is_transient(err):
                raise
            self._failures += 1
            if isinstance(err, ResponseFormatError):
                self._format_failures += 1
                if self._format_failures > FORMAT_RETRIES:
                    # The same answer, unreadable every time: not a glitch.  Say so
                    # rather than retry (and warn) forever.
                    raise
            self.retries += 1
            wait = retry_wait(err, self._failures, self._retry_wait_s)
            _LOGGER.warning(
                "poll of %s failed (%s: %s); retrying in %.0f s",
                stream.store_key if stream is not None else f"{self.system_id}/devices",
                type(err).__name__,
                err,
                wait,
            )
            await asyncio.sleep(wait)
            return
        self._failures = 0
        self._format_failures = 0
        if done:
            self._plan.popleft()
            if not self._plan:
                self._caught_up = True
                self._poll_complete = True
                self._signal_drained()
        await self._delivery.save(stream)

    def _signal_drained(self) -> None:
        """A poll has come to the end of what the API shows, and all of it is out.

        Latched until a later poll finds new intervals: a consumer that asks once it has
        stored the last one still sees it, even when the next poll has begun.
        """
        if self._poll_complete and self._delivery.pending == 0:
            self._drained.set()

    async def _begin_poll(self) -> None:
        await self._pacer.wait_turn()
        self._caught_up = False
        self._poll_complete = False
        self._last_reports.clear()
        if self._explicit_encharges is None and (
            self._discovered_at is None
            or time.monotonic() - self._discovered_at >= self._rediscover_s
        ):
            await self._discover()
        self._pacer.begin(self.current_poll_interval())
        for stream in self._streams.values():
            stream.cursor = stream.watermark
        # Encharges first: their last report times can spare the battery stream the request
        # that would only find the end of the data.
        self._plan = collections.deque(
            sorted(self._streams.values(), key=lambda s: s.source == BATTERY)
        )

    async def _fetch_window(self, stream: StreamLog) -> bool:
        """One request for ``stream``; returns True when it reached the newest data."""
        self.requests += 1
        result = await fetch_window(
            self.client,
            stream,
            settle_s=self._settle_s,
            late_horizon_s=self._late_horizon_s,
            last_reports=self._last_reports,
        )
        if result.gone:
            self._streams.pop(stream.key, None)
            self._delivery.forget(stream)
            return True
        if result.ready:
            self._delivery.offer(stream, result.ready)
            self._drained.clear()  # new intervals: not caught up until they are out
        return result.done
