"""The OAuth2 endpoints: ``GET /oauth/authorize`` and ``POST /oauth/token``."""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from enphase_battery.auth.manager import DEFAULT_REDIRECT_URI
from enphase_battery.simulator.context import simulator
from enphase_battery.simulator.oauth import OAuthError

__all__ = ["authorize", "token"]


async def authorize(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
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


async def token(request: web.Request) -> web.StreamResponse:
    sim = simulator(request)
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
