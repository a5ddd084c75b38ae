"""How often the one-system poller polls (steady-state pacing against the plan's monthly
quota), and how long it waits before retrying a poll that failed for a transient reason.

The waiting itself is the engine's (:mod:`.engine`: the scheduler's timers on the
governor's clock); this is only the arithmetic.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from enphase_battery.exceptions import (
    ApiError,
    EnphaseConnectionError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)

if TYPE_CHECKING:
    from enphase_battery.client.client import EnphaseClient
    from enphase_battery.quota.state import QuotaUsage

__all__ = [
    "MIN_POLL_INTERVAL_S",
    "MONTH_S",
    "check_month",
    "is_transient",
    "poll_interval_for",
    "retry_wait",
    "share_spent",
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


def check_month(usage: QuotaUsage) -> None:
    """Raise :class:`~enphase_battery.QuotaExceededError` when the month's quota is spent
    (by the governor's count, or by the API's word), before any request is sent."""
    quota = usage.monthly_quota
    if usage.exhausted_until is not None or (quota is not None and usage.used >= quota):
        raise QuotaExceededError(
            f"the {usage.plan} plan's monthly quota is spent ({usage.used} of {quota}"
            f" requests, kept {usage.where}); the poller sent no request",
            status=None,
            period="month",
            limit=quota,
        )


def share_spent(usage: QuotaUsage) -> bool:
    """Whether background work has spent its share of the month (it waits for the next)."""
    budget = usage.background_budget
    return budget is not None and usage.used_background >= budget
