"""From an HTTP status and body to a decoded payload or the typed exception that fits."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import attrs

from enphase_battery.exceptions import (
    ApiError,
    AuthenticationError,
    NoBatteryError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)
from enphase_battery.http.routes import Route
from enphase_battery.util.json_decoder import loads
from enphase_battery.util.redaction import printable

__all__ = [
    "MONTH_429_WORDS",
    "NO_BATTERY_WORDS",
    "RateLimitInfo",
    "api_key_refused",
    "decode",
    "describe_structure_error",
    "error_for",
    "rate_limit_info",
    "truncate",
]

_MAX_BODY_IN_ERROR = 2000
#: Error bodies longer than this are kept as their truncated text, not parsed.
_MAX_ERROR_BODY_PARSED = 64 * 1024
#: The most of a server's own words (``details``...) an error message quotes.
_MAX_DETAIL_CHARS = 300
#: A ``minute`` rate-limit window resets within this, whatever clock judged ``period_end``.
_MINUTE_RESET_CAP_S = 60.0
_TOO_LARGE = "the response body is larger than the 16 MiB the SDK reads; it was not read"

#: [inferred] A 429 without a ``period`` field (the Commissioning API's
#: ``{"reason": "429", "message": [...]}``, live_data's error envelope) is read as the
#: month spent when its words match this: the spec gives no other sign.
MONTH_429_WORDS = re.compile(r"\bmonth(ly)?\b", re.IGNORECASE)

#: A 422 whose words match this says the site has no batteries (a PV-only site): the
#: configuration operations' "System doesn't have encharges", the Commissioning API's
#: "This is a PV only site. Battery mode can only be fetched for sites with Enphase battery
#: systems" (fact sheet §3, §8).
NO_BATTERY_WORDS = re.compile(
    r"(doesn'?t|does not) have (any )?encharges|\bPV[ -]only site\b", re.IGNORECASE
)

#: Replaces every secret in a value (string, list, dict) before it goes into an error.
Redact = Callable[[Any], Any]


def decode(
    route: Route,
    path: str,
    status: int,
    raw: bytes | None,
    *,
    redact: Redact,
    server_time: float | None = None,
) -> Any:
    """The JSON payload of a 2xx answer; any other status raises its typed error.

    ``raw`` is ``None`` for a body too large to read; ``server_time`` is the server's
    clock (its ``Date`` header), against which a 429's ``period_end`` is judged.
    """
    if 200 <= status < 300:
        if raw is None:
            raise ResponseFormatError(_TOO_LARGE, status=status, method=route.method, path=path)
        try:
            return loads(raw)
        except ValueError:
            raise ResponseFormatError(
                "response body is not valid JSON",
                status=status,
                body=redact(truncate(raw)),
                method=route.method,
                path=path,
            ) from None
    raise error_for(route, path, status, raw, redact=redact, server_time=server_time)


def error_for(
    route: Route,
    path: str,
    status: int,
    raw: bytes | None,
    *,
    redact: Redact,
    server_time: float | None = None,
) -> ApiError:
    """The exception for a non-2xx answer.

    The quota governor hears of a 429 from the transport; this only builds the error.
    """
    body: Any
    if raw is None:
        body = _TOO_LARGE
    elif len(raw) > _MAX_ERROR_BODY_PARSED:
        body = truncate(raw)
    else:
        try:
            body = loads(raw) if raw else None
        except ValueError:
            body = truncate(raw)
    body = redact(body)
    detail = _detail(body)
    where = {"status": status, "body": body, "method": route.method, "path": path}
    if status == 401:
        if _names_api_key(detail):
            return AuthenticationError(
                f"the API key was refused ({detail}): check the app's API key (it must"
                " belong to the same app as the client id); signing in again cannot help",
                credential="api_key",
                **where,
            )
        return AuthenticationError(
            "not authorized"
            + (f" ({detail})" if detail else "")
            + ": the access token was refused after a refresh",
            credential="access_token",
            **where,
        )
    if status == 403:
        return PermissionDeniedError(
            f"not authorized to access {route.operation_id}: the API plan or the"
            " homeowner's grant lacks this access (" + _plan_hint(route) + ")",
            **where,
        )
    if status == 422 and detail is not None and NO_BATTERY_WORDS.search(detail):
        return NoBatteryError(
            f"{detail}: the system has no batteries (a PV-only site), so"
            f" {route.operation_id} does not apply to it",
            **where,
        )
    if status == 404:
        return NotFoundError(detail or "not found", **where)
    if status == 429:
        return _rate_limit_error(body, where, server_time)
    return ApiError(detail or "the API returned an error", **where)


def _plan_hint(route: Route) -> str:
    """Which plan the operation needs, as the route table says, for a 403's message."""
    if route.plan == "partner":
        return f"{route.operation_id} needs the Partner plan"
    if route.plan is not None:
        return f"{route.operation_id} needs the {route.plan.capitalize()} plan or above"
    return (
        "system configuration needs the Megawatt or Partner plan, per-Encharge"
        " telemetry Kilowatt or above"
    )


