"""The governor's data: its per-key state (and how an admission copies it), the back-end
protocol (and the in-memory one), what an admission and a usage snapshot say, and the
background-work marker.

Data and small helpers, kept apart from the rules in :mod:`.governor` so that back-ends
(a file, PostgreSQL) depend on this module only.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import attrs

__all__ = [
    "Admission",
    "GovernorBackend",
    "GovernorState",
    "MemoryGovernorBackend",
    "Outcome",
    "QuotaUsage",
    "background_work",
    "calendar_month",
    "is_background",
]

_T = TypeVar("_T")
_S = TypeVar("_S", bound=attrs.AttrsInstance)

_BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "enphase_battery_background", default=False
)


@contextlib.contextmanager
def background_work() -> Iterator[None]:
    """Mark the requests made inside (and in tasks started inside) as background work.

    Background requests draw from the governor's ``quota_share`` and wait for their
    budget; the user's own calls don't.  Pollers and the fleet use it.
    """
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def is_background() -> bool:
    """Whether the current context is marked as background work."""
    return _BACKGROUND.get()


def calendar_month(epoch: float) -> tuple[float, float]:
    """Start and end (epochs) of the UTC calendar month holding ``epoch``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return start.timestamp(), datetime(year, month, 1, tzinfo=UTC).timestamp()


def _background_pace(budget: int, used_background: int, month_end: float, now: float) -> float:
    """Requests a second background work may spend at ``now``: the budget it has left
    (``used_background`` <= ``budget``), spread evenly over the time left in the month
    (at least one second of it).

    The one formula of the background budget line: the governor's admission refills its
    bucket at this rate, and :meth:`QuotaGovernor.background_rate
    <enphase_battery.quota.governor.QuotaGovernor.background_rate>` reports it.
    """
    left = month_end - now
    # A conditional, not max(): every background admission runs this (a builtin call
    # costs more than the arithmetic).
    return (budget - used_background) / (left if left > 1.0 else 1.0)


@attrs.frozen
class GovernorState:
    """What a backend keeps for one API key and plan (all times are epochs)."""

    plan: str
    month_start: float
    month_end: float
    #: Requests counted this month (admitted and not refunded), user and background.
    used: int = 0
    used_background: int = 0
    #: The API said the month is spent, until then (its ``period_end``).
    exhausted_until: float | None = None
    next_slot_at: float = 0.0
    #: The background budget bucket: tokens, at the time they were counted.
    bucket_tokens: float | None = None
    bucket_at: float = 0.0
    #: Whether month_start/month_end came from the API (a 429 body).
    month_from_api: bool = False
    #: The clock (epoch) of the last admission: a clock found well behind it was
    #: stepped back, and the stored waits are capped (0: not recorded yet).
    clock_at: float = 0.0
    #: When background work first spent a request this month (0: not yet): its pace is
    #: measured from there, not from the month's start (a fleet started on the 5th).
    background_since: float = 0.0

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (for file and database backends)."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> GovernorState | None:
        """The state in ``data``, or ``None`` when it isn't a state this version wrote."""
        if not isinstance(data, dict):
            return None
        try:
            fields = {a.name for a in attrs.fields(cls)}
            state = cls(**{k: v for k, v in data.items() if k in fields})
        except (TypeError, ValueError):
            return None
        if not isinstance(state.used, int) or not isinstance(state.used_background, int):
            return None
        return state


def _copier(cls: type[_S], *changed: str) -> Callable[..., _S]:
    """A function ``(state, **changed) -> a copy of state with those fields replaced``.

    Generated from ``attrs.fields(cls)``, so a field added to the class is carried over
    (never reset to its default).  It fills a new instance through the slot descriptors,
    skipping the frozen ``__init__`` (a third of ``attrs.evolve``'s cost and less than
    half of a positional constructor call); that is sound only while the fields have no
    validators or converters, which it checks.
    """
    fields = attrs.fields(cls)
    names = [field.name for field in fields]
    assert set(changed) <= set(names), set(changed) - set(names)
    assert all(field.init and not field.kw_only for field in fields)
    assert all(field.validator is None and field.converter is None for field in fields)
    assert not hasattr(cls, "__attrs_post_init__")
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__}
    lines = [f"def copy(state, *, {', '.join(changed)}):", "    copied = new(cls)"]
    for n, name in enumerate(names):
        namespace[f"set{n}"] = cls.__dict__[name].__set__
        lines.append(f"    set{n}(copied, {name if name in changed else f'state.{name}'})")
    lines.append("    return copied")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<{cls.__name__} copier>", "exec"), namespace)
    copy: Callable[..., _S] = namespace["copy"]
    return copy


