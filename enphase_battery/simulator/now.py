"""The "now" endpoints: ``latest_telemetry``, ``storage_meter_readings`` and ``summary``.

All three read the battery physics (:mod:`.battery`):

* power "now" is the average power of the newest interval a device has reported
  (W = Wh x 4); an Encharge's ``operational_mode`` is its state (``Idle``, ``Charging``,
  ``Discharging``, fact sheet §8) and its ``power`` is signed as
  :data:`LATEST_POWER_CHARGE_POSITIVE` says (the spec leaves it undocumented); values
  are ``null`` once the last report is over 7 days old;
* the lifetime counters are a per-device starting offset (energy from before the
  simulated history) plus the sum of **every** computed interval up to ``read_at``,
  whether telemetry shows it yet or not: exactly what a hole check compares against;
* ``read_at`` is the end of the newest interval the gateway has uploaded by now.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from enphase_battery.simulator.arrival import ArrivalModel
from enphase_battery.simulator.battery import INTERVAL_S, BatterySystem, Encharge
from enphase_battery.simulator.context import path_system_id, simulator
from enphase_battery.simulator.errors import ApiProblem
from enphase_battery.simulator.telemetry import last_visible_end_at

if TYPE_CHECKING:
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = [
    "IDLE_BELOW_W",
    "LATEST_POWER_CHARGE_POSITIVE",
    "STALE_AFTER_S",
    "counter_offsets",
    "device_discharge_w",
    "encharge_state",
    "latest_telemetry",
    "meter_reading",
    "register",
    "summary",
]

#: latest_telemetry nulls values whose last report is older than this (fact sheet §7).
STALE_AFTER_S = 7 * 86_400
#: The sign of an Encharge's ``power`` in ``latest_telemetry``.  The spec does not say
#: and its examples contradict each other (fact sheet §8: ``-15`` with ``Idle``; ``+20``
#: with ``Charging``, ``-10`` with ``Discharging``): the simulator follows the VPP
#: example, positive while charging, the opposite of ``live_data``'s ``battery_power``,
#: so a client that reads the direction from the sign instead of ``operational_mode`` is
#: caught.  The one place to flip.
LATEST_POWER_CHARGE_POSITIVE = True
#: An Encharge moving less than this many W reports ``Idle`` with that standby power
#: (like the Monitoring example's ``-15`` W).
IDLE_BELOW_W = 25
_W_PER_WH_INTERVAL = 3600 // INTERVAL_S
_LOOKBACK_INTERVALS = 30 * 96


def _system(request: web.Request) -> BatterySystem:
    return simulator(request).find_system(path_system_id(request))


def device_discharge_w(device: Encharge, i: int) -> int:
    """Average power of interval ``i`` in W leaving the battery (negative charging)."""
    return (device.discharge_wh[i] - device.charge_wh[i]) * _W_PER_WH_INTERVAL


def encharge_state(discharge_w: int) -> tuple[int, str]:
    """``latest_telemetry``'s ``(power, operational_mode)`` for W leaving a battery."""
    if abs(discharge_w) < IDLE_BELOW_W:
        state = "Idle"
    else:
        state = "Discharging" if discharge_w > 0 else "Charging"
    return (-discharge_w if LATEST_POWER_CHARGE_POSITIVE else discharge_w), state


def counter_offsets(seed: int, serial: str) -> tuple[int, int]:
    """The device's lifetime counters (charged, discharged Wh) when history starts."""
    rng = random.Random(f"meter:{seed}:{serial}")
    charged = rng.randrange(200_000, 4_000_000)
    return charged, int(charged * rng.uniform(0.8, 0.9))


