"""A small, configurable ``aiohttp.web`` fake of the Enphase v4 API, for tests.

It speaks the real service's shapes (tests/fixtures/*.json, fact sheet §1-§4):

* ``POST /oauth/token`` with the parameters in the query string and a Basic header;
  tokens rotate (each refresh kills the previous refresh token) and expire;
* the battery operations under ``/api/v4/systems/{id}/...`` and the configuration
  operations under ``/api/v4/systems/config/{id}/...``, each checking ``key=`` and the
  bearer token like the real API (401 otherwise).

Every request is recorded (``requests`` for the API, ``token_requests`` for the token
endpoint) with its time, and ``events`` keeps the order in which tokens were issued and
used.  ``script()`` queues one-off replies (errors, delays, dropped connections, broken
bodies) for a path; unscripted requests get the fixture answer.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Distinctive secrets: any leak of them into logs, reprs or tracebacks is detectable.
API_KEY = "APIKEY-d1st1nct-5f0c3a9e"
CLIENT_ID = "client-7f3e2a"
CLIENT_SECRET = "CLIENTSECRET-d1st1nct-88b1c4"
ACCESS_PREFIX = "ACCESSTOKEN-d1st1nct-"
REFRESH_PREFIX = "REFRESHTOKEN-d1st1nct-"
AUTH_CODE = "AUTHCODE-d1st1nct-41aa"
SYSTEM_ID = 698905955
ENCHARGE_SERIAL = "122137013201"


def load_fixture(name: str) -> Any:
    """The parsed JSON of ``tests/fixtures/<name>.json``."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


ERRORS: dict[str, Any] = load_fixture("errors")


@dataclass
class Reply:
    """A scripted answer: a status with a JSON body (or raw text), after ``delay`` seconds;
    ``drop`` closes the connection without answering; ``headers`` are added (a ``Date``
    replaces the server's own)."""

    status: int = 200
    json: Any = None
    text: str | None = None
    delay: float = 0.0
    drop: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[len("Bearer ") :] if value.startswith("Bearer ") else None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Handler = Callable[[Recorded], Reply]

_CONFIG = re.compile(
    r"^/api/v4/systems/config/(\d+)/(battery_settings|storm_guard|grid_status|load_control)$"
)
_SYSTEM = re.compile(r"^/api/v4/systems/(\d+)/(devices|battery_lifetime|telemetry/battery)$")
_ENCHARGE = re.compile(r"^/api/v4/systems/(\d+)/devices/encharges/([^/]+)/telemetry$")


