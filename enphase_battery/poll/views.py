"""What a :class:`~enphase_battery.FleetPoller` shows of itself: progress and problems."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from enphase_battery.quota.state import QuotaUsage

__all__ = ["FleetProgress", "SystemProblem", "SystemProgress", "fleet_progress"]


@attrs.frozen
class SystemProblem:
    """A system (or one stream of it) the fleet poller cannot poll right now; the others
    go on.

    Attributes:
        system_id: the system.
        source: ``None`` when the whole system fails; an Encharge serial when only that
            stream does (a 403 or 404 on its telemetry): it is retried on its own, with
            back-off, while the system's other streams are polled as usual.
        error: the exception's class name (``PermissionDeniedError`` for a 403,
            ``NotFoundError`` for a 404, ``ApiError``, ``EnphaseConnectionError``...).
        status: the HTTP status, when there was one.
        message: what the error said (no secrets: errors never carry them).
        since: when the problem began; failures: consecutive failures since.
        retry_at: when the system is tried again.
    """

    system_id: int
    error: str
    status: int | None
    message: str
    since: datetime
    failures: int
    retry_at: datetime
    source: str | None = None


@attrs.frozen
class SystemProgress:
    """One system's progress.

    Attributes:
        newest_delivered: end of the newest interval delivered of any of its streams.
        last_report_at: when the systems list last said the system reported.
        lag_s: how far its most lagging stream is behind: the newest interval the API
            has shown of any of the system's streams, less that stream's watermark (0
            when every stream is caught up; ``None`` before any data).  A stream that
            stopped being fetched (say, in back-off after a 403) shows its lag here.
        requests: requests this poller spent on it.
        streams: streams followed (the battery and one per Encharge).
        in_backoff: whether it, or one of its streams, is waiting after failures (see
            :attr:`FleetPoller.problems`).
        backlog: whether it still has history to fetch.
    """

    system_id: int
    newest_delivered: datetime | None
    last_report_at: datetime | None
    lag_s: float | None
    requests: int
    streams: int
    in_backoff: bool
    backlog: bool


@attrs.frozen
class FleetProgress:
    """The whole fleet's progress.

    Attributes:
        systems / streams: followed.
        intervals_delivered: intervals handed out by this poller.
        requests: requests this poller spent (polls, discovery, listing).
        requests_today: requests this poller spent on the current UTC day.
        requests_this_month / forecast_this_month / monthly_quota / background_budget:
            the API key's month as the quota governor counts it (every caller of the
            key), and where it is heading.
        systems_in_backoff: systems waiting after failures.
        systems_with_backlog: systems with history still to fetch.
        systems_waiting: systems with news not polled yet (the quota is behind).
        newest_delivered: the newest interval delivered of any stream.
        max_lag_s: the largest :attr:`SystemProgress.lag_s`.
    """

    systems: int
    streams: int
    intervals_delivered: int
    requests: int
    requests_today: int
    requests_this_month: int
    forecast_this_month: int
    monthly_quota: int | None
    background_budget: int | None
    systems_in_backoff: int
    systems_with_backlog: int
    systems_waiting: int
    newest_delivered: datetime | None
    max_lag_s: float | None


def fleet_progress(
    per: Sequence[SystemProgress],
    usage: QuotaUsage,
    *,
    intervals_delivered: int,
    requests: int,
    requests_today: int,
    systems_waiting: int,
) -> FleetProgress:
    """The fleet's total from each system's progress and the governor's month."""
    newest = [p.newest_delivered for p in per if p.newest_delivered is not None]
    lags = [p.lag_s for p in per if p.lag_s is not None]
    return FleetProgress(
        systems=len(per),
        streams=sum(p.streams for p in per),
        intervals_delivered=intervals_delivered,
        requests=requests,
        requests_today=requests_today,
        requests_this_month=usage.used,
        forecast_this_month=usage.forecast,
        monthly_quota=usage.monthly_quota,
        background_budget=usage.background_budget,
        systems_in_backoff=sum(p.in_backoff for p in per),
        systems_with_backlog=sum(p.backlog for p in per),
        systems_waiting=systems_waiting,
        newest_delivered=max(newest) if newest else None,
        max_lag_s=max(lags) if lags else None,
    )
