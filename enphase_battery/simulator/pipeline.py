"""The request pipeline every ``/api/v4`` request passes (and ``/oauth/token`` for faults).

In order: fault injection (latency, then one armed fault), the ``key`` query parameter,
the bearer token, the plan's access controls (when enforced), the rate limits, and
finally its handler.  Handlers raise :class:`~.errors.ApiProblem` for API errors; the
middleware renders the envelope.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from enphase_battery.simulator.context import API, simulator
from enphase_battery.simulator.errors import ApiProblem, envelope, error_response, live_envelope
from enphase_battery.simulator.faults import FaultKind, FaultRule

if TYPE_CHECKING:
    from enphase_battery.simulator.server import EnphaseSimulator

__all__ = ["api_middleware"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Access controls per plan (fact sheet §2, §7): which route families each plan may call;
# the Commissioning API (tariff, battery_mode) is Partner only.
_PLAN_ACCESS = {
    "watt": {"site"},
    "kilowatt": {"site", "device"},
    "megawatt": {"site", "device", "config"},
    "partner": {"site", "device", "config", "commissioning"},
    "unlimited": {"site", "device", "config", "commissioning"},
}
_ALL_ACCESS = {"site", "device", "config", "commissioning"}


def _access_family(path: str) -> str:
    if path.startswith(f"{API}/activations/") or (
        path.startswith(f"{API}/systems/config/") and path.endswith("/tariff")
    ):
        return "commissioning"
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
async def api_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    sim = simulator(request)
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
                if path.endswith("/live_data"):
                    return _live_too_many(sim, too_many)
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


def _live_too_many(sim: EnphaseSimulator, body: dict[str, Any]) -> web.Response:
    """live_data's 429: its error envelope, no period fields (fact sheet §8).  A month
    429 says so in words [inferred: the spec shows no month example for live_data]."""
    words = str(body.get("details") or "Usage limit exceeded")
    if body.get("period") == "month":
        words = "Monthly " + words[:1].lower() + words[1:]
    reply = live_envelope(429, words, now=sim.clock.timestamp())
    return web.json_response(reply, status=429)


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
