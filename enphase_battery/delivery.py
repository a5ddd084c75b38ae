"""The poller's delivery front: intervals handed out one by one or in batches, and the
commit rule.

The rule: an interval (or a batch) counts as delivered only when the consumer asks for
the next one, or says so (:meth:`Delivery.commit`, :meth:`Batch.commit`).  An exception
or a cancellation in the consumer never delivers what it holds: that comes again after a
restart.  The checkpoint is saved before the next interval is handed out.

Whatever engine fetches the intervals (the one-system poller, a multi-system engine)
feeds :meth:`Delivery.offer` with the :class:`~enphase_battery.streams.StreamLog` they
belong to (keyed by ``(system_id, source)``) and hands :class:`Delivery` a ``fill``
coroutine that makes progress (one request, or a wait for the next poll).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self

import attrs

from .checkpoint import CheckpointStore, StreamState, TransactionalCheckpointStore
from .exceptions import InvalidRequestError
from .streams import StreamLog, TelemetryInterval

__all__ = ["Batch", "BatchIterator", "Delivery"]

_Item = tuple[StreamLog, TelemetryInterval]


class Delivery:
    """Hands out what an engine offers, and saves what the consumer has taken.

    Args:
        store: the checkpoint store (opened and released by the caller).
        fill: one step of the engine; awaited while nothing is ready.
        late_horizon_s: passed to :meth:`StreamLog.mark_delivered`.
    """

    def __init__(
        self, store: CheckpointStore, fill: Callable[[], Awaitable[None]], late_horizon_s: float
    ) -> None:
        self.store = store
        self._fill = fill
        self._late_horizon_s = late_horizon_s
        self._ready: collections.deque[_Item] = collections.deque()
        self._in_hand: _Item | None = None
        self._batch: Batch | None = None
        # Every write to the store goes through it: a state is computed and written as
        # one step, so an older state never lands after a newer one.
        self._write_lock = asyncio.Lock()
        self._prefetch: asyncio.Task[None] | None = None
        #: Intervals handed out so far.
        self.handed_out = 0

    @property
    def pending(self) -> int:
        """Intervals ready and not yet handed out."""
        return len(self._ready)

    def offer(self, stream: StreamLog, intervals: Iterable[TelemetryInterval]) -> None:
        """Queue ``intervals`` of ``stream`` (from :meth:`StreamLog.accept`) for delivery."""
        self._ready.extend((stream, iv) for iv in intervals)

    def forget(self, stream: StreamLog) -> None:
        """Drop what is queued of a stream no longer followed."""
        self._ready = collections.deque(item for item in self._ready if item[0] is not stream)

    # -- one by one ---------------------------------------------------------------

    async def next(self) -> TelemetryInterval:
        """Commit the interval in hand, then hand out the next one."""
        await self.commit()
        await self._await_prefetch()
        while not self._ready:
            await self._fill()
        item = self._ready.popleft()
        self._in_hand = item
        self.handed_out += 1
        return item[1]

    async def commit(self) -> None:
        """Count what the consumer holds (an interval or a batch) as delivered, and save."""
        if self._batch is not None:
            await self._batch.commit()
            return
        item = self._in_hand
        if item is None:
            return
        stream, interval = item
        # Marked before the save: once the consumer has said "done", a save cut short
        # (cancellation) is finished by close().
        self._in_hand = None
        stream.mark_delivered(int(interval.end_at.timestamp()), self._late_horizon_s)
        await self.save(stream)

    async def save(self, stream: StreamLog) -> None:
        """Save ``stream``'s state if it changed."""
        if not stream.dirty:
            return
        async with self._write_lock:
            state = stream.state()
            stream.dirty = False
            if state is None:
                return
            try:
                await self.store.save(stream.store_key, state)
            except BaseException:
                stream.dirty = True  # saved again by the next save or close()
                raise

    async def flush(self, streams: Iterable[StreamLog]) -> None:
        """Save every one of ``streams`` whose state changed."""
        for stream in streams:
            await self.save(stream)

    async def close(self, streams: Iterable[StreamLog]) -> None:
        """Stop prefetching and save what was committed; the item in hand is not."""
        if self._prefetch is not None:
            self._prefetch.cancel()
            await asyncio.wait({self._prefetch})
            self._prefetch = None
        self._in_hand = None
        self._batch = None
        await self.flush(streams)

    # -- batches ------------------------------------------------------------------

    def batches(self, max_size: int, max_wait: float) -> BatchIterator:
        """An async iterator of :class:`Batch` (see :meth:`TelemetryPoller.batches`)."""
        if not isinstance(max_size, int) or max_size < 1:
            raise InvalidRequestError("max_size must be a positive int")
        if not max_wait >= 0:
            raise InvalidRequestError("max_wait must be >= 0 seconds")
        return BatchIterator(self, max_size, float(max_wait))

    async def next_batch(self, max_size: int, max_wait: float) -> Batch:
        """Commit the batch in hand, then gather the next (at least one interval)."""
        await self.commit()
        await self._await_prefetch()
        items: list[_Item] = []
        deadline: float | None = None
        while len(items) < max_size:
            take = min(max_size - len(items), len(self._ready))
            for _ in range(take):
                items.append(self._ready.popleft())
            if len(items) >= max_size:
                break
            if items and deadline is None:
                deadline = time.monotonic() + max_wait
            if deadline is None:
                await self._fill()
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Fetch on while the batch waits; when time is up the fetch goes on in the
            # background for the next batch instead of being cut (its request is paid).
            task = asyncio.ensure_future(self._fill())
            done, _ = await asyncio.wait({task}, timeout=left)
            if task not in done:
                self._prefetch = task
                break
            if task.exception() is not None and items:
                self._prefetch = task  # raised at the next batch, after this one
                break
            task.result()
        batch = Batch(tuple(iv for _, iv in items), self, tuple(items))
        self._batch = batch
        self.handed_out += len(items)
        return batch

    async def _await_prefetch(self) -> None:
        task, self._prefetch = self._prefetch, None
        if task is not None:
            await task

    def _marks(self, batch: Batch) -> dict[str, tuple[StreamLog, StreamState | None, Any]]:
        """Apply ``batch`` to the logs; returns what to restore if its commit fails."""
        undo: dict[str, tuple[StreamLog, StreamState | None, Any]] = {}
        for stream, interval in batch.items:
            if stream.store_key not in undo:
                undo[stream.store_key] = (
                    stream,
                    stream.state(),
                    (set(stream.queued), stream.dirty),
                )
            stream.mark_delivered(int(interval.end_at.timestamp()), self._late_horizon_s)
        return undo

    async def commit_batch(self, batch: Batch, conn: Any = None) -> None:
        """Count ``batch`` as delivered; with ``conn``, inside the caller's transaction."""
        if batch.committed:
            return
        if self._batch is not batch:
            raise InvalidRequestError("this batch is no longer the one in hand")
        if conn is None:
            self._batch = None
            object.__setattr__(batch, "committed", True)
            streams = {stream.store_key: stream for stream, _ in batch.items}
            for stream, interval in batch.items:
                stream.mark_delivered(int(interval.end_at.timestamp()), self._late_horizon_s)
            for stream in streams.values():
                await self.save(stream)
            return
        store = self.store
        if not isinstance(store, TransactionalCheckpointStore):
            raise InvalidRequestError(
                f"{type(store).__name__} cannot write its state through your connection;"
                " use a SqliteCheckpoint on the same database file (or commit() without one)"
            )
        async with self._write_lock:
            undo = self._marks(batch)
            states = [(key, log.state()) for key, (log, _, _) in undo.items()]
            try:
                await store.commit_with(conn, [(k, s) for k, s in states if s is not None])
            except BaseException:
                for stream, state, (queued, dirty) in undo.values():
                    stream.watermark = state.watermark if state else None
                    stream.delivered = set(state.delivered) if state else set()
                    stream.queued = queued
                    stream.dirty = dirty
                raise
            for stream, _, _ in undo.values():
                stream.dirty = False
            self._batch = None
            object.__setattr__(batch, "committed", True)


