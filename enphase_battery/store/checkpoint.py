"""Where the telemetry poller remembers what it has delivered.

A stream's state is small and bounded: a watermark (every interval ending at or before it
is done) and the end times of the intervals delivered beyond it (out of order, past a gap
that may still fill).  It never grows with the length of history.

Stores: :class:`MemoryCheckpoint` (the default), :class:`SqliteCheckpoint` (a path; stdlib
``sqlite3`` in WAL mode, see :mod:`enphase_battery.store.sqlite`), or anything that
implements :class:`CheckpointStore`.  A store that can also write its state through the
consumer's own database transaction implements :class:`TransactionalCheckpointStore`
(SQLite here, PostgreSQL in :mod:`enphase_battery.postgres`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

import attrs

from enphase_battery.exceptions import CheckpointInUseError
from enphase_battery.util.slots import slot_setters

__all__ = [
    "CheckpointStore",
    "ImmediateCheckpointStore",
    "LiveCheckpointStore",
    "LockingCheckpointStore",
    "MemoryCheckpoint",
    "PendingRevision",
    "StreamState",
    "TransactionalCheckpointStore",
    "covered_from",
    "live_store",
    "make_state",
    "nowait_saver",
    "revising_from_json",
    "revising_to_json",
]


@attrs.frozen
class PendingRevision:
    """An interval that went out partial and may still be revised (see ``revise_for``).

    What the consumer last received of it: the re-read is compared against these values,
    and a change goes out as ``revision + 1``.

    Attributes:
        end: the interval's end (epoch seconds).
        revision: the revision the consumer has (0: the first emission).
        charge_wh / discharge_wh / soc_percent / devices_reporting: its values then.
    """

    end: int
    revision: int
    charge_wh: int
    discharge_wh: int
    soc_percent: int | None
    devices_reporting: int | None

    def to_list(self) -> list[int | None]:
        """The compact form a store keeps: ``[end, revision, charge, discharge, soc,
        devices_reporting]``."""
        return [
            self.end,
            self.revision,
            self.charge_wh,
            self.discharge_wh,
            self.soc_percent,
            self.devices_reporting,
        ]

    @classmethod
    def from_list(cls, item: Any) -> PendingRevision:
        """Inverse of :meth:`to_list`; raises ``ValueError`` on anything else."""
        try:
            end, revision, charge, discharge, soc, reporting = item
            return cls(
                int(end),
                int(revision),
                int(charge),
                int(discharge),
                None if soc is None else int(soc),
                None if reporting is None else int(reporting),
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"not a pending revision: {item!r}") from err


def revising_to_json(revising: tuple[PendingRevision, ...]) -> str:
    """``revising`` as a JSON array of :meth:`PendingRevision.to_list` forms."""
    return json.dumps([p.to_list() for p in revising], separators=(",", ":"))


def revising_from_json(text: str | None) -> tuple[PendingRevision, ...]:
    """Inverse of :func:`revising_to_json` (``None`` or empty: none pending)."""
    if not text:
        return ()
    return _revising_from_data(json.loads(text))


def _revising_from_data(data: Any) -> tuple[PendingRevision, ...]:
    if not isinstance(data, list):
        raise ValueError(f"not a list of pending revisions: {str(data)[:80]!r}")
    return tuple(sorted((PendingRevision.from_list(item) for item in data), key=_END))


@attrs.frozen
class StreamState:
    """What one stream has delivered.

    Attributes:
        watermark: epoch seconds; every interval ending at or before it is done.
        delivered: end times (epoch seconds) delivered after the watermark, ascending.
        revising: intervals that went out partial and are still re-read for a revision
            (ascending by end); part of the state so that a restart neither loses a
            pending revision nor emits one twice.
        covered: ``(report_at, ready_end)`` of the stream's latest poll that reached the
            newest data: the systems list's ``last_report_at`` it covered, and the end of
            the newest interval it could hand out (not one held back as partial).  A
            fleet that restarts skips the stream while the list shows no later report
            and that interval was delivered.
    """

    watermark: int
    delivered: tuple[int, ...] = ()
    revising: tuple[PendingRevision, ...] = ()
    covered: tuple[int, int] | None = None

    def to_json(self) -> str:
        """Compact JSON for a store."""
        # Formatted by hand: this runs once per delivered interval.
        delivered = ", ".join(map(str, self.delivered))
        text = f'{{"watermark": {self.watermark}, "delivered": [{delivered}]'
        if self.revising:
            text += f', "revising": {revising_to_json(self.revising)}'
        if self.covered is not None:
            text += f', "covered": [{self.covered[0]}, {self.covered[1]}]'
        return text + "}"

    @classmethod
    def from_json(cls, text: str) -> StreamState:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on anything else."""
        try:
            data = json.loads(text)
            revising = data.get("revising")
            covered = data.get("covered")
            return cls(
                int(data["watermark"]),
                tuple(int(v) for v in data.get("delivered", ())),
                _revising_from_data(revising) if revising else (),
                covered_from(covered),
            )
        except (TypeError, KeyError, AttributeError, ValueError) as err:
            raise ValueError(f"not a stream state: {text[:80]!r}") from err


