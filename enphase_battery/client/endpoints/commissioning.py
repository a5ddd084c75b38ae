"""The Commissioning API's battery operations (Partner plan): the tariff and ``battery_mode``.

``battery_mode`` is addressed by an *activation id*, which the official file describes as
"the Enlighten ID of the activation (system)": the system id.  :func:`activation_id` is
the one place that maps one to the other.  The models load with the first call (a client
that never calls these does not pay for them at start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.client.endpoints.confirmation import (
    DEFAULT_INTERVAL_S,
    DEFAULT_TIMEOUT_S,
    WaitBounds,
    send_write,
)
from enphase_battery.client.endpoints.writes import battery_mode_write
from enphase_battery.models import validation
from enphase_battery.models.confirmation import WriteConfirmation

if TYPE_CHECKING:
    from enphase_battery.models.commissioning import (
        BatteryModeSettings,
        BatteryModeUpdate,
        SystemTariff,
    )

__all__ = ["CommissioningEndpoints", "activation_id"]


def activation_id(system_id: int) -> str:
    """The ``{activation_id}`` of a system's Commissioning paths: its system id.

    The official file: "The Enlighten ID of the activation (system). System-generated."
    Should Enphase ever number activations apart from systems, this is what changes.
    """
    return str(validation.system_id(system_id))


class CommissioningEndpoints(EndpointBase):
    """Tariff and charge-from-grid / discharge-to-grid (Commissioning API, Partner plan)."""

    async def get_system_tariff(self, system_id: int) -> SystemTariff:
        """The time-of-use tariff (read-only; Partner plan).

        Seasons, each with day groups whose periods start at a time of day, whether the
        battery may charge from / discharge to the grid, and a forced-charge window.  The
        API has no PUT for it.

        Raises:
            PermissionDeniedError: a plan below Partner, or no grant (403).
        """
        from enphase_battery.models.commissioning import SystemTariff

        return await self._call("get_system_tariff", SystemTariff, system_id)

    async def get_battery_mode(self, system_id: int) -> BatteryModeSettings:
        """Whether the battery may charge from the grid (``cfg_allowed``) and discharge to
        it (``dtg_allowed``): ``GET /api/v4/activations/{activation_id}/battery_mode``.

        ``activation_id`` is the system id (the official file: "the Enlighten ID of the
        activation (system)"); pass the system id.  Partner plan.

        Raises:
            NoBatteryError: a PV-only site (422).
            PermissionDeniedError: a plan below Partner, or no grant (403).
        """
        from enphase_battery.models.commissioning import BatteryModeSettings

        return await self._call(
            "get_battery_mode",
            BatteryModeSettings,
            system_id,
            activation_id=activation_id(system_id),
        )

    @overload
    async def update_battery_mode(
        self,
        system_id: int,
        *,
        cfg_allowed: bool,
        dtg_allowed: bool,
        confirm: Literal[False] = ...,
    ) -> BatteryModeUpdate: ...

    @overload
    async def update_battery_mode(
        self,
        system_id: int,
        *,
        cfg_allowed: bool,
        dtg_allowed: bool,
        confirm: Literal[True],
        timeout_s: float = ...,
        interval_s: float = ...,
        settle_s: float = ...,
    ) -> WriteConfirmation[BatteryModeSettings]: ...

    async def update_battery_mode(
        self,
        system_id: int,
        *,
        cfg_allowed: bool,
        dtg_allowed: bool,
        confirm: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        settle_s: float = 0.0,
    ) -> BatteryModeUpdate | WriteConfirmation[BatteryModeSettings]:
        """Allow or forbid charging from the grid and discharging to it (Partner plan):
        ``PUT /api/v4/activations/{activation_id}/battery_mode``.

        ``activation_id`` is the system id; pass the system id.  Both flags are required
        (the API sets both at once), so a lost answer may be sent again within
        ``write_retries``.  The API answers ``"Battery mode updated successfully"``
        before the gateway has applied it: with ``confirm=True`` the method then reads
        :meth:`get_battery_mode` until it shows both flags (see :meth:`wait_applied` for
        ``timeout_s``, ``interval_s`` and ``settle_s``) and returns a
        :class:`~enphase_battery.models.confirmation.WriteConfirmation`.

        Raises:
            InvalidRequestError: a flag that is not a bool, bad wait bounds (nothing sent).
            NoBatteryError: a PV-only site (422).
            PermissionDeniedError: a plan below Partner, or no grant (403).
        """
        from enphase_battery.models.commissioning import BatteryModeUpdate

        write = battery_mode_write(cfg_allowed=cfg_allowed, dtg_allowed=dtg_allowed)
        bounds = WaitBounds.checked(timeout_s, interval_s, settle_s) if confirm else None
        return await send_write(
            self,
            write,
            BatteryModeUpdate,
            system_id,
            bounds,
            lambda: self.get_battery_mode(system_id),
            activation_id=activation_id(system_id),
        )
