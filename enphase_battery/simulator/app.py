"""The aiohttp.web application: the route table, served through :mod:`.pipeline`.

Where each route's handler lives: :mod:`.oauth_routes` (authorize, token),
:mod:`.discovery` (systems, devices), :mod:`.telemetry_routes` (telemetry, lifetime),
:mod:`.now` and :mod:`.live` (latest telemetry, counters, summary, ``live_data``),
:mod:`.config_routes` (settings, Storm Guard, grid, load control),
:mod:`.commissioning_routes` (tariff, ``battery_mode``) and :mod:`.admin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from enphase_battery.simulator import (
    admin,
    commissioning_routes,
    config_routes,
    discovery,
    oauth_routes,
    telemetry_routes,
)
from enphase_battery.simulator.context import API, SIMULATOR_KEY
from enphase_battery.simulator.live import register as register_live
from enphase_battery.simulator.now import register as register_now
from enphase_battery.simulator.pipeline import api_middleware

if TYPE_CHECKING:
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = ["SIMULATOR_KEY", "create_app", "make_app"]


def create_app(sim: EnphaseSimulator) -> web.Application:
    """The aiohttp application serving ``sim`` (mountable in ``aiohttp_client``)."""
    app = web.Application(middlewares=[api_middleware])
    app[SIMULATOR_KEY] = sim
    router = app.router
    router.add_get("/oauth/authorize", oauth_routes.authorize)
    router.add_post("/oauth/token", oauth_routes.token)
    router.add_get(f"{API}/systems", discovery.systems)
    router.add_get(API + "/systems/{system_id}", discovery.system)
    router.add_get(API + "/systems/{system_id}/devices", discovery.devices)
    router.add_get(
        API + "/systems/{system_id}/telemetry/battery", telemetry_routes.battery_telemetry_route
    )
    router.add_get(
        API + "/systems/{system_id}/devices/encharges/{serial}/telemetry",
        telemetry_routes.encharge_telemetry_route,
    )
    router.add_get(
        API + "/systems/{system_id}/battery_lifetime", telemetry_routes.battery_lifetime_route
    )
    register_now(router, API)
    register_live(router, API)
    config = API + "/systems/config/{system_id}"
    router.add_get(config + "/battery_settings", config_routes.get_battery_settings)
    router.add_put(config + "/battery_settings", config_routes.put_battery_settings)
    router.add_get(config + "/storm_guard", config_routes.get_storm_guard)
    router.add_put(config + "/storm_guard", config_routes.put_storm_guard)
    router.add_get(config + "/grid_status", config_routes.grid_status)
    router.add_get(config + "/load_control", config_routes.get_load_control)
    router.add_put(config + "/load_control", config_routes.put_load_control)
    router.add_get(config + "/tariff", commissioning_routes.get_tariff)
    battery_mode = API + "/activations/{activation_id}/battery_mode"
    router.add_get(battery_mode, commissioning_routes.get_battery_mode)
    router.add_put(battery_mode, commissioning_routes.put_battery_mode)
    router.add_post("/__admin/faults", admin.admin_faults)
    router.add_post("/__admin/clock", admin.admin_clock)
    router.add_post("/__admin/system", admin.admin_system)
    router.add_post("/__admin/writes", admin.admin_writes)
    router.add_get("/__admin/state", admin.admin_get_state)
    return app


def make_app(**kwargs: Any) -> web.Application:
    """A fresh simulator's application, for ``aiohttp_client(make_app(seed=1))``.

    The simulator is ``app[SIMULATOR_KEY]``; its ``token`` and ``api_key`` are valid.
    """
    from enphase_battery.simulator.server import EnphaseSimulator

    return EnphaseSimulator(**kwargs).app
