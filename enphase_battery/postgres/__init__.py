"""Several workers on one API plan, coordinated through PostgreSQL.

Install with ``pip install 'enphase-battery[postgres]'`` (the ``asyncpg`` driver).  The rest
of the SDK never imports this package, so it works without the driver.

* :class:`PostgresCheckpoint`: the poller's checkpoint, shared, with transactional commits
  of your own rows and the checkpoint together.
* :class:`LeaseWorker`: each system followed by exactly one worker at a time, spread
  evenly, taken over within the TTL when a worker dies; a fence for the checkpoint.
* :class:`LeasedFleet`: one worker's part of a fleet: a ``FleetPoller`` over the systems
  it holds, fenced, restarted when a lease is lost with a batch in hand.
* :class:`PostgresGovernorBackend`: the :class:`~enphase_battery.QuotaGovernor`'s state
  (the plan's spacing and the month's count) shared by every process on one API key.
"""

from __future__ import annotations

try:
    import asyncpg  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "enphase_battery.postgres needs the asyncpg driver: pip install 'enphase-battery[postgres]'"
    ) from err

from ._db import Connection, Database, quote_ident
from .checkpoint import BatchWriter, Fence, PostgresCheckpoint, RowWriter
from .errors import CheckpointConflictError, LeaseLostError
from .fleet import LeasedFleet
from .governor import PostgresGovernorBackend
from .leases import Lease, LeaseChange, LeaseWorker
from .schema import SCHEMA_VERSION, SchemaVersionError

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
    "LeasedFleet",
    "PostgresCheckpoint",
    "PostgresGovernorBackend",
    "RowWriter",
    "SchemaVersionError",
    "quote_ident",
]
