"""LiveSession: stay live on ``live_data`` within a budget, fall back to ``latest_telemetry``.

One loop, two sources:

* **live**: open a ``live_data`` stream (counted against the :class:`LiveLedger` first,
  checked and recorded in one step), yield a frame per event, and when the server closes
  the stream after ``duration`` reconnect at once: the gap is one connection set-up.  A
  stream that dies before its first frame counts as a failure, and so does an error
  status the live table does not list (a 5xx, an unlisted 4xx): the next try waits a
  back-off (or the server's ``retry:``, capped at :data:`MAX_RECONNECT_WAIT_S`), polling
  ``latest_telemetry`` meanwhile when the wait is long; after :data:`MAX_FAILURES` in a
  row, cool down.
* **latest**: poll ``latest_telemetry`` through the client's normal request path (rate
  limiter, quota, retries), every ``fallback_interval_s``.  A 403 (plan), 466/472
  (unsupported) end live for the session; a spent budget or a 473 / repeated failures
  only pause it, and live resumes once the budget frees up or the cool-down ends.

Frames say which source they came from (``frame.source``).  With ``fallback=False``
the session raises instead of falling back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import attrs

from enphase_battery.exceptions import (
    ApiError,
    AuthenticationError,
    EnphaseConnectionError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)
from enphase_battery.http.sse import SseDecoder, SseError
from enphase_battery.live.budget import LiveBudget, LiveLedger, LiveSpend
from enphase_battery.live.connect import LiveTransport
from enphase_battery.live.errors import (
    LiveAction,
    LiveBudgetExhaustedError,
    LiveDataError,
    action_for,
    live_error,
)
from enphase_battery.live.fallback import default_fallback_interval_s
from enphase_battery.live.frames import frame_from_event, frame_from_latest
from enphase_battery.live.stats import LiveStats
from enphase_battery.models import Granularity
from enphase_battery.models.live import LiveFrame, LiveSource

__all__ = [
    "DEFAULT_DURATION_S",
    "MAX_DURATION_S",
    "MAX_RECONNECT_WAIT_S",
    "MIN_DURATION_S",
    "LiveSession",
]

_LOGGER = logging.getLogger(__name__)

#: The server closes a stream after ``duration`` seconds, 30-300 (fact sheet §7).  The
#: longest costs least: one connection per five minutes of live data.
MIN_DURATION_S = 30
MAX_DURATION_S = 300
DEFAULT_DURATION_S = MAX_DURATION_S
#: Connections in a row that bring no frame before the session cools down.
MAX_FAILURES = 3
#: Seconds of polling ``latest_telemetry`` before trying live again after a 473 or
#: repeated failures.
DEFAULT_COOL_DOWN_S = 300.0
_GAPS_KEPT = 1000
#: The longest wait before reconnecting, whatever the server's ``retry:`` asks for (a
#: ``retry: 86400000`` would otherwise leave the session a day without a frame).
MAX_RECONNECT_WAIT_S = 30.0
#: The first back-off after a failed connection (doubling, up to the cap).
DEFAULT_RECONNECT_BACKOFF_S = 1.0
#: How often a fallback frame's SoC is read again (the battery telemetry's newest SoC
#: moves once per 15-minute interval).
_SOC_EVERY_S = 900.0
#: A wait before reconnecting longer than this polls ``latest_telemetry`` meanwhile.
_POLL_DURING_WAITS_OVER_S = 5.0
#: The longest a 429 on connecting makes the session wait before trying again.
_RATE_LIMIT_WAIT_MAX_S = 60.0


class LiveSession:
    """Async iterator of :class:`LiveFrame`; use ``async with`` or :meth:`aclose`.

    Normally made by :meth:`EnphaseClient.live`.  ``budget`` (or a shared ``ledger``)
    bounds the connections; ``duration_s`` (30-300) is how long each stream is asked to
    last; ``fallback_interval_s`` spaces the ``latest_telemetry`` polls (default
    :func:`default_fallback_interval_s`); ``idle_timeout_s`` is how long a stream may
    stay silent (no event, no keep-alive) before it is treated as dead;
    ``reconnect_backoff_s`` is the first wait after a failed connection (doubling up to
    :data:`MAX_RECONNECT_WAIT_S`; a server's ``retry:`` replaces it, within the same cap).
    """

    def __init__(
        self,
        transport: LiveTransport,
        system_id: int,
        *,
        budget: LiveBudget | None = None,
        ledger: LiveLedger | None = None,
        duration_s: int = DEFAULT_DURATION_S,
        fallback: bool = True,
        fallback_interval_s: float | None = None,
        cool_down_s: float = DEFAULT_COOL_DOWN_S,
        idle_timeout_s: float = 90.0,
        reconnect_backoff_s: float = DEFAULT_RECONNECT_BACKOFF_S,
    ) -> None:
        if ledger is None:
            if budget is None:
                raise InvalidRequestError(
                    "live data is billed per connection: give a budget=LiveBudget(...)"
                    " (or a shared ledger=LiveLedger(...))"
                )
            ledger = LiveLedger(budget)
        elif budget is not None and budget != ledger.budget:
            raise InvalidRequestError("give budget or ledger, not both")
        if isinstance(duration_s, bool) or not isinstance(duration_s, int):
            raise InvalidRequestError("duration_s must be an int")
        if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
            raise InvalidRequestError(
                f"duration_s must be {MIN_DURATION_S}-{MAX_DURATION_S}, got {duration_s}"
            )
        if fallback_interval_s is None:
            fallback_interval_s = default_fallback_interval_s(transport.rate_limits)
        if not fallback_interval_s > 0 or not cool_down_s >= 0 or not idle_timeout_s > 0:
            raise InvalidRequestError(
                "fallback_interval_s and idle_timeout_s must be > 0, cool_down_s >= 0"
            )
        if not 0 <= reconnect_backoff_s <= MAX_RECONNECT_WAIT_S:
            raise InvalidRequestError(
                f"reconnect_backoff_s must be 0-{MAX_RECONNECT_WAIT_S:g}, got {reconnect_backoff_s}"
            )
        self._transport = transport
        #: The fallback frames' SoC and when it was read (monotonic).
        self._soc: int | None = None
        self._soc_read_at: float | None = None
        self.system_id = system_id
        self.ledger = ledger
        self.duration_s = duration_s
        self.fallback = fallback
        self.fallback_interval_s = float(fallback_interval_s)
        self.cool_down_s = float(cool_down_s)
        self.idle_timeout_s = float(idle_timeout_s)
        self.reconnect_backoff_s = float(reconnect_backoff_s)
        self._source = LiveSource.LIVE
        self._reason: str | None = None
        #: Live stays off for good (403, 466, 472).
        self._live_off = False
        self._live_retry_at = 0.0
        self._failures = 0
        #: Monotonic time before which the next connection waits (after a failure).
        self._reconnect_at = 0.0
        self._retry_ms: int | None = None
        self._last_event_id: str | None = None
        self._connections = 0
        self._live_frames = 0
        self._latest_frames = 0
        self._cut = 0
        self._keepalives = 0
        self._bad = 0
        self._gaps: deque[float] = deque(maxlen=_GAPS_KEPT)
        self._stream_ended_at: float | None = None
        self._warned_duration = False
        self._iterator: AsyncGenerator[LiveFrame, None] | None = None
        self._closed = False

    # -- public -----------------------------------------------------------------------

    @property
    def spend(self) -> LiveSpend:
        """Connections and US$ spent (the ledger's, shared if the ledger is)."""
        return self.ledger.snapshot()

    @property
    def stats(self) -> LiveStats:
        """Counters and the current source."""
        return LiveStats(
            source=self._source,
            fallback_reason=self._reason,
            connections=self._connections,
            reconnects=max(0, self._connections - 1),
            live_frames=self._live_frames,
            latest_frames=self._latest_frames,
            cut_events=self._cut,
            keepalives=self._keepalives,
            bad_events=self._bad,
            reconnect_gaps_s=tuple(self._gaps),
        )

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> LiveFrame:
        if self._closed:
            raise StopAsyncIteration
        if self._iterator is None:
            self._iterator = self._run()
        return await anext(self._iterator)

    async def aclose(self) -> None:
        """Stop: the open stream (if any) is closed; further iteration ends at once."""
        self._closed = True
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            await iterator.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"LiveSession(system_id={self.system_id}, source={self._source.value}, {self.ledger!r})"
        )

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[LiveFrame, None]:
        while True:
            if self._source is LiveSource.LIVE:
                async for frame in self._live_connection():
                    yield frame
            else:
                async for frame in self._poll_latest():
                    yield frame

    def _fall_back(self, reason: str, *, until: float | None, error: Exception) -> None:
        """Switch to polling (``until``: monotonic time live may resume; None: never)."""
        if not self.fallback:
            raise error
        if until is None:
            self._live_off = True
        else:
            self._live_retry_at = until
        if self._source is not LiveSource.LATEST or self._reason != reason:
            _LOGGER.info(
                "live data for system %s: %s; polling latest_telemetry", self.system_id, reason
            )
        self._source = LiveSource.LATEST
        self._reason = reason

    async def _live_connection(self) -> AsyncIterator[LiveFrame]:
        wait = self._reconnect_at - time.monotonic()
        if wait > 0:
            if self.fallback and wait > _POLL_DURING_WAITS_OVER_S:
                # A long wait (the server's retry:, a back-off): frames meanwhile.
                reason = f"reconnecting in {wait:.0f} s after a failed live connection"
                error = EnphaseConnectionError(reason)
                self._fall_back(reason, until=self._reconnect_at, error=error)
                return
            await asyncio.sleep(wait)
        # Checked and recorded in one step, after any wait: sessions sharing the ledger
        # cannot all pass the check and then all connect.
        now = self.ledger.now()
        if not self.ledger.try_record(now):
            allowed_at = self.ledger.next_allowed_at(now)
            when = "" if allowed_at is None else f" before {_utc(allowed_at)}"
            budget_error = LiveBudgetExhaustedError(
                f"the live budget ({self.ledger.budget.describe()}) allows no connection{when}"
            )
            resume = None if allowed_at is None else time.monotonic()
            self._fall_back("live budget spent", until=resume, error=budget_error)
            return
        self._connections += 1
        frames = 0
        started = time.monotonic()
        decoder = SseDecoder()
        try:
            async with self._transport.open_live_stream(
                self.system_id,
                duration_s=self.duration_s,
                last_event_id=self._last_event_id,
                idle_timeout_s=self.idle_timeout_s,
            ) as response:
                if self._stream_ended_at is not None:
                    self._gaps.append(time.monotonic() - self._stream_ended_at)
                    self._stream_ended_at = None
                comments = 0
                async for chunk in response.content.iter_any():
                    events = decoder.feed(chunk)
                    if decoder.comments != comments:
                        self._keepalives += decoder.comments - comments
                        comments = decoder.comments
                    for event in events:
                        frame = self._frame_or_raise(event)
                        if frame is not None:
                            frames += 1
                            self._failures = 0
                            self._live_frames += 1
                            yield frame
        except LiveDataError as error:
            self._after_stream(decoder)
            self._handle_live_error(error)
            return
        except PermissionDeniedError as error:
            self._after_stream(decoder)
            if frames == 0:
                # Refused before any stream opened: nothing was billed.
                self.ledger.refund()
                self._connections -= 1
            self._fall_back("the API plan or grant lacks live_data (403)", until=None, error=error)
            return
        except QuotaExceededError:
            # The month is spent: polling latest_telemetry would be refused just the same.
            raise
        except RateLimitError as error:
            self._after_stream(decoder)
            self._count_failure(error)
            if self._source is LiveSource.LIVE:
                await asyncio.sleep(min(_RATE_LIMIT_WAIT_MAX_S, error.retry_after or 5.0))
            return
        except (AuthenticationError, NotFoundError, ResponseFormatError):
            # Polling latest_telemetry could not help: the caller must act.
            raise
        except ApiError as error:
            # A 5xx or a 4xx the live table does not list: a failed connection (retried
            # with back-off, then the fallback), not the end of the session.
            self._after_stream(decoder)
            _LOGGER.info(
                "live_data for system %s refused with HTTP %s", self.system_id, error.status
            )
            self._count_failure(error)
            return
        except (EnphaseConnectionError, aiohttp.ClientError, TimeoutError, SseError) as error:
            self._after_stream(decoder)
            # The type only: aiohttp's messages may carry the URL, key= and all.
            _LOGGER.debug(
                "live stream of system %s broke: %s", self.system_id, type(error).__name__
            )
            if frames == 0:
                self._count_failure(error if isinstance(error, EnphaseConnectionError) else None)
            # A stream that broke after bringing frames is reconnected at once.
            return
        self._after_stream(decoder)
        lasted_s = time.monotonic() - started
        if frames == 0:
            self._count_failure(None)
        elif lasted_s < self.duration_s / 2 and not self._warned_duration:
            self._warned_duration = True
            _LOGGER.warning(
                "live stream of system %s closed after %.0f s, %s s asked for",
                self.system_id,
                lasted_s,
                self.duration_s,
            )

    def _after_stream(self, decoder: SseDecoder) -> None:
        self._stream_ended_at = time.monotonic()
        if decoder.retry_ms is not None:
            self._retry_ms = decoder.retry_ms
        if decoder.last_event_id is not None:
            self._last_event_id = decoder.last_event_id
        if decoder.close():
            self._cut += 1

    def _frame_or_raise(self, event: Any) -> LiveFrame | None:
        try:
            result = frame_from_event(event)
        except ValueError as err:
            self._bad += 1
            _LOGGER.warning("live_data event not understood (%s); skipped", err)
            return None
        if isinstance(result, int):
            error = live_error(result, None)
            if error is None:
                self._bad += 1
                _LOGGER.warning("live_data error event with unknown code %s; skipped", result)
                return None
            raise error
        return result

    def _handle_live_error(self, error: LiveDataError) -> None:
        action = action_for(error)
        if action is LiveAction.RAISE:
            raise error
        if action is LiveAction.FALL_BACK:
            self._fall_back(str(error), until=None, error=error)
        elif action is LiveAction.COOL_DOWN:
            self._fall_back(str(error), until=time.monotonic() + self.cool_down_s, error=error)
        else:
            self._count_failure(error)

    def _count_failure(self, error: Exception | None) -> None:
        self._failures += 1
        if self._failures >= MAX_FAILURES:
            self._failures = 0
            self._reconnect_at = 0.0
            reason = f"{MAX_FAILURES} live connections in a row brought no data"
            self._fall_back(
                reason,
                until=time.monotonic() + self.cool_down_s,
                error=error or EnphaseConnectionError(reason),
            )
            return
        self._reconnect_at = time.monotonic() + self._retry_wait_s()

    def _retry_wait_s(self) -> float:
        """The wait before the next try: the server's ``retry:`` or a doubling back-off,
        never over :data:`MAX_RECONNECT_WAIT_S`."""
        if self._retry_ms is not None:
            wait = self._retry_ms / 1000.0
        else:
            wait = self.reconnect_backoff_s * 2 ** (self._failures - 1)
        return min(MAX_RECONNECT_WAIT_S, wait)

    async def _poll_latest(self) -> AsyncIterator[LiveFrame]:
        if self._may_go_live():
            self._source = LiveSource.LIVE
            self._reason = None
            return
        latest = await self._transport.get_latest_telemetry(self.system_id)
        self._latest_frames += 1
        yield attrs.evolve(frame_from_latest(latest), battery_soc=await self._fallback_soc())
        wait = self.fallback_interval_s
        if not self._live_off:
            wait = min(wait, max(0.0, self._resume_in_s()))
        await asyncio.sleep(wait)

    async def _fallback_soc(self) -> int | None:
        """The SoC a fallback frame carries, from where ``battery_now`` reads it (the
        battery telemetry's ``last_reported_aggregate_soc``; ``latest_telemetry`` has
        none): read again at most every :data:`_SOC_EVERY_S` (it moves per interval)."""
        now = time.monotonic()
        if self._soc_read_at is None or now - self._soc_read_at >= _SOC_EVERY_S:
            try:
                telemetry = await self._transport.get_battery_telemetry(
                    self.system_id, granularity=Granularity.FIFTEEN_MINUTES
                )
            except (PermissionDeniedError, NotFoundError, ResponseFormatError) as err:
                _LOGGER.info("live fallback: no SoC for system %s (%s)", self.system_id, err)
            else:
                self._soc = telemetry.last_reported_aggregate_soc
            self._soc_read_at = now
        return self._soc

    def _resume_in_s(self) -> float:
        cool = self._live_retry_at - time.monotonic()
        now = self.ledger.now()
        allowed_at = self.ledger.next_allowed_at(now)
        budget = float("inf") if allowed_at is None else allowed_at - now
        return max(cool, budget)

    def _may_go_live(self) -> bool:
        return not self._live_off and self._resume_in_s() <= 0


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
