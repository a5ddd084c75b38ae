"""The batch half of the delivery: gathering a batch, and its commits.

Kept apart from :mod:`.delivery` (the one-by-one hand-out, the saves and the commit rule
they share) only for size; :class:`BatchHandOut` is a part of
:class:`~enphase_battery.delivery.Delivery` and works on its state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .batch import Batch, BatchIterator
from .checkpoint import CheckpointStore, StreamState, TransactionalCheckpointStore
from .exceptions import InvalidRequestError
from .ready_queue import ReadyQueue, Run
from .streams import StreamLog
from .write_turn import WriteTurn

__all__ = ["BatchHandOut"]


class BatchHandOut:
    """``batches()`` and the commits of a :class:`Batch` (a part of ``Delivery``)."""

    # The delivery's state this half works on (set by Delivery.__init__).
    store: CheckpointStore
    handed_out: int
    _ready: ReadyQueue
    _gathering: list[Run]
    _batch: Batch | None
    _prefetch: asyncio.Future[None] | None
    _defer: bool
    _deferred: dict[str, StreamLog]
    _transactional: bool
    _write_turn: WriteTurn
    _late_horizon_s: float
    _fill: Callable[[], Awaitable[None]]
    _poll_over: Callable[[], bool] | None
    _emptied: Callable[[], None] | None

    # ... and the one-by-one half's saves.
    async def commit(self) -> None:
        raise NotImplementedError

    async def _write(self, stream: StreamLog) -> None:
        raise NotImplementedError

    def _unfollow_all(self) -> None:
        raise NotImplementedError

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
