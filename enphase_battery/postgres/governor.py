"""``PostgresGovernorBackend``: one quota governor shared by every process on an API key.

:class:`~enphase_battery.quota.governor.QuotaGovernor` keeps all the rules (spacing, the
month's count, the background budget, refunds); a backend only applies its pure update
function atomically.  Here that is a compare-and-set on the key's row (write the new
state only if the row still holds the state it was computed from, else recompute), so N
processes admitting requests at once are serialised on the row and together never
exceed the plan: each admission reserves its send slot and its count in one write.

Times are the governor's clock (real time by default): hosts sharing a key should keep
their clocks in sync (NTP), as the spacing between their slots is judged on them.  An
update whose acknowledgement an outage swallowed may be applied twice on the retry: the
count then errs by one request on the safe side (spent, not sent).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import asyncpg

from enphase_battery.postgres._db import Connection, Database, quote_ident
from enphase_battery.postgres.schema import ensure_schema
from enphase_battery.quota.state import GovernorState

__all__ = ["PostgresGovernorBackend"]

_T = TypeVar("_T")

# Part of the admission's WHERE clause: this one statement's transaction commits without
# waiting for the WAL flush (``synchronous_commit`` for it alone).  A server crash may
# then forget the last fraction of a second of admissions, a few requests of a month's
# count; in exchange an admission costs two round trips and no disk wait.
_ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true) = 'off'"


class PostgresGovernorBackend:
    """A :class:`~enphase_battery.quota.governor.GovernorBackend` in PostgreSQL.

    Args:
        source: an ``asyncpg.Pool`` you own, a DSN (its own pool, closed by
            :meth:`close`), or the :class:`Database` of another store.
        schema: where the ``governor_state`` table lives (created on first use).

    Example::

        governor = QuotaGovernor(RateLimits.PARTNER, key=QuotaGovernor.key_for(api_key),
                                 backend=PostgresGovernorBackend(pool))
    """

    def __init__(self, source: asyncpg.Pool | str | Database, *, schema: str = "enphase") -> None:
        self._schema = schema
        self._s = quote_ident(schema)
        self._owns_db = not isinstance(source, Database)
        self._db = source if isinstance(source, Database) else Database(source)
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"PostgresGovernorBackend(schema={self._schema!r})"

    def describe(self) -> str:
        """Where the count lives, for messages."""
        return f"in PostgreSQL (schema {self._schema})"

    async def _ready(self, conn: Connection) -> None:
        if not self._schema_ready:
            await ensure_schema(conn, self._schema)
            self._schema_ready = True

    async def transact(
        self, key: str, update: Callable[[GovernorState | None], tuple[GovernorState, _T]]
    ) -> _T:
        """Apply ``update`` to the state under ``key`` atomically.

        A compare-and-set: read the row, compute, write it only if it is still what was
        read (else read again and recompute; ``update`` is pure).  Two round trips and
        no lock held while Python computes, where a locking transaction needs four.
        """
        s = self._s

        async def op(conn: Connection) -> _T:
            await self._ready(conn)
            while True:
                text = await conn.fetchval(
                    f"SELECT state::text FROM {s}.governor_state WHERE key = $1", key
                )
                stored = GovernorState.from_json(json.loads(text)) if text is not None else None
                state, result = update(stored)
                new = json.dumps(state.to_json())
                if text is None:
                    written = await conn.fetchval(
                        f"INSERT INTO {s}.governor_state AS g (key, state) VALUES ($1, $2::jsonb)"
                        " ON CONFLICT (key) DO UPDATE SET state = excluded.state,"
                        " updated_at = now() WHERE g.state IS NULL RETURNING 1",
                        key,
                        new,
                    )
                else:
                    written = await conn.fetchval(
                        f"UPDATE {s}.governor_state SET state = $2::jsonb, updated_at = now()"
                        " WHERE key = $1 AND state = $3::jsonb"
                        f" AND {_ASYNC_COMMIT} RETURNING 1",
                        key,
                        new,
                        text,
                    )
                if written is not None:
                    return result
                # Another process updated the row since it was read: apply to its state.

        return await self._db.run(op, what="quota admission")

    async def delete(self, key: str) -> None:
        """Forget ``key``'s state (every plan's when ``key`` ends in ``:*``)."""

        async def op(conn: Connection) -> None:
            await self._ready(conn)
            if key.endswith(":*"):
                await conn.execute(
                    f"DELETE FROM {self._s}.governor_state WHERE starts_with(key, $1)",
                    key[:-1],
                )
            else:
                await conn.execute(f"DELETE FROM {self._s}.governor_state WHERE key = $1", key)

        await self._db.run(op, what="resetting the quota count")

    async def states(self) -> dict[str, GovernorState]:
        """Every stored state, by key (for a usage report)."""

        async def op(conn: Connection) -> dict[str, GovernorState]:
            await self._ready(conn)
            rows = await conn.fetch(
                f"SELECT key, state FROM {self._s}.governor_state WHERE state IS NOT NULL"
            )
            result: dict[str, GovernorState] = {}
            for row in rows:
                state = GovernorState.from_json(json.loads(row["state"]))
                if state is not None:
                    result[row["key"]] = state
            return result

        return await self._db.run(op, what="reading the quota counts")

    async def close(self) -> None:
        """Close the pool if this backend opened it."""
        if self._owns_db:
            await self._db.close()
