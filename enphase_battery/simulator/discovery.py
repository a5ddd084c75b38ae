"""Discovery routes: the systems list, one system, and a system's devices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from enphase_battery.simulator.battery import BatterySystem, Encharge
from enphase_battery.simulator.context import path_system_id, simulator
from enphase_battery.simulator.errors import ApiProblem
from enphase_battery.simulator.telemetry import last_visible_end_at

if TYPE_CHECKING:
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = ["devices", "last_report_at", "system", "systems"]


def last_report_at(sim: EnphaseSimulator, system: BatterySystem) -> int:
    now = sim.clock.timestamp()
    last = last_visible_end_at(system.encharges, sim.arrival, now, system.last_end_at)
    return last[0] if last else system.operational_at


def _device_last_report(sim: EnphaseSimulator, device: Encharge, now: float) -> int | None:
    last = last_visible_end_at([device], sim.arrival, now, device.last_end_at)
    return last[0] if last else None


def _system_json(sim: EnphaseSimulator, system: BatterySystem) -> dict[str, Any]:
    template = system.template
    last_report = last_report_at(sim, system)
    return {
        "system_id": system.system_id,
        "name": system.name,
        "public_name": "Residential System",
        "timezone": template.timezone,
        "address": {
            "city": template.city,
            "state": template.state,
            "country": template.country,
            "postal_code": template.postal_code,
        },
        "connection_type": (
            sim.uplinks[system.system_id].connection_type
            if system.system_id in sim.uplinks and sim.uplinks[system.system_id].kind != "wifi"
            else template.connection_type
        ),
        "energy_lifetime": -1,
        "energy_today": -1,
        "system_size": -1,
        "status": "normal",
        "last_report_at": last_report,
        "last_energy_at": last_report,
        "operational_at": system.operational_at,
        "attachment_type": "rack_mount",
        "interconnect_date": None,
        "reference": None,
        "other_references": [],
    }


async def systems(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    query = request.query
    try:
        page = int(query.get("page", "1"))
        size = int(query.get("size", "10"))
    except ValueError:
        raise ApiProblem(422, "page and size must be integers") from None
    if page < 1:
        raise ApiProblem(422, "page must be >= 1")
    if not 1 <= size <= 100:
        raise ApiProblem(422, "size must be between 1 and 100")
    sort_by = query.get("sort_by", "id")
    if sort_by not in ("id", "-id"):
        raise ApiProblem(422, "sort_by must be id or -id")
    ids = sorted(sim.system_ids, reverse=sort_by == "-id")
    chosen = ids[(page - 1) * size : page * size]
    systems = [_system_json(sim, sim.system(system_id)) for system_id in chosen]
    return web.json_response(
        {
            "total": len(ids),
            "current_page": page,
            "size": size,
            "count": len(systems),
            "items": "systems",
            "systems": systems,
        }
    )


async def system(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    return web.json_response(_system_json(sim, sim.find_system(path_system_id(request))))


async def devices(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
    system = sim.find_system(path_system_id(request))
    last_report = last_report_at(sim, system)
    index = sim.fleet.system_index(system.system_id)
    base_serial = f"12{sim.seed % 100:02d}{index:02d}"
    micros = [
        {
            "id": system.system_id * 100 + n,
            "last_report_at": last_report,
            "name": "IQ8M Microinverter",
            "serial_number": f"{base_serial}9{n:05d}",
            "model": "IQ8M",
            "part_number": "800-01358-r02",
            "sku": "IQ8M-72-2-US",
            "status": "normal",
            "active": True,
            "product_name": "IQ8M",
        }
        for n in range(1, max(1, system.template.pv_peak_w // 400) + 1)
    ]
    now = sim.clock.timestamp()
    encharges = [
        {
            "id": device.device_id,
            # Each Encharge's own: a fleet poller asks only those with new data.
            "last_report_at": _device_last_report(sim, device, now),
            "name": "Encharge Battery",
            "serial_number": device.serial,
            "part_number": device.model.part_number,
            "sku": device.model.sku,
            "model": device.model.product_name,
            "status": "normal",
            "active": True,
            "product_name": device.model.product_name,
        }
        for device in system.encharges
    ]
    gateway = {
        "id": system.system_id * 100,
        "last_report_at": last_report,
        "name": "IQ Gateway",
        "serial_number": f"{base_serial}800001",
        "part_number": "800-00654-r08",
        "sku": "SC100G-M230ROW",
        "model": "Envoy",
        "status": "normal",
        "active": True,
        "product_name": "IQ Gateway",
        "emu_sw_version": "D8.2.4286",
    }
    meters = [
        {
            "id": system.system_id * 100 + 90 + n,
            "last_report_at": last_report,
            "name": f"{kind} Meter",
            "serial_number": f"{base_serial}8000{n}1",
            "part_number": "",
            "model": "Envoy",
            "status": "normal",
            "active": True,
            "state": "enabled",
            "config_type": "net" if kind == "Consumption" else "",
        }
        for n, kind in enumerate(("Production", "Consumption"), start=1)
    ]
    enpowers = (
        [
            {
                "id": system.system_id * 100 + 99,
                "last_report_at": last_report,
                "name": "IQ System Controller",
                "serial_number": f"{base_serial}700001",
                "part_number": "860-00276-r28",
                "sku": "EP200G101-M240US00",
                "model": "Enpower",
                "status": "normal",
                "active": True,
                "product_name": "IQ System Controller 2",
            }
        ]
        if system.encharges
        else []
    )
    devices: dict[str, list[dict[str, Any]]] = {
        "micros": micros,
        "meters": meters,
        "gateways": [gateway],
        "q_relays": [],
        "acbs": [],
        "encharges": encharges,
        "enpowers": enpowers,
        "ev_chargers": [],
        "heat_pump": [],
        "iq_collars": [],
    }
    return web.json_response(
        {
            "system_id": system.system_id,
            "total_devices": sum(len(v) for v in devices.values()),
            "items": "devices",
            "devices": devices,
        }
    )
