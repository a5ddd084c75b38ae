"""The simulated clock every part of the simulator reads the time from."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_START", "SimClock"]

#: Default simulated start: fixed so that two runs with the same seed serve the same data.
DEFAULT_START = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


class SimClock:
    """Simulated time: moves only through :meth:`advance`, plus ``speed`` x real time.

    ``speed`` is simulated seconds per real second; ``0`` (the default) freezes the clock
    between explicit :meth:`advance` calls, which keeps tests deterministic.
    """

    def __init__(self, start: datetime = DEFAULT_START, *, speed: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be a timezone-aware datetime")
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._base_s = start.timestamp()
        self._real_base = time.monotonic()
        self._speed = float(speed)
        # Sleepers woken by advance() (a frozen clock moves only through it).
        self._wakeups: set[asyncio.Event] = set()

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value < 0:
            raise ValueError("speed must be >= 0")
        # Rebase so that changing speed never makes the clock jump.
        self._base_s = self.timestamp()
        self._real_base = time.monotonic()
        self._speed = float(value)

    def timestamp(self) -> float:
        """The simulated time as a Unix epoch (float seconds)."""
        if self._speed == 0.0:
            return self._base_s
        return self._base_s + (time.monotonic() - self._real_base) * self._speed

    def epoch(self) -> int:
        """The simulated time as whole Unix epoch seconds (what the API speaks)."""
        return int(self.timestamp())

    def now(self) -> datetime:
        """The simulated time as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by ``delta`` (a timedelta or seconds); returns the new now."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("the simulated clock never goes backwards")
        self._base_s += seconds
        for event in self._wakeups:
            event.set()
        return self.now()

    # -- the SDK's Clock protocol (enphase_battery.util.clock): pacing on simulated time ----

    def time(self) -> float:
        """The simulated time as a Unix epoch (the SDK's
        :class:`~enphase_battery.util.clock.Clock`)."""
        return self.timestamp()

    async def sleep(self, seconds: float) -> None:
        """Wait until the simulated time has moved on by ``seconds``.

        A running clock (``speed > 0``) takes ``seconds / speed`` real seconds; a frozen one
        waits for :meth:`advance` (or for ``speed`` to be set).
        """
        deadline = self.timestamp() + seconds
        event = asyncio.Event()
        self._wakeups.add(event)
        try:
            while (remaining := deadline - self.timestamp()) > 0:
                event.clear()
                # Re-check now and then: speed may change, or be set while frozen.
                real = remaining / self._speed if self._speed > 0 else 0.05
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(real, 0.05) + 1e-4)
        finally:
            self._wakeups.discard(event)

    def __repr__(self) -> str:
        return f"SimClock(now={self.now().isoformat()!r}, speed={self._speed})"
