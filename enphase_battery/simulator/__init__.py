"""An embedded, faithful stand-in of the Enphase v4 battery API, served over loopback HTTP.

``async with EnphaseSimulator(seed=1) as sim:`` gives a real ``aiohttp.web`` server at
``sim.base_url`` with OAuth2, plan rate limits, battery physics, reporting latency and
fault injection.  Used by the demo, the test suite and the benchmarks.

Where each concern lives:

* :mod:`.clock` - :class:`SimClock`, simulated time (``advance()``, ``speed``);
* :mod:`.catalog` / :mod:`.profiles` / :mod:`.fleet` - hardware, sites, solar and load
  shapes, and the seed-determined systems, ids and serials;
* :mod:`.battery` - the physics (efficiency 0.95 each way, reserve, modes, Storm
  Guard, outages) and compact per-device history;
* :mod:`.arrival` - when each interval becomes visible (latency, jitter, lag, late);
* :mod:`.telemetry` - windows, 422s and the telemetry / lifetime bodies;
* :mod:`.now` / :mod:`.live` - latest telemetry, meter counters, summary, and the
  ``live_data`` event stream;
* :mod:`.oauth` / :mod:`.ratelimit` / :mod:`.faults` / :mod:`.errors` - tokens, plan
  limits, fault injection and the API's error envelopes;
* :mod:`.app` - the route table; :mod:`.pipeline` - the checks every request passes;
  :mod:`.context` - what handlers share; the handlers: :mod:`.oauth_routes`,
  :mod:`.discovery`, :mod:`.telemetry_routes`, :mod:`.config_routes`,
  :mod:`.commissioning_routes` (tariff, ``battery_mode``), :mod:`.admin`;
* :mod:`.gateway` - when an accepted write reaches the gateway (delay, refuse, revert);
* :mod:`.server` - :class:`EnphaseSimulator`;
* :mod:`.runner` / :mod:`.cli` - ``enphase-battery simulate`` and
  ``python -m enphase_battery.simulator``.

Admin routes (no auth; loopback only unless ``--host`` says otherwise):
``POST /__admin/faults`` (see :meth:`Faults.configure`), ``POST /__admin/clock``
(``{"advance_seconds": 900, "speed": 60}``), ``POST /__admin/system``
(``{"system_id": 1, "off_grid": true, "storm_alert": true, "add_encharge": 5000}``),
``POST /__admin/live`` (live_data faults and timing, see :meth:`LiveStreams.configure`),
``POST /__admin/writes`` (``{"delay_s": 2, "next": ["refuse", "revert"]}``, see
:meth:`GatewayWrites.configure <.gateway.GatewayWrites.configure>`) and
``GET /__admin/state`` (with the live connections and their cost under ``"live"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enphase_battery.util import lazy as _lazy

if TYPE_CHECKING:
    from enphase_battery.simulator.app import create_app, make_app
    from enphase_battery.simulator.battery import (
        BATTERY_MODES,
        CHARGE_EFFICIENCY,
        DISCHARGE_EFFICIENCY,
        BatteryInterval,
        BatterySettings,
        EnchargeInterval,
    )
    from enphase_battery.simulator.catalog import (
        ENCHARGE_3,
        ENCHARGE_10,
        IQ_BATTERY_5P,
        BatteryModel,
    )
    from enphase_battery.simulator.clock import DEFAULT_START, SimClock
    from enphase_battery.simulator.context import SIMULATOR_KEY
    from enphase_battery.simulator.faults import FaultKind, Faults
    from enphase_battery.simulator.runner import serve
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = [
    "BATTERY_MODES",
    "CHARGE_EFFICIENCY",
    "DEFAULT_START",
    "DISCHARGE_EFFICIENCY",
    "ENCHARGE_3",
    "ENCHARGE_10",
    "IQ_BATTERY_5P",
    "SIMULATOR_KEY",
    "BatteryInterval",
    "BatteryModel",
    "BatterySettings",
    "EnchargeInterval",
    "EnphaseSimulator",
    "FaultKind",
    "Faults",
    "SimClock",
    "create_app",
    "make_app",
    "serve",
]

#: Public name -> the module that defines it: importing the package (as ``--help`` of the
#: CLI does, for the ``simulate`` options) loads none of the simulator until a name is used.
_SUBMODULE: dict[str, str] = {
    "SIMULATOR_KEY": ".app",
    "create_app": ".app",
    "make_app": ".app",
    "BATTERY_MODES": ".battery",
    "CHARGE_EFFICIENCY": ".battery",
    "DISCHARGE_EFFICIENCY": ".battery",
    "BatteryInterval": ".battery",
    "BatterySettings": ".battery",
    "EnchargeInterval": ".battery",
    "ENCHARGE_3": ".catalog",
    "ENCHARGE_10": ".catalog",
    "IQ_BATTERY_5P": ".catalog",
    "BatteryModel": ".catalog",
    "DEFAULT_START": ".clock",
    "SimClock": ".clock",
    "FaultKind": ".faults",
    "Faults": ".faults",
    "serve": ".runner",
    "EnphaseSimulator": ".server",
}


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, globals(), _SUBMODULE, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULE})
