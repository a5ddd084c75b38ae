"""A clock for the quota governor's tests: time moves only when someone sleeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

JUNE = datetime(2026, 6, 1, tzinfo=UTC).timestamp()


class FakeClock:
    """Time moves only when someone sleeps (each sleeper moves it to its own deadline)."""

    def __init__(self, start: float = JUNE) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds
        await asyncio.sleep(0)
