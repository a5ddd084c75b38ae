"""``SqliteCheckpoint``: the poller's checkpoint in a SQLite file (stdlib ``sqlite3``, WAL).

Why a save can run on the event loop: in WAL mode with ``synchronous=NORMAL`` a commit is
an append to the ``-wal`` file in the OS page cache, no ``fsync`` (a few microseconds,
and it survives ``kill -9``; only an OS crash may lose the last commits, which the poller
then delivers again).  What does sync to disk is the WAL checkpoint, and that is turned
off on the loop's connection and run from a worker thread, on a connection of its own,
every :data:`CHECKPOINT_EVERY` saves.  A save never waits for a lock on the loop either:
the loop's connection has no busy timeout, and a save that finds the database locked (a
consumer's open transaction on the same file) is retried in a worker thread that may
wait.  No thread round trip per save, no snapshot per save.

One poller at a time: a ``<file>.lock`` next to the database is held with ``flock`` for
the poller's life (released on close and when the process dies), so a second poller, in
this process or another, is refused at once with
:class:`~enphase_battery.exceptions.CheckpointInUseError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from typing import Any

from enphase_battery.exceptions import CheckpointError, CheckpointInUseError
from enphase_battery.store.checkpoint import StreamState

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, as documented
    fcntl = None  # type: ignore[assignment]

__all__ = ["CHECKPOINT_EVERY", "SqliteCheckpoint"]

#: Saves between two WAL checkpoints (each run in a worker thread).
CHECKPOINT_EVERY = 1000
#: How long a save waits for a lock held elsewhere (in a worker thread) before it fails.
BUSY_TIMEOUT_S = 30.0

_TABLE = (
    "CREATE TABLE IF NOT EXISTS stream_checkpoint (stream TEXT PRIMARY KEY, state TEXT NOT NULL)"
)
_UPSERT = (
    "INSERT INTO stream_checkpoint (stream, state) VALUES (?, ?)"
    " ON CONFLICT(stream) DO UPDATE SET state = excluded.state"
)
_REMEDY = "move it aside (or delete it to start over from --since / start_at)"


class SqliteCheckpoint:
    """A SQLite file (WAL mode): one row per stream.

    Each save is its own transaction, so after a crash the file holds every delivery
    that completed before it.  The file may be your own database: ``Batch.commit(conn)``
    then writes the checkpoint inside your transaction (see :meth:`commit_with`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._saves = 0
        self._wal_task: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"SqliteCheckpoint({self.path!r})"

    # -- the hold -------------------------------------------------------------------

    async def acquire(self) -> None:
        """Hold ``<file>.lock`` for this poller; :class:`CheckpointInUseError` if taken."""
        if self._lock_fd is None and fcntl is not None:
            self._lock_fd = self._take_lock()

    def _take_lock(self) -> int:
        lock_path = self.path + ".lock"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise self._error(f"cannot create its lock file {lock_path}: {err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise CheckpointInUseError(
                f"checkpoint {self.path} is in use by another poller"
                + (f" (pid {holder})" if holder else "")
                + ": stop it first, or give this one another checkpoint",
                path=self.path,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    async def release(self) -> None:
        """End the hold taken by :meth:`acquire`."""
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # -- connection -----------------------------------------------------------------

    def _error(self, what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path}: {what}", path=self.path)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            size = None
        except OSError as err:
            raise self._error(f"cannot read it: {err}") from None
        if size == 0:
            # SQLite would take an empty file for a new database, and the poller would
            # start over and deliver everything again.
            raise self._error(f"the file is empty (0 bytes), not a checkpoint; {_REMEDY}")
        try:
            if size is None:
                self._create()
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout=0")
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
                conn.execute("PRAGMA synchronous=NORMAL")
                # Checkpoints (the part that syncs) run in a worker thread instead.
                conn.execute("PRAGMA wal_autocheckpoint=0")
                conn.execute(_TABLE)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as err:
            raise self._error(f"not a readable SQLite checkpoint ({err}); {_REMEDY}") from None
        except OSError as err:
            raise self._error(f"cannot create it ({err.strerror or err})") from None
        if mode is None or str(mode[0]).lower() != "wal":
            conn.close()
            raise self._error("cannot switch it to WAL mode (a read-only or network file?)")
        self._conn = conn
        return conn

    def _create(self) -> None:
        """A new file, complete before it appears: a crash never leaves an empty one."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=directory)
        os.close(fd)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute(_TABLE)
            finally:
                conn.close()
            try:
                os.link(tmp, self.path)  # never replaces a file another process created
            except FileExistsError:
                pass
            except OSError:
                # No hard links here (some network or FUSE file systems): a rename, still
                # atomic, only where no file has appeared meanwhile.
                if not os.path.exists(self.path):
                    os.replace(tmp, self.path)
                    return
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- CheckpointStore ----------------------------------------------------------------

    async def load(self, key: str) -> StreamState | None:
        """The saved state of stream ``key``, or ``None``."""
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT state FROM stream_checkpoint WHERE stream = ?", (key,)
            ).fetchone()
        except sqlite3.OperationalError:
            row = await asyncio.to_thread(self._load_waiting, key)
        except sqlite3.DatabaseError as err:
            raise self._error(f"cannot read it ({err}); {_REMEDY}") from None
        if row is None:
            return None
        try:
            return StreamState.from_json(row[0])
        except ValueError:
            raise self._error(f"the state of stream {key} is corrupt; {_REMEDY}") from None

    def _load_waiting(self, key: str) -> Any:
        with self._waiting() as conn:
            return conn.execute(
                "SELECT state FROM stream_checkpoint WHERE stream = ?", (key,)
            ).fetchone()

    async def save(self, key: str, state: StreamState) -> None:
        """Replace the state of stream ``key`` (one transaction, durable on return)."""
        if not self.save_nowait(key, state):
            await asyncio.to_thread(self._save_waiting, key, state.to_json())
            self._saved()

    def save_nowait(self, key: str, state: StreamState) -> bool:
        """Replace the state of stream ``key`` unless another connection holds the lock
        (``False``: nothing written; :meth:`save` waits for it in a worker thread)."""
        conn = self._connect()
        try:
            conn.execute(_UPSERT, (key, state.to_json()))
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) and "busy" not in str(err):
                raise self._error(f"cannot save ({err})") from None
            return False
        except sqlite3.DatabaseError as err:
            raise self._error(f"cannot save ({err})") from None
        self._saved()
        return True

    def _saved(self) -> None:
        self._saves += 1
        if self._saves % CHECKPOINT_EVERY == 0 and (
            self._wal_task is None or self._wal_task.done()
        ):
            self._wal_task = asyncio.ensure_future(asyncio.to_thread(self._wal_checkpoint))

    def _save_waiting(self, key: str, text: str) -> None:
        try:
            with self._waiting() as conn:
                conn.execute(_UPSERT, (key, text))
        except sqlite3.DatabaseError as err:
            raise self._error(f"cannot save ({err})") from None

    @contextlib.contextmanager
    def _waiting(self) -> Any:
        """A connection of the worker thread that waits for locks."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        try:
            yield conn
        finally:
            conn.close()

    def _wal_checkpoint(self) -> None:
        with contextlib.suppress(sqlite3.Error), self._waiting() as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def close(self) -> None:
        """Close the database and release the hold."""
        try:
            if self._wal_task is not None:
                with contextlib.suppress(Exception):
                    await self._wal_task
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await asyncio.to_thread(_close_checkpointed, conn)
        finally:
            self._release()

    # -- TransactionalCheckpointStore -----------------------------------------------------

    async def commit_with(self, conn: Any, states: Sequence[tuple[str, StreamState]]) -> None:
        """Write ``states`` through ``conn`` (a ``sqlite3.Connection`` to this same file,
        holding your uncommitted rows) and commit it: rows and checkpoint at once.  On
        failure ``conn`` is rolled back: nothing of it is committed.

        Runs on the event loop: it is your connection, used where you use it, and its
        commit is one WAL append.
        """
        if not isinstance(conn, sqlite3.Connection):
            raise TypeError("SqliteCheckpoint.commit_with needs a sqlite3.Connection")
        self._connect()  # the table exists before the caller's connection writes to it
        self._check_same_file(conn)
        try:
            conn.executemany(_UPSERT, [(key, state.to_json()) for key, state in states])
            conn.commit()
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
            if isinstance(err, sqlite3.DatabaseError):
                raise self._error(f"cannot commit through your connection ({err})") from None
            raise

    def _check_same_file(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("PRAGMA database_list").fetchall()
        main = next((row[2] for row in rows if row[1] == "main"), "")
        if not main or not os.path.samefile(main, self.path):
            raise CheckpointError(
                f"your connection is to {main or 'an in-memory database'}, not to the"
                f" checkpoint {self.path}: rows and checkpoint must share one database file",
                path=self.path,
            )


def _close_checkpointed(conn: sqlite3.Connection) -> None:
    # Fold the WAL into the database before closing (the part that syncs: off the loop).
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
