"""``LeasedFleet``: one worker's part of a fleet, with the others coordinated through PostgreSQL.

Each worker process runs one: it joins the lease table (:class:`LeaseWorker`), follows the
systems it holds with a :class:`~enphase_battery.FleetPoller` whose checkpoint is fenced by
those leases, and follows or drops systems as leases come and go.  The consumer takes
batches and commits them with its own rows::

    async with LeasedFleet(client, pool) as fleet:
        async for batch in fleet.batches(max_size=1000):
            await fleet.commit_batch(batch, insert_rows)

A batch holding a system whose lease was lost meanwhile (a paused worker, a rebalance)
commits nothing: the fence refuses it, :meth:`LeasedFleet.commit_batch` says so in the log,
and the worker starts its poller afresh from the checkpoints of the systems it still
holds, so those intervals come again (here or at the new owner), once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import asyncpg

from enphase_battery.exceptions import EnphaseError, InvalidRequestError
from enphase_battery.models import validation
from enphase_battery.poll.batch import Batch
from enphase_battery.poll.fleet import FleetPoller
from enphase_battery.postgres import Database
from enphase_battery.postgres.checkpoint import BatchWriter, PostgresCheckpoint
from enphase_battery.postgres.errors import LeaseLostError
from enphase_battery.postgres.leases import LeaseChange, LeaseWorker

if TYPE_CHECKING:
    from enphase_battery.client.client import EnphaseClient

__all__ = ["LeasedFleet"]

_LOGGER = logging.getLogger("enphase_battery.postgres")


class LeasedFleet:
    """A :class:`~enphase_battery.FleetPoller` over the systems this worker holds.

    Args:
        client: the client (give it a governor on :class:`PostgresGovernorBackend` so all
            workers on the key keep to the plan together).
        source: an ``asyncpg.Pool`` you own, or a DSN (a pool of its own, closed on exit).
        systems: ``None`` registers every system ``list_systems`` shows, again every
            ``relist_every``; a list registers those.
        schema: the schema of the checkpoint and lease tables.
        ttl: the lease TTL (a dead worker's systems move after about this long).
        worker_id: this worker's name in the lease table.
        fleet_options: passed to :class:`~enphase_battery.FleetPoller` (``start_at``,
            ``encharges``, ``concurrency``, ``revise_for``...); the pending revisions live
            in the checkpoint rows, so a worker taking a system over goes on revising it.
    """

    def __init__(
        self,
        client: EnphaseClient,
        source: asyncpg.Pool | str | Database,
        *,
        systems: Iterable[int] | None = None,
        schema: str = "enphase",
        ttl: float | timedelta = 30.0,
        worker_id: str | None = None,
        relist_every: timedelta = timedelta(hours=1),
        **fleet_options: Any,
    ) -> None:
        _check_options(client, relist_every, fleet_options)
        self.client = client
        self._owns_db = not isinstance(source, Database)
        self._db = source if isinstance(source, Database) else Database(source)
        # A rebalance gives systems up between batches, never with one in hand, so even a
        # sink outside the database (a file) sees nothing twice when a worker joins.
        self.worker = LeaseWorker(
            self._db,
            schema=schema,
            worker_id=worker_id,
            ttl=ttl,
            on_change=self._on_change,
            release_surplus=False,
        )
        self.checkpoint = PostgresCheckpoint(self._db, schema=schema).fenced(self.worker)
        self._systems = (
            None if systems is None else sorted({validation.system_id(s) for s in systems})
        )
        self._relist_s = relist_every.total_seconds()
        self._fleet_options = fleet_options
        self._poller: FleetPoller | None = None
        self._stale = False
        self._in_hand = False
        self._to_release: set[int] = set()
        self._relister: asyncio.Task[None] | None = None
        #: How often the poller was started afresh after a lease was lost mid-batch.
        self.restarts = 0

    def __repr__(self) -> str:
        return f"LeasedFleet(worker={self.worker.owner!r}, held={len(self.worker.held)})"

    @property
    def poller(self) -> FleetPoller:
        """The poller of the systems held now (replaced after a lost lease)."""
        if self._poller is None:
            raise RuntimeError("use LeasedFleet inside async with")
        return self._poller

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._register()
        self._poller = self._new_poller()
        await self.worker.start()
        if self._systems is None:
            self._relister = asyncio.create_task(self._relist_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop polling, give the leases back (others take over at once), release the pool."""
        relister, self._relister = self._relister, None
        if relister is not None:
            relister.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relister
        try:
            await self._close_poller()
        finally:
            try:
                await self.worker.stop(leave=True)
            finally:
                if self._owns_db:
                    await self._db.close()

    # -- the consumer's side -----------------------------------------------------------

    async def batches(self, *, max_size: int = 1000, max_wait: float = 1.0) -> AsyncIterator[Batch]:
        """Batches of the systems held (see :meth:`FleetPoller.batches`), across restarts."""
        while True:
            poller = self.poller
            async for batch in poller.batches(max_size=max_size, max_wait=max_wait):
                if any(self.worker.token_for(iv.system_id) is None for iv in batch):
                    # Gathered while one of its systems went away: never handed out.
                    self._stale = True
                    break
                self._in_hand = True
                try:
                    yield batch
                finally:
                    self._in_hand = False
                await self._release_pending()
                if self._stale:
                    break
            if self._stale:
                await self._restart()

    async def commit_batch(self, batch: Batch, write_rows: BatchWriter) -> bool:
        """Your rows and the batch's checkpoint in one fenced transaction.

        Returns ``False`` (nothing written) when a system of the batch was lost meanwhile;
        the next batch then comes from a fresh poller of the systems still held.
        """
        try:
            await self.checkpoint.commit_batch(batch, write_rows)
        except LeaseLostError as err:
            _LOGGER.info(
                "worker %s lost system %s with a batch in hand: nothing written; restarting",
                self.worker.owner,
                err.system_id,
            )
            self._stale = True
            return False
        return True

    async def commit(self, batch: Batch) -> bool:
        """Count ``batch`` as delivered (the checkpoint alone, fenced): for sinks that are
        not in the database, such as a file.  Returns ``False`` when a system of the
        batch was lost meanwhile: nothing saved, and the batch comes again (from a fresh
        poller here or from the system's new owner), so such a sink may see it twice."""
        try:
            await batch.commit()
        except LeaseLostError as err:
            _LOGGER.info(
                "worker %s lost system %s with a batch in hand: not saved; restarting",
                self.worker.owner,
                err.system_id,
            )
            self._stale = True
            return False
        return True

    async def wait_caught_up(self) -> None:
        """Return once this worker has nothing due and nothing pending, and every
        registered system has a live holder.

        This worker's poller being idle is not enough: systems it gave up to a worker
        that joined, or that a worker left behind, are free until a heartbeat takes them,
        and until then nobody fetches them.  While any is free a heartbeat is asked for
        now (this worker may be the one to take them) and the wait goes on.  What
        ``enphase-battery stream --until-caught-up`` stops on.
        """
        while True:
            await self.poller.wait_idle()
            if not self._to_release and await self.worker.unowned() == 0:
                return
            self.worker.beat_soon()
            await asyncio.sleep(min(0.5, self.worker.heartbeat_s))

    # -- internals ------------------------------------------------------------------

    def _new_poller(self) -> FleetPoller:
        held = [lease.system_id for lease in self.worker.held]
        return FleetPoller(self.client, held, checkpoint=self.checkpoint, **self._fleet_options)

    async def _close_poller(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            # What the lost systems still had to save is refused by the fence, harmlessly:
            # their new owner starts from their last commit.
            with contextlib.suppress(LeaseLostError):
                await poller.aclose()

    async def _restart(self) -> None:
        self._stale = False
        self.restarts += 1
        await self._close_poller()
        self._poller = self._new_poller()

    async def _on_change(self, change: LeaseChange) -> None:
        poller = self._poller
        if poller is None:
            return
        for system_id in (*change.lost, *change.released):
            poller.unfollow(system_id)
        for lease in change.acquired:
            poller.follow(lease.system_id)
        self._to_release.update(change.surplus)
        if not self._in_hand:
            await self._release_pending()

    async def _release_pending(self) -> None:
        """Give up the surplus now that no batch is in hand: stop following it first."""
        ids = sorted(self._to_release)
        self._to_release.clear()
        if not ids:
            return
        if self._poller is not None:
            for system_id in ids:
                self._poller.unfollow(system_id)
        await self.worker.release(ids)

    async def _register(self) -> None:
        if self._systems is not None:
            await self.worker.register(self._systems)
            return
        listed = {s.system_id for s in await self.client.list_systems()}
        await self.worker.register(listed)
        gone = set(await self.worker.registered()) - listed
        if gone:
            _LOGGER.info("systems %s are no longer listed; not following them", sorted(gone))
            await self.worker.unregister(gone)

    async def _relist_forever(self) -> None:
        while True:
            await asyncio.sleep(self._relist_s)
            try:
                await self._register()
            except EnphaseError as err:
                _LOGGER.warning("listing the systems failed (%s); trying again later", err)


def _check_options(
    client: EnphaseClient, relist_every: timedelta, fleet_options: dict[str, Any]
) -> None:
    """Refuse a bad setting before anything is sent: ``relist_every`` here, the
    FleetPoller's own options by building one (no store, no system, nothing started)."""
    validation.duration("relist_every", relist_every)
    if "checkpoint" in fleet_options:
        raise InvalidRequestError("LeasedFleet keeps its checkpoint in PostgreSQL: no checkpoint=")
    try:
        FleetPoller(client, (), **fleet_options)
    except TypeError as err:
        raise InvalidRequestError(f"not a FleetPoller option: {err}") from None
