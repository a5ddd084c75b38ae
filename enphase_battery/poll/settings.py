"""The poll engine's settings: one frozen object, validated once, before any request.

:class:`~enphase_battery.TelemetryPoller` and :class:`~enphase_battery.FleetPoller` take
these as keywords (their public constructors are unchanged) and build one
:class:`PollSettings`; the engine (:mod:`.engine`) takes it whole and hands its parts
what they use (the delivery its ``late_horizon_s``, each window read its seconds)
instead of the values being threaded through the constructors one by one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models import validation

__all__ = ["DEFAULT_REVISE_FOR", "MAX_BACKFILL", "PollSettings", "check_start_at"]

#: How far back the API serves telemetry (one constant, in :mod:`.validation`).
MAX_BACKFILL = validation.MAX_BACKFILL
#: How long an interval that went out partial is re-read for a revision, by default.
#: The one production integration of this API we know (SolarNetwork's Enphase datum
#: stream) re-reads incomplete intervals for up to 3 h after they end; cellular gateways
#: upload about every 6 h, so one Encharge's part of an interval can come that much after
#: its siblings'.  The re-read rides on the window each poll reads anyway, so a longer
#: horizon costs no request, only a few entries of checkpoint state.
DEFAULT_REVISE_FOR = timedelta(hours=6)


def check_start_at(start_at: datetime, now: datetime | None = None) -> None:
    """Refuse a ``start_at`` in the future or more than two years back (before any
    request: the only clock there is then is the local one)."""
    now = now or datetime.now(UTC)
    earliest = now - MAX_BACKFILL
    if not earliest <= start_at <= now + timedelta(minutes=1):
        raise InvalidRequestError(
            f"start_at {start_at.isoformat()} is outside what the API serves: from"
            f" {earliest.isoformat(timespec='minutes')} (two years back) to now"
            f" ({now.isoformat(timespec='minutes')})"
        )


def _check_start_at(_: object, __: object, value: datetime | None) -> None:
    if value is not None:
        validation.aware_datetime("start_at", value)


def _check_settle(_: object, __: object, value: timedelta) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidRequestError("settle must be a non-negative timedelta")


def _check_late_horizon(settings: PollSettings, _: object, value: timedelta) -> None:
    if not isinstance(value, timedelta) or not settings.settle <= value < timedelta(days=7):
        raise InvalidRequestError("late_horizon must lie between settle and one week")


def _check_revise_for(settings: PollSettings, _: object, value: timedelta) -> None:
    if not isinstance(value, timedelta) or not (
        value == timedelta(0) or settings.settle < value < timedelta(days=7)
    ):
        # A partial interval goes out once it is ``settle`` old: a shorter horizon would
        # never re-read it; the re-read must fit in the week one request reads.
        raise InvalidRequestError(
            "revise_for must be 0 (no revisions) or longer than settle and under one week"
        )


def _check_concurrency(_: object, __: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError("concurrency must be an int >= 1")


@attrs.frozen
class PollSettings:
    """How a poll engine reads and hands out its streams (validated on construction,
    :class:`~enphase_battery.InvalidRequestError` for a bad value, before any request).

    Args:
        start_at: where new streams begin (``None``: the system's current day).
        settle: how long a partial interval is held back, relative to the newest data.
        late_horizon: how long a missing interval is waited for (``settle`` to a week).
        revise_for: how long an interval that went out partial is re-read (``0``: never;
            else longer than ``settle``, under a week).
        concurrency: workers (requests in flight at once).
        max_pending: above this many fetched intervals waiting for the consumer, the
            workers fetch (and pay for) nothing more.
        on_demand: fetch only while the consumer waits with nothing ready (one system:
            a request is spent only when the consumer needs it; ``max_pending`` unused).
    """

    start_at: datetime | None = attrs.field(default=None, validator=_check_start_at)
    settle: timedelta = attrs.field(default=timedelta(hours=1), validator=_check_settle)
    late_horizon: timedelta = attrs.field(default=timedelta(days=6), validator=_check_late_horizon)
    revise_for: timedelta = attrs.field(default=DEFAULT_REVISE_FOR, validator=_check_revise_for)
    concurrency: int = attrs.field(default=1, validator=_check_concurrency)
    max_pending: int = 20_000
    on_demand: bool = False
    # In seconds, as the engine uses them (set once validated).
    settle_s: float = attrs.field(init=False, default=0.0, repr=False)
    late_horizon_s: float = attrs.field(init=False, default=0.0, repr=False)
    revise_s: float = attrs.field(init=False, default=0.0, repr=False)
    start_at_s: int | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        # Runs after the validators: the values are timedeltas by now.
        set_ = object.__setattr__
        set_(self, "settle_s", self.settle.total_seconds())
        set_(self, "late_horizon_s", self.late_horizon.total_seconds())
        set_(self, "revise_s", self.revise_for.total_seconds())
        if self.start_at is not None:
            set_(self, "start_at_s", int(self.start_at.timestamp()))
