"""When a write reaches the gateway: at once, after a delay, never, or only for a while.

The real API answers a PUT before the gateway has applied it (fact sheet, open
questions); the simulator's GETs show the gateway's state.  Each write the simulator
accepts goes through :class:`GatewayWrites`, which applies it

* ``apply`` (default): after :attr:`GatewayWrites.delay_s`;
* ``refuse``: never (the GET keeps showing the old state);
* ``revert``: after the delay, then puts the old values back
  :attr:`GatewayWrites.revert_after_s` later (an override by the gateway, the app or an
  installer).

Delays are real seconds (``time.monotonic()``), like token lifetimes: a confirmation's
reads wait on real time.  Writes are applied lazily, when a request next looks at their
system (:meth:`EnphaseSimulator.system <enphase_battery.simulator.EnphaseSimulator.system>`),
so the physics steps to that moment with the old settings first.  Configure from Python
(``sim.writes.configure(...)``, the ``write_delay_s`` argument) or over HTTP:
``POST /__admin/writes`` ``{"delay_s": 2, "revert_after_s": 1, "next": ["refuse",
"revert"]}``.
"""

from __future__ import annotations

import enum
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["Apply", "GatewayWrites", "WriteAction"]

#: Applies a write to a system's state and returns what puts the old values back.
Apply = Callable[[], Callable[[], None]]


class WriteAction(enum.Enum):
    """What the gateway does with one write."""

    APPLY = "apply"
    REFUSE = "refuse"
    REVERT = "revert"


@attrs.define
class _Pending:
    system_id: int
    operation: str
    apply: Apply
    action: WriteAction
    apply_at: float
    undo: Callable[[], None] | None = None
    revert_at: float | None = None


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0")
    return float(value)


class GatewayWrites:
    """The writes on their way to the gateways, and what happens to each."""

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        revert_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay_s = _seconds("delay_s", delay_s)
        self.revert_after_s = _seconds("revert_after_s", revert_after_s)
        self._clock = clock
        #: What the next writes get, in order; afterwards ``apply``.
        self.next_actions: deque[WriteAction] = deque()
        self._pending: list[_Pending] = []
        #: Writes by outcome so far: ``accepted``, ``applied``, ``refused``, ``reverted``.
        self.counts: Counter[str] = Counter()

    def configure(self, spec: dict[str, Any]) -> None:
        """Set ``delay_s``, ``revert_after_s`` and/or queue ``next`` (a list of
        ``"apply"``, ``"refuse"``, ``"revert"``) from a JSON object; ``ValueError`` on a
        bad value (nothing changed then)."""
        unknown = set(spec) - {"delay_s", "revert_after_s", "next"}
        if unknown:
            raise ValueError(f"unknown write settings: {', '.join(sorted(unknown))}")
        delay = _seconds("delay_s", spec.get("delay_s", self.delay_s))
        revert = _seconds("revert_after_s", spec.get("revert_after_s", self.revert_after_s))
        raw_next = spec.get("next", [])
        if isinstance(raw_next, str):
            raw_next = [raw_next]
        if not isinstance(raw_next, list):
            raise ValueError("next must be a list of apply, refuse, revert")
        try:
            actions = [WriteAction(str(word)) for word in raw_next]
        except ValueError:
            raise ValueError("next must be a list of apply, refuse, revert") from None
        self.delay_s, self.revert_after_s = delay, revert
        self.next_actions.extend(actions)

    def refuse_next(self, count: int = 1) -> None:
        """The next ``count`` writes are accepted by the API and never applied."""
        self.next_actions.extend([WriteAction.REFUSE] * count)

    def revert_next(self, count: int = 1) -> None:
        """The next ``count`` writes are applied, then undone ``revert_after_s`` later."""
        self.next_actions.extend([WriteAction.REVERT] * count)

    def submit(self, system_id: int, operation: str, apply: Apply) -> None:
        """A write the API accepted for ``system_id`` (``operation``: its path's last part)."""
        action = self.next_actions.popleft() if self.next_actions else WriteAction.APPLY
        self.counts["accepted"] += 1
        pending = _Pending(system_id, operation, apply, action, self._clock() + self.delay_s)
        if action is WriteAction.REFUSE:
            self.counts["refused"] += 1
            return
        if action is WriteAction.APPLY and self.delay_s == 0:
            apply()  # at once, as the simulator always did
            self.counts["applied"] += 1
            return
        self._pending.append(pending)

    def settle(self, system_id: int) -> None:
        """Apply (and revert) what is due for ``system_id``, oldest first."""
        if not self._pending:
            return
        now = self._clock()
        kept: list[_Pending] = []
        for item in self._pending:
            if item.system_id != system_id:
                kept.append(item)
                continue
            if item.undo is None and item.apply_at <= now:
                item.undo = item.apply()
                self.counts["applied"] += 1
                if item.action is WriteAction.REVERT:
                    item.revert_at = item.apply_at + self.revert_after_s
            if item.revert_at is not None and item.revert_at <= now and item.undo is not None:
                item.undo()
                self.counts["reverted"] += 1
                continue
            if item.undo is None or item.revert_at is not None:
                kept.append(item)
        self._pending = kept

    def clear(self) -> None:
        """Forget queued actions and writes not yet applied; no delay from now on."""
        self.next_actions.clear()
        self._pending.clear()
        self.delay_s = 0.0

    def state(self) -> dict[str, Any]:
        """For ``GET /__admin/state``."""
        return {
            "delay_s": self.delay_s,
            "revert_after_s": self.revert_after_s,
            "next": [action.value for action in self.next_actions],
            "pending": [
                {
                    "system_id": p.system_id,
                    "operation": p.operation,
                    "action": p.action.value,
                    "applied": p.undo is not None,
                }
                for p in self._pending
            ],
            "counts": dict(self.counts),
        }