_END = attrgetter("end")


def covered_from(data: Any) -> tuple[int, int] | None:
    """``StreamState.covered`` from its stored form (``[report_at, ready_end]`` or
    ``None``); ``ValueError`` on anything else."""
    if data is None:
        return None
    try:
        report_at, ready_end = data
        return (int(report_at), int(ready_end))
    except (TypeError, ValueError) as err:
        raise ValueError(f"not a covered report: {data!r}") from err


_Maker = Callable[
    [int, tuple[int, ...], tuple[PendingRevision, ...], "tuple[int, int] | None"], StreamState
]


def _state_maker() -> _Maker:
    new = object.__new__
    set_watermark, set_delivered, set_revising, set_covered = slot_setters(
        StreamState, "watermark", "delivered", "revising", "covered"
    )

    def make(
        watermark: int,
        delivered: tuple[int, ...],
        revising: tuple[PendingRevision, ...],
        covered: tuple[int, int] | None,
    ) -> StreamState:
        state = new(StreamState)
        set_watermark(state, watermark)
        set_delivered(state, delivered)
        set_revising(state, revising)
        set_covered(state, covered)
        return state

    return make


#: ``StreamState(watermark, delivered, revising, covered)`` without the frozen
#: ``__init__`` (a quarter of its cost): the poller makes one per interval it hands out.
make_state = _state_maker()


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
class LockingCheckpointStore(CheckpointStore, Protocol):
    """A store that can refuse a second poller: :meth:`acquire` is called when a poller
    starts, :meth:`release` when it closes (the hold also ends when the process dies)."""

    async def acquire(self) -> None:
        """Take the store for one poller; raise :class:`CheckpointInUseError` if held."""
        ...

    async def release(self) -> None:
        """End the hold taken by :meth:`acquire`."""
        ...


@runtime_checkable
class ImmediateCheckpointStore(CheckpointStore, Protocol):
    """A store that can usually save at once, without a coroutine.

    The poller saves after every interval handed out one by one; where a store's save
    needs no waiting (a dict, a SQLite write that finds no lock), :meth:`save_nowait`
    spares that hot path a coroutine.  It must be as durable as :meth:`save` when it
    returns ``True``, and must not block the event loop.
    """

    def save_nowait(self, key: str, state: StreamState) -> bool:
        """Replace the state of stream ``key`` now; ``False`` (nothing written) when it
        would have to wait, and the caller awaits :meth:`save` instead."""
        ...


def nowait_saver(store: CheckpointStore) -> Callable[[str, StreamState], bool] | None:
    """``store.save_nowait`` if the poller may use it instead of ``save``.

    Not when a subclass overrides ``save`` below the class that gave ``save_nowait``
    (a ``MemoryCheckpoint`` whose ``save`` also writes elsewhere): its ``save`` must run.
    """
    if not isinstance(store, ImmediateCheckpointStore):
        return None
    return store.save_nowait if _defined_below(type(store), "save_nowait", "save") else None


@runtime_checkable
class LiveCheckpointStore(CheckpointStore, Protocol):
    """A store in the poller's own process that reads a stream's committed state when it
    is asked for it, instead of being handed a copy after every interval.

    While a stream is followed, ``state_of()`` is what the store holds for it (what
    :meth:`load` returns and its own views show); :meth:`unfollow` keeps the state of that
    moment.  Nothing outside the process can see the store, so it needs no copy until
    then: the poller's one-by-one hot path then saves nothing at all.
    """

    def follow(self, key: str, state_of: Callable[[], StreamState | None]) -> None:
        """Hold ``state_of()`` as the state of stream ``key`` from now on."""
        ...

    def unfollow(self, key: str) -> None:
        """Keep the state ``key`` has now, and stop following it."""
        ...


