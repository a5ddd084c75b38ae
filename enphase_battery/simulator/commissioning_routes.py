"""The Commissioning API's battery routes (Partner plan), as the official examples show them.

* ``GET /api/v4/systems/config/{system_id}/tariff``: ``{"tariff": {storage_settings,
  currency, single_rate, seasons[...], seasons_sell[...]}, "task": {status,
  created_at}}``; the weekday periods put the peak at the evening window Savings Mode
  discharges in, and the day groups' grid flags follow the system's ``battery_mode``;
* ``GET/PUT /api/v4/activations/{activation_id}/battery_mode``: ``{"CFG_allowed",
  "DTG_allowed"}``; the activation id is the system id.  A PUT needs both booleans and
  answers ``{"message": "Battery mode updated successfully"}``; the gateway applies it
  through :mod:`.gateway` (at once unless delayed, refused or reverted).

This API's errors have their own shapes: ``{"reason": "404", "message": [...]}`` and, for
a 422, ``{"errorMessages": [...]}`` (a PV-only site).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from aiohttp import web

from enphase_battery.simulator.battery import PEAK_END_H, PEAK_START_H, BatterySystem
from enphase_battery.simulator.context import simulator
from enphase_battery.simulator.errors import ApiProblem

__all__ = ["get_battery_mode", "get_tariff", "put_battery_mode"]

#: Currency by country of the site template (anything else: USD).
_CURRENCIES = {"AU": "AUD", "NZ": "NZD", "NL": "EUR", "DE": "EUR", "FR": "EUR", "GB": "GBP"}
#: storage_settings.mode words by battery profile [inferred from the example's "backup"].
_STORAGE_MODES = {
    "Self-consumption": "self-consumption",
    "Savings Mode": "savings",
    "Full Backup": "backup",
}
_ALL_WEEK = "Sun,Mon,Tue,Wed,Thu,Fri,Sat"


class CommissioningProblem(ApiProblem):
    """An error in the Commissioning API's own body shapes."""

    def __init__(self, status: int, messages: list[str]) -> None:
        super().__init__(status, "; ".join(messages))
        self.messages = messages

    def response(self) -> web.Response:
        if self.status == 422:
            body: dict[str, Any] = {"errorMessages": self.messages}
        else:
            body = {"reason": str(self.status), "message": self.messages}
        return web.json_response(body, status=self.status)


def _system(request: web.Request, id_name: str) -> BatterySystem:
    raw = request.match_info[id_name]
    try:
        system_id = int(raw)
        return simulator(request).system(system_id)
    except (ValueError, KeyError):
        raise CommissioningProblem(404, ["System not found"]) from None


def _battery_system(request: web.Request, doing: str) -> BatterySystem:
    system = _system(request, "activation_id")
    if not system.encharges:
        raise CommissioningProblem(
            422,
            [
                "This is a PV only site. Battery mode can only be"
                f" {doing} for sites with Enphase battery systems"
            ],
        )
    return system


def _period(number: int, start_h: float, rate: str) -> dict[str, Any]:
    return {"id": f"period_{number}", "start": round(start_h * 60), "rate": rate, "error": {}}


def _day_groups(system: BatterySystem) -> list[dict[str, Any]]:
    flags = {
        "enable_charge_from_grid": system.cfg_allowed,
        "enable_discharge_to_grid": system.dtg_allowed,
    }
    return [
        {
            "id": "weekdays",
            "days": "Mon,Tue,Wed,Thu,Fri",
            "must_charge_start": 0,
            "must_charge_duration": 0,
            "periods": [
                _period(1, 0, "0.18"),
                _period(2, PEAK_START_H, "0.42"),
                _period(3, PEAK_END_H, "0.18"),
            ],
            **flags,
        },
        {
            "id": "weekend",
            "days": "Sun,Sat",
            "must_charge_start": 0,
            "must_charge_duration": 0,
            "periods": [_period(1, 0, "0.18")],
            **flags,
        },
    ]


def tariff_json(system: BatterySystem) -> dict[str, Any]:
    """The system's tariff answer, shaped as the official example."""
    template = system.template
    return {
        "tariff": {
            "storage_settings": {
                "mode": _STORAGE_MODES.get(system.settings.battery_mode, "self-consumption"),
                "reserved_soc": system.settings.reserve_soc,
            },
            "currency": {"code": _CURRENCIES.get(template.country, "USD")},
            "single_rate": {"rate": "0.25", "sell": "0.05"},
            "seasons": [{"id": "all_year_long", "start": "1/1", "days": _day_groups(system)}],
            "seasons_sell": [
                {
                    "id": "all_year_long",
                    "start": "1/1",
                    "days": [
                        {
                            "id": "all_days",
                            "days": _ALL_WEEK,
                            "must_charge_start": 0,
                            "must_charge_duration": 0,
                            "periods": [_period(1, 0, "0.05")],
                        }
                    ],
                }
            ],
        },
        "task": {
            "status": "completed",
            "created_at": datetime.fromtimestamp(system.operational_at, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        },
    }


async def get_tariff(request: web.Request) -> web.StreamResponse:
    return web.json_response(tariff_json(_system(request, "system_id")))


def _battery_mode_json(system: BatterySystem) -> dict[str, Any]:
    return {"CFG_allowed": system.cfg_allowed, "DTG_allowed": system.dtg_allowed}


async def get_battery_mode(request: web.Request) -> web.StreamResponse:
    return web.json_response(_battery_mode_json(_battery_system(request, "fetched")))


async def put_battery_mode(request: web.Request) -> web.StreamResponse:
    system = _battery_system(request, "updated")
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise CommissioningProblem(400, ["Request body must be valid JSON"]) from None
    if not isinstance(body, dict):
        raise CommissioningProblem(400, ["Request body must be a JSON object"])
    missing = [name for name in ("CFG_allowed", "DTG_allowed") if name not in body]
    if missing:
        raise CommissioningProblem(422, [f"{name} is required" for name in missing])
    cfg, dtg = body["CFG_allowed"], body["DTG_allowed"]
    if not isinstance(cfg, bool) or not isinstance(dtg, bool):
        raise CommissioningProblem(422, ["CFG_allowed and DTG_allowed must be true or false"])

    def apply() -> Callable[[], None]:
        before = (system.settings.charge_from_grid, system.dtg_allowed)
        system.settings = attrs.evolve(
            system.settings, charge_from_grid="enabled" if cfg else "disabled"
        )
        system.dtg_allowed = dtg

        def undo() -> None:
            system.settings = attrs.evolve(system.settings, charge_from_grid=before[0])
            system.dtg_allowed = before[1]

        return undo

    simulator(request).writes.submit(system.system_id, "battery_mode", apply)
    return web.json_response({"message": "Battery mode updated successfully"})
