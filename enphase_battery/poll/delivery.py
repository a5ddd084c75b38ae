"""The poller's delivery front: intervals handed out one by one or in batches, and the
commit rule.

The rule: an interval (or a batch) counts as delivered only when the consumer asks for
the next one, or says so (:meth:`Delivery.commit`, :meth:`Batch.commit`).  An exception
or a cancellation in the consumer never delivers what it holds: that comes again after a
restart.  The checkpoint is saved before the next interval is handed out.

Whatever engine fetches the intervals (the one-system poller, a multi-system engine)
feeds :meth:`Delivery.offer` with the :class:`~enphase_battery.poll.stream_log.StreamLog` they
belong to (keyed by ``(system_id, source)``) and hands :class:`Delivery` a ``fill``
coroutine that makes progress (one request, or a wait for the next poll).

The one-by-one hand-out and the batches are one concept (they share the commit rule,
the interval or batch in hand, the deferred saves and the write turn), so they are one
class in one module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.batch import Batch, BatchIterator
from enphase_battery.poll.ready_queue import ReadyQueue, Run
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.poll.write_turn import WriteTurn
from enphase_battery.store.checkpoint import (
    CheckpointStore,
    StreamState,
    TransactionalCheckpointStore,
    live_store,
    nowait_saver,
)

__all__ = ["Batch", "BatchIterator", "Delivery"]


class Delivery:
    """Hands out what an engine offers, and saves what the consumer has taken.

    Args:
        store: the checkpoint store (opened and released by the caller).
        fill: one step of the engine; awaited while nothing is ready.
        late_horizon_s: passed to :meth:`StreamLog.mark_delivered`.
        poll_over: whether the engine's current poll has fetched all it will (the next
            ``fill`` would wait for the next poll): a batch then goes out at once rather
            than wait ``max_wait`` for data that cannot come yet.
        emptied: called when handing out an interval or a batch has left nothing
            pending (the engine's "all of it is out" signals).
    """

    def __init__(
        self,
        store: CheckpointStore,
        fill: Callable[[], Awaitable[None]],
        late_horizon_s: float,
        *,
        poll_over: Callable[[], bool] | None = None,
        emptied: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._emptied = emptied
        self._save_nowait = nowait_saver(store)
        # A store in this process that reads the streams' committed state when asked
        # (MemoryCheckpoint): followed while intervals go out one by one, nothing saved.
        self._live = live_store(store)
        self._followed: set[str] = set()
        self._fill = fill
        self._poll_over = poll_over
        self._late_horizon_s = late_horizon_s
        self._ready = ReadyQueue()
        # The batch being gathered: taken from _ready, not handed out yet.  Kept here, not
        # in a local, so pending counts it (wait_idle must not fire while it waits for
        # max_wait) and forget() reaches it (a stream given up must not go out in it).
        self._gathering: list[Run] = []
        # The interval in hand (handed out one by one): its stream and end time.
        self._hand_stream: StreamLog | None = None
        self._hand_end = 0
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
        gathering = self._gathering
        return self._ready.count + (sum(map(len, gathering)) if gathering else 0)

    @property
    def ready(self) -> int:
        """Intervals ready to be taken (a batch being gathered not included)."""
        return self._ready.count

    def offer(self, stream: StreamLog, intervals: list[TelemetryInterval], ends: list[int]) -> None:
        """Queue ``intervals`` of ``stream`` and their end times (as
        :meth:`StreamLog.accept` gave them) for delivery."""
        if self._live is not None:
            self._follow(stream)
        self._ready.offer(stream, intervals, ends)

    def _follow(self, stream: StreamLog) -> bool:
        """Have the live store follow ``stream`` (not while batches go out: their commits
        save as usual); whether it does."""
        key = stream.store_key
        if key in self._followed:
            return True
        if self._live is None or self._defer:
            return False
        self._live.follow(key, stream.state)
        self._followed.add(key)
        return True

    def _unfollow_all(self) -> None:
        live = self._live
        if live is not None:
            for key in self._followed:
                live.unfollow(key)
        self._followed.clear()

    def forget(self, stream: StreamLog) -> None:
        """Drop what is queued of a stream no longer followed, and its deferred save.

        Its intervals go out in no later batch, not even the one being gathered, and
        nothing more is written for it: a stream handed over to another worker must not
        be written by this one (a fenced store refuses it, failing a whole commit).  What
        it had was the engine's own bookkeeping (a gap given up, its start); whoever
        follows it next works that out again from its last commit.
        """
        self._ready.forget(stream)
        self._gathering[:] = [run for run in self._gathering if run.stream is not stream]
        if stream.store_key in self._followed and self._live is not None:
            self._followed.discard(stream.store_key)
            self._live.unfollow(stream.store_key)
        if self._deferred.get(stream.store_key) is stream:
            del self._deferred[stream.store_key]

    # -- one by one ---------------------------------------------------------------

    async def next(self) -> TelemetryInterval:
        """Commit the interval in hand, then hand out the next one."""
        # The hot path (once per interval): no call or coroutine that is not needed.
        stream = self._hand_stream
        if stream is not None and self._batch is None and not self._defer:
            # Marked before the save: once the consumer has said "done", a save cut
            # short (cancellation) is finished by close().
            self._hand_stream = None
            stream.mark_delivered(self._hand_end, self._late_horizon_s)
            if stream.dirty:
                if stream.store_key in self._followed:
                    stream.dirty = False  # the store reads it when asked
                elif not self._write_now(stream):
                    await self._write(stream)
        elif stream is not None or self._batch is not None:
            await self.commit()
        if self._prefetch is not None:
            await self._await_prefetch()
        ready = self._ready
        while not ready.count:
            await self._fill()
            ready = self._ready
        run, index = ready.pop()
        self._hand_stream = run.stream
        self._hand_end = run.ends[index]
        self.handed_out += 1
        if not ready.count and self._emptied is not None and not self._gathering:
            self._emptied()
        return run.intervals[index]

    async def commit(self) -> None:
        """Count what the consumer holds (an interval or a batch) as delivered, and save."""
        if self._batch is not None:
            await self.commit_batch(self._batch)
            return
        stream = self._hand_stream
        if stream is None:
            return
        # Marked before the save: once the consumer has said "done", a save cut short
        # (cancellation) is finished by close().
        self._hand_stream = None
        stream.mark_delivered(self._hand_end, self._late_horizon_s)
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

    def _write_now(self, stream: StreamLog) -> bool:
        """Save ``stream``'s state without waiting, if the store can; whether it did."""
        save_nowait = self._save_nowait
        if save_nowait is None or self._write_turn.busy:
            return False
        state = stream.state()
        stream.dirty = False
        if state is None:
            return True
        try:
            saved = save_nowait(stream.store_key, state)
        except BaseException:
            stream.dirty = True  # saved again by the next save or close()
            raise
        stream.dirty = not saved
        return saved

    async def _write(self, stream: StreamLog) -> None:
        if not stream.dirty:
            return
        if self._live is not None and self._follow(stream):
            stream.dirty = False  # the store reads it when asked
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
        self._hand_stream = None
        self._batch = None
        self._defer = False
        await self.flush((*self._deferred.values(), *streams))
        self._deferred.clear()
        self._unfollow_all()  # the store keeps what was committed

    # -- in batches ----------------------------------------------------------------

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
            self._ready.put_back(failed.runs)
            self.handed_out -= len(failed.intervals)
        await self.commit()
        if not self._defer:
            # Batches save their states with their commits, as a transactional store
            # needs; a live store keeps what was committed one by one so far.
            self._unfollow_all()
            self._defer = True
        runs = self._gathering
        try:
            await self._gather(runs, max_size, max_wait)
        except BaseException:
            # Cancelled (or failed) before it went out: put it back, in order, so the
            # next batch hands it out rather than this poller never seeing it again.
            self._ready.put_back(runs)
            raise
        finally:
            self._gathering = []
        batch = Batch(self, tuple(runs))
        self._batch = batch
        self.handed_out += len(batch.intervals)
        if not self._ready.count and self._emptied is not None:
            self._emptied()
        return batch

    async def _gather(self, runs: list[Run], max_size: int, max_wait: float) -> None:
        """Fill ``runs`` (the batch being gathered) from what the engine offers."""
        deadline: float | None = None
        size = 0
        while size < max_size:
            for run in self._ready.take(max_size - size):
                runs.append(run)
                size += len(run)
            if size >= max_size:
                break
            if runs and self._poll_over is not None and self._poll_over():
                break
            if runs and deadline is None:
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
            if task not in done or (task.exception() is not None and runs):
                self._prefetch = task  # a failure is raised at the next batch
                break
            task.result()
            # forget() may have dropped runs of a stream given up meanwhile.
            size = sum(map(len, runs))

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
            before = {run.stream.store_key: (run.stream, run.stream.state()) for run in batch.runs}
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
        for run in batch.runs:
            stream = run.stream
            streams[stream.store_key] = stream
            stream.mark_delivered_many(run.ends, horizon)
        return list(streams.values())

    def _undo(self, batch: Batch, before: dict[str, tuple[StreamLog, StreamState | None]]) -> None:
        """A transactional commit failed: nothing of the batch counts; it comes again."""
        for stream, state in before.values():
            stream.restore(state)
        for run in batch.runs:
            run.stream.requeue(run.intervals, run.ends)
        # Still in hand: commit(conn) may be tried again; the next batch hands it again.
        batch._failed = True
