"""What a confirmed write reports: whether the gateway shows the change (applied), not yet
(pending), or showed it and then something else (overridden).

A PUT is answered at once, while the gateway applies the change later (or never, or
reverts it).  :meth:`EnphaseClient.wait_applied <enphase_battery.EnphaseClient.wait_applied>`
and the update methods' ``confirm=True`` read the state back until it shows what was
asked or their time is up, and return a :class:`WriteConfirmation`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import attrs

__all__ = ["WriteConfirmation", "WriteOutcome"]

_S = TypeVar("_S")


class WriteOutcome(enum.StrEnum):
    """Where a write stands when its confirmation ends."""

    #: A read showed every field as asked (and kept showing it through ``settle_s``).
    APPLIED = "applied"
    #: Time ran out and no read showed every field as asked: the gateway has not applied
    #: it yet, or will not (a refusal looks the same from the API); read again later.
    PENDING = "pending"
    #: A read showed the change and a later one did not: the gateway (or someone else:
    #: the app, an installer, a grid-services event) changed it back or over.
    OVERRIDDEN = "overridden"


@attrs.frozen
class WriteConfirmation(Generic[_S]):
    """The outcome of waiting for a write to show in its GET.

    Attributes:
        operation_id: the write (``"update_battery_mode"``...), as in the route table.
        system_id: the system written to.
        outcome: applied, pending or overridden (:class:`WriteOutcome`).
        requested: what was asked, by model field (``{"cfg_allowed": True, ...}``).
        answer: what the PUT answered (its model), ``None`` from
            :meth:`~enphase_battery.EnphaseClient.wait_applied` alone.
        observed: the state the last read showed (the GET's model), ``None`` if no read
            finished in time.
        mismatched: the requested fields :attr:`observed` does not show as asked.
        reads: how many reads the confirmation made (each counts against the quota).
        waited_s: seconds from the first read to the end.
    """

    operation_id: str
    system_id: int
    outcome: WriteOutcome
    requested: Mapping[str, Any]
    answer: Any
    observed: _S | None
    mismatched: tuple[str, ...]
    reads: int
    waited_s: float

    @property
    def applied(self) -> bool:
        """Whether the gateway shows the change."""
        return self.outcome is WriteOutcome.APPLIED
