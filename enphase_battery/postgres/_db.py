"""The connection source shared by the PostgreSQL stores, and their rule for outages.

A store is built on a pool the caller owns (``asyncpg.Pool``) or on a DSN, in which case
it opens and closes a pool of its own.  Every database call goes through
:meth:`Database.run`: when the server is unreachable (restart, network cut, too many
connections) the call waits and tries again, logging once when the outage starts and once
when it ends, so a worker pauses rather than dies and nothing is lost or repeated (each
operation handed to ``run`` is written to be safe to repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from enphase_battery.exceptions import InvalidRequestError

#: A connection as the stores see it: your own, or one lent by a pool.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

__all__ = ["Connection", "Database", "is_transient", "quote_ident"]

_LOGGER = logging.getLogger("enphase_battery.postgres")
T = TypeVar("T")

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    # What asyncpg raises on a connection whose server went away mid-exchange.
    asyncpg.exceptions.InternalClientError,
)


class _Outage:
    """Whether the server is away now, and how many times it was."""

    __slots__ = ("away", "count")

    def __init__(self) -> None:
        self.away = False
        self.count = 0


# By id(): asyncpg pools take no weak references.  A few bytes per pool ever borrowed;
# a reused id only inherits a counter.
_OUTAGES: dict[int, _Outage] = {}


def _outage_of(pool: asyncpg.Pool) -> _Outage:
    return _OUTAGES.setdefault(id(pool), _Outage())


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier; only plain lower-case names are accepted.

    Identifiers cannot be bound as parameters, so the schema name is checked here instead.
    """
    if not isinstance(name, str) or not _IDENT.match(name):
        raise InvalidRequestError(
            f"schema must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), got {name!r}"
        )
    return f'"{name}"'


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` says the database is away for now (worth waiting for)."""
    if isinstance(err, _TRANSIENT):
        return True
    # A pooled connection the server dropped reports itself as an interface error.
    return isinstance(err, asyncpg.InterfaceError) and "connection" in str(err).lower()


class Database:
    """A pool (borrowed or owned) plus the pause-and-retry rule of :meth:`run`.

    Args:
        source: an ``asyncpg.Pool`` (borrowed: never closed here) or a DSN
            (``postgresql://user@host/db``; a pool is opened on first use and closed by
            :meth:`close`).
        retry_wait_s: first and longest wait between attempts while the server is away.
        give_up_after_s: stop waiting after this long and raise the last error
            (``None``: wait for as long as it takes).
    """

    def __init__(
        self,
        source: asyncpg.Pool | str,
        *,
        retry_wait_s: tuple[float, float] = (0.2, 5.0),
        give_up_after_s: float | None = None,
        max_size: int = 4,
    ) -> None:
        if isinstance(source, str):
            if not source.startswith(("postgresql://", "postgres://")):
                raise InvalidRequestError("a PostgreSQL DSN starts with postgresql://")
            self._dsn: str | None = source
            self._pool: asyncpg.Pool | None = None
        elif isinstance(source, asyncpg.Pool):
            self._dsn = None
            self._pool = source
        else:
            raise InvalidRequestError("expected an asyncpg.Pool or a postgresql:// DSN")
        first, longest = retry_wait_s
        if not 0 < first <= longest:
            raise InvalidRequestError("retry_wait_s must be (first, longest) with 0 < first")
        self._retry_wait_s = (float(first), float(longest))
        self._give_up_after_s = give_up_after_s
        self._max_size = max_size
        self._opening: asyncio.Lock | None = None
        # Stores on one pool share what they know of an outage, so a worker whose
        # checkpoint, leases and governor all wait for the server says so once.
        self._outage = _Outage() if self._pool is None else _outage_of(self._pool)

    @property
    def outages(self) -> int:
        """How many outages the stores on this pool have waited through."""
        return self._outage.count

    @property
    def owns_pool(self) -> bool:
        """Whether :meth:`close` closes the pool (it was opened from a DSN)."""
        return self._dsn is not None

    async def pool(self) -> asyncpg.Pool:
        """The pool, opened on first use when built from a DSN."""
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                assert self._dsn is not None
                # The statement cache stays on: every statement here is parameterised
                # and reused at a high rate (behind PgBouncer in transaction mode, pass
                # your own pool with statement_cache_size=0).
                # min_size=0: no idle floor to restore (and log about) during an outage.
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=0, max_size=self._max_size
                )
        return self._pool

    async def run(self, operation: Callable[[Connection], Awaitable[T]], *, what: str) -> T:
        """``operation`` on a pooled connection, waited out and retried through outages.

        ``operation`` must be safe to run again after a failure part-way (open its own
        transaction; make its writes conditional).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        failures = 0
        while True:
            try:
                pool = await self.pool()
                async with pool.acquire() as conn:
                    try:
                        result = await operation(conn)
                    except Exception as err:
                        if is_transient(err):
                            # A connection cut mid-operation may be left confused; never
                            # hand it out again (the pool may have let go of it already).
                            with contextlib.suppress(asyncpg.InterfaceError):
                                if not conn.is_closed():
                                    conn.terminate()
                        raise
            except Exception as err:
                if not is_transient(err):
                    raise
                failures += 1
                waited = loop.time() - started
                if self._give_up_after_s is not None and waited >= self._give_up_after_s:
                    raise
                if not self._outage.away:
                    self._outage.away = True
                    self._outage.count += 1
                    # Once per outage, without the DSN (it may carry a password).
                    _LOGGER.warning(
                        "PostgreSQL unreachable during %s (%s: %s); pausing until it is back",
                        what,
                        type(err).__name__,
                        err,
                    )
                first, longest = self._retry_wait_s
                wait = min(longest, first * 2 ** min(failures - 1, 16))
                await asyncio.sleep(wait * random.uniform(0.5, 1.0))
                continue
            if self._outage.away:
                self._outage.away = False
                _LOGGER.warning("PostgreSQL is back (%s); resuming", what)
            return result

    async def close(self) -> None:
        """Close the pool if it was opened here."""
        if self._dsn is not None and self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
