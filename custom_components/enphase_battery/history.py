"""The battery's 15-minute history: polled exactly once, imported as hourly statistics.

One :class:`SystemHistory` per system runs the SDK's
:class:`~enphase_battery.TelemetryPoller` in a background task of the config entry.  For
each batch of intervals it:

1. feeds them to the system's :class:`~enphase_battery.HourlyEnergy`, which returns the
   hourly rows to (re-)write: the hours the batch changed and every later hour whose
   running sum moved (a late interval, a revision of a partial one);
2. imports those rows as external statistics and waits until the recorder wrote them;
3. commits the batch together with the new hourly state into the entry's store
   (:class:`~.store.StoreCheckpoint`): one atomic file write.

A crash before 3 hands the same batch out again after the restart, from the same saved
hourly state: the same rows are imported again (an upsert), nothing is summed twice and
no interval is skipped.  The newest reading of each stream feeds the SoC and energy
sensors through :class:`HistoryCoordinator` at no extra request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from enphase_battery import (
    AuthenticationError,
    EnphaseClient,
    EnphaseError,
    HourlyEnergy,
    PermissionDeniedError,
    QuotaExceededError,
    TelemetryInterval,
    TelemetryPoller,
)
from enphase_battery.poll import MAX_BACKFILL

from .const import Access
from .statistics import import_rows, wait_imported
from .store import EntryStore, HourlyCommit, StoreCheckpoint

_LOGGER = logging.getLogger(__name__)

#: Waits after a failure the poller could not retry itself (then it resumes from the
#: checkpoint): first, longest.
_RETRY_WAIT_S = (60.0, 3600.0)


@attrs.frozen
class StreamReading:
    """The newest of one stream: what its sensors show.

    Attributes:
        end_at: end of the newest interval delivered.
        soc_percent: its state of charge (``None`` if it carried none).
        charged_wh / discharged_wh: the running sums since the history's start (the
            statistics' ``sum`` of the newest hour): a ``total_increasing`` meter.
    """

    end_at: datetime
    soc_percent: int | None
    charged_wh: int
    discharged_wh: int

    def to_json(self) -> dict[str, Any]:
        """For the entry's store."""
        return {
            "end_at": int(self.end_at.timestamp()),
            "soc": self.soc_percent,
            "charged_wh": self.charged_wh,
            "discharged_wh": self.discharged_wh,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamReading:
        """Inverse of :meth:`to_json`."""
        return cls(
            datetime.fromtimestamp(int(data["end_at"]), UTC),
            None if data.get("soc") is None else int(data["soc"]),
            int(data["charged_wh"]),
            int(data["discharged_wh"]),
        )


def stream_key(system_id: int, source: str) -> str:
    """``"{system_id}/{source}"``, as the poller's checkpoint keys its streams."""
    return f"{system_id}/{source}"


class HistoryCoordinator(DataUpdateCoordinator[dict[str, StreamReading]]):
    """Pushed by the pollers (no polling of its own): stream key -> newest reading."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, store: EntryStore) -> None:
        super().__init__(hass, _LOGGER, config_entry=entry, name="Enphase battery history")
        readings = {}
        for key, data in store.data["latest"].items():
            try:
                readings[key] = StreamReading.from_json(data)
            except (KeyError, TypeError, ValueError):
                _LOGGER.warning("ignoring an unreadable saved reading of %s", key)
        self.async_set_updated_data(readings)

    @callback
    def push(self, readings: dict[str, StreamReading]) -> None:
        """Newer readings of some streams."""
        self.async_set_updated_data({**(self.data or {}), **readings})


def _newest_readings(
    intervals: Iterable[TelemetryInterval], energy: HourlyEnergy
) -> dict[str, StreamReading]:
    """Each stream's newest interval in the batch, with the sums of its newest hour."""
    newest: dict[tuple[int, str], TelemetryInterval] = {}
    for interval in intervals:
        key = (interval.system_id, interval.source)
        known = newest.get(key)
        if known is None or interval.end_at >= known.end_at:
            newest[key] = interval
    readings = {}
    for key, interval in newest.items():
        stream_rows = energy.rows(key)
        if not stream_rows:
            continue
        last = stream_rows[-1]
        readings[stream_key(*key)] = StreamReading(
            interval.end_at, interval.soc_percent, last.charge_sum_wh, last.discharge_sum_wh
        )
    return readings


class SystemHistory:
    """The poller, the hourly aggregator and the statistics import of one system."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        *,
        client: EnphaseClient,
        system_id: int,
        system_name: str,
        encharges: tuple[str, ...] | None,
        start_at: datetime,
        store: EntryStore,
        coordinator: HistoryCoordinator,
        quota_share: float,
        on_auth_failed: Callable[[], None],
        on_access_denied: Callable[[Access, PermissionDeniedError], None],
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.client = client
        self.system_id = system_id
        self.system_name = system_name
        self.encharges = encharges
        self.start_at = start_at
        self.store = store
        self.coordinator = coordinator
        self.quota_share = quota_share
        self._on_auth_failed = on_auth_failed
        self._on_access_denied = on_access_denied
        self.poller: TelemetryPoller | None = None
        #: Whether a batch is being imported (for tests and diagnostics).
        self.importing = False
        #: Intervals handed to the aggregator, hourly points imported (since start).
        self.intervals_received = 0
        #: Of those, revisions of an interval first delivered partial.
        self.revisions_received = 0
        self.points_imported = 0
        self.last_error: str | None = None
        #: First and longest wait before the poller starts again after a failure.
        self.retry_wait_s = _RETRY_WAIT_S
        self._poller_ready = asyncio.Event()

    def _load_energy(self) -> HourlyEnergy:
        saved = self.store.data["hourly"].get(str(self.system_id))
        if saved:
            try:
                return HourlyEnergy.from_json(saved)
            except ValueError:
                _LOGGER.error("system %s: unreadable hourly state; starting anew", self.system_id)
        return HourlyEnergy()

    async def run(self) -> None:
        """Poll and import until cancelled (the entry's unload) or a failure that needs
        the user (sign-in, access); anything else is retried, resuming from the
        checkpoint (the batch in flight comes again)."""
        failures = 0
        while True:
            try:
                await self._run_poller()
                return
            except AuthenticationError:
                _LOGGER.warning("system %s: Enphase refused the sign-in", self.system_id)
                self._on_auth_failed()
                return
            except PermissionDeniedError as err:
                if not self.encharges:
                    self._on_access_denied(Access.SITE, err)
                    return
                # An Encharge's telemetry refused (the grant was narrowed): go on with the
                # system's battery alone.
                self.encharges = ()
                self._on_access_denied(Access.DEVICE, err)
                continue
            except QuotaExceededError as err:
                self.last_error = str(err)
                _LOGGER.warning("system %s: %s; history resumes later", self.system_id, err)
                pause = self.retry_wait_s[1]
                failures = 0
            except (EnphaseError, HomeAssistantError, OSError) as err:
                # The API, the recorder or the store: the checkpoint holds what was done.
                self.last_error = f"{type(err).__name__}: {err}"
                first_wait, longest_wait = self.retry_wait_s
                pause = min(first_wait * 2**failures, longest_wait)
                failures += 1
                _LOGGER.warning(
                    "system %s: history stopped (%s); resuming in %.0f s",
                    self.system_id,
                    self.last_error,
                    pause,
                )
            await asyncio.sleep(pause)

    async def _run_poller(self) -> None:
        energy = self._load_energy()
        poller = TelemetryPoller(
            self.client,
            self.system_id,
            encharges=self.encharges,
            # Used only without a checkpoint: a start chosen long ago may have aged past
            # the API's two years since.
            start_at=max(self.start_at, earliest_start()),
            checkpoint=StoreCheckpoint(self.store),
            quota_share=self.quota_share,
        )
        try:
            async with poller:
                self.poller = poller
                self._poller_ready.set()
                await self._import(poller, energy)
        finally:
            self.poller = None
            self._poller_ready.clear()

    async def _import(self, poller: TelemetryPoller, energy: HourlyEnergy) -> None:
        """Each batch: rows imported and written, then checkpoint and state committed."""
        async for batch in poller.batches(max_size=2000, max_wait=1.0):
            self.importing = True
            try:
                rows = energy.add_many(batch)
                self.intervals_received += len(batch)
                self.revisions_received += sum(1 for i in batch if i.revision)
                if rows:
                    self.points_imported += import_rows(
                        self.hass, rows, {self.system_id: self.system_name}
                    )
                    await wait_imported(self.hass)
                readings = _newest_readings(batch, energy)
                latest = {key: reading.to_json() for key, reading in readings.items()}
                await batch.commit(HourlyCommit(self.system_id, energy.to_json(), latest))
                self.last_error = None
                if readings:
                    self.coordinator.push(readings)
            finally:
                self.importing = False

    def poll_now(self) -> None:
        """Ask the poller for new intervals now (tests, a refresh)."""
        if self.poller is not None:
            self.poller.poll_now()

    async def wait_caught_up(self, within_s: float = 60.0) -> None:
        """Return once the poller has nothing to fetch or hand out and no batch is being
        imported (for tests)."""
        async with asyncio.timeout(within_s):
            settled = 0
            while settled < 3:
                await self._poller_ready.wait()  # (again, after a failure and its retry)
                poller = self.poller
                if poller is None:
                    continue
                try:
                    # Briefly: a poller that fails meanwhile is never idle again.
                    await asyncio.wait_for(poller.wait_idle(), 1.0)
                except TimeoutError:
                    settled = 0
                    continue
                await asyncio.sleep(0.05)
                settled = settled + 1 if poller.idle and not self.importing else 0


#: How much younger than the API's two-year limit a start is kept, so that the request
#: made some time after it was chosen is still within the limit.
_START_MARGIN = timedelta(hours=2)


def earliest_start(now: datetime | None = None) -> datetime:
    """The oldest start the API serves, less a margin, on the hour."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    earliest = now - MAX_BACKFILL + _START_MARGIN
    return earliest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def history_start(days: int, now: datetime | None = None) -> datetime:
    """Where the history begins for a new entry: ``days`` back, at midnight UTC
    (``0``: today's midnight), and never beyond what the API serves (two years)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(midnight - timedelta(days=days), earliest_start(now))
