"""The telemetry poller: every 15-minute battery and Encharge interval, exactly once.

How it stays correct against the real service:

* **What is new comes from the API and the checkpoint, never the local clock.**  Each
  stream (the system's ``"battery"`` aggregate, and each Encharge) keeps a watermark:
  every interval ending at or before it is done.  Each poll asks for the week after the
  watermark (the widest window, 672 intervals, one request) and keeps going window by
  window while the API answers with full windows, so catch-up after downtime costs one
  request per stream per week of history.  The local clock only paces the polls.
* **Partial intervals** (``devices_reporting`` below the system's total) are held back
  until they are complete, or until they are older than ``settle`` relative to the
  newest interval the API has shown; then they come out as they are, flagged
  ``partial``.
* **Late intervals** (a gap, later intervals already there): the watermark stays before
  the gap, and the intervals delivered past it are remembered, so the next poll (which
  starts at the watermark) picks the late one up and nothing comes twice.  A gap older
  than ``late_horizon`` (default six days, inside one week window) relative to the newest
  data is given up: the API has nothing there.
* **Delivery**: an interval counts as delivered when the consumer asks for the next one
  or stops gracefully (``break`` inside ``async with``, ``aclose()``, cancellation); the
  checkpoint is saved before the next interval is handed out.  After a crash, at most
  the one interval that was in the consumer's hands comes again.
* **Quota**: polls are paced so that, in steady state, the poller spends at most
  ``quota_share`` (80 %) of the plan's monthly quota, leaving the rest for the user's
  other calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import re
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Self

import attrs

from .checkpoint import CheckpointStore, StreamState, open_store
from .exceptions import (
    ApiError,
    EnphaseConnectionError,
    InvalidRequestError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)
from .models import BatteryInterval, BatteryTelemetry, EnchargeTelemetry, Granularity

if TYPE_CHECKING:
    from .client import EnphaseClient

__all__ = [
    "BATTERY",
    "PollerProgress",
    "TelemetryInterval",
    "TelemetryPoller",
    "collect",
    "poll_interval_for",
]

_LOGGER = logging.getLogger(__name__)

#: ``source`` of the system-level battery stream.
BATTERY = "battery"
INTERVAL_S = 900
WEEK_S = Granularity.WEEK.span_s
#: Intervals arrive every 15 minutes: polling faster cannot bring more.
MIN_POLL_INTERVAL_S = 900.0
#: Average month, for quota pacing.
MONTH_S = 30.4375 * 86_400
_FIRST_INTERVAL = re.compile(r"first_interval\D{0,8}(\d{9,11})")


@attrs.frozen
class TelemetryInterval:
    """One 15-minute interval of one stream, as the poller delivers it.

    Attributes:
        system_id: the system.
        source: ``"battery"`` for the system aggregate, else the Encharge serial number.
        end_at: end of the interval (tz-aware UTC); it covers ``(end_at - 15 min, end_at]``.
        charge_wh / discharge_wh: energy into / out of the battery over the interval.
        soc_percent: state of charge at ``end_at``.
        devices_reporting / total_devices: how many of the system's batteries the
            values cover (1/1 for an Encharge stream).
        partial: ``True`` when delivered with ``devices_reporting < total_devices``
            because it stayed incomplete for longer than ``settle``.
    """

    system_id: int
    source: str
    end_at: datetime
    charge_wh: int
    discharge_wh: int
    soc_percent: int | None
    devices_reporting: int | None
    total_devices: int | None
    partial: bool = False

    @property
    def start_at(self) -> datetime:
        """Start of the interval."""
        return self.end_at - timedelta(seconds=INTERVAL_S)


@attrs.frozen
class PollerProgress:
    """A snapshot of the poller's work, e.g. for a progress line."""

    intervals_emitted: int
    requests: int
    newest_end_at: datetime | None
    caught_up: bool
    retries: int
    watermarks: dict[str, datetime | None]


