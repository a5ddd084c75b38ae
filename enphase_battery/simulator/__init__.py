"""An embedded, faithful stand-in of the Enphase v4 battery API, served over loopback HTTP.

``async with EnphaseSimulator(seed=1) as sim:`` gives a real ``aiohttp.web`` server at
``sim.base_url`` with OAuth2, plan rate limits, battery physics, reporting latency and
fault injection.  Used by the demo, the test suite and the benchmarks.
"""

from __future__ import annotations

from .app import SIMULATOR_KEY, create_app, make_app
from .battery import (
    BATTERY_MODES,
    CHARGE_EFFICIENCY,
    DISCHARGE_EFFICIENCY,
    BatteryInterval,
    BatterySettings,
    EnchargeInterval,
)
from .catalog import ENCHARGE_3, ENCHARGE_10, IQ_BATTERY_5P, BatteryModel
from .clock import DEFAULT_START, SimClock
from .faults import FaultKind, Faults
from .runner import serve
from .server import EnphaseSimulator

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
