"""Leases: each system followed by exactly one worker at a time.

A ``lease`` row per system holds its owner, an expiry and a fencing token; a ``worker`` row
per live worker lets each one compute its fair share (``systems / live workers``).
Every heartbeat, in one transaction, a worker renews its own leases (those whose token it
still holds), gives up what exceeds its share (a worker joined) and takes free or expired
leases up to its share with ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers starting at
once never take the same system.  Shares settle so that no two workers differ by more than
one system.  Each takeover increments the token; a write fenced by
the worker (:meth:`PostgresCheckpoint.fenced`) checks the token in its own transaction,
so a worker that was paused past its TTL and lost a system cannot write for it anymore.

When a worker dies, its leases expire after ``ttl`` and the others take them at their next
heartbeat: a takeover within ``ttl + heartbeat``.  Time is the server's clock, shared by
every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from types import TracebackType
from typing import Self

import asyncpg
import attrs

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.postgres._db import Connection, Database, quote_ident
from enphase_battery.postgres.schema import ensure_schema

__all__ = ["Lease", "LeaseChange", "LeaseWorker"]

_LOGGER = logging.getLogger("enphase_battery.postgres")


@attrs.frozen
class Lease:
    """A system held by this worker, with the fencing token of this takeover."""

    system_id: int
    token: int


@attrs.frozen
class LeaseChange:
    """What one heartbeat changed.

    Attributes:
        acquired: leases taken now (start following these systems from the checkpoint).
        lost: systems whose lease another worker took over, or that were unregistered
            (stop following them; their writes are already refused).
        released: systems given up to make room for a worker that joined.
        surplus: with ``release_surplus=False``, systems to give up (call
            :meth:`LeaseWorker.release` once their work in hand is committed).
    """

    acquired: tuple[Lease, ...] = ()
    lost: tuple[int, ...] = ()
    released: tuple[int, ...] = ()
    surplus: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.acquired or self.lost or self.released or self.surplus)


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise InvalidRequestError(f"{name} must be positive")
    return seconds


class LeaseWorker:
    """One worker's share of the systems, kept by a heartbeat.

    Args:
        source: an ``asyncpg.Pool``, a DSN, or the :class:`Database` of a store.
        worker_id: this worker's name in the tables (default: host, pid and a random tag).
        ttl: how long a lease lives without renewal (default 30 s).
        heartbeat: seconds between heartbeats (default ``ttl / 3``).
        on_change: awaited after each heartbeat that changed something.
        release_surplus: give up what exceeds the fair share in the heartbeat itself
            (default); ``False`` reports it as ``LeaseChange.surplus`` instead, for a
            caller that first finishes the work in hand, then calls :meth:`release`.

    ``async with LeaseWorker(...) as worker`` joins, runs the heartbeat in the background,
    and on exit gives every lease back so the others take over at once.  It is the
    :class:`~.fence.Fence` for :meth:`PostgresCheckpoint.fenced`.
    """

    def __init__(
        self,
        source: asyncpg.Pool | str | Database,
        *,
        schema: str = "enphase",
        worker_id: str | None = None,
        ttl: float | timedelta = 30.0,
        heartbeat: float | timedelta | None = None,
        on_change: Callable[[LeaseChange], Awaitable[None]] | None = None,
        release_surplus: bool = True,
    ) -> None:
        self._schema = schema
        self._s = quote_ident(schema)
        self._owns_db = not isinstance(source, Database)
        self._db = source if isinstance(source, Database) else Database(source)
        self._id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl_s = _seconds(ttl, "ttl")
        self.heartbeat_s = _seconds(heartbeat, "heartbeat") if heartbeat else self.ttl_s / 3
        if self.heartbeat_s >= self.ttl_s:
            raise InvalidRequestError("heartbeat must be shorter than ttl")
        self._on_change = on_change
        self._release_surplus = release_surplus
        self._held: dict[int, int] = {}
        self._schema_ready = False
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._beat_now = asyncio.Event()
        #: Live workers and registered systems seen at the latest heartbeat.
        self.workers_seen = 0
        self.systems_seen = 0

    def __repr__(self) -> str:
        return f"LeaseWorker({self._id!r}, held={len(self._held)})"

    # -- Fence --------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        """This worker's id."""
        return self._id

    def token_for(self, system_id: int) -> int | None:
        """The fencing token held for ``system_id`` (``None``: not held)."""
        return self._held.get(system_id)

    @property
    def held(self) -> tuple[Lease, ...]:
        """The leases this worker holds, by system id."""
        return tuple(Lease(s, t) for s, t in sorted(self._held.items()))

    @property
    def database(self) -> Database:
        """The connection source, to share with a store: ``PostgresCheckpoint(w.database)``."""
        return self._db

    # -- systems ------------------------------------------------------------------------

    async def register(self, system_ids: Iterable[int]) -> None:
        """Make systems known to every worker (idempotent; any worker may call it)."""
        ids = sorted({int(s) for s in system_ids})

        async def op(conn: Connection) -> None:
            await self._ready(conn)
            await conn.execute(
                f"INSERT INTO {self._s}.lease (system_id) SELECT unnest($1::bigint[])"
                " ON CONFLICT (system_id) DO NOTHING",
                ids,
            )

        await self._db.run(op, what="registering systems")

    async def unregister(self, system_ids: Iterable[int]) -> None:
        """Stop following systems everywhere (their holders lose them at the next heartbeat)."""
        ids = sorted({int(s) for s in system_ids})

        async def op(conn: Connection) -> None:
            await self._ready(conn)
            await conn.execute(
                f"DELETE FROM {self._s}.lease WHERE system_id = ANY($1::bigint[])", ids
            )

        await self._db.run(op, what="unregistering systems")

    async def registered(self) -> tuple[int, ...]:
        """Every system registered, by id."""

        async def op(conn: Connection) -> tuple[int, ...]:
            await self._ready(conn)
            rows = await conn.fetch(f"SELECT system_id FROM {self._s}.lease ORDER BY system_id")
            return tuple(int(r["system_id"]) for r in rows)

        return await self._db.run(op, what="reading the systems")

    # -- heartbeat ------------------------------------------------------------------------

    async def heartbeat(self) -> LeaseChange:
        """One round: renew, give up the surplus, take free leases up to the fair share."""
        held = dict(self._held)

        async def op(conn: Connection) -> LeaseChange:
            await self._ready(conn)
            async with conn.transaction():
                return await self._round(conn, held)

        change = await self._db.run(op, what="lease heartbeat")
        for system_id in (*change.lost, *change.released):
            self._held.pop(system_id, None)
        for lease in change.acquired:
            self._held[lease.system_id] = lease.token
        if change:
            _LOGGER.info(
                "worker %s: +%d -%d lost, -%d released, %d to release; holds %d of %d (%d workers)",
                self._id,
                len(change.acquired),
                len(change.lost),
                len(change.released),
                len(change.surplus),
                len(self._held),
                self.systems_seen,
                self.workers_seen,
            )
            self._changed.set()
            if self._on_change is not None:
                await self._on_change(change)
        return change

    async def _round(self, conn: Connection, held: dict[int, int]) -> LeaseChange:
        s, ttl = self._s, self.ttl_s
        await conn.execute(
            f"INSERT INTO {s}.worker (worker_id, expires_at)"
            " VALUES ($1, now() + make_interval(secs => $2))"
            " ON CONFLICT (worker_id) DO UPDATE SET expires_at = excluded.expires_at",
            self._id,
            ttl,
        )
        renewed = await conn.fetch(
            f"UPDATE {s}.lease AS l SET expires_at = now() + make_interval(secs => $4)"
            " FROM unnest($1::bigint[], $2::bigint[]) AS h(system_id, token)"
            " WHERE l.system_id = h.system_id AND l.token = h.token AND l.owner = $3"
            " RETURNING l.system_id",
            list(held),
            list(held.values()),
            self._id,
            ttl,
        )
        kept = {int(r["system_id"]) for r in renewed}
        lost = tuple(sorted(set(held) - kept))
        # Live workers and what each holds: everyone may hold ceil(N/W), but while
        # someone holds less than floor(N/W) (it just joined), nobody keeps more than
        # floor, and the free leases go to whoever is short.  That settles on an even
        # spread (sizes differ by at most one) without any worker giving orders.
        loads = await conn.fetch(
            f"SELECT w.worker_id, count(l.system_id) AS held FROM {s}.worker w"
            f" LEFT JOIN {s}.lease l ON l.owner = w.worker_id AND l.expires_at > now()"
            " WHERE w.expires_at > now() GROUP BY w.worker_id"
        )
        systems = await conn.fetchval(f"SELECT count(*) FROM {s}.lease")
        self.workers_seen = workers = max(1, len(loads))
        self.systems_seen = systems = int(systems)
        low, high = systems // workers, math.ceil(systems / workers)
        starving = any(r["worker_id"] != self._id and r["held"] < low for r in loads)
        share = low if starving else high
        released: tuple[int, ...] = ()
        surplus_left: tuple[int, ...] = ()
        acquired: tuple[Lease, ...] = ()
        if len(kept) > share and not self._release_surplus:
            surplus_left = tuple(sorted(kept)[share:])
        elif len(kept) > share:
            # The highest ids go: a stable choice, so a rebalance moves few systems.
            surplus = sorted(kept)[share:]
            await conn.execute(
                f"UPDATE {s}.lease SET owner = NULL, expires_at = '-infinity'"
                " WHERE system_id = ANY($1::bigint[]) AND owner = $2",
                surplus,
                self._id,
            )
            released = tuple(surplus)
        elif len(kept) < share:
            rows = await conn.fetch(
                f"WITH free AS (SELECT system_id FROM {s}.lease"
                " WHERE owner IS NULL OR expires_at < now()"
                " ORDER BY expires_at, system_id LIMIT $1 FOR UPDATE SKIP LOCKED)"
                f" UPDATE {s}.lease AS l SET owner = $2, token = l.token + 1,"
                " expires_at = now() + make_interval(secs => $3), acquired_at = now()"
                " FROM free WHERE l.system_id = free.system_id"
                " RETURNING l.system_id, l.token",
                share - len(kept),
                self._id,
                ttl,
            )
            acquired = tuple(
                sorted(
                    (Lease(int(r["system_id"]), int(r["token"])) for r in rows),
                    key=lambda lease: lease.system_id,
                )
            )
        # A worker expires with its leases (killed, it never said goodbye): its row goes at
        # the next heartbeat of any worker, not an hour later.
        await conn.execute(f"DELETE FROM {s}.worker WHERE expires_at < now()")
        return LeaseChange(acquired, lost, released, surplus_left)

    async def release(self, system_ids: Iterable[int] | None = None) -> None:
        """Give leases back now (all by default), so another worker takes them at once."""
        ids = sorted(self._held if system_ids is None else {int(s) for s in system_ids})
        if not ids:
            return

        async def op(conn: Connection) -> None:
            await self._ready(conn)
            await conn.execute(
                f"UPDATE {self._s}.lease SET owner = NULL, expires_at = '-infinity'"
                " WHERE system_id = ANY($1::bigint[]) AND owner = $2",
                ids,
                self._id,
            )

        await self._db.run(op, what="releasing leases")
        for system_id in ids:
            self._held.pop(system_id, None)

    async def leave(self) -> None:
        """Release every lease and remove this worker from the count."""
        await self.release()

        async def op(conn: Connection) -> None:
            await self._ready(conn)
            await conn.execute(f"DELETE FROM {self._s}.worker WHERE worker_id = $1", self._id)

        await self._db.run(op, what="leaving")

    async def unowned(self) -> int:
        """Registered systems no live worker holds now (free, released, or expired)."""

        async def op(conn: Connection) -> int:
            await self._ready(conn)
            count = await conn.fetchval(
                f"SELECT count(*) FROM {self._s}.lease WHERE owner IS NULL OR expires_at < now()"
            )
            return int(count)

        return await self._db.run(op, what="counting free leases")

    def beat_soon(self) -> None:
        """Have the background heartbeat run now rather than at its next period."""
        self._beat_now.set()

    async def wait_changed(self) -> None:
        """Return after the next heartbeat that changed what this worker holds."""
        self._changed.clear()
        await self._changed.wait()

    # -- lifecycle ----------------------------------------------------------------------

    async def _ready(self, conn: Connection) -> None:
        if not self._schema_ready:
            await ensure_schema(conn, self._schema)
            self._schema_ready = True

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except Exception:
                # The database calls wait out outages; anything else is logged and the
                # next beat tries again (an expired lease is then fenced, never misused).
                _LOGGER.exception("lease heartbeat of %s failed", self._id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_s):
                    await self._beat_now.wait()
            self._beat_now.clear()

    async def start(self) -> None:
        """Join now (one heartbeat) and keep beating in the background."""
        if self._task is None:
            await self.heartbeat()
            self._task = asyncio.create_task(self._beat_forever(), name=f"lease:{self._id}")

    async def stop(self, *, leave: bool = True) -> None:
        """Stop the heartbeat; with ``leave`` give every lease back."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if leave:
                await self.leave()
        finally:
            if self._owns_db:
                await self._db.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
