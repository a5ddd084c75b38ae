"""One quota governor per API key: the plan's per-minute spacing and the month's count.

Every request of a client (its pollers, fleet discovery and the user's own calls) is
admitted here before it is sent:

* **Spacing.**  Requests are given send slots ``60 s / per-minute limit`` apart, so the
  API's fixed minute windows never see more than the limit (no per-minute 429 in steady
  state).
* **The month.**  A request is counted when it is admitted, in the same atomic step
  that checks the count against the plan, so any number of concurrent callers can't
  overshoot the quota.  The month is the calendar month (UTC) until a 429 body names
  the API's own (``period_start`` / ``period_end``).
* **Background share.**  Work marked as background (:func:`background_work`: pollers,
  the fleet) may spend at most ``quota_share`` of the month; the user's own calls may
  use the rest.  Background spending follows a budget line: a token bucket refilled at
  ``(share left) / (time left in the month)``, holding up to ``burst`` worth, so a
  fleet that wants more than its share slows down evenly instead of running dry on
  day 20, and one that wants less leaves the quota unspent.
* **Refunds.**  A request that never reached the server (refused connection, unknown
  host) is refunded and gives its slot back; a per-minute 429 is refunded (the server
  didn't count it) and pushes the next slot past the window's end.
* **Month 429.**  The server's word that the month is spent holds for that plan and
  that month only.

The state lives in a :class:`GovernorBackend`: in memory by default, in a JSON file for
the CLI (:class:`~enphase_battery.quota.file_backend.FileGovernorBackend`), or in a shared
database so several processes on one key keep to the plan together.  A backend only
has to apply a pure update function atomically; all the rules live here.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from enphase_battery.exceptions import InvalidRequestError, QuotaExceededError
from enphase_battery.quota.limits import RateLimits
from enphase_battery.quota.state import (
    _BACKGROUND,
    Admission,
    GovernorBackend,
    GovernorState,
    MemoryGovernorBackend,
    Outcome,
    QuotaUsage,
    _admitted,
    _background_pace,
    _usage_of,
    background_work,
    calendar_month,
    is_background,
)
from enphase_battery.util.clock import SYSTEM_CLOCK, Clock

#: Slots are spaced a little wider than the plan allows: a send that the event loop delays
#: (a few ms, more on a loaded host) must not carry one more request into the server's next
#: fixed minute window.  2 % of the Watt plan's 6 s spacing is 120 ms of slack a slot.
SPACING_MARGIN = 1.02
#: A clock more than this behind the time of the last admission (``clock_at``) was
#: stepped back: every stored wait is capped at now plus one spacing, so a clock that was
#: an hour (or, through a usage file, a day) ahead is not waited out.  Hosts sharing a
#: PostgreSQL governor keep their clocks within this of each other (NTP does).
CLOCK_STEP_BACK_S = 1.0

__all__ = [
    "CLOCK_STEP_BACK_S",
    "Admission",
    "GovernorBackend",
    "GovernorState",
    "MemoryGovernorBackend",
    "Outcome",
    "QuotaGovernor",
    "QuotaUsage",
    "background_work",
    "calendar_month",
    "is_background",
]


#: A wait longer than this (seconds) is reported to :attr:`QuotaGovernor.on_wait`.
WAIT_NOTICE_S = 1.0


@attrs.frozen
class _Wait:
    until: float


class QuotaGovernor:
    """Admits every request of one API key under its plan's limits.

    Args:
        limits: the plan (:class:`~enphase_battery.RateLimits`).
        quota_share: the part of the month's quota background work may spend.
        key: what identifies the API key in a shared backend (say, a hash of it);
            the plan's name is added, so a count never leaks from one plan to another.
        backend: where the state lives (default: this process's memory).
        clock: what time it is (default real time; a simulator's clock in tests).
        burst_s: how much background work may run ahead of its budget line, in
            seconds of budget (default 6 h): start-up and catch-up go at the plan's
            full speed for that long.
        used: requests already spent this month, for a fresh state (earlier runs,
            other programs on the same key).
        reset_hint: what to tell the user about resetting a local count.
    """

    def __init__(
        self,
        limits: RateLimits,
        *,
        quota_share: float = 0.8,
        key: str = "default",
        backend: GovernorBackend | None = None,
        clock: Clock | None = None,
        burst_s: float = 6 * 3600.0,
        used: int = 0,
        reset_hint: str | None = None,
    ) -> None:
        if not isinstance(limits, RateLimits):
            raise InvalidRequestError("limits must be a RateLimits")
        if not 0 < quota_share <= 1:
            raise InvalidRequestError("quota_share must be in (0, 1]")
        if not burst_s >= 0:
            raise InvalidRequestError("burst_s must be >= 0")
        if isinstance(used, bool) or not isinstance(used, int) or used < 0:
            raise InvalidRequestError("used must be an int >= 0")
        self.limits = limits
        self.quota_share = quota_share
        self.plan = limits.plan_name
        self.key = f"{key}:{self.plan}"
        self.backend: GovernorBackend = backend or MemoryGovernorBackend()
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.burst_s = float(burst_s)
        self._seed_used = used
        self.reset_hint = reset_hint
        self._last: GovernorState | None = None
        #: Requests this governor admitted and refunded (this process).
        self.admitted = 0
        self.refunded = 0
        #: Called as ``on_wait(seconds, why)`` when a request is about to wait longer than
        #: :data:`WAIT_NOTICE_S` for its slot (``why``: ``"spacing"``, the plan's minimum
        #: time between requests, or ``"budget"``, its per-minute or background budget):
        #: what a command line says instead of sitting silent.
        self.on_wait: Callable[[float, str], None] | None = None

    def __repr__(self) -> str:
        return f"QuotaGovernor(plan={self.plan!r}, quota_share={self.quota_share})"

    @staticmethod
    def key_for(api_key: str) -> str:
        """A stable, non-secret name for an API key (a short hash of it)."""
        return hashlib.sha256(api_key.encode()).hexdigest()[:16]

    # -- the month ----------------------------------------------------------------

    @property
    def background_budget(self) -> int | None:
        """The most background work may spend in a month (``None``: no cap)."""
        quota = self.limits.monthly_quota
        return None if quota is None else int(quota * self.quota_share)

    def background_rate(self, now: float | None = None) -> float:
        """Requests a second background work may spend from ``now`` (default: the
        clock's time) to the month's end: the budget line its admissions follow.

        From the latest state this governor has seen (no I/O, like :meth:`usage_now`);
        0 once the share is spent; a plan without a monthly quota: the plan's own rate.
        """
        budget = self.background_budget
        if budget is None:
            return self.limits.max_rate / self.limits.time_period
        now = self.clock.time() if now is None else now
        state = self._current(self._last, now)
        if state.used_background >= budget:
            return 0.0
        return _background_pace(budget, state.used_background, state.month_end, now)

    def _fresh(self, now: float) -> GovernorState:
        start, end = calendar_month(now)
        return GovernorState(self.plan, start, end, used=self._seed_used)

    def _current(self, state: GovernorState | None, now: float) -> GovernorState:
        """The state rolled into the month holding ``now`` (its waits capped if the clock
        was stepped back)."""
        if state is None or state.plan != self.plan:
            return self._fresh(now)
        state = self._unstepped(state, now)
        if now >= state.month_end:
            start, end = calendar_month(now)
            if state.month_from_api and state.month_end > start and state.month_end <= now:
                # The API's month may not start at midnight UTC: follow on from its end.
                start = state.month_end
            return GovernorState(
                self.plan, start, max(end, start + 1.0), next_slot_at=state.next_slot_at
            )
        return state

    def _unstepped(self, state: GovernorState, now: float) -> GovernorState:
        """``state`` with every stored wait capped at ``now`` plus one spacing when the
        clock was stepped back since the last admission (else ``state`` itself)."""
        spacing = self.limits.min_spacing_s * SPACING_MARGIN
        if state.clock_at:
            if now >= state.clock_at - CLOCK_STEP_BACK_S:
                return state
        elif state.next_slot_at <= now + spacing + CLOCK_STEP_BACK_S:
            # A state an older version wrote (no clock_at): its next slot tells.
            return state
        return attrs.evolve(
            state,
            next_slot_at=min(state.next_slot_at, now + spacing),
            bucket_at=min(state.bucket_at, now),
            clock_at=now,
        )

    # -- admission ------------------------------------------------------------------

    async def admit(self, *, background: bool | None = None) -> Admission:
        """Wait for a send slot (and, for background work, its budget) and count it.

        Returns once the request may be sent.  Raises
        :class:`~enphase_battery.QuotaExceededError` (nothing counted, nothing sent) when
        the month's quota is spent; background work waits for next month instead.
        """
        if background is None:
            background = _BACKGROUND.get()
        while True:
            now = self.clock.time()
            backend = self.backend
            if type(backend) is MemoryGovernorBackend:
                # Every request passes here: in memory the update runs inline, with no
                # coroutine or partial per call (atomic all the same: nothing awaits).
                result = backend.transact_now(self.key, self._admit, now, background)
            else:
                result = await backend.transact(
                    self.key, functools.partial(self._admit, now=now, background=background)
                )
            if type(result) is not Admission:
                if isinstance(result, _Wait):
                    if self.on_wait is not None and result.until - now > WAIT_NOTICE_S:
                        self.on_wait(result.until - now, "budget")
                    await self.clock.sleep(result.until - now)
                    continue
                if isinstance(result, QuotaExceededError):
                    raise result
            self.admitted += 1
            if result.slot_at > now:
                delay = result.slot_at - self.clock.time()
                if self.on_wait is not None and delay > WAIT_NOTICE_S:
                    self.on_wait(delay, "spacing")
                if delay > 0:
                    try:
                        await self.clock.sleep(delay)
                    except BaseException:
                        # Cancelled while waiting for its slot: it was never sent.
                        await self.settle(result, Outcome.NOT_SENT)
                        raise
            return result

    def _admit(
        self, stored: GovernorState | None, now: float, background: bool
    ) -> tuple[GovernorState, Admission | _Wait | QuotaExceededError]:
        if (
            stored is not None
            and stored.plan == self.plan
            and now < stored.month_end
            and now >= stored.clock_at - CLOCK_STEP_BACK_S
            and stored.clock_at
        ):
            state = stored  # this month's (every admission: _current without its call)
        else:
            state = self._current(stored, now)
        if state.exhausted_until is not None:
            if now < state.exhausted_until:
                if background:
                    return state, _Wait(state.exhausted_until)
                return state, self._spent_error(state)
            state = attrs.evolve(state, exhausted_until=None)
        quota = self.limits.monthly_quota
        if quota is not None and state.used >= quota:
            if background:
                return state, _Wait(state.month_end)
            return state, self._spent_error(state)
        spacing = self.limits.min_spacing_s * SPACING_MARGIN
        tokens = state.bucket_tokens
        if background:
            if state.next_slot_at > now + spacing:
                # Keep background work at most one slot ahead, so a user's call never
                # queues behind a backlog of polls.
                return state, _Wait(state.next_slot_at - spacing)
            budget = self.background_budget
            if budget is not None:
                if state.used_background >= budget:
                    return state, _Wait(state.month_end)
                rate = _background_pace(budget, state.used_background, state.month_end, now)
                cap = max(1.0, rate * self.burst_s)
                if tokens is None:
                    tokens = cap
                else:
                    tokens = min(cap, tokens + rate * max(0.0, now - state.bucket_at))
                if tokens < 1.0:
                    state = attrs.evolve(state, bucket_tokens=tokens, bucket_at=now)
                    return state, _Wait(now + (1.0 - tokens) / rate)
                tokens -= 1.0
        slot_at = max(now, state.next_slot_at)
        state = _admitted(
            state,
            used=state.used + 1,
            used_background=state.used_background + (1 if background else 0),
            next_slot_at=slot_at + spacing,
            bucket_tokens=tokens,
            bucket_at=now if background else state.bucket_at,
            clock_at=now,
            background_since=(
                now if background and not state.background_since else state.background_since
            ),
        )
        self._last = state
        return state, Admission(slot_at, state.month_start, background)

    def _spent_error(self, state: GovernorState) -> QuotaExceededError:
        where = self.backend.describe()
        hint = f"; {self.reset_hint}" if self.reset_hint else ""
        if state.exhausted_until is not None:
            until = datetime.fromtimestamp(state.exhausted_until, UTC).isoformat()
            reason = f"the API said the {self.plan} plan's monthly quota is spent until {until}"
        else:
            reason = (
                f"{state.used} of the {self.plan} plan's {self.limits.monthly_quota} requests"
                " this month are spent"
            )
        return QuotaExceededError(
            f"{reason}; no request was sent (the count is kept {where}{hint})",
            status=None,
            period="month",
            limit=self.limits.monthly_quota,
        )

    # -- after the request ----------------------------------------------------------

    async def settle(
        self, admission: Admission, outcome: Outcome, *, retry_after_s: float | None = None
    ) -> None:
        """Say what became of an admitted request: refunds and minute-window feedback."""
        if outcome is Outcome.SENT:
            return
        now = self.clock.time()
        self.refunded += 1

        def update(stored: GovernorState | None) -> tuple[GovernorState, None]:
            state = self._current(stored, now)
            if state.month_start != admission.month_start:
                return state, None  # counted in a month that is over: nothing to give back
            spacing = self.limits.min_spacing_s * SPACING_MARGIN
            next_slot = state.next_slot_at
            if outcome is Outcome.NOT_SENT and next_slot == admission.slot_at + spacing:
                # Nobody took a later slot: the next request needn't wait for this one.
                next_slot = admission.slot_at
            if outcome is Outcome.MINUTE_LIMIT:
                wait = retry_after_s if retry_after_s is not None else spacing
                next_slot = max(next_slot, now + min(max(0.0, wait), self.limits.time_period))
            tokens = state.bucket_tokens
            if admission.background and tokens is not None:
                tokens += 1.0
            new = attrs.evolve(
                state,
                used=max(0, state.used - 1),
                used_background=max(0, state.used_background - (1 if admission.background else 0)),
                next_slot_at=next_slot,
                bucket_tokens=tokens,
            )
            self._last = new
            return new, None

        await self.backend.transact(self.key, update)

    async def month_spent(
        self, *, period_start: float | None, period_end: float | None, limit: int | None
    ) -> None:
        """The API answered 429 with ``period: month``: spent until its ``period_end``.

        Only this plan's count for this month follows the server's word; a period that
        makes no sense (ended already, or more than ~31 days away) is bounded to the
        month the governor knows.
        """
        now = self.clock.time()

        def update(stored: GovernorState | None) -> tuple[GovernorState, None]:
            state = self._current(stored, now)
            start, end = state.month_start, state.month_end
            from_api = state.month_from_api
            if (
                period_start is not None
                and period_end is not None
                and period_start <= now < period_end <= now + 32 * 86_400
            ):
                start, end, from_api = float(period_start), float(period_end), True
            if start != state.month_start:
                state = GovernorState(self.plan, start, end, next_slot_at=state.next_slot_at)
            quota = self.limits.monthly_quota
            used = max(state.used, quota) if quota is not None else state.used
            new = attrs.evolve(
                state,
                month_start=start,
                month_end=end,
                month_from_api=from_api,
                exhausted_until=end,
                used=used,
            )
            self._last = new
            return new, None

        await self.backend.transact(self.key, update)

    # -- views ----------------------------------------------------------------------

    async def usage(self) -> QuotaUsage:
        """This month's spending as the backend holds it, with a forecast."""
        now = self.clock.time()

        def read(stored: GovernorState | None) -> tuple[GovernorState, GovernorState]:
            state = self._current(stored, now)
            return state, state

        state = await self.backend.transact(self.key, read)
        self._last = state
        return self._usage(state, now)

    def usage_now(self) -> QuotaUsage:
        """The latest state this governor has seen (no I/O; may lag a shared backend)."""
        now = self.clock.time()
        return self._usage(self._current(self._last, now), now)

    def _usage(self, state: GovernorState, now: float) -> QuotaUsage:
        quota, where = self.limits.monthly_quota, self.backend.describe()
        return _usage_of(state, now, self.plan, quota, self.background_budget, where)

    async def reset(self) -> None:
        """Forget this plan's count (``enphase-battery usage --reset``)."""
        await self.backend.delete(self.key)
        self._last = None
        self._seed_used = 0
