"""A batch of intervals handed out together, and the iterator of batches.

The commit rule and the bookkeeping behind it live in :mod:`.delivery`; a :class:`Batch`
is what the consumer holds: its intervals, and ``commit()`` / ``commit(conn)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any, Protocol, Self

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.ready_queue import Run

__all__ = ["Batch", "BatchHandout", "BatchIterator"]


class BatchHandout(Protocol):
    """What a batch asks of the delivery that handed it out
    (:class:`~enphase_battery.poll.delivery.Delivery`)."""

    async def commit_batch(self, batch: Batch) -> None: ...

    async def commit_batch_with(self, batch: Batch, conn: Any) -> None: ...

    async def next_batch(self, max_size: int, max_wait: float) -> Batch: ...


class Batch:
    """Intervals handed out together (ascending per stream): iterate it, or read
    :attr:`intervals`.

    It counts as delivered when the next batch is asked for, or at one of:

    * ``await batch.commit()``: the poller's checkpoint is saved (after a crash at most
      this batch comes again);
    * ``await batch.commit(conn)``: ``conn`` holds your uncommitted rows (a
      ``sqlite3.Connection`` to a :class:`~enphase_battery.SqliteCheckpoint`'s own
      file, or an ``asyncpg`` connection inside ``conn.transaction()`` for a
      ``PostgresCheckpoint``); the checkpoint is written through it and the transaction
      committed: rows and checkpoint at once, so after a crash nothing is lost and
      nothing comes twice.

    If ``commit(conn)`` raises, nothing of the batch counts as delivered: try again, or
    ask for the next batch, which then hands out these intervals again.  Once a consumer
    has used ``commit(conn)``, asking for the next batch never counts the one in hand
    (that would save the checkpoint without its rows): it comes again.
    """

    __slots__ = ("_committed", "_delivery", "_failed", "intervals", "runs")

    def __init__(self, delivery: BatchHandout, runs: tuple[Run, ...]) -> None:
        self._delivery = delivery
        #: The batch by stream: runs of one stream each, in the order handed out.
        self.runs = runs
        #: The intervals.
        self.intervals: tuple[TelemetryInterval, ...] = tuple(
            chain.from_iterable(run.intervals for run in runs)
        )
        self._committed = False
        self._failed = False

    def __repr__(self) -> str:
        return f"Batch({len(self.intervals)} intervals, committed={self._committed})"

    def __len__(self) -> int:
        return len(self.intervals)

    def __iter__(self) -> Iterator[TelemetryInterval]:
        return iter(self.intervals)

    @property
    def committed(self) -> bool:
        """Whether the batch counts as delivered."""
        return self._committed

    async def commit(self, conn: Any = None) -> None:
        """Count the batch as delivered; with ``conn``, inside your transaction (see
        :class:`Batch`)."""
        if conn is None:
            await self._delivery.commit_batch(self)
        else:
            await self._delivery.commit_batch_with(self, conn)


class BatchIterator:
    """``async for batch in poller.batches(...)``."""

    def __init__(self, delivery: BatchHandout, max_size: int, max_wait: float) -> None:
        self._delivery = delivery
        self._max_size = max_size
        self._max_wait = max_wait

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Batch:
        return await self._delivery.next_batch(self._max_size, self._max_wait)
