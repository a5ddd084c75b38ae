"""The fleet engine's workers: ``concurrency`` tasks taking the scheduler's jobs.

Kept apart from :mod:`.fleet` (what a job does) and :mod:`.scheduler` (which job is
next): this is only when the workers run, sleep and wake, how the consumer's side waits
for them, and how a worker's fatal error reaches the consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from enphase_battery.poll.scheduler import Job
from enphase_battery.quota.state import background_work
from enphase_battery.util.clock import Clock

__all__ = ["WorkerPool"]


class WorkerPool:
    """Workers that run ``run(job)`` for each job of ``next_job(now)``.

    Args:
        concurrency: how many workers (requests in flight at once).
        clock: what time it is, and how to sleep until a job is due.
        next_job: the scheduler's pick: a job, the time the next one is due, or ``None``.
        run: what a job does.
        pending: how many fetched intervals wait for the consumer.
        max_pending: above this, the workers fetch (and pay for) nothing more.
        on_demand: fetch only while the consumer waits for more with nothing ``ready``
            to take (a request is spent only when the consumer needs it; a batch being
            gathered waits for more; ``max_pending`` unused).
        ready: how many fetched intervals the consumer can take now (for ``on_demand``).
    """

    def __init__(
        self,
        *,
        concurrency: int,
        clock: Clock,
        next_job: Callable[[float], Job | float | None],
        run: Callable[[Job], Awaitable[None]],
        pending: Callable[[], int],
        max_pending: int,
        on_demand: bool = False,
        ready: Callable[[], int] | None = None,
    ) -> None:
        self._concurrency = concurrency
        self._clock = clock
        self._next_job = next_job
        self._run = run
        self._pending = pending
        self._max_pending = max_pending
        self._on_demand = on_demand
        self._ready = ready or pending
        # Consumers waiting in wait_progress(), and the event that tells workers so.
        self._wanting = 0
        self._room = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._progressed = asyncio.Event()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._sleeping = 0
        self._stopped = False
        self._fatal: BaseException | None = None

    def start(self) -> None:
        """Start the workers; their requests count as background work."""
        with background_work():
            self._tasks = [asyncio.ensure_future(self._work()) for _ in range(self._concurrency)]

    async def stop(self) -> None:
        """Stop the workers (a request in flight is cut)."""
        self._stopped = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def wake(self) -> None:
        """Have sleeping workers ask the scheduler again (something new to do)."""
        self._idle.clear()  # at once: a wait_idle() right after waits for what was asked
        self._wake.set()

    def offered(self) -> None:
        """A worker offered intervals: wake the consumer's side."""
        self._progressed.set()

    async def wait_progress(self) -> None:
        """Wait until a worker has offered something, all sleep, or one failed for good."""
        if self._fatal is not None:
            raise self._fatal
        self._progressed.clear()
        self._wanting += 1
        self._room.set()
        try:
            await self._progressed.wait()
        finally:
            self._wanting -= 1
        if self._fatal is not None:
            raise self._fatal

    def _has_room(self) -> bool:
        if self._on_demand:
            return self._wanting > 0 and self._ready() == 0
        return self._pending() <= self._max_pending

    async def room(self) -> None:
        """Wait until the consumer may be given more: it waits for more with nothing
        ready (``on_demand``), or no more than ``max_pending`` intervals wait for it."""
        while not self._has_room():
            # Lets a waiting batch see that nothing more is coming now.
            self._progressed.set()
            self._room.clear()
            await self._room.wait()

    @property
    def idle(self) -> bool:
        """Whether every worker waits for a job to become due, nothing pending."""
        return self._idle.is_set() and self._pending() == 0

    async def wait_idle(self) -> None:
        """Return once every worker waits for a job to become due, nothing pending."""
        while True:
            await self._idle.wait()
            if self._pending() == 0:
                return
            # The consumer is still taking what was fetched: look again shortly.
            await asyncio.sleep(0.01)

    async def _work(self) -> None:
        try:
            while not self._stopped:
                # The consumer is behind: don't fetch (and pay for) more yet.
                await self.room()
                job = self._next_job(self._clock.time())
                if job is None or isinstance(job, float):
                    await self._sleep_until(job)
                    continue
                await self._run(job)
                # A job may finish without awaiting I/O (nothing to fetch): let others run.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # surfaced to the consumer by wait_progress
            self._fatal = err
            self._progressed.set()

    async def _sleep_to(self, due: float) -> None:
        # The delay is read when the sleeping task starts, not when it is created: the
        # idle signal of _sleep_until lets others run first, and a clock moved meanwhile
        # (the simulator's advance(), a jumping test clock) would push the wake-up past
        # ``due`` by the move (on Python 3.13 a waiter of wait_idle() ran first, and moved
        # the clock an hour).
        await self._clock.sleep(max(0.0, due - self._clock.time()))

    async def _sleep_until(self, due: float | None) -> None:
        self._sleeping += 1
        if self._sleeping == self._concurrency:
            self._idle.set()
            self._progressed.set()  # lets a waiting batch see that nothing more is coming
        self._wake.clear()
        try:
            sleeper = asyncio.ensure_future(
                self._sleep_to(due) if due is not None else asyncio.Event().wait()
            )
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
        finally:
            self._sleeping -= 1
            self._idle.clear()