def poll_interval_for(
    client: EnphaseClient, streams: int, *, quota_share: float = 0.8, extra_calls: float = 30.0
) -> float:
    """Seconds between polls so that ``streams`` requests per poll (plus ``extra_calls`` a
    month for discovery) stay within ``quota_share`` of the monthly quota.

    Example: the Watt plan's 1,000 calls with 80 % for the poller, one stream, 30
    discovery calls: ``2,629,800 s / 770 calls`` = one poll every 57 minutes.
    """
    limits = client.rate_limits
    streams = max(1, streams)
    floor = max(MIN_POLL_INTERVAL_S, streams * limits.min_spacing_s)
    if limits.monthly_quota is None:
        return floor
    budget = limits.monthly_quota * quota_share - extra_calls
    if budget <= 0:
        raise InvalidRequestError("the monthly quota leaves nothing for the poller")
    return max(floor, MONTH_S * streams / budget)


class _Stream:
    """Bookkeeping of one stream: pure logic, no I/O."""

    def __init__(self, system_id: int, source: str, state: StreamState | None) -> None:
        self.system_id = system_id
        self.source = source
        self.key = f"{system_id}/{source}"
        self.watermark: int | None = state.watermark if state else None
        self.delivered: set[int] = set(state.delivered) if state else set()
        self.queued: set[int] = set()
        self.held: set[int] = set()
        self.newest: int | None = None
        self.cursor: int | None = None
        self.dirty = False

    def state(self) -> StreamState | None:
        if self.watermark is None:
            return None
        return StreamState(self.watermark, tuple(sorted(self.delivered)))

    def accept(
        self, intervals: Sequence[TelemetryInterval], settle_s: float
    ) -> list[TelemetryInterval]:
        """Intervals of one API answer -> those to deliver now (sorted)."""
        if not intervals:
            return []
        ends = [int(iv.end_at.timestamp()) for iv in intervals]
        newest = max(ends)
        if self.newest is None or newest > self.newest:
            self.newest = newest
        watermark = self.watermark if self.watermark is not None else -1
        ready: list[TelemetryInterval] = []
        for end, iv in zip(ends, intervals, strict=True):
            if end <= watermark or end in self.delivered or end in self.queued:
                continue
            complete = (
                iv.devices_reporting is None
                or iv.total_devices is None
                or iv.devices_reporting >= iv.total_devices
            )
            if not complete and self.newest - end < settle_s:
                self.held.add(end)
                continue
            self.held.discard(end)
            self.queued.add(end)
            ready.append(iv if complete else attrs.evolve(iv, partial=True))
        ready.sort(key=lambda iv: iv.end_at)
        return ready

    def mark_delivered(self, end: int, late_horizon_s: float) -> None:
        self.queued.discard(end)
        if self.watermark is None or end > self.watermark:
            self.delivered.add(end)
        self.advance(late_horizon_s)

    def advance(self, late_horizon_s: float) -> None:
        """Move the watermark over delivered intervals and over gaps given up."""
        if self.watermark is None:
            return
        moved = False
        while True:
            slot = self.watermark + INTERVAL_S
            if slot in self.delivered:
                self.delivered.discard(slot)
            elif (
                self.newest is not None
                and self.newest - slot >= late_horizon_s
                and slot not in self.queued
                and slot not in self.held
            ):
                # A gap this far behind the newest data is given up.  Jump straight to the
                # next slot that still matters rather than walk a long outage slot by slot.
                pending = [s for s in (*self.delivered, *self.queued, *self.held) if s > slot]
                limit = int(self.newest - late_horizon_s)
                limit -= limit % INTERVAL_S
                target = min([*pending, limit + INTERVAL_S]) - INTERVAL_S
                slot = max(slot, target)
            else:
                break
            self.watermark = slot
            moved = True
        if moved:
            self.dirty = True


