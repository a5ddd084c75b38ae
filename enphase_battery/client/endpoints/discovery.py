"""Discovery: the systems a token can see and their devices."""

from __future__ import annotations

import attrs

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.http.routes import ROUTES
from enphase_battery.models import System, SystemDevices

__all__ = ["DiscoveryEndpoints"]

_PAGE_SIZE = 100


@attrs.frozen
class _SystemsPage:
    total: int = 0
    current_page: int | None = None
    systems: tuple[System, ...] = ()


class DiscoveryEndpoints(EndpointBase):
    """``list_systems`` and ``get_system_devices``."""

    async def list_systems(self) -> tuple[System, ...]:
        """Every system the token can see, all pages fetched."""
        route = ROUTES["list_systems"]
        systems: list[System] = []
        page = 1
        while True:
            result = await self._request(
                route,
                route.path(),
                params={"page": page, "size": _PAGE_SIZE},
                parse=_SystemsPage,
            )
            systems.extend(result.systems)
            if not result.systems or len(systems) >= result.total:
                return tuple(systems)
            page += 1

    async def get_system_devices(self, system_id: int) -> SystemDevices:
        """A system's active devices; ``.encharge_serials`` lists its Encharges."""
        return await self._call("get_system_devices", SystemDevices, system_id)
