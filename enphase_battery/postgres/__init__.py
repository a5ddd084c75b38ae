"""Several workers on one API plan, coordinated through PostgreSQL.

Install with ``pip install 'enphase-battery[postgres]'`` (the ``asyncpg`` driver).  Only the
pollers import this package, and only when given a ``postgresql://`` checkpoint or in
:class:`~enphase_battery.poll.LeasedFleet` (several workers sharing a fleet), so the SDK
works without the driver.

May import ``util`` up to ``client``, and ``store``.

* :class:`PostgresCheckpoint`: the poller's checkpoint, shared, with transactional commits
  of your own rows and the checkpoint together.
* :class:`LeaseWorker`: each system followed by exactly one worker at a time, spread
  evenly, taken over within the TTL when a worker dies; a fence for the checkpoint.
* :class:`PostgresGovernorBackend`: the :class:`~enphase_battery.QuotaGovernor`'s state
  (the plan's spacing and the month's count) shared by every process on one API key.
"""

from __future__ import annotations

from typing import Any

try:
    import asyncpg  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "enphase_battery.postgres needs the asyncpg driver: pip install 'enphase-battery[postgres]'"
    ) from err

from enphase_battery.postgres._db import Connection, Database, quote_ident
from enphase_battery.postgres.checkpoint import BatchWriter, PostgresCheckpoint, RowWriter
from enphase_battery.postgres.errors import CheckpointConflictError, LeaseLostError
from enphase_battery.postgres.fence import Fence
from enphase_battery.postgres.governor import PostgresGovernorBackend
from enphase_battery.postgres.leases import Lease, LeaseChange, LeaseWorker
from enphase_battery.postgres.schema import SCHEMA_VERSION, SchemaVersionError
from enphase_battery.util import moved as _moved

__all__ = [
    "SCHEMA_VERSION",
    "BatchWriter",
    "CheckpointConflictError",
    "Connection",
    "Database",
    "Fence",
    "Lease",
    "LeaseChange",
    "LeaseLostError",
    "LeaseWorker",
    "PostgresCheckpoint",
    "PostgresGovernorBackend",
    "RowWriter",
    "SchemaVersionError",
    "quote_ident",
]


def __getattr__(name: str) -> Any:
    # LeasedFleet moved up to enphase_battery.poll (it is a poller; this package stays below).
    return _moved.attribute(__name__, name)