def _uploaded_until(device: Encharge, arrival: ArrivalModel, now: float) -> int:
    """end_at of the newest interval the device's gateway has uploaded by ``now``
    (on-time uploads: the meter counts a late interval all the same)."""
    base = arrival.latency_s + arrival.jitter_s(device.serial)
    end_at = min(int(now - base) // INTERVAL_S * INTERVAL_S, device.last_end_at)
    for _ in range(_LOOKBACK_INTERVALS):
        if end_at + base + arrival.lag_s(device.serial, end_at) <= now:
            break
        end_at -= INTERVAL_S
    return end_at


def meter_reading(
    sim: EnphaseSimulator, device: Encharge, end_at: int, now: float
) -> dict[str, Any]:
    """The device's counters at the newest uploaded interval end <= ``end_at``."""
    read_at = min(end_at - end_at % INTERVAL_S, _uploaded_until(device, sim.arrival, now))
    last = device.index(read_at)
    charged, discharged = counter_offsets(sim.seed, device.serial)
    if last >= 0:
        charged += sum(device.charge_wh[: last + 1])
        discharged += sum(device.discharge_wh[: last + 1])
    read_at = max(read_at, device.first_end_at - INTERVAL_S)
    return {
        "serial_num": device.serial,
        "value_charged": charged,
        "value_discharged": discharged,
        "read_at": read_at,
    }


def latest_telemetry(sim: EnphaseSimulator, system: BatterySystem, now: float) -> dict[str, Any]:
    """``GET /systems/{id}/latest_telemetry``."""
    encharges = []
    for channel, device in enumerate(system.encharges, start=1):
        last = last_visible_end_at([device], sim.arrival, now, device.last_end_at)
        fresh = last is not None and now - last[0] <= STALE_AFTER_S
        entry: dict[str, Any] = {
            "id": device.device_id,
            "name": "Encharge Battery",
            "channel": channel,
            "last_report_at": last[0] if fresh and last else None,
            "power": None,
            "operational_mode": None,
        }
        if fresh and last:
            discharge_w = device_discharge_w(device, device.index(last[0]))
            entry["power"], entry["operational_mode"] = encharge_state(discharge_w)
        encharges.append(entry)
    newest = last_visible_end_at(system.encharges, sim.arrival, now, system.last_end_at)
    meters_fresh = newest is not None and now - newest[0] <= STALE_AFTER_S
    meters = [
        {
            "id": system.system_id * 100 + 90 + n,
            "name": f"{kind} Meter",
            "channel": n,
            "last_report_at": newest[0] if meters_fresh and newest else None,
            "power": round(watts) if meters_fresh else None,
        }
        for n, (kind, watts) in enumerate(
            (("Production", system.last_solar_w), ("Consumption", system.last_load_w)), start=1
        )
    ]
    return {
        "system_id": system.system_id,
        "devices": {"encharges": encharges, "meters": meters},
    }


def summary(
    sim: EnphaseSimulator, system: BatterySystem, summary_date: date, now: float
) -> dict[str, Any]:
    """``GET /systems/{id}/summary`` (battery ratings and report times)."""
    last = last_visible_end_at(system.encharges, sim.arrival, now, system.last_end_at)
    return {
        "system_id": system.system_id,
        "summary_date": summary_date.isoformat(),
        "status": "normal",
        "size_w": system.template.pv_peak_w,
        "battery_charge_w": sum(d.model.max_power_w for d in system.encharges),
        "battery_discharge_w": sum(d.model.max_power_w for d in system.encharges),
        "battery_capacity_wh": sum(d.capacity_wh for d in system.encharges),
        "last_interval_end_at": last[0] if last else None,
        "last_report_at": last[0] if last else system.operational_at,
        "operational_at": system.operational_at,
        "energy_lifetime": -1,
        "energy_today": -1,
    }


async def _latest_telemetry(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = _system(request)
    return web.json_response(latest_telemetry(sim, system, sim.clock.timestamp()))


async def _storage_meter_readings(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = _system(request)
    now = sim.clock.timestamp()
    raw = request.query.get("end_at")
    if raw is None:
        end_at = int(now)
    else:
        try:
            end_at = int(raw)
        except ValueError:
            raise ApiProblem(422, "end_at must be a Unix epoch in seconds") from None
        if end_at > now:
            raise ApiProblem(422, "Requested date is in the future")
    return web.json_response(
        {
            "system_id": system.system_id,
            "meter_readings": [meter_reading(sim, d, end_at, now) for d in system.encharges],
        }
    )


async def _summary(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = _system(request)
    now = sim.clock.timestamp()
    today = datetime.fromtimestamp(now, UTC).astimezone(system.tz).date()
    raw = request.query.get("summary_date")
    day = today
    if raw is not None:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ApiProblem(422, "Invalid summary_date: expected YYYY-MM-DD") from None
        if day > today:
            raise ApiProblem(422, "Requested date is in the future")
    return web.json_response(summary(sim, system, day, now))


def register(router: web.UrlDispatcher, api: str) -> None:
    """Add the three routes under ``api`` (``/api/v4``)."""
    base = api + "/systems/{system_id}"
    router.add_get(base + "/latest_telemetry", _latest_telemetry)
    router.add_get(base + "/storage_meter_readings", _storage_meter_readings)
    router.add_get(base + "/summary", _summary)