class TelemetryPoller:
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
        checkpoint: ``None`` (memory), a path (a SQLite file), or a
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
    so that leaving the loop early (``break``) saves the checkpoint.

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
        self.start_at = start_at
        if not isinstance(settle, timedelta) or settle < timedelta(0):
            raise InvalidRequestError("settle must be a non-negative timedelta")
        if not isinstance(late_horizon, timedelta) or not (
            settle <= late_horizon < timedelta(days=7)
        ):
            raise InvalidRequestError("late_horizon must lie between settle and one week")
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
        try:
            self._store = open_store(checkpoint)
        except TypeError as err:
            raise InvalidRequestError(str(err)) from None
        self._owns_store = checkpoint is None or isinstance(checkpoint, str | os.PathLike)
        self._poll_interval = poll_interval
        self._settle_s = settle.total_seconds()
        self._late_horizon_s = late_horizon.total_seconds()
        self._quota_share = quota_share
        self._rediscover_s = rediscover_every.total_seconds()
        self._streams: dict[str, _Stream] = {}
        self._ready: collections.deque[tuple[_Stream, TelemetryInterval]] = collections.deque()
        self._in_hand: tuple[_Stream, TelemetryInterval] | None = None
        self._plan: collections.deque[_Stream] = collections.deque()
        self._next_poll_at: float | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        #: Seconds the poller chose to wait before its latest poll (``None``: none yet).
        self.last_poll_wait_s: float | None = None
        # Latest report time of each Encharge seen in the current poll (epoch seconds).
        self._last_reports: dict[str, int] = {}
        self._discovered_at: float | None = None
        self._started = False
        self._closed = False
        self._caught_up = False
        self._failures = 0
        self.intervals_emitted = 0
        self.requests = 0
        #: Retries of the poller's own, after the client gave up on a request.
        self.retries = 0

    def __repr__(self) -> str:
        return f"TelemetryPoller(system_id={self.system_id}, streams={list(self._streams)})"

    # -- async iterator / context manager ------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TelemetryInterval:
        if self._closed:
            raise StopAsyncIteration
        await self._commit_in_hand()
        if not self._started:
            await self._start()
        while not self._ready:
            await self._step()
        item = self._ready.popleft()
        self._in_hand = item
        self.intervals_emitted += 1
        return item[1]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Count the interval in hand as delivered, save, and release the checkpoint."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._commit_in_hand()
        finally:
            if self._owns_store:
                await self._store.close()

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
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Return once the poller is waiting for its next poll with nothing left to deliver.

        For another task than the consumer's: a health check, a "caught up" signal, or a
        test that moves a simulator's clock between polls.
        """
        await self._idle.wait()

    def poll_now(self) -> None:
        """Start the next poll now instead of waiting for the pacing interval.

        For a "refresh" command of a bot or a dashboard; every poll costs one request per
        stream, so calling this often spends the quota faster than the pacing would.
        """
        self._next_poll_at = None
        self._caught_up = False
        self._wake.set()

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

    async def _commit_in_hand(self) -> None:
        if self._in_hand is None:
            return
        stream, interval = self._in_hand
        stream.mark_delivered(int(interval.end_at.timestamp()), self._late_horizon_s)
        await self._save(stream)
        # Only once saved: a save cut short (cancellation) is done again by aclose().
        self._in_hand = None

    async def _save(self, stream: _Stream) -> None:
        state = stream.state()
        if state is not None:
            await self._store.save(stream.key, state)
        stream.dirty = False

    async def _start(self) -> None:
        self._started = True
        if self.include_battery:
            await self._add_stream(BATTERY)
        if self._explicit_encharges is not None:
            for serial in self._explicit_encharges:
                await self._add_stream(serial)

    async def _add_stream(self, source: str) -> None:
        key = f"{self.system_id}/{source}"
        if key in self._streams:
            return
        saved = await self._store.load(key)
        stream = _Stream(self.system_id, source, saved)
        if stream.watermark is None and self.start_at is not None:
            epoch = int(self.start_at.timestamp())
            stream.watermark = epoch - epoch % INTERVAL_S
        elif stream.watermark is None and source != BATTERY:
            battery = self._streams.get(f"{self.system_id}/{BATTERY}")
            if battery is not None and battery.watermark is not None:
                # A new Encharge starts where the system stream is.
                stream.watermark = battery.watermark
        self._streams[key] = stream
        if saved is None and stream.watermark is not None:
            # Save where a new stream starts now: a run that stops before polling it must
            # not leave a rerun (without start_at) to begin at "today" and skip history.
            await self._save(stream)
        _LOGGER.debug("following stream %s from %s", key, stream.watermark)

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

    async def _step(self) -> None:
        """Fetch the next window of the current poll, or wait for the next poll."""
        stream: _Stream | None = None
        try:
            if not self._plan:
                # Discovery too: a transient failure of it is retried like any other.
                await self._begin_poll()
                if not self._plan:
                    return  # nothing to follow yet; the next poll may discover Encharges
            stream = self._plan[0]
            done = await self._fetch_window(stream)
        except (RateLimitError, EnphaseConnectionError, ResponseFormatError, ApiError) as err:
            if not self._is_transient(err):
                raise
            self._failures += 1
            self.retries += 1
            first_wait, max_wait = self._retry_wait_s
            wait = min(max_wait, first_wait * 2 ** min(self._failures - 1, 16))
            wait *= random.uniform(0.5, 1.0)
            if isinstance(err, RateLimitError) and err.retry_after is not None:
                wait = max(wait, min(err.retry_after, max_wait))
            _LOGGER.warning(
                "poll of %s failed (%s: %s); retrying in %.0f s",
                stream.key if stream is not None else f"{self.system_id}/devices",
                type(err).__name__,
                err,
                wait,
            )
            await asyncio.sleep(wait)
            return
        self._failures = 0
        if done:
            self._plan.popleft()
            if not self._plan:
                self._caught_up = True
        if stream.dirty:
            await self._save(stream)

    def _is_transient(self, err: Exception) -> bool:
        if isinstance(err, QuotaExceededError):
            return False
        if isinstance(err, RateLimitError | EnphaseConnectionError | ResponseFormatError):
            return True
        return type(err) is ApiError and err.status is not None and err.status >= 500

    async def _begin_poll(self) -> None:
        if self._next_poll_at is not None:
            delay = self._next_poll_at - time.monotonic()
            self.last_poll_wait_s = max(0.0, delay)
            if delay > 0:
                self._idle.set()
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                finally:
                    self._idle.clear()
        self._wake.clear()
        self._caught_up = False
        self._last_reports.clear()
        if self._explicit_encharges is None and (
            self._discovered_at is None
            or time.monotonic() - self._discovered_at >= self._rediscover_s
        ):
            await self._discover()
        self._next_poll_at = time.monotonic() + self.current_poll_interval()
        for stream in self._streams.values():
            stream.cursor = stream.watermark
        # Encharges first: their last report times can spare the battery stream the request
        # that would only find the end of the data.
        self._plan = collections.deque(
            sorted(self._streams.values(), key=lambda s: s.source == BATTERY)
        )

    async def _fetch_window(self, stream: _Stream) -> bool:
        """One request for ``stream``; returns True when it reached the newest data."""
        start = stream.cursor
        granularity = Granularity.WEEK if start is not None else Granularity.DAY
        start_at = datetime.fromtimestamp(start, UTC) if start is not None else None
        self.requests += 1
        try:
            response: BatteryTelemetry | EnchargeTelemetry
            if stream.source == BATTERY:
                response = await self.client.get_battery_telemetry(
                    self.system_id, start_at, granularity
                )
            else:
                response = await self.client.get_encharge_telemetry(
                    self.system_id, stream.source, start_at, granularity
                )
        except NotFoundError:
            if stream.source == BATTERY:
                raise
            _LOGGER.warning("Encharge %s not found; no longer following it", stream.source)
            self._streams.pop(stream.key, None)
            return True
        except ApiError as err:
            if err.status != 422:
                raise
            return self._handle_422(stream, err)

        if start is None:
            # First poll without a checkpoint: the API chose the window (today, from the
            # system's local midnight); its answer sets the watermark, not our clock.
            if response.start_at is not None:
                start = int(response.start_at.timestamp())
            elif response.intervals:
                start = int(response.intervals[0].end_at.timestamp()) - INTERVAL_S
            else:
                return True
            start -= start % INTERVAL_S
            stream.watermark = start
            stream.dirty = True
        ready = stream.accept(self._convert(stream, response), self._settle_s)
        self._ready.extend((stream, iv) for iv in ready)
        stream.advance(self._late_horizon_s)
        window_end = int(response.end_at.timestamp()) if response.end_at is not None else None
        span = granularity.span_s
        if window_end is None or window_end < start + span:
            return True  # the window reached the API's "now"
        if self._data_ends_by(stream, response, window_end):
            return True
        stream.cursor = start + span
        return False

    def _data_ends_by(
        self, stream: _Stream, response: BatteryTelemetry | EnchargeTelemetry, window_end: int
    ) -> bool:
        """Whether the API says there is no data after ``window_end`` (a full window).

        A full window only says "now" is at or after its end.  An Encharge's
        ``last_reported_time`` at or before the window's end means nothing newer exists;
        the system's intervals are built from its Encharges, so when every one of them
        has said so in this poll, the battery stream has nothing newer either.  Without
        the hint one more request finds out.
        """
        if isinstance(response, EnchargeTelemetry):
            if response.last_reported_time is None:
                return False
            reported = int(response.last_reported_time.timestamp())
            self._last_reports[stream.source] = reported
            return reported <= window_end
        total = response.total_devices
        if not total or len(self._last_reports) < total:
            return False
        return max(self._last_reports.values()) <= window_end

    def _handle_422(self, stream: _Stream, err: ApiError) -> bool:
        text = err.details or ""
        if isinstance(err.body, dict):
            text = " ".join(str(v) for v in err.body.values())
        match = _FIRST_INTERVAL.search(text)
        if match is not None:
            first = int(match.group(1))
            first -= first % INTERVAL_S
            target = first - INTERVAL_S
            if stream.cursor is None or target > stream.cursor:
                # The stream's data starts later (a new Encharge, start_at before the
                # system existed): jump to its first interval.
                stream.cursor = target
                if stream.watermark is None or target > stream.watermark:
                    stream.watermark = target
                    stream.delivered = {e for e in stream.delivered if e > target}
                    stream.dirty = True
                return False
        if "future" in text.lower():
            return True
        raise err

    def _convert(
        self, stream: _Stream, response: BatteryTelemetry | EnchargeTelemetry
    ) -> list[TelemetryInterval]:
        system_id = self.system_id
        source = stream.source
        battery = isinstance(response, BatteryTelemetry)
        # An Encharge's own interval covers that one device.
        total = response.total_devices if battery else 1
        return [
            TelemetryInterval(
                system_id,
                source,
                iv.end_at,
                iv.charge.enwh,
                iv.discharge.enwh,
                iv.soc.percent,
                iv.devices_reporting if isinstance(iv, BatteryInterval) else 1,
                total,
            )
            for iv in response.intervals
        ]


async def collect(poller: TelemetryPoller, limit: int) -> list[TelemetryInterval]:
    """Up to ``limit`` intervals from ``poller`` (a convenience for scripts and tests)."""
    result: list[TelemetryInterval] = []
    if limit <= 0:
        return result
    async for interval in poller:
        result.append(interval)
        if len(result) >= limit:
            break
    return result
