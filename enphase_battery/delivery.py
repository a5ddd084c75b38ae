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
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Self

from .checkpoint import CheckpointStore, StreamState, TransactionalCheckpointStore
from .exceptions import InvalidRequestError
from .streams import StreamLog, TelemetryInterval
from .write_turn import WriteTurn

__all__ = ["Batch", "BatchIterator", "Delivery"]

_Item = tuple[StreamLog, TelemetryInterval]


class Delivery:
    """Hands out what an engine offers, and saves what the consumer has taken.

    Args:
        store: the checkpoint store (opened and released by the caller).
        fill: one step of the engine; awaited while nothing is ready.
        late_horizon_s: passed to :meth:`StreamLog.mark_delivered`.
        poll_over: whether the engine's current poll has fetched all it will (the next
            ``fill`` would wait for the next poll): a batch then goes out at once rather
            than wait ``max_wait`` for data that cannot come yet.
    """

    def __init__(
        self,
        store: CheckpointStore,
        fill: Callable[[], Awaitable[None]],
        late_horizon_s: float,
        *,
        poll_over: Callable[[], bool] | None = None,
    ) -> None:
        self.store = store
        self._fill = fill
        self._poll_over = poll_over
        self._late_horizon_s = late_horizon_s
        self._ready: collections.deque[_Item] = collections.deque()
        # The batch being gathered: taken from _ready, not handed out yet.  Kept here, not
        # in a local, so pending counts it (wait_idle must not fire while it waits for
        # max_wait) and forget() reaches it (a stream given up must not go out in it).
        self._gathering: list[_Item] = []
        self._in_hand: _Item | None = None
        self._batch: Batch | None = None
        # Every write to the store goes through it: a state is computed and written as
        # one step, so an older state never lands after a newer one.
        self._write_turn = WriteTurn()
        self._prefetch: asyncio.Future[None] | None = None
        self._defer = False
        self._deferred: dict[str, StreamLog] = {}
        #: The consumer commits batches through its own transactions (commit(conn)).
        self._transactional = False
        #: Intervals handed out so far.
        self.handed_out = 0

    @property
    def pending(self) -> int:
        """Intervals ready and not yet handed out (a batch being gathered included)."""
        return len(self._ready) + len(self._gathering)

    @property
    def ready(self) -> int:
        """Intervals ready to be taken (a batch being gathered not included)."""
        return len(self._ready)

    def offer(self, stream: StreamLog, intervals: Iterable[TelemetryInterval]) -> None:
        """Queue ``intervals`` of ``stream`` (from :meth:`StreamLog.accept`) for delivery."""
        self._ready.extend((stream, iv) for iv in intervals)

    def forget(self, stream: StreamLog) -> None:
        """Drop what is queued of a stream no longer followed, and its deferred save.

        Its intervals go out in no later batch, not even the one being gathered, and
        nothing more is written for it: a stream handed over to another worker must not
        be written by this one (a fenced store refuses it, failing a whole commit).  What
        it had was the engine's own bookkeeping (a gap given up, its start); whoever
        follows it next works that out again from its last commit.
        """
        self._ready = collections.deque(item for item in self._ready if item[0] is not stream)
        self._gathering[:] = [item for item in self._gathering if item[0] is not stream]
        if self._deferred.get(stream.store_key) is stream:
            del self._deferred[stream.store_key]

    # -- one by one ---------------------------------------------------------------

    async def next(self) -> TelemetryInterval:
        """Commit the interval in hand, then hand out the next one."""
        # The hot path (once per interval): no coroutine where there is nothing to do.
        if self._in_hand is not None or self._batch is not None:
            await self.commit()
        if self._prefetch is not None:
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
            await self.commit_batch(self._batch)
            return
        item = self._in_hand
        if item is None:
            return
        stream, interval = item
        # Marked before the save: once the consumer has said "done", a save cut short
        # (cancellation) is finished by close().
        self._in_hand = None
        stream.mark_delivered(int(interval.end_at.timestamp()), self._late_horizon_s)
        if self._defer:
            self._deferred[stream.store_key] = stream
        else:
            await self._write(stream)

    async def save(self, stream: StreamLog) -> None:
        """Save ``stream``'s state if it changed.

        While batches are handed out, saves of the engine's own (a gap given up, a new
        stream) are put off and go with the next batch's commit: nothing is written
        beside a consumer's open transaction.
        """
        if not stream.dirty:
            return
        if self._defer:
            self._deferred[stream.store_key] = stream
            return
        await self._write(stream)

    async def _write(self, stream: StreamLog) -> None:
        if not stream.dirty:
            return
        turn = self._write_turn
        if turn.busy:
            await turn.acquire()
        else:
            turn.busy = True
        try:
            state = stream.state()
            stream.dirty = False
            if state is None:
                return
            try:
                await self.store.save(stream.store_key, state)
            except BaseException:
                stream.dirty = True  # saved again by the next save or close()
                raise
        finally:
            turn.release()

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
        self._defer = False
        await self.flush((*self._deferred.values(), *streams))
        self._deferred.clear()

    # -- batches ------------------------------------------------------------------

    def batches(self, max_size: int, max_wait: float) -> BatchIterator:
        """An async iterator of :class:`Batch` (see ``TelemetryPoller.batches``)."""
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise InvalidRequestError("max_size must be a positive int")
        if not isinstance(max_wait, int | float) or not max_wait >= 0:
            raise InvalidRequestError("max_wait must be >= 0 seconds")
        return BatchIterator(self, max_size, float(max_wait))

    async def next_batch(self, max_size: int, max_wait: float) -> Batch:
        """Commit the batch in hand, then gather the next (at least one interval)."""
        failed = self._batch
        if failed is not None and (failed._failed or self._transactional):
            # Its commit(conn) raised, or never came while the consumer commits through
            # its own transactions: the poller's own save would record it without its
            # rows.  Moving on does not count it; it comes again.
            self._batch = None
            self._ready.extendleft(reversed(failed.items))
            self.handed_out -= len(failed.items)
        await self.commit()
        self._defer = True
        items = self._gathering
        try:
            await self._gather(items, max_size, max_wait)
        except BaseException:
            # Cancelled (or failed) before it went out: put it back, in order, so the
            # next batch hands it out rather than this poller never seeing it again.
            self._ready.extendleft(reversed(items))
            raise
        finally:
            self._gathering = []
        batch = Batch(self, tuple(items))
        self._batch = batch
        self.handed_out += len(items)
        return batch

    async def _gather(self, items: list[_Item], max_size: int, max_wait: float) -> None:
        """Fill ``items`` (the batch being gathered) from what the engine offers."""
        deadline: float | None = None
        while len(items) < max_size:
            take = min(max_size - len(items), len(self._ready))
            for _ in range(take):
                items.append(self._ready.popleft())
            if len(items) >= max_size:
                break
            if items and self._poll_over is not None and self._poll_over():
                break
            if items and deadline is None:
                deadline = time.monotonic() + max_wait
            left: float | None = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
            # Fetch on while the batch waits; when time is up the fetch goes on in the
            # background for the next batch instead of being cut (its request is paid).
            # A fetch left from before is that one: never two at once, and what is ready
            # already is taken above without waiting for it.
            task, self._prefetch = self._prefetch, None
            if task is None:
                task = asyncio.ensure_future(self._fill())
            try:
                done, _ = await asyncio.wait({task}, timeout=left)
            except BaseException:
                self._prefetch = task  # cancelled: it goes on for the next batch
                raise
            if task not in done or (task.exception() is not None and items):
                self._prefetch = task  # a failure is raised at the next batch
                break
            task.result()

    async def _await_prefetch(self) -> None:
        task, self._prefetch = self._prefetch, None
        if task is not None:
            await task

    async def commit_batch(self, batch: Batch) -> None:
        """Count ``batch`` as delivered and save the checkpoint with the poller's store."""
        if batch.committed:
            return
        self._check_in_hand(batch)
        self._batch = None
        batch._committed = True
        streams = self._apply(batch)
        for stream in (*streams, *self._deferred.values()):
            stream.dirty = True
            await self._write(stream)
        self._deferred.clear()

    async def commit_batch_with(self, batch: Batch, conn: Any) -> None:
        """Count ``batch`` as delivered inside the consumer's transaction on ``conn``."""
        if batch.committed:
            return
        self._check_in_hand(batch)
        store = self.store
        self._transactional = True
        if not isinstance(store, TransactionalCheckpointStore):
            raise InvalidRequestError(
                f"{type(store).__name__} cannot write its state inside your transaction;"
                " use a SqliteCheckpoint on your database file, a PostgresCheckpoint,"
                " or batch.commit() without a connection"
            )
        await self._write_turn.acquire()
        try:
            before = {stream.store_key: (stream, stream.state()) for stream, _ in batch.items}
            streams = self._apply(batch)
            states: dict[str, StreamState] = {}
            for stream in (*streams, *self._deferred.values()):
                state = stream.state()
                if state is not None:
                    states[stream.store_key] = state
            try:
                await store.commit_with(conn, list(states.items()))
            except BaseException:
                self._undo(batch, before)
                raise
            for stream in (*streams, *self._deferred.values()):
                stream.dirty = False
            self._deferred.clear()
            self._batch = None
            batch._committed = True
            batch._failed = False
        finally:
            self._write_turn.release()

    def _check_in_hand(self, batch: Batch) -> None:
        if self._batch is not batch:
            raise InvalidRequestError(
                "this batch is no longer the one in hand (a later batch was asked for)"
            )

    def _apply(self, batch: Batch) -> list[StreamLog]:
        """Mark the batch's intervals delivered; the streams it touched."""
        streams: dict[str, StreamLog] = {}
        horizon = self._late_horizon_s
        for stream, interval in batch.items:
            streams[stream.store_key] = stream
            stream.mark_delivered(int(interval.end_at.timestamp()), horizon)
        return list(streams.values())

    def _undo(self, batch: Batch, before: dict[str, tuple[StreamLog, StreamState | None]]) -> None:
        """A transactional commit failed: nothing of the batch counts; it comes again."""
        for stream, state in before.values():
            stream.watermark = state.watermark if state is not None else stream.watermark
            stream.delivered = set(state.delivered) if state is not None else set()
            stream.dirty = True
        for stream, interval in batch.items:
            stream.queued.add(int(interval.end_at.timestamp()))
        # Still in hand: commit(conn) may be tried again; the next batch hands it again.
        batch._failed = True


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

    __slots__ = ("_committed", "_delivery", "_failed", "intervals", "items")

    def __init__(self, delivery: Delivery, items: tuple[_Item, ...]) -> None:
        self._delivery = delivery
        self.items = items
        #: The intervals.
        self.intervals: tuple[TelemetryInterval, ...] = tuple(iv for _, iv in items)
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

    def __init__(self, delivery: Delivery, max_size: int, max_wait: float) -> None:
        self._delivery = delivery
        self._max_size = max_size
        self._max_wait = max_wait

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Batch:
        return await self._delivery.next_batch(self._max_size, self._max_wait)
