"""From an HTTP status and body to a decoded payload or the typed exception that fits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._json import loads
from .exceptions import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)
from .routes import Route

__all__ = ["decode", "describe_structure_error", "error_for", "truncate"]

_MAX_BODY_IN_ERROR = 2000

#: Replaces every secret in a value (string, list, dict) before it goes into an error.
Redact = Callable[[Any], Any]


def decode(route: Route, path: str, status: int, raw: bytes, *, redact: Redact) -> Any:
    """The JSON payload of a 2xx answer; any other status raises its typed error."""
    if 200 <= status < 300:
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
    raise error_for(route, path, status, raw, redact=redact)


def error_for(route: Route, path: str, status: int, raw: bytes, *, redact: Redact) -> ApiError:
    """The exception for a non-2xx answer.

    The quota governor hears of a 429 from the transport; this only builds the error.
    """
    body: Any
    try:
        body = loads(raw) if raw else None
    except ValueError:
        body = truncate(raw)
    body = redact(body)
    detail = _detail(body)
    where = {"status": status, "body": body, "method": route.method, "path": path}
    if status == 401:
        return AuthenticationError(
            "not authorized"
            + (f" ({detail})" if detail else "")
            + ": the access token was refused after a refresh, or the API key belongs to"
            " another app than the token",
            **where,
        )
    if status == 403:
        return PermissionDeniedError(
            f"not authorized to access {route.operation_id}: the API plan or the"
            " homeowner's grant lacks this access (system configuration needs the"
            " Megawatt or Partner plan, per-Encharge telemetry Kilowatt or above)",
            **where,
        )
    if status == 404:
        return NotFoundError(detail or "not found", **where)
    if status == 429:
        return _rate_limit_error(body, where)
    return ApiError(detail or "the API returned an error", **where)


def _rate_limit_error(body: Any, where: dict[str, Any]) -> RateLimitError:
    info = body if isinstance(body, dict) else {}
    period = info.get("period") if isinstance(info.get("period"), str) else None
    limit = info.get("limit") if isinstance(info.get("limit"), int) else None
    period_end = info.get("period_end")
    retry_after: float | None = None
    if isinstance(period_end, int | float) and not isinstance(period_end, bool):
        retry_after = max(0.0, period_end - time.time())
    message = _detail(info) or "Too Many Requests"
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
    if isinstance(body, dict):
        for key in ("details", "message", "error_description", "error", "errorMessages"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            if isinstance(value, str) and value:
                return value
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return None


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
