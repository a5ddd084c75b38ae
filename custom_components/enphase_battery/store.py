"""One config entry's durable state in Home Assistant's storage (``.storage/``).

It holds, in one JSON document written atomically by Home Assistant's ``Store``:

* ``checkpoint``: the telemetry poller's stream states (``"{system_id}/{source}"`` ->
  ``StreamState`` JSON), so a restart resumes where the last delivered interval stood;
* ``hourly``: each system's :class:`~enphase_battery.HourlyEnergy` state, the running
  sums the statistics are built on;
* ``latest``: the newest reading of each stream (the SoC and energy sensors' values).

:class:`StoreCheckpoint` is the poller's ``CheckpointStore`` on this document.  It is
also *transactional* in the SDK's sense (``commit_with``): ``await batch.commit(commit)``
writes the batch's checkpoint together with the hourly state that the batch's rows came
from, in one file write.  So the statistics, which are imported (upserted) before the
commit, and the state they were computed from never disagree: after a crash the batch
comes again from the same state and its rows are imported again, identical.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import attrs
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from enphase_battery.store import StreamState

from .const import DOMAIN, STORE_VERSION


class EntryStore:
    """The entry's document in ``.storage/enphase_battery.<entry_id>``."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store: Store[dict[str, Any]] = Store(
            hass, STORE_VERSION, f"{DOMAIN}.{entry_id}", atomic_writes=True
        )
        self.data: dict[str, Any] = {"checkpoint": {}, "hourly": {}, "latest": {}}
        self._lock = asyncio.Lock()

    async def async_load(self) -> None:
        """Read the document (nothing yet: empty)."""
        stored = await self._store.async_load()
        if stored:
            for part in ("checkpoint", "hourly", "latest"):
                self.data[part] = dict(stored.get(part, {}))

    async def async_write(self) -> None:
        """Write the whole document now (atomically: a crash leaves the old or the new)."""
        async with self._lock:
            await self._store.async_save(self.data)

    async def async_remove(self) -> None:
        """Delete the document (the entry was removed)."""
        await self._store.async_remove()


@attrs.frozen
class HourlyCommit:
    """What a batch commits with its checkpoint: the ``conn`` of ``batch.commit(conn)``.

    Attributes:
        system_id: the system whose poller delivered the batch.
        hourly_json: ``HourlyEnergy.to_json()`` after the batch's intervals.
        latest: stream source -> its newest reading (see :mod:`.history`).
    """

    system_id: int
    hourly_json: str
    latest: dict[str, dict[str, Any]]


class StoreCheckpoint:
    """The SDK's ``CheckpointStore`` (and ``TransactionalCheckpointStore``) on an
    :class:`EntryStore`; one per poller, several may share the entry's document."""

    def __init__(self, entry_store: EntryStore) -> None:
        self._entry_store = entry_store

    @property
    def _states(self) -> dict[str, str]:
        states: dict[str, str] = self._entry_store.data["checkpoint"]
        return states

    async def load(self, key: str) -> StreamState | None:
        """The saved state of stream ``key``, or ``None``."""
        text = self._states.get(key)
        return None if text is None else StreamState.from_json(text)

    async def save(self, key: str, state: StreamState) -> None:
        """Replace the state of stream ``key``, durably."""
        self._states[key] = state.to_json()
        await self._entry_store.async_write()

    async def commit_with(
        self, conn: HourlyCommit, states: Sequence[tuple[str, StreamState]]
    ) -> None:
        """Write ``states`` and the batch's hourly state in one write."""
        data = self._entry_store.data
        before = (dict(data["checkpoint"]), dict(data["hourly"]), dict(data["latest"]))
        for key, state in states:
            data["checkpoint"][key] = state.to_json()
        data["hourly"][str(conn.system_id)] = conn.hourly_json
        data["latest"].update(conn.latest)
        try:
            await self._entry_store.async_write()
        except BaseException:
            # Nothing of the batch counts: the poller hands it out again.
            data["checkpoint"], data["hourly"], data["latest"] = before
            raise

    async def close(self) -> None:
        """Nothing to release: the document stays for the next start."""
