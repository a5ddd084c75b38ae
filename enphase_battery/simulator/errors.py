"""Error bodies exactly as the v4 API shapes them (fact sheet §3)."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["LIVE_STATUS_NAMES", "ApiProblem", "envelope", "error_response", "live_envelope"]

_MESSAGES = {
    400: "Bad Request",
    401: "Not Authorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
_DEFAULT_DETAILS = {
    401: "User is not authorized",
    403: "Not authorized to access this resource",
    404: "The requested resource could not be found",
    429: "Usage limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
}


def envelope(status: int, details: str | None = None, **extra: Any) -> dict[str, Any]:
    """The body the API sends for ``status``.

    405 and 501 use ``{"reason": "405", "message": [...]}``; everything else the
    ``{"message", "details", "code"}`` envelope.
    """
    if status in (405, 501):
        phrase = "Method not allowed" if status == 405 else "Not Implemented"
        return {"reason": str(status), "message": [details or phrase]}
    try:
        phrase = _MESSAGES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict[str, Any] = {
        "message": phrase,
        "details": details or _DEFAULT_DETAILS.get(status, phrase),
        "code": status,
    }
    body.update(extra)
    return body


#: live_data's error ``status`` words (fact sheet §8; 461-463 and 429 [inferred]).
LIVE_STATUS_NAMES = {
    403: "FORBIDDEN",
    429: "TOO_MANY_REQUESTS",
    461: "INVALID_DURATION",
    462: "INVALID_DURATION",
    463: "INVALID_DURATION",
    466: "UNSUPPORTED_ENVOY",
    468: "INVALID_SYSTEM_ID",
    472: "LIVE_STREAM_NOT_SUPPORTED",
    473: "IQ_GATEWAY_NOT_REPORTING",
    550: "SERVICE_UNREACHABLE",
    551: "SERVICE_UNREACHABLE",
    552: "CONNECTION_NOT_ESTABLISHED",
}


def live_envelope(code: int, message: str | None, *, now: float) -> dict[str, Any]:
    """live_data's error body: ``{"error": {code, details, message, status},
    "timestamp_epoch", "timestamp_utc", "type"}`` (fact sheet §8); no period fields."""
    from datetime import UTC, datetime

    try:
        phrase = message or HTTPStatus(code).phrase
    except ValueError:
        phrase = "Error"
    return {
        "error": {
            "code": code,
            "details": [phrase],
            "message": phrase,
            "status": LIVE_STATUS_NAMES.get(code, "ERROR"),
        },
        "timestamp_epoch": int(now * 1000),
        "timestamp_utc": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "type": "error",
    }


def error_response(status: int, details: str | None = None, **extra: Any) -> web.Response:
    """A JSON error response in the API's envelope."""
    # aiohttp.web on use: the CLI reads the plan table (.ratelimit imports this module)
    # for ``--help`` without loading the web server.
    from aiohttp import web

    return web.json_response(envelope(status, details, **extra), status=status)


class ApiProblem(Exception):
    """Raised by handlers; the middleware turns it into the error envelope."""

    def __init__(self, status: int, details: str | None = None, **extra: Any) -> None:
        super().__init__(details or str(status))
        self.status = status
        self.details = details
        self.extra = extra

    def response(self) -> web.Response:
        """The HTTP response for this problem."""
        return error_response(self.status, self.details, **self.extra)
