"""One quota governor per API key, shared by every config entry that uses the key.

The Enphase plans count requests per API key (Watt: 1,000 a month).  Each key gets one
:class:`~enphase_battery.QuotaGovernor`; every entry on that key builds its clients on it,
so two entries (two Enphase accounts under one developer app) never spend the month
twice.  The month is shared out as follows:

* ``POLLER_SHARE`` (60 %): background work, the telemetry pollers behind the history,
  the energy and the state-of-charge sensors (the governor holds them to it);
* ``COORDINATOR_SHARE`` (30 %): the coordinators' reads, each coordinator's update
  interval stretched so that it spends its part over the month
  (:meth:`KeyQuota.update_interval`), and stretched again for every entry that joins the
  key (:meth:`KeyQuota.pace`);
* the rest: writes (Storm Guard, profile, reserve), discovery and retries.

The month's count is kept in ``.storage/enphase_battery.quota`` so that a restart does
not forget what was spent (the governor is seeded with it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from enphase_battery import QuotaGovernor, QuotaUsage, RateLimits

from .const import COORDINATOR_SHARE, DOMAIN, POLLER_SHARE

#: An average month, as the SDK's pacing counts it.
MONTH_S = 30.4375 * 86_400
_DATA_KEY = f"{DOMAIN}_quota"
_SAVE_DELAY_S = 60


@attrs.frozen
class _Paced:
    """A coordinator whose interval follows the key's quota."""

    coordinator: DataUpdateCoordinator[Any]
    calls: int
    part: float
    floor: timedelta


@attrs.define
class KeyQuota:
    """The governor of one API key and who uses it."""

    key: str
    governor: QuotaGovernor
    #: entry_id -> number of systems it follows.
    systems: dict[str, int] = attrs.field(factory=dict)
    #: entry_id -> its coordinators, re-paced when an entry comes or goes.
    paced: dict[str, list[_Paced]] = attrs.field(factory=dict)

    def pace(
        self,
        entry_id: str,
        coordinator: DataUpdateCoordinator[Any],
        *,
        calls: int,
        part: float,
        floor: timedelta,
    ) -> None:
        """Let the key's quota set ``coordinator``'s update interval, now and whenever
        the systems on the key change (see :meth:`update_interval`)."""
        paced = _Paced(coordinator, calls, part, floor)
        self.paced.setdefault(entry_id, []).append(paced)
        coordinator.update_interval = self.update_interval(calls, part, floor)

    def repace(self) -> None:
        """Every coordinator on the key, to the current number of systems."""
        for entry_paced in self.paced.values():
            for paced in entry_paced:
                paced.coordinator.update_interval = self.update_interval(
                    paced.calls, paced.part, paced.floor
                )

    @property
    def total_systems(self) -> int:
        """Systems followed on this key, over all its entries (at least 1)."""
        return max(1, sum(self.systems.values()))

    def poller_share(self) -> float:
        """The ``quota_share`` one system's poller plans its pacing for."""
        return POLLER_SHARE / self.total_systems

    def update_interval(self, calls: int, part: float, floor: timedelta) -> timedelta:
        """A coordinator's interval: ``calls`` requests per system per update, spending
        ``part`` of the coordinators' share of the month, never faster than ``floor``."""
        quota = self.governor.limits.monthly_quota
        if quota is None:
            return floor
        budget = quota * COORDINATOR_SHARE * part
        seconds = MONTH_S * calls * self.total_systems / budget
        return max(floor, timedelta(seconds=seconds))


class QuotaRegistry:
    """The governors of this Home Assistant, by API key, and their saved counts."""

    def __init__(self, hass: HomeAssistant) -> None:
        self._hass = hass
        self._store: Store[dict[str, Any]] = Store(hass, 1, f"{DOMAIN}.quota")
        self._saved: dict[str, Any] | None = None
        self.keys: dict[str, KeyQuota] = {}

    async def acquire(self, entry_id: str, api_key: str, plan: str, systems: int) -> KeyQuota:
        """The key's governor (made on first use, seeded with the saved count)."""
        if self._saved is None:
            self._saved = await self._store.async_load() or {}
        limits = RateLimits.for_plan(plan)
        key = f"{QuotaGovernor.key_for(api_key)}-{limits.plan_name}"
        quota = self.keys.get(key)
        if quota is None:
            quota = KeyQuota(
                key,
                QuotaGovernor(
                    limits, quota_share=POLLER_SHARE, key=key, used=self._used_this_month(key)
                ),
            )
            self.keys[key] = quota
        quota.systems[entry_id] = systems
        quota.repace()
        return quota

    def _used_this_month(self, key: str) -> int:
        saved = (self._saved or {}).get(key)
        if not isinstance(saved, dict):
            return 0
        month = datetime.now(UTC).strftime("%Y-%m")
        used = saved.get("used")
        return used if saved.get("month") == month and isinstance(used, int) else 0

    async def release(self, entry_id: str) -> None:
        """The entry is unloaded: save the counts; forget keys nobody uses."""
        for quota in self.keys.values():
            quota.systems.pop(entry_id, None)
            quota.paced.pop(entry_id, None)
            quota.repace()
        await self.async_save()
        for key, quota in list(self.keys.items()):
            if not quota.systems:
                del self.keys[key]

    def schedule_save(self) -> None:
        """Save the counts soon (after a coordinator's update)."""
        self._store.async_delay_save(self._data, _SAVE_DELAY_S)

    async def async_save(self) -> None:
        """Save the counts now."""
        await self._store.async_save(self._data())

    def _data(self) -> dict[str, Any]:
        data = dict(self._saved or {})
        for key, quota in self.keys.items():
            usage: QuotaUsage = quota.governor.usage_now()
            data[key] = {"month": usage.month_start.strftime("%Y-%m"), "used": usage.used}
        self._saved = data
        return data


def registry(hass: HomeAssistant) -> QuotaRegistry:
    """This Home Assistant's :class:`QuotaRegistry`."""
    found = hass.data.get(_DATA_KEY)
    if found is None:
        found = hass.data[_DATA_KEY] = QuotaRegistry(hass)
    assert isinstance(found, QuotaRegistry)
    return found
