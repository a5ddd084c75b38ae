"""When the one-system poller polls: steady-state pacing against the plan's monthly quota,
and how long it waits before retrying a poll that failed for a transient reason.

Kept apart from the stream logic and the delivery front so that a multi-system engine can
put a quota governor (shared by every caller of one API key) in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import TYPE_CHECKING

from .exceptions import (
    ApiError,
    EnphaseConnectionError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)

if TYPE_CHECKING:
    from .client import EnphaseClient

__all__ = [
    "MIN_POLL_INTERVAL_S",
    "MONTH_S",
    "PollPacer",
    "is_transient",
    "poll_interval_for",
    "retry_wait",
]

#: Intervals arrive every 15 minutes: polling faster cannot bring more.
MIN_POLL_INTERVAL_S = 900.0
#: Average month, for quota pacing.
MONTH_S = 30.4375 * 86_400


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


class PollPacer:
    """Waits for the next poll: ``interval_s`` after the previous one began, or at once
    after :meth:`poll_now`.

    ``idle`` is set while it waits (and everything due is delivered: the caller only
    waits once its queue is empty).  ``polls_started`` counts polls that began, so a
    caller can wait for one it requested.
    """

    def __init__(self) -> None:
        self._next_poll_at: float | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._polled = asyncio.Event()
        #: Seconds waited before the latest poll (``None``: none yet).
        self.last_wait_s: float | None = None
        #: Polls begun so far.
        self.polls_started = 0
        #: Set by :meth:`poll_now` until the poll it asked for has begun.
        self.requested = False

    @property
    def idle(self) -> bool:
        """Whether it is waiting for the next poll."""
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Return once it waits for a poll that nobody asked to start now."""
        while True:
            await self._idle.wait()
            if not self.requested:
                return
            # poll_now() was called: the requested poll must run (and drain) first.
            self._polled.clear()
            await self._polled.wait()

    def poll_now(self) -> None:
        """Start the next poll now."""
        self._next_poll_at = None
        self.requested = True
        self._wake.set()

    async def wait_turn(self) -> None:
        """Wait until the next poll is due (or :meth:`poll_now`)."""
        if self._next_poll_at is not None:
            delay = self._next_poll_at - time.monotonic()
            self.last_wait_s = max(0.0, delay)
            if delay > 0 and not self.requested:
                self._idle.set()
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                finally:
                    self._idle.clear()
        self._wake.clear()

    def begin(self, interval_s: float) -> None:
        """A poll begins now; the next is due ``interval_s`` later."""
        self.polls_started += 1
        self.requested = False
        self._next_poll_at = time.monotonic() + interval_s
        self._polled.set()


def is_transient(err: Exception) -> bool:
    """Whether the one-system poller retries after ``err`` (the client's own retries of
    the request gave up): a 429 within the month, a 5xx, the network, an unreadable
    answer.  A spent month, a 4xx and everything else reach the consumer."""
    if isinstance(err, QuotaExceededError):
        return False
    if isinstance(err, RateLimitError | EnphaseConnectionError | ResponseFormatError):
        return True
    return type(err) is ApiError and err.status is not None and err.status >= 500


def retry_wait(err: Exception, failures: int, wait_s: tuple[float, float]) -> float:
    """Seconds before retry number ``failures`` (from 1): doubling from ``wait_s[0]`` up
    to ``wait_s[1]``, jittered so that pollers don't retry in step; a 429's reset time is
    waited for too, but no longer than the longest wait."""
    first_wait, max_wait = wait_s
    wait = min(max_wait, first_wait * 2 ** min(failures - 1, 16))
    wait *= random.uniform(0.5, 1.0)
    if isinstance(err, RateLimitError) and err.retry_after is not None:
        wait = max(wait, min(err.retry_after, max_wait))
    return float(wait)
