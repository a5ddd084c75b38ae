"""The one route table: every API path the SDK calls, keyed by the spec's operationId.

Paths follow the official Swagger spec (fact sheet, "Decisions"): the four configuration
operations live under ``/api/v4/systems/config/{system_id}/``; some third-party summaries
write them without ``config/``.  Should the service ever move them, this table is the one
place to change.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["API_PREFIX", "DEFAULT_BASE_URL", "ROUTES", "Route"]

#: The API host of the real service (the simulator's ``base_url`` replaces it in tests).
DEFAULT_BASE_URL = "https://api.enphaseenergy.com"
API_PREFIX = "/api/v4"


@attrs.frozen
class Route:
    """An operation: its HTTP method, path template and whether it writes.

    ``plan`` notes the lowest API plan that may call it, where the SDK knows.
    """

    operation_id: str
    method: str
    template: str
    plan: str | None = None

    @property
    def writes(self) -> bool:
        """Whether the operation changes the system (PUT)."""
        return self.method != "GET"

    def path(self, **params: Any) -> str:
        """The path with its ``{placeholders}`` filled in (values already validated)."""
        return API_PREFIX + self.template.format(**params)


_TABLE = (
    Route("list_systems", "GET", "/systems"),
    Route("get_system_devices", "GET", "/systems/{system_id}/devices"),
    Route("get_system_battery_settings", "GET", "/systems/config/{system_id}/battery_settings"),
    Route("update_system_battery_settings", "PUT", "/systems/config/{system_id}/battery_settings"),
    Route("get_system_storm_guard", "GET", "/systems/config/{system_id}/storm_guard"),
    Route("update_system_storm_guard", "PUT", "/systems/config/{system_id}/storm_guard"),
    Route("get_system_grid_status", "GET", "/systems/config/{system_id}/grid_status"),
    Route("get_system_load_control", "GET", "/systems/config/{system_id}/load_control"),
    Route("update_system_load_control", "PUT", "/systems/config/{system_id}/load_control"),
    Route("get_battery_lifetime", "GET", "/systems/{system_id}/battery_lifetime"),
    Route("get_battery_telemetry", "GET", "/systems/{system_id}/telemetry/battery"),
    Route(
        "get_encharge_telemetry",
        "GET",
        "/systems/{system_id}/devices/encharges/{serial_no}/telemetry",
    ),
    # "Now" and counters (fact sheet §7, second-hand).  live_data is a text/event-stream,
    # billed per connection.
    Route("get_latest_telemetry", "GET", "/systems/{system_id}/latest_telemetry", "watt"),
    Route(
        "get_storage_meter_readings", "GET", "/systems/{system_id}/storage_meter_readings", "watt"
    ),
    Route("get_system_summary", "GET", "/systems/{system_id}/summary", "watt"),
    Route("stream_live_data", "GET", "/systems/{system_id}/live_data", "kilowatt"),
    # The Commissioning API (fact sheet §8), Partner plan only.  The spec's operationIds
    # are generated (getApiV4ActivationsByActivationIdBatteryMode...); ours name what the
    # call does, like the rest of the table.  ``{activation_id}`` is the system id: the
    # client fills it through ``commissioning.activation_id``, the one place that says so.
    Route("get_system_tariff", "GET", "/systems/config/{system_id}/tariff", "partner"),
    Route("get_battery_mode", "GET", "/activations/{activation_id}/battery_mode", "partner"),
    Route("update_battery_mode", "PUT", "/activations/{activation_id}/battery_mode", "partner"),
)

#: operationId -> Route.
ROUTES: dict[str, Route] = {route.operation_id: route for route in _TABLE}
