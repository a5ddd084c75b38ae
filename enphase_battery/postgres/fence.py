"""Who may write which system's streams: the :class:`Fence` a fenced
:class:`~enphase_battery.postgres.PostgresCheckpoint` asks, and the lease check its writes
make inside their own transaction (a worker that lost a system's lease writes nothing
for it)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from enphase_battery.postgres._db import Connection
from enphase_battery.postgres.errors import LeaseLostError

__all__ = ["Fence", "check_fence", "system_of"]


@runtime_checkable
class Fence(Protocol):
    """Who may write which system's streams (a :class:`~.leases.LeaseWorker` is one)."""

    @property
    def owner(self) -> str:
        """The writer's id as the lease table knows it."""
        ...

    def token_for(self, system_id: int) -> int | None:
        """The fencing token held for ``system_id``, or ``None`` when not held."""
        ...


def system_of(key: str) -> int:
    """The system id of a stream key (``"{system_id}/{source}"``)."""
    head, _, _ = key.partition("/")
    return int(head)


async def check_fence(conn: Connection, s: str, fence: Fence, systems: set[int]) -> None:
    """Raise :class:`LeaseLostError` unless ``fence`` still holds every system's lease
    with the same token; ``s`` is the quoted schema.  Inside the write's transaction."""
    ids: list[int] = []
    tokens: list[int] = []
    for system_id in sorted(systems):
        token = fence.token_for(system_id)
        if token is None:
            raise LeaseLostError(system_id)
        ids.append(system_id)
        tokens.append(token)
    # FOR SHARE: a takeover (which updates the row) waits for this transaction, and
    # one that committed first has moved the token, so the row no longer matches.
    held = await conn.fetch(
        f"SELECT l.system_id FROM {s}.lease l"
        " JOIN unnest($1::bigint[], $2::bigint[]) AS h(system_id, token)"
        " ON l.system_id = h.system_id AND l.token = h.token"
        " WHERE l.owner = $3 ORDER BY l.system_id FOR SHARE OF l",
        ids,
        tokens,
        fence.owner,
    )
    held_ids = {int(r["system_id"]) for r in held}
    for system_id in ids:
        if system_id not in held_ids:
            raise LeaseLostError(system_id)