#: An admitted request's new state (every admission: kept cheap).
_admitted = _copier(
    GovernorState,
    "used",
    "used_background",
    "next_slot_at",
    "bucket_tokens",
    "bucket_at",
    "clock_at",
    "background_since",
)


class GovernorBackend(Protocol):
    """Where a governor's state lives; it applies updates atomically.

    ``transact(key, update)`` reads the state stored under ``key`` (``None`` when there
    is none), calls ``update`` with it (a pure function, possibly called again if the
    backend retries), stores the new state it returns and returns its second value.
    A database backend does that inside one transaction holding the row's lock.
    """

    async def transact(
        self, key: str, update: Callable[[GovernorState | None], tuple[GovernorState, _T]]
    ) -> _T:
        """Apply ``update`` to the state under ``key`` atomically."""
        ...

    async def delete(self, key: str) -> None:
        """Forget the state under ``key`` (``usage --reset``)."""
        ...

    def describe(self) -> str:
        """Where the count lives, for messages ("in memory", a path...)."""
        ...


class MemoryGovernorBackend:
    """State in this process only (the default)."""

    def __init__(self) -> None:
        self._states: dict[str, GovernorState] = {}

    async def transact(
        self, key: str, update: Callable[[GovernorState | None], tuple[GovernorState, _T]]
    ) -> _T:
        """Apply ``update``; atomic because nothing awaits in between."""
        state, result = update(self._states.get(key))
        self._states[key] = state
        return result

    def transact_now(
        self,
        key: str,
        update: Callable[[GovernorState | None, float, bool], tuple[GovernorState, _T]],
        now: float,
        background: bool,
    ) -> _T:
        """:meth:`transact` without a coroutine, for the governor's admission (per request)."""
        state, result = update(self._states.get(key), now, background)
        self._states[key] = state
        return result

    async def delete(self, key: str) -> None:
        """Forget the state under ``key``."""
        self._states.pop(key, None)

    def describe(self) -> str:
        """``"in this process's memory"``."""
        return "in this process's memory"


class Outcome(enum.Enum):
    """What became of an admitted request."""

    #: It reached the server (whatever the answer): it counts.
    SENT = "sent"
    #: It never reached the server (connection refused, unknown host): refunded.
    NOT_SENT = "not_sent"
    #: The server refused it with a per-minute 429: not counted by the server either.
    MINUTE_LIMIT = "minute_limit"


@attrs.frozen
class Admission:
    """A request let through: its send slot and the month it was counted in."""

    slot_at: float
    month_start: float
    background: bool


@attrs.frozen
class QuotaUsage:
    """A snapshot of the month's spending, for ``progress`` views and ``usage``."""

    plan: str
    month_start: datetime
    month_end: datetime
    used: int
    used_background: int
    monthly_quota: int | None
    #: The most background work may spend this month.
    background_budget: int | None
    #: Requests the month will have spent by its end: the user's calls at their pace
    #: over the month, background work at its pace since it began, at most its budget.
    forecast: int
    exhausted_until: datetime | None
    where: str

    @property
    def remaining(self) -> int | None:
        """Requests left this month (``None``: no monthly cap)."""
        if self.exhausted_until is not None:
            return 0
        if self.monthly_quota is None:
            return None
        return max(0, self.monthly_quota - self.used)


def _forecast(state: GovernorState, now: float, budget: int | None) -> int:
    """What the month will have spent by its end.

    The user's own calls at their pace over the month so far; background work at its
    pace since it began this month (a fleet started on the 5th is not diluted over the
    four days before it), never beyond its budget: the admission's budget line holds it
    there, so a fleet that wants more spends its budget and no more.
    """
    left = max(0.0, state.month_end - now)
    user = state.used - state.used_background
    forecast = state.used + user / max(1.0, now - state.month_start) * left
    if state.used_background:
        since = state.background_since or state.month_start
        ahead = state.used_background / max(1.0, now - since) * left
        if budget is not None:
            ahead = min(ahead, max(0, budget - state.used_background))
        forecast += ahead
    return int(forecast)


def _usage_of(
    state: GovernorState,
    now: float,
    plan: str,
    monthly_quota: int | None,
    budget: int | None,
    where: str,
) -> QuotaUsage:
    """The :class:`QuotaUsage` snapshot of ``state`` at ``now`` (the governor's views)."""
    forecast = _forecast(state, now, budget)
    return QuotaUsage(
        plan=plan,
        month_start=datetime.fromtimestamp(state.month_start, UTC),
        month_end=datetime.fromtimestamp(state.month_end, UTC),
        used=state.used,
        used_background=state.used_background,
        monthly_quota=monthly_quota,
        background_budget=budget,
        forecast=forecast,
        exhausted_until=(
            datetime.fromtimestamp(state.exhausted_until, UTC)
            if state.exhausted_until is not None and now < state.exhausted_until
            else None
        ),
        where=where,
    )
