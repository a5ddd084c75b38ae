"""The consumer's side of every poller: the async iterator, ``commit()``, ``batches()``,
the checkpoint's lock and the streams' start.

:class:`~enphase_battery.TelemetryPoller` (one system) and
:class:`~enphase_battery.FleetPoller` (many) run on one engine (:mod:`.engine`) under this
one front: the engine decides what to fetch and when, offers what it fetched to the
:class:`Delivery` and makes progress in ``_fill``; the front hands the intervals out under
the commit rule (:mod:`.delivery`), holds the checkpoint for the poller's life and saves
it on any exit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from .checkpoint import CheckpointStore, LockingCheckpointStore, open_store
from .delivery import Batch, BatchIterator, Delivery
from .exceptions import InvalidRequestError
from .streams import BATTERY, StreamKey, StreamLog, TelemetryInterval

__all__ = ["DEFAULT_REVISE_FOR", "MAX_BACKFILL", "PollerFront", "check_start_at", "collect"]

_LOGGER = logging.getLogger(__name__)

#: How far back the API serves telemetry.
MAX_BACKFILL = timedelta(days=730)
#: How long an interval that went out partial is re-read for a revision, by default.
#: The one production integration of this API we know (SolarNetwork's Enphase datum
#: stream) re-reads incomplete intervals for up to 3 h after they end; cellular gateways
#: upload about every 6 h, so one Encharge's part of an interval can come that much after
#: its siblings'.  The re-read rides on the window each poll reads anyway, so a longer
#: horizon costs no request, only a few entries of checkpoint state.
DEFAULT_REVISE_FOR = timedelta(hours=6)


def check_start_at(start_at: datetime, now: datetime | None = None) -> None:
    """Refuse a ``start_at`` in the future or more than two years back (before any
    request: the only clock there is then is the local one)."""
    now = now or datetime.now(UTC)
    earliest = now - MAX_BACKFILL
    if not earliest <= start_at <= now + timedelta(minutes=1):
        raise InvalidRequestError(
            f"start_at {start_at.isoformat()} is outside what the API serves: from"
            f" {earliest.isoformat(timespec='minutes')} (two years back) to now"
            f" ({now.isoformat(timespec='minutes')})"
        )


class PollerFront:
    """What every poller's consumer sees; an engine subclasses it.

    An engine implements :meth:`_fill` (one step: a request, or a wait for the next
    poll), :meth:`_begin` (set up on first use), :meth:`_streams_now` (every stream
    followed, saved on close) and, if it needs them, :meth:`_stop` (its own tasks) and
    :meth:`_emptied` (when nothing is left pending).
    """

    def __init__(
        self,
        checkpoint: CheckpointStore | str | os.PathLike[str] | None,
        *,
        settle: timedelta,
        late_horizon: timedelta,
        revise_for: timedelta = DEFAULT_REVISE_FOR,
        poll_over: Callable[[], bool] | None = None,
    ) -> None:
        if not isinstance(settle, timedelta) or settle < timedelta(0):
            raise InvalidRequestError("settle must be a non-negative timedelta")
        if not isinstance(late_horizon, timedelta) or not (
            settle <= late_horizon < timedelta(days=7)
        ):
            raise InvalidRequestError("late_horizon must lie between settle and one week")
        if not isinstance(revise_for, timedelta) or not (
            revise_for == timedelta(0) or settle < revise_for < timedelta(days=7)
        ):
            # A partial interval goes out once it is ``settle`` old: a shorter horizon
            # would never re-read it; the re-read must fit in the week one request reads.
            raise InvalidRequestError(
                "revise_for must be 0 (no revisions) or longer than settle and under one week"
            )
        try:
            self._store = open_store(checkpoint)
        except TypeError as err:
            raise InvalidRequestError(str(err)) from None
        self._owns_store = checkpoint is None or isinstance(checkpoint, str | os.PathLike)
        self._settle_s = settle.total_seconds()
        self._late_horizon_s = late_horizon.total_seconds()
        self._revise_s = revise_for.total_seconds()
        self._delivery = Delivery(
            self._store,
            self._fill,
            self._late_horizon_s,
            poll_over=poll_over,
            emptied=self._emptied,
        )
        self._started = False
        self._held = False
        self._closed = False

    # -- what an engine provides --------------------------------------------------

    async def _fill(self) -> None:
        """Make progress: offer intervals to the delivery, or wait for something to do."""
        raise NotImplementedError

    async def _begin(self) -> None:
        """Set up on first use (the checkpoint is held by then)."""

    def _streams_now(self) -> Iterable[StreamLog]:
        """Every stream followed now (saved on close)."""
        raise NotImplementedError

    async def _stop(self) -> None:
        """Stop the engine's own tasks (before the last save)."""

    def _emptied(self) -> None:
        """Called when handing out an interval or a batch has left nothing pending."""

    # -- async iterator / context manager ----------------------------------------

    def __aiter__(self) -> Self:
        return self

    def __anext__(self) -> Awaitable[TelemetryInterval]:
        # The hot path (once per interval): the delivery's own coroutine, no other.
        if self._started and not self._closed:
            return self._delivery.next()
        return self._first_next()

    async def _first_next(self) -> TelemetryInterval:
        if self._closed:
            raise StopAsyncIteration
        await self._start()
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
        return _StartingBatches(self, iterator)

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
        return self._store

    async def __aenter__(self) -> Self:
        await self._acquire()
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
        if self._closed:
            return
        self._closed = True
        try:
            await self._stop()
            await self._delivery.close(list(self._streams_now()))
        finally:
            try:
                if self._held and isinstance(self._store, LockingCheckpointStore):
                    await self._store.release()
            finally:
                self._held = False
                if self._owns_store:
                    await self._store.close()

    # -- for the engines ----------------------------------------------------------

    async def _acquire(self) -> None:
        """Hold the checkpoint for this poller's life (a second poller is refused)."""
        if self._held or self._closed:
            return
        if isinstance(self._store, LockingCheckpointStore):
            await self._store.acquire()
        self._held = True

    async def _start(self) -> None:
        if self._started:
            return
        await self._acquire()
        self._started = True
        await self._begin()

    async def _load_stream(
        self, key: StreamKey, start_at: int | None, began: int | None
    ) -> StreamLog:
        """A stream to follow from now on: where its checkpoint says, else at
        ``start_at``, else (an Encharge) where its system's battery stream ``began`` in
        this run, else nowhere yet.

        Every stream of a system starts at the same place: ``start_at``, or the
        system's current day as the API's day window answers it.  ``began`` (see
        :meth:`~enphase_battery.fleet_system.FollowedSystem.start_for_new`) is where the
        battery stream started in this run when it had no checkpoint, not where it has
        got to since: the Encharge's intervals in between would never be fetched.  A
        stream without a position asks the API's day window at its first poll, like the
        battery stream of a first run; so does an Encharge first listed in a later run
        (its system's battery stream came from the checkpoint).

        The engine keeps it, then saves it with ``self._delivery.save`` at once: a run
        that stops before polling it must not leave a rerun (without ``start_at``) to
        begin at "today" and skip history.
        """
        stream = StreamLog(key, None)
        saved = await self._store.load(stream.store_key)
        if saved is not None:
            stream = StreamLog(key, saved)
        elif start_at is not None:
            stream.start_at(start_at)
        elif key[1] != BATTERY and began is not None:
            stream.start_at(began)  # a new Encharge starts where its system's streams did
        _LOGGER.debug("following stream %s from %s", stream.store_key, stream.watermark)
        return stream


class _StartingBatches(BatchIterator):
    """A poller's batch iterator: starts the poller on first use."""

    def __init__(self, poller: PollerFront, inner: BatchIterator) -> None:
        self._poller = poller
        self._inner = inner

    async def __anext__(self) -> Batch:
        poller = self._poller
        if poller._closed:
            raise StopAsyncIteration
        if not poller._started:
            await poller._start()
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
