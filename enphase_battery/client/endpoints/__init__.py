"""The endpoint methods of :class:`~enphase_battery.EnphaseClient`, one module per area.

Each area is a mixin :class:`~enphase_battery.EnphaseClient` inherits; a request goes
from the public method (argument checks) through :meth:`EndpointBase._call` to
:class:`~enphase_battery.http.calls.ApiCalls`, the single choke point to the socket:

* :mod:`.discovery` - systems and their devices;
* :mod:`.configuration` - battery settings, Storm Guard, grid status, load control;
* :mod:`.battery_data` - lifetime counters and 15-minute telemetry;
* :mod:`.realtime` - latest telemetry, meter readings, summary and ``live_data``;
* :mod:`.commissioning` - the tariff and ``battery_mode`` (the Commissioning API);
* :mod:`.writes` - every write's body, checks and the state its GET shows once applied;
* :mod:`.confirmation` - confirmed writes (``confirm=True``, ``wait_applied``);
* :mod:`.base` - the hand-off to the transport every method uses.
"""

from __future__ import annotations

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.client.endpoints.battery_data import BatteryDataEndpoints
from enphase_battery.client.endpoints.commissioning import CommissioningEndpoints
from enphase_battery.client.endpoints.configuration import ConfigurationEndpoints
from enphase_battery.client.endpoints.confirmation import ConfirmationEndpoints
from enphase_battery.client.endpoints.discovery import DiscoveryEndpoints
from enphase_battery.client.endpoints.realtime import RealtimeEndpoints

__all__ = [
    "BatteryDataEndpoints",
    "CommissioningEndpoints",
    "ConfigurationEndpoints",
    "ConfirmationEndpoints",
    "DiscoveryEndpoints",
    "EndpointBase",
    "RealtimeEndpoints",
]
