"""Admin routes (no auth): faults, the clock, system events and the state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from enphase_battery.simulator.context import simulator

if TYPE_CHECKING:
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = ["admin_clock", "admin_faults", "admin_get_state", "admin_system", "admin_writes"]


async def admin_faults(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
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


async def admin_clock(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
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


async def admin_system(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
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


async def admin_writes(request: web.Request) -> web.StreamResponse:
    """``{"delay_s": 2, "revert_after_s": 1, "next": ["refuse", "revert"]}``: how the
    gateways take the next writes (see :mod:`.gateway`); ``{"clear": true}`` first
    forgets queued actions and pending writes."""
    sim = simulator(request)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        if body.pop("clear", False):
            sim.writes.clear()
        sim.writes.configure(body)
    except (ValueError, TypeError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response(_admin_state(sim))


async def admin_get_state(request: web.Request) -> web.StreamResponse:
    return web.json_response(_admin_state(simulator(request)))


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
        "writes": sim.writes.state(),
        "systems": {
            str(system_id): {
                "encharges": list(sim.encharge_serials(system_id)),
                "off_grid": sim.system(system_id).off_grid,
                "storm_alert": sim.system(system_id).storm_alert,
                "cfg_allowed": sim.system(system_id).cfg_allowed,
                "dtg_allowed": sim.system(system_id).dtg_allowed,
            }
            for system_id in sim.system_ids
        },
    }