@attrs.frozen(eq=False)
class Batch:
    """Intervals handed out together (ascending per stream).

    ``intervals``: the intervals.  The batch counts as delivered when the consumer asks
    for the next batch, or at :meth:`commit`.
    """

    intervals: tuple[TelemetryInterval, ...]
    _delivery: Delivery = attrs.field(repr=False, alias="_delivery")
    items: tuple[_Item, ...] = attrs.field(repr=False)
    committed: bool = attrs.field(default=False, init=False)

    def __len__(self) -> int:
        return len(self.intervals)

    def __iter__(self) -> collections.abc.Iterator[TelemetryInterval]:
        return iter(self.intervals)

    async def commit(self, conn: Any = None) -> None:
        """Count the batch as delivered and save the checkpoint.

        With ``conn`` (a ``sqlite3.Connection`` to the checkpoint's own database file,
        holding your uncommitted rows), the checkpoint is written through ``conn`` and
        ``conn`` is committed: your rows and the checkpoint in one transaction, so after
        a crash nothing is lost and nothing comes twice.  If it raises, nothing counts
        as delivered.
        """
        await self._delivery.commit_batch(self, conn)


class BatchIterator:
    """``async for batch in poller.batches(...)``."""

    def __init__(self, delivery: Delivery, max_size: int, max_wait: float) -> None:
        self._delivery = delivery
        self._max_size = max_size
        self._max_wait = max_wait

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Batch:
        return await self._delivery.next_batch(self._max_size, self._max_wait)