@attrs.frozen
class RateLimitInfo:
    """What a 429 body says, whichever of the API's three shapes it came in.

    The shapes (fact sheet §8): the telemetry endpoints' ``{message, details, code,
    period, period_start, period_end, limit}``; the Commissioning API's ``{"reason":
    "429", "message": [...]}``; live_data's ``{"error": {code, details, message,
    status}, ...}``.  ``period`` is ``"minute"``, ``"month"`` or ``None`` (not said).
    """

    period: str | None = None
    period_start: float | None = None
    period_end: float | None = None
    limit: int | None = None
    message: str | None = None

    @property
    def month(self) -> bool:
        """Whether the 429 says the month's quota is spent."""
        return self.period == "month"


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def rate_limit_info(body: Any) -> RateLimitInfo:
    """Read a decoded 429 body of any of the three shapes (anything else: all ``None``)."""
    if not isinstance(body, dict):
        return RateLimitInfo(message=_detail(body))
    fields = body
    if isinstance(body.get("error"), dict):
        # live_data's envelope: period fields, should it ever carry them, sit inside.
        fields = {**body["error"], **{k: v for k, v in body.items() if k != "error"}}
    raw_period = fields.get("period")
    period = raw_period.lower() if isinstance(raw_period, str) else None
    message = _detail(body)
    if period is None and message is not None and MONTH_429_WORDS.search(message):
        period = "month"
    limit = fields.get("limit")
    return RateLimitInfo(
        period=period,
        period_start=_epoch(fields.get("period_start")),
        period_end=_epoch(fields.get("period_end")),
        limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
        message=message,
    )


def _rate_limit_error(
    body: Any, where: dict[str, Any], server_time: float | None
) -> RateLimitError:
    info = rate_limit_info(body)
    period, limit, period_end = info.period, info.limit, info.period_end
    retry_after: float | None = None
    if period_end is not None:
        # period_end is on the server's clock: a local clock hours off must not turn a
        # one-minute window into hours of waiting (or none).
        retry_after = max(0.0, period_end - (server_time or time.time()))
        if period == "minute":
            # Whatever the clocks say, a minute window resets within a minute.
            retry_after = min(retry_after, _MINUTE_RESET_CAP_S)
    message = info.message or "Too Many Requests"
    if period == "month":
        return QuotaExceededError(
            f"monthly quota spent: {message}",
            retry_after=retry_after,
            period=period,
            limit=limit,
            **where,
        )
    return RateLimitError(message, retry_after=retry_after, period=period, limit=limit, **where)


def _detail(body: Any) -> str | None:
    """The server's own words from an error body, cleaned and cut for a message."""
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            # live_data's envelope: {"error": {"code", "details": [...], "message", ...}}
            body = body["error"]
        for key in ("details", "message", "error_description", "error", "errorMessages"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value[:10])
            if isinstance(value, str) and value:
                return printable(value, _MAX_DETAIL_CHARS)
    if isinstance(body, str) and body.strip():
        return printable(body.strip(), 200)
    return None


def _names_api_key(detail: str | None) -> bool:
    return detail is not None and "api key" in detail.lower()


def api_key_refused(raw: bytes | None) -> bool:
    """Whether a 401 body says the API key was refused (a token refresh cannot help)."""
    if not raw or len(raw) > _MAX_ERROR_BODY_PARSED:
        return False
    try:
        body = loads(raw)
    except ValueError:
        return False
    return _names_api_key(_detail(body))


def truncate(raw: bytes) -> str:
    """The start of a body, decoded leniently, for an error's ``body``."""
    return raw[:_MAX_BODY_IN_ERROR].decode("utf-8", "replace")


def describe_structure_error(err: Exception) -> str:
    """Which fields a cattrs structuring error is about, in one line."""
    # cattrs raises exception groups; their leaves say which field failed.
    leaves: list[str] = []

    def walk(exc: BaseException) -> None:
        inner = getattr(exc, "exceptions", None)
        if inner:
            for sub in inner:
                walk(sub)
        else:
            note = "; ".join(getattr(exc, "__notes__", []) or [])
            leaves.append(f"{type(exc).__name__}: {exc}" + (f" ({note})" if note else ""))

    walk(err)
    return "; ".join(leaves[:3]) or type(err).__name__
