"""One store write at a time, for :class:`~enphase_battery.poll.delivery.Delivery`."""

from __future__ import annotations

import asyncio
import collections

__all__ = ["WriteTurn"]


class WriteTurn:
    """One store write at a time (a state computed and written as one step, so an older
    state never lands after a newer one), without a coroutine when nobody waits."""

    __slots__ = ("_waiters", "busy")

    def __init__(self) -> None:
        self.busy = False
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        while self.busy:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.busy = True

    def release(self) -> None:
        self.busy = False
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
