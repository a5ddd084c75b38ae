"""The aiohttp.web application: routes, request checks (key, bearer, plan), faults.

Every ``/api/v4`` request passes, in order: fault injection (latency, then one armed
fault), the ``key`` query parameter, the bearer token, the plan's access controls (when
enforced), the rate limits, and finally its handler.  Handlers raise
:class:`~.errors.ApiProblem` for API errors; the middleware renders the envelope.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web
from yarl import URL

from ..auth import DEFAULT_REDIRECT_URI
from .battery import BATTERY_MODES, LOAD_CONTROL_MODES, BatterySystem, Encharge
from .errors import ApiProblem, envelope, error_response
from .faults import FaultKind, FaultRule
from .live import register as register_live
from .now import register as register_now
from .oauth import OAuthError
from .telemetry import (
    battery_lifetime,
    battery_telemetry,
    encharge_telemetry,
    last_visible_end_at,
    parse_window,
)

if TYPE_CHECKING:
    from .server import EnphaseSimulator

__all__ = ["SIMULATOR_KEY", "create_app", "make_app"]

SIMULATOR_KEY: web.AppKey[EnphaseSimulator] = web.AppKey("enphase_simulator")

API = "/api/v4"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Access controls per plan (fact sheet §2): which route families each plan may call.
_PLAN_ACCESS = {
    "watt": {"site"},
    "kilowatt": {"site", "device"},
    "megawatt": {"site", "device", "config"},
    "partner": {"site", "device", "config"},
    "unlimited": {"site", "device", "config"},
}
_ALL_ACCESS = {"site", "device", "config"}


def _sim(request: web.Request) -> EnphaseSimulator:
    return request.app[SIMULATOR_KEY]


def _access_family(path: str) -> str:
    if path.startswith(f"{API}/systems/config/"):
        return "config"
    if "/devices/encharges/" in path:
        return "device"
    return "site"


# -- middleware ---------------------------------------------------------------------


def _body_bytes(response: web.StreamResponse) -> bytes | None:
    if not isinstance(response, web.Response):
        return None
    body = response.body
    return body if isinstance(body, bytes) else None


@web.middleware
async def _api_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    sim = _sim(request)
    path = request.path
    is_api = path.startswith(API + "/") or path == API
    is_token = path == "/oauth/token"
    if not (is_api or is_token):
        return await handler(request)
    if is_api:
        sim.count_request(path)
    rule: FaultRule | None = None
    if is_api or sim.faults.include_token_endpoint:
        delay = sim.faults.latency_for(path)
        if delay:
            await asyncio.sleep(delay)
        rule = sim.faults.take(path)
        if rule is not None and rule.kind is FaultKind.DROP:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if rule is not None and rule.kind is FaultKind.STATUS:
            return _injected_status(sim, rule)
    try:
        if is_api:
            _check_credentials(sim, request)
            allowed = _PLAN_ACCESS.get(sim.plan, _ALL_ACCESS)
            if sim.enforce_plan_access and _access_family(path) not in allowed:
                raise ApiProblem(403, "Not authorized to access this resource")
            too_many = sim.limiter.admit()
            if too_many is not None:
                return web.json_response(too_many, status=429)
        response = await handler(request)
    except ApiProblem as problem:
        response = problem.response()
    except web.HTTPMethodNotAllowed:
        response = error_response(405)
    except web.HTTPNotFound:
        if not is_api:
            raise
        response = error_response(404, "The requested resource could not be found")
    if rule is not None and rule.kind in (FaultKind.MALFORMED, FaultKind.TRUNCATED):
        body = _body_bytes(response)
        if body is not None:
            if rule.kind is FaultKind.MALFORMED:
                return web.Response(
                    body=body[: max(1, len(body) // 2)] + b"<!-- upstream error -->",
                    status=200,
                    content_type="application/json",
                )
            return await _truncated(request, response, body)
    return response


def _injected_status(sim: EnphaseSimulator, rule: FaultRule) -> web.Response:
    if rule.status == 429:
        body = sim.limiter.too_many_minute()
    else:
        body = envelope(rule.status, rule.details)
    return web.json_response(body, status=rule.status)


async def _truncated(
    request: web.Request, response: web.StreamResponse, body: bytes
) -> web.StreamResponse:
    stream = web.StreamResponse(status=response.status)
    stream.content_type = "application/json"
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.abort()
    return stream


def _check_credentials(sim: EnphaseSimulator, request: web.Request) -> None:
    key = request.query.get("key")
    if not key:
        raise ApiProblem(401, "Authentication parameters missing")
    if not secrets.compare_digest(key, sim.api_key):
        raise ApiProblem(401, "API Key -Client mismatch")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not sim.oauth.access_token_valid(token.strip()):
        raise ApiProblem(401, "User is not authorized")


# -- OAuth ----------------------------------------------------------------------------


async def _authorize(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    query = request.query
    redirect_uri = query.get("redirect_uri", DEFAULT_REDIRECT_URI)
    try:
        code = sim.oauth.authorize(query.get("client_id", ""), redirect_uri)
    except OAuthError as err:
        return web.json_response(err.body, status=err.status)
    target = URL(redirect_uri)
    extra = {"state": query["state"]} if "state" in query else {}
    if query.get("response_type") != "code":
        target = target.update_query(error="unsupported_response_type", **extra)
    else:
        target = target.update_query(code=code, **extra)
    raise web.HTTPFound(location=str(target))


async def _token(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    sim.token_requests += 1
    # The real endpoint reads its parameters from the query string only (fact sheet §1);
    # a client that posts them as a form body is refused here as it would be there.
    query = request.query
    grant = query.get("grant_type", "")
    sim.token_grants[grant] += 1
    try:
        sim.oauth.check_basic(request.headers.get("Authorization"))
        if grant == "authorization_code":
            payload = sim.oauth.exchange_code(
                query.get("code", ""), query.get("redirect_uri", DEFAULT_REDIRECT_URI)
            )
        elif grant == "refresh_token":
            payload = sim.oauth.refresh(query.get("refresh_token", ""))
        elif grant == "password":
            if not query.get("username") or not query.get("password"):
                raise OAuthError(400, "invalid_grant", "Bad credentials")
            payload = sim.oauth.issue()
        else:
            raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
    except OAuthError as err:
        return web.json_response(err.body, status=err.status)
    return web.json_response(payload)


# -- discovery ------------------------------------------------------------------------


def _system_id(request: web.Request) -> int:
    raw = request.match_info["system_id"]
    try:
        return int(raw)
    except ValueError:
        raise ApiProblem(404, f'System not found for {{:id=>"{raw}"}}') from None


def _last_report(sim: EnphaseSimulator, system: BatterySystem) -> int:
    now = sim.clock.timestamp()
    last = last_visible_end_at(system.encharges, sim.arrival, now, system.last_end_at)
    return last[0] if last else system.operational_at


def _device_last_report(sim: EnphaseSimulator, device: Encharge, now: float) -> int | None:
    last = last_visible_end_at([device], sim.arrival, now, device.last_end_at)
    return last[0] if last else None


def _system_json(sim: EnphaseSimulator, system: BatterySystem) -> dict[str, Any]:
    template = system.template
    last_report = _last_report(sim, system)
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


async def _systems(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
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


async def _system(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    return web.json_response(_system_json(sim, sim.find_system(_system_id(request))))


async def _devices(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    system = sim.find_system(_system_id(request))
    last_report = _last_report(sim, system)
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


# -- telemetry --------------------------------------------------------------------------


def _json_body(body: bytes) -> web.Response:
    # Telemetry bodies come encoded already (see .interval_json).
    return web.Response(body=body, content_type="application/json")


async def _battery_telemetry(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    system = sim.find_system(_system_id(request))
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


async def _encharge_telemetry(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    system = sim.find_system(_system_id(request))
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


async def _battery_lifetime(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    system = sim.find_system(_system_id(request))
    return web.json_response(
        battery_lifetime(system, sim.arrival, request.query, sim.clock.timestamp())
    )


# -- configuration ------------------------------------------------------------------------


def _config_system(request: web.Request) -> BatterySystem:
    system = _sim(request).find_system(_system_id(request))
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


def _settings_json(system: BatterySystem) -> dict[str, Any]:
    settings = system.settings
    return {
        "system_id": system.system_id,
        "battery_mode": settings.battery_mode,
        "reserve_soc": settings.reserve_soc,
        "energy_independence": settings.energy_independence,
        "charge_from_grid": settings.charge_from_grid,
        "battery_shutdown_level": settings.battery_shutdown_level,
    }


async def _get_battery_settings(request: web.Request) -> web.StreamResponse:
    return web.json_response(_settings_json(_config_system(request)))


async def _put_battery_settings(request: web.Request) -> web.StreamResponse:
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
    # find_system stepped the physics to now: the change applies from here on.
    system.settings = attrs.evolve(system.settings, **changes)
    return web.json_response(_settings_json(system))


def _storm_guard_json(system: BatterySystem, status: str | None = None) -> dict[str, Any]:
    return {
        "system_id": system.system_id,
        "storm_guard_status": status or ("enabled" if system.storm_guard_enabled else "disabled"),
        "storm_alert": "true" if system.storm_alert else "false",
    }


async def _get_storm_guard(request: web.Request) -> web.StreamResponse:
    return web.json_response(_storm_guard_json(_config_system(request)))


async def _put_storm_guard(request: web.Request) -> web.StreamResponse:
    system = _config_system(request)
    body = await _json_object(request)
    status = body.get("storm_guard_status")
    if status not in ("enabled", "disabled"):
        raise ApiProblem(422, "storm_guard_status is mandatory and must be enabled or disabled")
    system.storm_guard_enabled = status == "enabled"
    # The real PUT answers with a display string (fact sheet §4), unlike its GET.
    if system.storm_guard_enabled:
        shown = "Enabled (Active)" if system.storm_alert else "Enabled (Inactive)"
    else:
        shown = "Disabled"
    return web.json_response(_storm_guard_json(system, shown))


async def _grid_status(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    system = _config_system(request)
    return web.json_response(
        {
            "system_id": system.system_id,
            "grid_state": "Off Grid" if system.off_grid else "On Grid",
            "last_report_date": _last_report(sim, system),
        }
    )


def _load_control_json(system: BatterySystem) -> dict[str, Any]:
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
            for c in system.load_control.values()
        ],
    }


async def _get_load_control(request: web.Request) -> web.StreamResponse:
    return web.json_response(_load_control_json(_config_system(request)))


async def _put_load_control(request: web.Request) -> web.StreamResponse:
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
    system.load_control[name] = attrs.evolve(circuit, **changes)
    return web.json_response(_load_control_json(system))


# -- admin ------------------------------------------------------------------------------


async def _admin_faults(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be JSON"}, status=400)
    specs = body if isinstance(body, list) else [body]
    try:
        for spec in specs:
            if not isinstance(spec, dict):
                raise ValueError("each fault must be a JSON object")
            sim.faults.configure(spec)
    except (ValueError, TypeError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response(_admin_state(sim))


async def _admin_clock(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    try:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        seconds = float(body.get("advance_seconds", body.get("seconds")) or 0)
        if "advance_minutes" in body:
            seconds += 60 * float(body["advance_minutes"])
        sim.clock.advance(seconds)
        if "speed" in body:
            sim.clock.speed = float(body["speed"])
    except (ValueError, TypeError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response(_admin_state(sim))


async def _admin_system(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    try:
        body = await request.json()
        system_id = int(body["system_id"])
        sim.system(system_id)
        if "off_grid" in body:
            sim.set_grid_outage(system_id, bool(body["off_grid"]))
        if "storm_alert" in body:
            sim.set_storm_alert(system_id, bool(body["storm_alert"]))
        if "add_encharge" in body:
            capacity = body["add_encharge"]
            sim.add_encharge(system_id, None if capacity is True else int(capacity))
    except (ValueError, TypeError, KeyError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response(_admin_state(sim))


async def _admin_get_state(request: web.Request) -> web.StreamResponse:
    return web.json_response(_admin_state(_sim(request)))


def _admin_state(sim: EnphaseSimulator) -> dict[str, Any]:
    return {
        "now": sim.clock.epoch(),
        "now_iso": sim.clock.now().isoformat(),
        "speed": sim.clock.speed,
        "plan": sim.plan,
        "request_count": sim.request_count,
        "token_requests": sim.token_requests,
        "month_used": sim.limiter.month_used,
        "faults_pending": [
            {"kind": r.kind.value, "remaining": r.remaining, "status": r.status, "path": r.path}
            for r in sim.faults.pending
        ],
        "latency_s": sim.faults.latency_s,
        "live": sim.live.state(),
        "systems": {
            str(system_id): {
                "encharges": list(sim.encharge_serials(system_id)),
                "off_grid": sim.system(system_id).off_grid,
                "storm_alert": sim.system(system_id).storm_alert,
            }
            for system_id in sim.system_ids
        },
    }


# -- assembly -------------------------------------------------------------------------------


def create_app(sim: EnphaseSimulator) -> web.Application:
    """The aiohttp application serving ``sim`` (mountable in ``aiohttp_client``)."""
    app = web.Application(middlewares=[_api_middleware])
    app[SIMULATOR_KEY] = sim
    router = app.router
    router.add_get("/oauth/authorize", _authorize)
    router.add_post("/oauth/token", _token)
    router.add_get(f"{API}/systems", _systems)
    router.add_get(API + "/systems/{system_id}", _system)
    router.add_get(API + "/systems/{system_id}/devices", _devices)
    router.add_get(API + "/systems/{system_id}/telemetry/battery", _battery_telemetry)
    router.add_get(
        API + "/systems/{system_id}/devices/encharges/{serial}/telemetry", _encharge_telemetry
    )
    router.add_get(API + "/systems/{system_id}/battery_lifetime", _battery_lifetime)
    register_now(router, API)
    register_live(router, API)
    config = API + "/systems/config/{system_id}"
    router.add_get(config + "/battery_settings", _get_battery_settings)
    router.add_put(config + "/battery_settings", _put_battery_settings)
    router.add_get(config + "/storm_guard", _get_storm_guard)
    router.add_put(config + "/storm_guard", _put_storm_guard)
    router.add_get(config + "/grid_status", _grid_status)
    router.add_get(config + "/load_control", _get_load_control)
    router.add_put(config + "/load_control", _put_load_control)
    router.add_post("/__admin/faults", _admin_faults)
    router.add_post("/__admin/clock", _admin_clock)
    router.add_post("/__admin/system", _admin_system)
    router.add_get("/__admin/state", _admin_get_state)
    return app


def make_app(**kwargs: Any) -> web.Application:
    """A fresh simulator's application, for ``aiohttp_client(make_app(seed=1))``.

    The simulator is ``app[SIMULATOR_KEY]``; its ``token`` and ``api_key`` are valid.
    """
    from .server import EnphaseSimulator

    return EnphaseSimulator(**kwargs).app
