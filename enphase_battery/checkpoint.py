"""Where the telemetry poller remembers what it has delivered.

A stream's state is small and bounded: a watermark (every interval ending at or before it
is done) and the end times of the intervals delivered beyond it (out of order, past a gap
that may still fill).  It never grows with the length of history.

Stores: :class:`MemoryCheckpoint` (the default), :class:`SqliteCheckpoint` (a path; stdlib
``sqlite3`` in WAL mode, written off the event loop), or anything that implements
:class:`CheckpointStore`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "CheckpointStore",
    "MemoryCheckpoint",
    "SqliteCheckpoint",
    "StreamState",
    "TransactionalCheckpointStore",
    "open_store",
]


@attrs.frozen
class StreamState:
    """What one stream has delivered.

    Attributes:
        watermark: epoch seconds; every interval ending at or before it is done.
        delivered: end times (epoch seconds) delivered after the watermark, ascending.
    """

    watermark: int
    delivered: tuple[int, ...] = ()

    def to_json(self) -> str:
        """Compact JSON for a store."""
        return json.dumps({"watermark": self.watermark, "delivered": list(self.delivered)})

    @classmethod
    def from_json(cls, text: str) -> StreamState:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(int(data["watermark"]), tuple(int(v) for v in data.get("delivered", ())))


@runtime_checkable
class CheckpointStore(Protocol):
    """What the poller needs of a checkpoint store.

    ``save`` is awaited after every delivered interval, before the next one is handed
    out; it must be durable when it returns (for the crash guarantee) and must not block
    the event loop.  Keys are ``"{system_id}/{source}"``.
    """

    async def load(self, key: str) -> StreamState | None:
        """The saved state of stream ``key``, or ``None``."""
        ...

    async def save(self, key: str, state: StreamState) -> None:
        """Replace the state of stream ``key``."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


@runtime_checkable
class TransactionalCheckpointStore(CheckpointStore, Protocol):
    """A store that can also write its state through the consumer's own connection.

    ``Batch.commit(conn)`` calls :meth:`commit_with`: the consumer's rows and the
    checkpoint then commit together, so after a crash nothing is lost and nothing comes
    twice.  A PostgreSQL store implements the same method over its driver's connection.
    """

    async def commit_with(self, conn: Any, states: Sequence[tuple[str, StreamState]]) -> None:
        """Write ``states`` inside ``conn``'s open transaction, then commit it."""
        ...


class MemoryCheckpoint:
    """Keeps state in memory: restarts of the poller object within one process resume."""

    def __init__(self) -> None:
        self.states: dict[str, StreamState] = {}

    async def load(self, key: str) -> StreamState | None:
        """The saved state of stream ``key``, or ``None``."""
        return self.states.get(key)

    async def save(self, key: str, state: StreamState) -> None:
        """Replace the state of stream ``key``."""
        self.states[key] = state

    async def close(self) -> None:
        """Nothing to release."""


_UPSERT = (
    "INSERT INTO stream_checkpoint (stream, state) VALUES (?, ?)"
    " ON CONFLICT(stream) DO UPDATE SET state = excluded.state"
)


class SqliteCheckpoint:
    """A SQLite file (WAL mode): one row per stream, written in a worker thread.

    Each save is its own transaction, so after a crash the file holds every delivery
    that completed before it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._conn: sqlite3.Connection | None = None
        # sqlite3 connections are not safe for concurrent use from several threads.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteCheckpoint({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash; only an OS crash may lose the
            # last transactions, which the poller then delivers again.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS stream_checkpoint ("
                " stream TEXT PRIMARY KEY, state TEXT NOT NULL)"
            )
            self._conn = conn
        return self._conn

    def _load(self, key: str) -> StreamState | None:
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT state FROM stream_checkpoint WHERE stream = ?", (key,))
                .fetchone()
            )
        return StreamState.from_json(row[0]) if row else None

    def _save(self, key: str, text: str) -> None:
        with self._lock:
            self._connect().execute(_UPSERT, (key, text))

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def load(self, key: str) -> StreamState | None:
        """The saved state of stream ``key``, or ``None``."""
        return await asyncio.to_thread(self._load, key)

    async def save(self, key: str, state: StreamState) -> None:
        """Replace the state of stream ``key`` (one transaction)."""
        await asyncio.to_thread(self._save, key, state.to_json())

    async def commit_with(self, conn: Any, states: Sequence[tuple[str, StreamState]]) -> None:
        """Write ``states`` through ``conn`` (a ``sqlite3.Connection`` to this same file,
        holding the caller's uncommitted rows) and commit: rows and checkpoint at once.

        Runs on the event loop: it is the caller's connection, used where the caller
        uses it, and its commit is one WAL append.
        """
        if not isinstance(conn, sqlite3.Connection):
            raise TypeError("commit_with needs a sqlite3.Connection")
        conn.executemany(_UPSERT, [(key, state.to_json()) for key, state in states])
        conn.commit()

    async def close(self) -> None:
        """Close the database."""
        await asyncio.to_thread(self._close)


def open_store(checkpoint: CheckpointStore | str | os.PathLike[str] | None) -> CheckpointStore:
    """The store for the poller's ``checkpoint`` argument."""
    if checkpoint is None:
        return MemoryCheckpoint()
    if isinstance(checkpoint, str | os.PathLike):
        return SqliteCheckpoint(checkpoint)
    if isinstance(checkpoint, CheckpointStore):
        return checkpoint
    raise TypeError("checkpoint must be None, a path or a CheckpointStore")
