"""One followed system of a :class:`~enphase_battery.FleetPoller`: its streams, its
progress view and what a failure of it does (a problem on record, a backoff).

A failing system is isolated here: it is backed off and reported, never raised, so
it never stops or slows the other systems.  A failing stream of a system (an Encharge
whose telemetry answers 403 or 404) is isolated the same way from the system's other
streams: on record with its own back-off, retried, never dropped silently.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from enphase_battery.exceptions import ApiError, EnphaseError, NotFoundError, PermissionDeniedError
from enphase_battery.models.delivered import BATTERY
from enphase_battery.poll.scheduler import SystemEntry
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.poll.views import SystemProblem, SystemProgress

__all__ = ["FollowedSystem"]

_LOGGER = logging.getLogger("enphase_battery.fleet")
#: How far before its system's battery watermark a new Encharge may start: one request.
_NEW_ENCHARGE_REACH_S = 7 * 86_400


class FollowedSystem:
    """The streams of one followed system."""

    __slots__ = (
        "began",
        "entry",
        "last_reports",
        "problem",
        "stream_problems",
        "streams",
    )

    def __init__(self, entry: SystemEntry) -> None:
        self.entry = entry
        #: Where the battery stream started in this run when it had no checkpoint (the
        #: API's day window, or its first interval): where a new Encharge starts.
        self.began: int | None = None
        self.streams: dict[str, StreamLog] = {}
        self.last_reports: dict[str, int] = {}
        self.problem: SystemProblem | None = None
        #: Streams (Encharge serials) failing on their own, each with its back-off.
        self.stream_problems: dict[str, SystemProblem] = {}

    def start_for_new(self) -> int | None:
        """Where a new Encharge stream of this system starts without a checkpoint or a
        ``start_at`` (``None``: at its first poll's day window, as the battery did).

        Where the battery stream began in this run, but not more than a week before
        where it has got to: an Encharge installed months into a long run costs at most
        one week's request (or the API's ``first_interval`` answer) to reach its data,
        never a walk through months of windows it has no data in.
        """
        began = self.began
        battery = self.streams.get(BATTERY)
        if began is not None and battery is not None and battery.watermark is not None:
            began = max(began, battery.watermark - _NEW_ENCHARGE_REACH_S)
        return began

    def progress(self, now: float) -> SystemProgress:
        """This system's progress at ``now`` (epoch seconds)."""
        entry = self.entry
        logs = self.streams.values()
        delivered = [log.watermark for log in logs if log.watermark]
        shown = [log.newest for log in logs if log.newest]
        newest = max(delivered) if delivered else None
        lag = None
        if newest is not None and shown:
            # Against what the system has shown (its newest interval of any stream), not
            # each stream's own newest: a stream no longer fetched shows its lag.
            system_newest = max(shown)
            lag = max(
                0.0,
                max(float(system_newest - log.watermark) for log in logs if log.watermark),
            )
        return SystemProgress(
            system_id=entry.system_id,
            newest_delivered=_dt(newest),
            last_report_at=_dt(entry.listed_report_at),
            lag_s=lag,
            requests=entry.requests,
            streams=len(self.streams),
            in_backoff=entry.backoff_until > now or self.next_retry() is not None,
            backlog=entry.backlog,
        )

    def failed(self, err: EnphaseError, backoff: tuple[float, float], now: float) -> float:
        """Put ``err`` on record as this system's problem; the seconds to back off."""
        entry = self.entry
        wait = _wait(err, backoff, entry.failures)
        previous = self.problem
        self.problem = _problem(entry.system_id, None, err, previous, entry.failures, now, wait)
        if previous is None or previous.error != self.problem.error:
            # One line per problem, not one per retry.
            _LOGGER.warning(
                "system %s: %s (%s); backing off, retrying in %.0f s",
                entry.system_id,
                type(err).__name__,
                err,
                wait,
            )
        return wait

    def stream_failed(
        self, source: str, err: EnphaseError, backoff: tuple[float, float], now: float
    ) -> float:
        """Put ``err`` on record as stream ``source``'s problem; the seconds it waits."""
        previous = self.stream_problems.get(source)
        failures = previous.failures if previous else 0
        wait = _wait(err, backoff, failures)
        problem = _problem(self.entry.system_id, source, err, previous, failures, now, wait)
        self.stream_problems[source] = problem
        if previous is None or previous.error != problem.error:
            _LOGGER.warning(
                "system %s, Encharge %s: %s (%s); backing off this stream, retrying in %.0f s",
                self.entry.system_id,
                source,
                type(err).__name__,
                err,
                wait,
            )
        return wait

    def stream_waiting(self, source: str, now: float) -> bool:
        """Whether stream ``source`` is backed off at ``now`` (not to be fetched)."""
        problem = self.stream_problems.get(source)
        return problem is not None and problem.retry_at.timestamp() > now

    def stream_recovered(self, source: str) -> None:
        """Stream ``source`` answered again: its problem is over."""
        problem = self.stream_problems.pop(source, None)
        if problem is not None:
            _LOGGER.info(
                "system %s, Encharge %s recovered from %s",
                self.entry.system_id,
                source,
                problem.error,
            )

    def next_retry(self) -> float | None:
        """When the first backed-off stream is due again (``None``: none is)."""
        due = [p.retry_at.timestamp() for p in self.stream_problems.values()]
        return min(due) if due else None


def _wait(err: EnphaseError, backoff: tuple[float, float], failures: int) -> float:
    first, longest = backoff
    if isinstance(err, PermissionDeniedError | NotFoundError):
        first = max(first, 3600.0)  # a missing grant or a removed device: check hourly
    return float(min(longest, first * 2 ** min(failures, 16)))


def _problem(
    system_id: int,
    source: str | None,
    err: EnphaseError,
    previous: SystemProblem | None,
    failures: int,
    now: float,
    wait: float,
) -> SystemProblem:
    return SystemProblem(
        system_id=system_id,
        error=type(err).__name__,
        status=err.status if isinstance(err, ApiError) else None,
        message=str(err),
        since=previous.since if previous else _dt_now(now),
        failures=failures + 1,
        retry_at=_dt_now(now + wait),
        source=source,
    )


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _dt_now(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
