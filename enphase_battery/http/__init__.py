"""The one choke point every API request takes: the route table (:mod:`.routes`), the
call's pipeline of quota, token, send and retries (:mod:`.calls`), one request on the wire
(:mod:`.wire`), what is retried and how long to wait (:mod:`.retry`), from a status and
body to a typed error (:mod:`.errors`), and the server-sent events parser (:mod:`.sse`).

May import ``util``, ``exceptions``, ``models`` and ``quota``; the token comes in as a
callable or a :class:`~enphase_battery.http.calls.RefreshingTokens` (never from ``auth``).
"""

from __future__ import annotations

from enphase_battery.http.routes import API_PREFIX, DEFAULT_BASE_URL, ROUTES, Route

__all__ = ["API_PREFIX", "DEFAULT_BASE_URL", "ROUTES", "Route"]