def live_store(store: CheckpointStore) -> LiveCheckpointStore | None:
    """``store`` if the poller may let it follow streams instead of saving to it (not
    for a subclass that overrides ``save`` below the class that gave ``follow``)."""
    if not isinstance(store, LiveCheckpointStore):
        return None
    return store if _defined_below(type(store), "follow", "save") else None


def _defined_below(cls: type, name: str, other: str) -> bool:
    """Whether ``cls`` gets ``name`` from a class at or below the one it gets ``other``
    from: an override of ``other`` further down would be bypassed by ``name``."""
    mro = cls.__mro__
    at = next((i for i, c in enumerate(mro) if name in vars(c)), len(mro))
    other_at = next((i for i, c in enumerate(mro) if other in vars(c)), len(mro))
    return at <= other_at


@runtime_checkable
class TransactionalCheckpointStore(CheckpointStore, Protocol):
    """A store that can write its state through the consumer's own connection.

    ``await batch.commit(conn)`` calls :meth:`commit_with`: the consumer's rows and the
    checkpoint commit together, so after a crash nothing is lost and nothing comes
    twice.  :class:`~enphase_battery.SqliteCheckpoint` does it over a
    ``sqlite3.Connection`` to its own file,
    :class:`~enphase_battery.postgres.PostgresCheckpoint` over an ``asyncpg`` one.
    """

    async def commit_with(self, conn: Any, states: Sequence[tuple[str, StreamState]]) -> None:
        """Write ``states`` inside ``conn``'s open transaction (the caller's rows are
        there), then commit it; on failure nothing is committed."""
        ...


class MemoryCheckpoint:
    """Keeps state in memory: restarts of the poller object within one process resume.

    One poller at a time: a second one on the same object raises
    :class:`~enphase_battery.exceptions.CheckpointInUseError`.  A poller's streams are followed
    (:class:`LiveCheckpointStore`): :attr:`states` and :meth:`load` show what the poller
    has committed at that moment, and keep it when the poller closes.
    """

    def __init__(self) -> None:
        self._states: dict[str, StreamState] = {}
        self._live: dict[str, Callable[[], StreamState | None]] = {}
        self._held = False

    @property
    def states(self) -> dict[str, StreamState]:
        """The state of every stream (those a poller follows as they are now)."""
        for key, state_of in self._live.items():
            state = state_of()
            if state is not None:
                self._states[key] = state
        return self._states

    @states.setter
    def states(self, states: dict[str, StreamState]) -> None:
        self._live.clear()
        self._states = states

    async def acquire(self) -> None:
        """Take the store for one poller (until :meth:`close`)."""
        if self._held:
            raise CheckpointInUseError(
                "this MemoryCheckpoint is in use by another poller; close that one first"
            )
        self._held = True

    async def release(self) -> None:
        """End the hold taken by :meth:`acquire`."""
        self._held = False

    async def load(self, key: str) -> StreamState | None:
        """The saved state of stream ``key``, or ``None``."""
        state_of = self._live.get(key)
        state = state_of() if state_of is not None else None
        return state if state is not None else self._states.get(key)

    async def save(self, key: str, state: StreamState) -> None:
        """Replace the state of stream ``key``."""
        self._states[key] = state

    def save_nowait(self, key: str, state: StreamState) -> bool:
        """Replace the state of stream ``key`` (always at once)."""
        self._states[key] = state
        return True

    def follow(self, key: str, state_of: Callable[[], StreamState | None]) -> None:
        """Hold ``state_of()`` as the state of stream ``key`` (see :class:`LiveCheckpointStore`)."""
        self._live[key] = state_of

    def unfollow(self, key: str) -> None:
        """Keep the state ``key`` has now, and stop following it."""
        state_of = self._live.pop(key, None)
        if state_of is not None:
            state = state_of()
            if state is not None:
                self._states[key] = state

    async def close(self) -> None:
        """Release the hold; the states stay for the next poller."""
        for key in list(self._live):
            self.unfollow(key)
        self._held = False
