"""Where a poller remembers what it has delivered: the checkpoint protocols and the
per-stream state (:mod:`.checkpoint`), in memory, or in a SQLite file (:mod:`.sqlite`);
PostgreSQL's store is :class:`enphase_battery.postgres.PostgresCheckpoint`.

May import ``util``, ``exceptions`` and ``models``.  ``sqlite3`` loads only when
:class:`SqliteCheckpoint` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enphase_battery.util import lazy as _lazy

if TYPE_CHECKING:
    from enphase_battery.store.checkpoint import CheckpointStore as CheckpointStore
    from enphase_battery.store.checkpoint import (
        ImmediateCheckpointStore as ImmediateCheckpointStore,
    )
    from enphase_battery.store.checkpoint import LiveCheckpointStore as LiveCheckpointStore
    from enphase_battery.store.checkpoint import LockingCheckpointStore as LockingCheckpointStore
    from enphase_battery.store.checkpoint import MemoryCheckpoint as MemoryCheckpoint
    from enphase_battery.store.checkpoint import PendingRevision as PendingRevision
    from enphase_battery.store.checkpoint import StreamState as StreamState
    from enphase_battery.store.checkpoint import (
        TransactionalCheckpointStore as TransactionalCheckpointStore,
    )
    from enphase_battery.store.sqlite import SqliteCheckpoint as SqliteCheckpoint

__all__, _load, __dir__ = _lazy.exports(__name__)


def __getattr__(name: str) -> Any:
    return _load(name)
