"""``PostgresCheckpoint``: the poller's checkpoint in PostgreSQL, shared by many workers.

Each stream is one row (watermark, delivered end times, revision).  A save is a
compare-and-set on the revision this process last saw, inside the same transaction as
the lease check (when a fence is given) and, for the transactional sink, the consumer's
own rows.  That gives three guarantees a user can rely on:

* a worker that lost a system's lease writes nothing for it (:class:`LeaseLostError`);
* two writers of one stream cannot both commit the same step
  (:class:`CheckpointConflictError`);
* a commit whose acknowledgement was lost in an outage is recognised on the retry
  (the row already holds the new state) instead of being applied twice, so the
  consumer's rows are not written twice either.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.postgres._db import Connection, Database, quote_ident
from enphase_battery.postgres.checkpoint_rows import (
    compare_and_set,
    revisions,
    state_of,
    stored_rows,
    stored_states,
)
from enphase_battery.postgres.errors import CheckpointConflictError
from enphase_battery.postgres.fence import Fence, check_fence, system_of
from enphase_battery.postgres.schema import ensure_schema
from enphase_battery.store.checkpoint import StreamState

if TYPE_CHECKING:
    from enphase_battery.models.delivered import TelemetryInterval

__all__ = ["BatchWriter", "Fence", "PostgresCheckpoint", "RowWriter"]

# What the current commit_batch attempt staged (set by commit_with in the same task).
_STAGED: contextvars.ContextVar[dict[str, StreamState] | None] = contextvars.ContextVar(
    "enphase_battery_postgres_staged", default=None
)

#: The consumer's part of a transactional commit: write your rows on ``conn``.
RowWriter = Callable[[Connection], Awaitable[object]]
#: The consumer's part of :meth:`PostgresCheckpoint.commit_batch`.
BatchWriter = Callable[[Connection, "tuple[TelemetryInterval, ...]"], Awaitable[object]]


class Batch(Protocol):
    """What :meth:`PostgresCheckpoint.commit_batch` needs of a poller's
    :class:`~enphase_battery.Batch` (the store sits below the pollers)."""

    @property
    def intervals(self) -> tuple[TelemetryInterval, ...]: ...

    def __len__(self) -> int: ...

    async def commit(self, conn: Any = None) -> None: ...


class PostgresCheckpoint:
    """A :class:`~enphase_battery.store.checkpoint.CheckpointStore` in PostgreSQL.

    Args:
        source: an ``asyncpg.Pool`` you own (never closed here) or a
            ``postgresql://`` DSN (a small pool is opened on first use and closed by
            :meth:`close`).
        schema: where the tables live (created on first use, see
            :mod:`enphase_battery.postgres.schema`).
        fence: when given, every write first checks in the same transaction that the
            fence still holds the system's lease with the same token.
        give_up_after_s: how long a call waits for an unreachable server before it
            raises (``None``: waits as long as it takes, logging once per outage).

    Use :meth:`commit` to write your own rows and the checkpoint in one transaction.
    """

    def __init__(
        self,
        source: asyncpg.Pool | str | Database,
        *,
        schema: str = "enphase",
        fence: Fence | None = None,
        give_up_after_s: float | None = None,
    ) -> None:
        self._schema = schema
        self._s = quote_ident(schema)
        self._owns_db = not isinstance(source, Database)
        self._db = (
            source
            if isinstance(source, Database)
            else Database(source, give_up_after_s=give_up_after_s)
        )
        self._fence = fence
        self._schema_ready = False
        # Per stream, the (revision, state) this process last saw committed, and the one
        # it last tried to commit (whose outcome an outage may have hidden).
        # Revision 0 stands for "no row".
        self._confirmed: dict[str, tuple[int, StreamState | None]] = {}
        self._pending: dict[str, tuple[int, StreamState | None]] = {}

    def __repr__(self) -> str:
        # Never the DSN: it may carry a password.
        return f"PostgresCheckpoint(schema={self._schema!r}, fenced={self._fence is not None})"

    @property
    def database(self) -> Database:
        """The connection source (shared with :meth:`fenced` copies)."""
        return self._db

    def fenced(self, fence: Fence) -> PostgresCheckpoint:
        """A view of this store whose writes check ``fence``'s leases; it shares the pool
        (closing the view leaves the pool open)."""
        view = PostgresCheckpoint(self._db, schema=self._schema, fence=fence)
        view._schema_ready = self._schema_ready
        return view

    async def ensure_ready(self) -> None:
        """Create (or upgrade) the tables now rather than on first use."""
        await self._db.run(self._ready, what="creating the schema")

    async def _ready(self, conn: Connection) -> None:
        if not self._schema_ready:
            await ensure_schema(conn, self._schema)
            self._schema_ready = True

    # -- CheckpointStore ------------------------------------------------------------

    async def load(self, key: str) -> StreamState | None:
        """The saved state of stream ``key``, or ``None``."""

        async def op(conn: Connection) -> StreamState | None:
            await self._ready(conn)
            row = await conn.fetchrow(
                f"SELECT watermark, delivered, revising::text, covered, revision"
                f" FROM {self._s}.stream_checkpoint WHERE stream = $1",
                key,
            )
            if row is None:
                self._confirmed[key] = (0, None)
                return None
            state = state_of(row)
            self._confirmed[key] = (int(row["revision"]), state)
            return state

        return await self._db.run(op, what=f"loading checkpoint {key}")

    async def save(self, key: str, state: StreamState) -> None:
        """Replace the state of stream ``key`` (one transaction, durable on return)."""
        await self.commit({key: state})

    async def close(self) -> None:
        """Close the pool if this store opened it."""
        if self._owns_db:
            await self._db.close()

    # -- transactional commit ---------------------------------------------------------

    async def commit(
        self, states: Mapping[str, StreamState], write_rows: RowWriter | None = None
    ) -> bool:
        """Save ``states`` and run ``write_rows(conn)`` in one transaction.

        Returns ``True`` when committed now, ``False`` when an earlier attempt whose
        acknowledgement was lost had already committed exactly these states (then
        ``write_rows`` is not run again).  Raises :class:`LeaseLostError` or
        :class:`CheckpointConflictError` with nothing written.  Outages are waited out.
        """
        if not states:
            return False

        async def op(conn: Connection) -> bool:
            await self._ready(conn)
            async with conn.transaction():
                applied = await self.write(conn, states)
                if applied and write_rows is not None:
                    await write_rows(conn)
            self.confirm(states)
            return applied

        return await self._db.run(op, what=f"committing {len(states)} checkpoint(s)")

    async def write(self, conn: Connection, states: Mapping[str, StreamState]) -> bool:
        """Stage ``states`` on ``conn`` inside the caller's open transaction.

        Returns ``False`` when the database already holds exactly these states from an
        earlier commit (roll back and skip your rows), ``True`` when staged; call
        :meth:`confirm` once the transaction has committed (a later save recognises a
        commit that was never confirmed, so forgetting only costs a round trip).
        """
        await self._ready(conn)
        if self._fence is not None:
            await check_fence(conn, self._s, self._fence, {system_of(k) for k in states})
        expected: dict[str, int | None] = {k: self._known_revision(k) for k in states}
        unknown = [k for k, rev in expected.items() if rev is None]
        if unknown:
            # Never loaded here (a store used without load()): take the row as it is.
            for key in unknown:
                expected[key] = 0
            expected.update(await revisions(conn, self._s, unknown))
        already: set[str] = set()
        todo = dict(states)
        for _attempt in range(3):
            applied = await compare_and_set(conn, self._s, todo, expected)
            for key in applied:
                self._pending[key] = (applied[key], todo.pop(key))
            if not todo:
                break
            retry = await self._explain_misses(conn, todo, expected)
            for key in list(todo):
                if key not in retry:
                    already.add(key)
                    del todo[key]
            if not todo:
                break
        if todo:
            raise CheckpointConflictError(next(iter(todo)))
        if already and len(already) != len(states):
            # Part of the batch was committed before and part was not: not one history.
            raise CheckpointConflictError(next(iter(already)))
        return not already

    def confirm(self, states: Mapping[str, StreamState]) -> None:
        """Record that the transaction holding ``states`` committed."""
        for key, state in states.items():
            pending = self._pending.pop(key, None)
            if pending is not None and pending[1] == state:
                self._confirmed[key] = pending

    # -- Batch.commit(conn) -------------------------------------------------------------

    async def commit_with(self, conn: Any, states: Sequence[tuple[str, StreamState]]) -> None:
        """Write ``states`` inside ``conn``'s open transaction (your uncommitted rows are
        there), then commit it: what ``await batch.commit(conn)`` calls.

        ``conn`` is an asyncpg connection inside ``async with conn.transaction():``;
        ``batch.commit(conn)`` must be the block's last statement (the block's own
        ``COMMIT`` then has nothing left to do).  If the states are already there (an
        earlier attempt committed and its answer was lost), the transaction is rolled
        back instead.  Raises (nothing committed, the batch not delivered) on a lost
        lease, a conflict or an outage; to retry through outages without writing your
        rows twice, use :meth:`commit_batch`, which checks for a lost commit first.
        """
        if not isinstance(conn, asyncpg.Connection | PoolConnectionProxy):
            raise TypeError("commit_with needs an asyncpg connection")
        if not conn.is_in_transaction():
            raise InvalidRequestError(
                "batch.commit(conn) needs conn inside a transaction holding your rows"
                " (async with conn.transaction(): ...)"
            )
        mapping = dict(states)
        try:
            applied = await self.write(conn, mapping)
        except BaseException:
            with contextlib.suppress(Exception):  # a dead connection rolls back by itself
                await conn.execute("ROLLBACK")
            raise
        staged = _STAGED.get()
        if staged is not None and applied:
            # commit_batch's record of what this attempt is about to commit: if the
            # COMMIT's answer is lost, the retry checks for it before writing rows again.
            staged.clear()
            staged.update(mapping)
        await conn.execute("COMMIT" if applied else "ROLLBACK")
        self.confirm(mapping)

    async def commit_batch(self, batch: Batch, write_rows: BatchWriter) -> None:
        """``write_rows(conn, batch.intervals)`` and ``batch.commit(conn)`` in one
        transaction, retried through outages until it is done exactly once.

        The recipe for a fleet into your own table::

            async for batch in poller.batches(max_size=1000):
                await checkpoint.commit_batch(batch, insert_rows)
        """

        staged: dict[str, StreamState] = {}

        async def op(conn: Connection) -> None:
            await self._ready(conn)
            token = _STAGED.set(staged)
            try:
                async with conn.transaction():
                    if staged and await self._landed(conn, staged):
                        # An earlier attempt committed and only its answer was lost: the
                        # rows are there.  batch.commit recognises the checkpoint as
                        # already written, rolls back and counts the batch as delivered.
                        await batch.commit(conn)
                        return
                    await write_rows(conn, batch.intervals)
                    await batch.commit(conn)
            finally:
                _STAGED.reset(token)

        await self._db.run(op, what=f"committing a batch of {len(batch)}")

    async def _landed(self, conn: Connection, staged: Mapping[str, StreamState]) -> bool:
        found = await stored_states(conn, self._s, list(staged))
        return all(found.get(key) == state for key, state in staged.items())

    # -- internals ----------------------------------------------------------------

    def _known_revision(self, key: str) -> int | None:
        confirmed = self._confirmed.get(key)
        return confirmed[0] if confirmed is not None else None

    async def _explain_misses(
        self,
        conn: Connection,
        missed: Mapping[str, StreamState],
        expected: dict[str, int | None],
    ) -> set[str]:
        """Why some rows were not at the expected revision.

        A row already holding the new state: an earlier commit landed (not retried).  A
        row holding a state this process wrote or read: its commit was never confirmed,
        or it rolled back; retry from there.  Anything else is another writer
        (:class:`CheckpointConflictError`).  Returns the keys to retry.
        """
        found = await stored_rows(conn, self._s, list(missed))
        retry: set[str] = set()
        for key, state in missed.items():
            current = found.get(key)
            if current is None:
                expected[key] = 0
                retry.add(key)
            elif current[1] == state:
                self._confirmed[key] = current
            elif current in (self._pending.get(key), self._confirmed.get(key)):
                expected[key] = current[0]
                retry.add(key)
            else:
                raise CheckpointConflictError(key)
        return retry
