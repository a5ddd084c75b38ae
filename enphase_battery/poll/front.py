"""The consumer's side of every poller: the async iterator, ``commit()``, ``batches()``,
the checkpoint's lock and the streams' start.

:class:`~enphase_battery.TelemetryPoller` (one system) and
:class:`~enphase_battery.FleetPoller` (many) are thin fronts, each holding one
:class:`~enphase_battery.poll.engine.PollEngine` (which owns the delivery, the workers, the
scheduler and the stream logs, and asks the front's policy what differs).  What the
consumer sees of both is the same and is written once here: :class:`PollerFront` only
forwards to the engine; it has no hooks for a front to override.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.batch import Batch, BatchIterator
from enphase_battery.poll.delivery import Delivery
from enphase_battery.poll.settings import DEFAULT_REVISE_FOR, MAX_BACKFILL, check_start_at
from enphase_battery.store.checkpoint import CheckpointStore

if TYPE_CHECKING:
    from enphase_battery.client.client import EnphaseClient
    from enphase_battery.poll.engine import PollEngine
    from enphase_battery.poll.scheduler import FleetScheduler
    from enphase_battery.util.clock import Clock

__all__ = ["DEFAULT_REVISE_FOR", "MAX_BACKFILL", "PollerFront", "check_start_at", "collect"]


class PollerFront:
    """What every poller's consumer sees, forwarded to the poller's engine.

    A front sets ``_engine`` (and ``_delivery``, the engine's, for the hot path) in its
    constructor; everything else is the engine's.
    """

    _engine: PollEngine
    _delivery: Delivery

    # -- async iterator / context manager ----------------------------------------

    def __aiter__(self) -> Self:
        return self

    def __anext__(self) -> Awaitable[TelemetryInterval]:
        # The hot path (once per interval): the delivery's own coroutine, no other.
        if self._engine.running:
            return self._delivery.next()
        return self._first_next()

    async def _first_next(self) -> TelemetryInterval:
        engine = self._engine
        if engine.closed:
            raise StopAsyncIteration
        await engine.start()
        return await self._delivery.next()

    async def commit(self) -> None:
        """Count the interval (or batch) in hand as delivered, and save the checkpoint.

        Asking for the next interval does the same; call it before a ``break`` that
        should not see the last interval again after a restart.
        """
        await self._delivery.commit()

    def batches(self, *, max_size: int = 1000, max_wait: float = 1.0) -> BatchIterator:
        """``async for batch in poller.batches(...)``: intervals in :class:`Batch` es.

        A batch holds up to ``max_size`` intervals; once it has one, it waits at most
        ``max_wait`` seconds for more.  It counts as delivered when the next batch is
        asked for or at ``await batch.commit()``; ``await batch.commit(conn)`` writes
        the checkpoint inside your own SQLite transaction (see :class:`Batch`).
        """
        iterator = self._delivery.batches(max_size, max_wait)
        return _StartingBatches(self._engine, iterator)

    @property
    def intervals_emitted(self) -> int:
        """Intervals handed out so far (one by one or in batches)."""
        return self._delivery.handed_out

    @property
    def pending(self) -> int:
        """Intervals fetched and not yet handed out."""
        return self._delivery.pending

    @property
    def checkpoint(self) -> CheckpointStore:
        """The checkpoint store in use (the one given, or the one opened for a path)."""
        return self._engine.store

    @property
    def client(self) -> EnphaseClient:
        """The client the poller polls with."""
        return self._engine.client

    @property
    def clock(self) -> Clock:
        """What time it is for the poller (the governor's clock unless given)."""
        return self._engine.clock

    @property
    def start_at(self) -> datetime | None:
        """Where new streams begin (``None``: the system's current day)."""
        return self._engine.settings.start_at

    @property
    def scheduler(self) -> FleetScheduler:
        """Which job is next (poll a system, list its devices, list the systems)."""
        return self._engine.scheduler

    @property
    def requests(self) -> int:
        """Requests this poller spent (polls, discovery, listing)."""
        return self._engine.requests

    @property
    def idle(self) -> bool:
        """Whether nothing is due and everything fetched has been handed out."""
        return self._engine.workers.idle

    async def wait_idle(self) -> None:
        """Return once every worker waits for something to become due, nothing pending."""
        await self._engine.workers.wait_idle()

    async def __aenter__(self) -> Self:
        await self._engine.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop fetching, save what was committed and release the checkpoint.

        The interval (or batch) in hand is not counted as delivered: call
        :meth:`commit` first if it was stored, or it comes again after a restart.
        """
        await self._engine.close()


class _StartingBatches(BatchIterator):
    """A poller's batch iterator: starts the poller on first use."""

    def __init__(self, engine: PollEngine, inner: BatchIterator) -> None:
        self._engine = engine
        self._inner = inner

    async def __anext__(self) -> Batch:
        engine = self._engine
        if engine.closed:
            raise StopAsyncIteration
        if not engine.started:
            await engine.start()
        return await self._inner.__anext__()


async def collect(poller: PollerFront, limit: int) -> list[TelemetryInterval]:
    """Up to ``limit`` intervals from ``poller`` (a convenience for scripts and tests).

    The last one is committed: the caller has them all.
    """
    result: list[TelemetryInterval] = []
    if limit <= 0:
        return result
    async for interval in poller:
        result.append(interval)
        if len(result) >= limit:
            await poller.commit()
            break
    return result
