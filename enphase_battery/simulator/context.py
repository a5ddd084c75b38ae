"""What every simulator route handler shares: the app key, the API prefix, the path's system id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from enphase_battery.simulator.errors import ApiProblem

if TYPE_CHECKING:
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = ["API", "SIMULATOR_KEY", "path_system_id", "simulator"]

SIMULATOR_KEY: web.AppKey[EnphaseSimulator] = web.AppKey("enphase_simulator")

API = "/api/v4"


def simulator(request: web.Request) -> EnphaseSimulator:
    """The simulator serving ``request``."""
    return request.app[SIMULATOR_KEY]


def path_system_id(request: web.Request) -> int:
    """The ``{system_id}`` of the path; the API's 404 when it is not a number."""
    raw = request.match_info["system_id"]
    try:
        return int(raw)
    except ValueError:
        raise ApiProblem(404, f'System not found for {{:id=>"{raw}"}}') from None
