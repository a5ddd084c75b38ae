"""The one clock that pacing, the quota governor and the fleet scheduler read.

Everything that waits or judges "how long ago" goes through a :class:`Clock`, so a test
or a benchmark can hand the simulator's clock (:class:`~enphase_battery.simulator.SimClock`
satisfies the protocol) and run a simulated week in seconds, while production code uses
:data:`SYSTEM_CLOCK`, real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Time as the SDK's pacing sees it.

    ``time()`` is a Unix epoch in seconds (months of the quota, watermarks' ages and the
    pacing slots are all judged against it); ``sleep()`` waits until ``time()`` has moved
    on by at least ``seconds``.
    """

    def time(self) -> float:
        """Now, as a Unix epoch in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``time()`` has advanced by ``seconds`` (at once when <= 0)."""
        ...


class SystemClock:
    """Real time: ``time.time()`` and ``asyncio.sleep``."""

    def time(self) -> float:
        """Now, as a Unix epoch in seconds."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``; returns at once for ``seconds <= 0``."""
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


#: The default clock: real time.
SYSTEM_CLOCK: Clock = SystemClock()
