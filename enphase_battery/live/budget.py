"""What staying live may cost: :class:`LiveBudget` (the limits) and :class:`LiveLedger`.

Every ``live_data`` connection is billed [secondary: fact sheet §7, "about $0.10 a hit"],
and the server closes each stream after ``duration`` seconds, so staying live means
paying again and again.  The ledger counts every connection attempt, and refuses the
next one once any limit is reached; an attempt the server refused outright (a 403: the
plan or grant has no live data, so no stream was opened) is taken back
(:meth:`LiveLedger.refund`): it is not reported as spent.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from enphase_battery.exceptions import InvalidRequestError

__all__ = ["LIVE_PRICE_PER_CONNECTION", "LiveBudget", "LiveLedger", "LiveSpend"]

#: [secondary] US$ per ``live_data`` connection (fact sheet §7).  Change it here.
LIVE_PRICE_PER_CONNECTION = Decimal("0.10")
#: The largest amount a budget or price may name (US$): anything above is a typo.
MAX_AMOUNT = Decimal("1000000000")
_AMOUNT_TEXT = re.compile(r"\d{1,10}(\.\d{1,6})?|\.\d{1,6}")
_HOUR_S = 3600.0
_DAY_S = 86_400.0


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise InvalidRequestError(f"not an amount of money: {value!r}")
    if isinstance(value, str):
        text = value.strip().lstrip("$").strip()
        # Plain digits only: "1e9999" or "NaN" is no amount a user meant.
        if not (text.isascii() and _AMOUNT_TEXT.fullmatch(text)):
            raise InvalidRequestError(f"not an amount of money (like 5 or 12.50): {value!r}")
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise InvalidRequestError(f"not an amount of money: {value!r}") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_AMOUNT:
        raise InvalidRequestError(
            f"an amount of money must be from 0 to {MAX_AMOUNT:,}, got {value!r}"
        )
    return amount


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(f"a connection limit must be an int >= 0, got {value!r}")
    return value


def _price(value: Any) -> Decimal:
    amount = _money(value)
    assert amount is not None
    return amount


@attrs.frozen
class LiveBudget:
    """Limits on ``live_data`` connections; any combination, all must hold.

    Args:
        per_hour: connections in any sliding hour.
        per_day: connections in any sliding 24 hours.
        total: connections over the ledger's life.
        max_spend: US$ over the ledger's life, at ``price`` per connection.
        price: US$ per connection (default :data:`LIVE_PRICE_PER_CONNECTION`).

    With a 300 s ``duration`` a stream renewed around the clock needs 12 connections an
    hour: ``LiveBudget(per_hour=12)`` is US$1.20 an hour.  ``LiveBudget.parse("12/h")``
    reads the CLI's spelling.
    """

    per_hour: int | None = attrs.field(default=None, converter=_count)
    per_day: int | None = attrs.field(default=None, converter=_count)
    total: int | None = attrs.field(default=None, converter=_count)
    max_spend: Decimal | None = attrs.field(default=None, converter=_money)
    price: Decimal = attrs.field(default=LIVE_PRICE_PER_CONNECTION, converter=_price)

    @classmethod
    def parse(cls, text: str) -> LiveBudget:
        """Read ``"12/h"``, ``"100/day"``, ``"50"`` (total), ``"$5"`` or ``"5usd"``;
        several joined by commas (``"12/h,$10"``)."""
        options: dict[str, Any] = {}
        for part in (p.strip().lower() for p in text.split(",")):
            if not part:
                continue
            match = re.fullmatch(r"(\d+)\s*/\s*(h|hour|d|day)", part)
            if match:
                key = "per_hour" if match.group(2).startswith("h") else "per_day"
                options[key] = int(match.group(1))
            elif part.startswith("$") or part.endswith(("usd", "$")):
                options["max_spend"] = part.strip("$").removesuffix("usd").strip()
            elif part.isdigit():
                options["total"] = int(part)
            else:
                raise InvalidRequestError(
                    f"cannot read the budget {part!r}: use N/h, N/day, N (connections) or $X"
                )
        if not options:
            raise InvalidRequestError("an empty budget")
        return cls(**options)

    def describe(self) -> str:
        """The limits in words, for logs and the CLI."""
        parts = []
        if self.per_hour is not None:
            parts.append(f"{self.per_hour}/h")
        if self.per_day is not None:
            parts.append(f"{self.per_day}/day")
        if self.total is not None:
            parts.append(f"{self.total} in all")
        if self.max_spend is not None:
            parts.append(f"${self.max_spend}")
        return ", ".join(parts) or "unlimited"


@attrs.frozen
class LiveSpend:
    """What a ledger has spent so far."""

    connections: int
    spent: Decimal
    last_hour: int
    last_day: int
    #: Whether the next connection would be refused now.
    exhausted: bool


class LiveLedger:
    """Counts connections against a :class:`LiveBudget`; share one between sessions.

    ``clock`` returns epoch seconds (``time.time`` by default; tests pass their own).
    Sessions take a connection with :meth:`try_record`, which checks the budget and
    counts the connection in one step (under a lock, so threads sharing a ledger cannot
    overspend it either).
    """

    def __init__(self, budget: LiveBudget, *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(budget, LiveBudget):
            raise InvalidRequestError("budget must be a LiveBudget")
        self.budget = budget
        self._clock = clock
        self._recent: deque[float] = deque()
        self._lock = threading.RLock()
        self.connections = 0

    def now(self) -> float:
        """The ledger's clock (epoch seconds): the time its windows are measured in."""
        return self._clock()

    @property
    def spent(self) -> Decimal:
        """US$ spent at the budget's price."""
        return self.budget.price * self.connections

    def _prune(self, now: float) -> None:
        recent = self._recent
        while recent and recent[0] <= now - _DAY_S:
            recent.popleft()

    def _in_last(self, now: float, seconds: float) -> int:
        return sum(1 for at in self._recent if at > now - seconds)

    def next_allowed_at(self, now: float | None = None) -> float | None:
        """When the next connection fits the budget: ``now`` (or earlier) if it does now,
        a later epoch when a sliding window frees up, ``None`` if it never will."""
        now = self._clock() if now is None else now
        with self._lock:
            return self._next_allowed_at(now)

    def _next_allowed_at(self, now: float) -> float | None:
        budget = self.budget
        if budget.total is not None and self.connections >= budget.total:
            return None
        if budget.max_spend is not None and self.spent + budget.price > budget.max_spend:
            return None
        self._prune(now)
        allowed = now
        for limit, window in ((budget.per_hour, _HOUR_S), (budget.per_day, _DAY_S)):
            if limit is None:
                continue
            inside = [at for at in self._recent if at > now - window]
            if len(inside) >= limit:
                if limit == 0:
                    return None
                # The window frees once enough of its oldest connections age out.
                allowed = max(allowed, inside[len(inside) - limit] + window)
        return allowed

    def allows(self, now: float | None = None) -> bool:
        """Whether a connection now fits the budget."""
        now = self._clock() if now is None else now
        allowed = self.next_allowed_at(now)
        return allowed is not None and allowed <= now

    def try_record(self, now: float | None = None) -> bool:
        """Check the budget and count one connection in one step (call just before
        connecting: an attempt may be billed).  ``False``, and nothing counted, when the
        budget allows no connection now."""
        now = self._clock() if now is None else now
        with self._lock:
            allowed = self._next_allowed_at(now)
            if allowed is None or allowed > now:
                return False
            self._record(now)
            return True

    def record(self, now: float | None = None) -> None:
        """Count one connection whatever the budget says (:meth:`try_record` checks)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._record(now)

    def refund(self) -> None:
        """Take back the last connection counted: the server refused it before any stream
        was opened (403), so nothing was billed."""
        with self._lock:
            if self.connections > 0:
                self.connections -= 1
                if self._recent:
                    self._recent.pop()

    def _record(self, now: float) -> None:
        self._prune(now)
        self._recent.append(now)
        self.connections += 1

    def snapshot(self, now: float | None = None) -> LiveSpend:
        """Connections and money spent, and whether the budget is exhausted now."""
        now = self._clock() if now is None else now
        self._prune(now)
        return LiveSpend(
            connections=self.connections,
            spent=self.spent,
            last_hour=self._in_last(now, _HOUR_S),
            last_day=self._in_last(now, _DAY_S),
            exhausted=not self.allows(now),
        )

    def __repr__(self) -> str:
        return f"LiveLedger({self.budget.describe()}, connections={self.connections})"