def basic_header(login: str, password: str) -> str:
    """HTTP Basic auth as RFC 7617 spells it (UTF-8), written out here, not taken from aiohttp."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


class FakeEnphase:
    """The fake service; serve ``app`` on loopback and point the SDK at ``base_url``."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        token_lifetime: float = 86393,
    ) -> None:
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.base_url = ""
        self.requests: list[Recorded] = []
        self.token_requests: list[Recorded] = []
        self.events: list[tuple[str, str]] = []
        self._access: dict[str, float] = {}  # access token -> expiry (epoch s)
        self.current_refresh: str | None = None
        self._issued = 0
        self._scripts: dict[str, deque[Reply | Handler]] = {}
        self.token_script: deque[Reply] = deque()
        self.token_delay = 0.0
        self.systems: list[dict[str, Any]] = load_fixture("systems")["systems"]
        self.state: dict[str, Any] = {
            "battery_settings": load_fixture("battery_settings"),
            "storm_guard": load_fixture("storm_guard"),
            "grid_status": load_fixture("grid_status"),
            "load_control": load_fixture("load_control"),
        }
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # -- configuration by tests ----------------------------------------------------------

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth/token"

    def issue_token(self, expires_in: float | None = None) -> dict[str, Any]:
        """Mint a token the way the token endpoint does (rotating the refresh token)."""
        self._issued += 1
        access = f"{ACCESS_PREFIX}{self._issued:04d}"
        refresh = f"{REFRESH_PREFIX}{self._issued:04d}"
        lifetime = self.token_lifetime if expires_in is None else expires_in
        self._access[access] = time.time() + lifetime
        self.current_refresh = refresh
        self.events.append(("issued", access))
        payload = load_fixture("token")
        payload.update(access_token=access, refresh_token=refresh, expires_in=lifetime)
        return dict(payload)

    def accept_access_token(self, token: str, lifetime: float = 3600) -> None:
        """Treat ``token`` as a valid access token (for external token providers)."""
        self._access[token] = time.time() + lifetime

    def revoke_access_tokens(self) -> None:
        self._access.clear()

    def script(self, path: str, *replies: Reply | Handler) -> None:
        """Queue replies for the next requests to ``path`` (``"*"``: any API path)."""
        self._scripts.setdefault(path, deque()).extend(replies)

    def clear_scripts(self) -> None:
        """Forget every scripted reply not used yet."""
        self._scripts.clear()

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    @property
    def grants(self) -> list[str]:
        return [r.query.get("grant_type", "") for r in self.token_requests]

    # -- the server --------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=await request.read(),
        )
        if request.path == "/oauth/token":
            self.token_requests.append(recorded)
            reply = await self._token(recorded)
        else:
            self.requests.append(recorded)
            self.events.append(("request", recorded.bearer or ""))
            reply = self._api(recorded)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.01)
            return web.Response(status=500)
        if reply.text is not None:
            return web.Response(
                status=reply.status,
                text=reply.text,
                content_type="application/json",
                headers=reply.headers,
            )
        return web.json_response(reply.json, status=reply.status, headers=reply.headers)

    async def _token(self, req: Recorded) -> Reply:
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_script:
            return self.token_script.popleft()
        expected = basic_header(self.client_id, self.client_secret)
        if req.method != "POST" or req.headers.get("Authorization") != expected:
            return Reply(401, {"error": "unauthorized", "error_description": "Bad credentials"})
        grant = req.query.get("grant_type")
        if grant == "refresh_token":
            if req.query.get("refresh_token") != self.current_refresh:
                # The real service echoes nothing this helpful; echoing the token tests
                # that the SDK scrubs what a server sends back.
                body = dict(ERRORS["invalid_grant"])
                body["error_description"] += f": {req.query.get('refresh_token')}"
                return Reply(400, body)
            return Reply(200, self.issue_token())
        if grant == "authorization_code":
            if req.query.get("code") != AUTH_CODE:
                return Reply(400, {"error": "invalid_grant", "error_description": "bad code"})
            return Reply(200, self.issue_token())
        return Reply(400, {"error": "unsupported_grant_type"})

    def _api(self, req: Recorded) -> Reply:
        for key in (req.path, "*"):
            queue = self._scripts.get(key)
            if queue:
                item = queue.popleft()
                return item(req) if callable(item) else item
        if req.query.get("key") != self.api_key:
            return Reply(
                401,
                {"message": "Not Authorized", "details": "API Key -Client mismatch", "code": 401},
            )
        bearer = req.bearer
        if bearer is None or self._access.get(bearer, 0) < time.time():
            return Reply(401, ERRORS["401"])
        return self._default(req)

    def apply(self, req: Recorded) -> Reply:
        """What the fake answers ``req`` when nothing is scripted (a PUT is applied)."""
        return self._default(req)

    def _default(self, req: Recorded) -> Reply:
        path, method = req.path, req.method
        if path == "/api/v4/systems" and method == "GET":
            page = int(req.query.get("page", "1"))
            size = min(100, int(req.query.get("size", "10")))
            chunk = self.systems[(page - 1) * size : page * size]
            return Reply(
                200,
                {
                    "total": len(self.systems),
                    "current_page": page,
                    "size": size,
                    "count": len(chunk),
                    "items": "systems",
                    "systems": chunk,
                },
            )
        if match := _CONFIG.match(path):
            system_id, name = int(match[1]), match[2]
            state = self.state[name]
            if method == "PUT" and name != "grid_status":
                update = req.json
                if name == "load_control":
                    for circuit in state["load_control_data"]:
                        if circuit["name"] == update["name"]:
                            circuit.update(update)
                else:
                    state.update(update)
            elif method != "GET":
                return Reply(405, ERRORS["405"])
            return Reply(200, {**copy.deepcopy(state), "system_id": system_id})
        if match := _SYSTEM.match(path):
            system_id, name = int(match[1]), match[2]
            if name == "devices":
                body = load_fixture("devices")
            elif name == "battery_lifetime":
                body = load_fixture("battery_lifetime")
                if "start_date" in req.query:
                    body["start_date"] = req.query["start_date"]
            elif "start_date" in req.query:
                body = load_fixture("telemetry_battery_start_date")
                body["start_date"] = body["end_date"] = req.query["start_date"]
            else:
                body = load_fixture("telemetry_battery")
                body["granularity"] = req.query.get("granularity", "day")
            return Reply(200, {**body, "system_id": system_id})
        if match := _ENCHARGE.match(path):
            body = load_fixture("telemetry_encharge")
            body.update(system_id=int(match[1]), serial_number=match[2])
            body["granularity"] = req.query.get("granularity", "day")
            return Reply(200, body)
        return Reply(404, ERRORS["404"])
