"""Configuration routes (``/systems/config/{id}/...``): battery settings, Storm Guard,
grid status and load control, reads and writes.

A GET shows the gateway's state; a PUT answers with the state asked for and hands the
change to :mod:`.gateway`, which applies it at once unless told to delay, refuse or
revert it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from aiohttp import web

from enphase_battery.simulator.battery import (
    BATTERY_MODES,
    LOAD_CONTROL_MODES,
    BatterySettings,
    BatterySystem,
    LoadCircuit,
)
from enphase_battery.simulator.context import path_system_id, simulator
from enphase_battery.simulator.discovery import last_report_at
from enphase_battery.simulator.errors import ApiProblem

__all__ = [
    "get_battery_settings",
    "get_load_control",
    "get_storm_guard",
    "grid_status",
    "put_battery_settings",
    "put_load_control",
    "put_storm_guard",
]


def _config_system(request: web.Request) -> BatterySystem:
    system = simulator(request).find_system(path_system_id(request))
    if not system.encharges:
        raise ApiProblem(422, "System doesn't have encharges")
    return system


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise ApiProblem(400, "Request body must be valid JSON") from None
    if not isinstance(body, dict):
        raise ApiProblem(400, "Request body must be a JSON object")
    return body


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiProblem(422, f"{name} must be an integer between {low} and {high}")
    return value


def _settings_json(
    system: BatterySystem, settings: BatterySettings | None = None
) -> dict[str, Any]:
    settings = settings or system.settings
    return {
        "system_id": system.system_id,
        "battery_mode": settings.battery_mode,
        "reserve_soc": settings.reserve_soc,
        "energy_independence": settings.energy_independence,
        "charge_from_grid": settings.charge_from_grid,
        "battery_shutdown_level": settings.battery_shutdown_level,
    }


async def get_battery_settings(request: web.Request) -> web.StreamResponse:
    return web.json_response(_settings_json(_config_system(request)))


async def put_battery_settings(request: web.Request) -> web.StreamResponse:
    system = _config_system(request)
    body = await _json_object(request)
    changes: dict[str, Any] = {}
    if "battery_mode" in body:
        if body["battery_mode"] not in BATTERY_MODES:
            raise ApiProblem(
                422, "Invalid battery_mode. Allowed values are " + ", ".join(BATTERY_MODES)
            )
        changes["battery_mode"] = body["battery_mode"]
    if "reserve_soc" in body:
        changes["reserve_soc"] = _int_field(body, "reserve_soc", 0, 100)
    if "energy_independence" in body:
        if body["energy_independence"] not in ("enabled", "disabled"):
            raise ApiProblem(422, "energy_independence must be enabled or disabled")
        changes["energy_independence"] = body["energy_independence"]

    # The gateway steps the physics to the moment it applies the change (at once by
    # default): the change applies from then on.
    def apply() -> Callable[[], None]:
        before = {name: getattr(system.settings, name) for name in changes}
        system.settings = attrs.evolve(system.settings, **changes)
        return lambda: setattr(system, "settings", attrs.evolve(system.settings, **before))

    asked = attrs.evolve(system.settings, **changes)
    simulator(request).writes.submit(system.system_id, "battery_settings", apply)
    return web.json_response(_settings_json(system, asked))


def _storm_guard_json(system: BatterySystem, status: str | None = None) -> dict[str, Any]:
    return {
        "system_id": system.system_id,
        "storm_guard_status": status or ("enabled" if system.storm_guard_enabled else "disabled"),
        "storm_alert": "true" if system.storm_alert else "false",
    }


async def get_storm_guard(request: web.Request) -> web.StreamResponse:
    return web.json_response(_storm_guard_json(_config_system(request)))


async def put_storm_guard(request: web.Request) -> web.StreamResponse:
    system = _config_system(request)
    body = await _json_object(request)
    status = body.get("storm_guard_status")
    if status not in ("enabled", "disabled"):
        raise ApiProblem(422, "storm_guard_status is mandatory and must be enabled or disabled")
    enabled = status == "enabled"

    def apply() -> Callable[[], None]:
        before = system.storm_guard_enabled
        system.storm_guard_enabled = enabled
        return lambda: setattr(system, "storm_guard_enabled", before)

    simulator(request).writes.submit(system.system_id, "storm_guard", apply)
    # The real PUT answers with a display string (fact sheet §4), unlike its GET.
    if enabled:
        shown = "Enabled (Active)" if system.storm_alert else "Enabled (Inactive)"
    else:
        shown = "Disabled"
    return web.json_response(_storm_guard_json(system, shown))


async def grid_status(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = _config_system(request)
    return web.json_response(
        {
            "system_id": system.system_id,
            "grid_state": "Off Grid" if system.off_grid else "On Grid",
            "last_report_date": last_report_at(sim, system),
        }
    )


def _load_control_json(
    system: BatterySystem, replaced: LoadCircuit | None = None
) -> dict[str, Any]:
    circuits = dict(system.load_control)
    if replaced is not None:
        circuits[replaced.name] = replaced
    return {
        "system_id": system.system_id,
        "load_control_data": [
            {
                "name": c.name,
                "load_name": c.load_name,
                "owner_can_override": c.owner_can_override,
                "mode": c.mode,
                "soc_low": c.soc_low,
                "soc_high": c.soc_high,
                "status": c.status,
                "essential_start_time": c.essential_start_time,
                "essential_end_time": c.essential_end_time,
            }
            for c in circuits.values()
        ],
    }


async def get_load_control(request: web.Request) -> web.StreamResponse:
    return web.json_response(_load_control_json(_config_system(request)))


async def put_load_control(request: web.Request) -> web.StreamResponse:
    system = _config_system(request)
    body = await _json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiProblem(422, "name is mandatory")
    circuit = system.load_control.get(name)
    if circuit is None:
        raise ApiProblem(422, f"Invalid load control name {name}")
    changes: dict[str, Any] = {}
    mode = body.get("mode", circuit.mode)
    if mode not in LOAD_CONTROL_MODES:
        raise ApiProblem(422, "Invalid mode. Allowed values are " + ", ".join(LOAD_CONTROL_MODES))
    changes["mode"] = mode
    if mode == "Advanced_BatteryPowered" and "soc_low" not in body:
        raise ApiProblem(422, "soc_low is mandatory for Advanced_BatteryPowered mode")
    if "soc_low" in body:
        soc_low = _int_field(body, "soc_low", 10, 90)
        changes["soc_low"] = soc_low
        changes["soc_high"] = min(100, soc_low + 20)
    for field in ("essential_start_time", "essential_end_time"):
        if field in body:
            changes[field] = _int_field(body, field, 0, 86_400)
    if "load_name" in body:
        load_name = body["load_name"]
        if not isinstance(load_name, str):
            raise ApiProblem(422, "load_name must be a string")
        changes["load_name"] = load_name
    asked = attrs.evolve(circuit, **changes)

    def apply() -> Callable[[], None]:
        current = system.load_control[name]
        before = {field: getattr(current, field) for field in changes}
        system.load_control[name] = attrs.evolve(current, **changes)
        return lambda: system.load_control.__setitem__(
            name, attrs.evolve(system.load_control[name], **before)
        )

    simulator(request).writes.submit(system.system_id, "load_control", apply)
    return web.json_response(_load_control_json(system, asked))
