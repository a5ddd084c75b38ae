"""Telemetry routes: system and Encharge 15-minute telemetry, daily battery lifetime.

The windows and bodies are :mod:`.telemetry`'s; these handlers find the system or device.
"""

from __future__ import annotations

from aiohttp import web

from enphase_battery.simulator.context import path_system_id, simulator
from enphase_battery.simulator.errors import ApiProblem
from enphase_battery.simulator.telemetry import (
    battery_lifetime,
    battery_telemetry,
    encharge_telemetry,
    last_visible_end_at,
    parse_window,
)

__all__ = ["battery_lifetime_route", "battery_telemetry_route", "encharge_telemetry_route"]


def _json_body(body: bytes) -> web.Response:
    # Telemetry bodies come encoded already (see .interval_json).
    return web.Response(body=body, content_type="application/json")


async def battery_telemetry_route(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = sim.find_system(path_system_id(request))
    now = sim.clock.timestamp()
    last = last_visible_end_at(system.encharges, sim.arrival, now, system.last_end_at)
    window = parse_window(
        request.query,
        tz=system.tz,
        now=int(now),
        first_end_at=system.first_end_at,
        last_visible=last[0] if last else None,
    )
    return _json_body(battery_telemetry(system, sim.arrival, window, now))


async def encharge_telemetry_route(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = sim.find_system(path_system_id(request))
    serial = request.match_info["serial"]
    device = system.encharge(serial)
    if device is None:
        raise ApiProblem(404, f'Encharge not found for {{:serial_no=>"{serial}"}}')
    now = sim.clock.timestamp()
    last = last_visible_end_at([device], sim.arrival, now, device.last_end_at)
    window = parse_window(
        request.query,
        tz=system.tz,
        now=int(now),
        first_end_at=device.first_end_at,
        last_visible=last[0] if last else None,
    )
    return _json_body(encharge_telemetry(system, device, sim.arrival, window, now))


async def battery_lifetime_route(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = sim.find_system(path_system_id(request))
    return web.json_response(
        battery_lifetime(system, sim.arrival, request.query, sim.clock.timestamp())
    )
