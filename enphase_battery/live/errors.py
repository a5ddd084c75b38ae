"""The live stream's error codes and what the SDK does with each.

``live_data`` reports problems with codes of its own as HTTP responses whose JSON body is
the envelope ``{"error": {"code", "details": [...], "message", "status"},
"timestamp_epoch", "timestamp_utc", "type"}`` (fact sheet §8, the official spec).  Older
notes had them as error events inside the stream, and the SDK still accepts those; both
go through :data:`LIVE_ERROR_CODES`, the one table to change, and
:func:`envelope_error` reads the envelope.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from enphase_battery.exceptions import ApiError

__all__ = [
    "LIVE_ERROR_CODES",
    "GatewayNotReportingError",
    "LiveAction",
    "LiveBudgetExhaustedError",
    "LiveDataError",
    "LiveDurationError",
    "LiveServerError",
    "LiveUnsupportedError",
    "envelope_error",
    "live_error",
]


class LiveDataError(ApiError):
    """An error the live stream reported; ``code`` is its code (also ``status``)."""

    def __init__(self, message: str, *, code: int | None = None, **where: Any) -> None:
        where.setdefault("status", code)
        super().__init__(message, **where)
        self.code = code


class LiveDurationError(LiveDataError):
    """461-463: the server refused the ``duration`` (the SDK checks 30-300 s first)."""


class LiveUnsupportedError(LiveDataError):
    """466 / 472: this gateway cannot stream (firmware older than 6.0.0, or no support)."""


class GatewayNotReportingError(LiveDataError):
    """473: the gateway is not reporting now; live data may come back later."""


class LiveServerError(LiveDataError):
    """550-552: the live service failed on its side; worth another try."""


class LiveBudgetExhaustedError(LiveDataError):
    """The :class:`LiveBudget` allows no further connection (raised with ``fallback=False``)."""


class LiveAction(enum.Enum):
    """What a live session does about an error."""

    #: Give up live data for this session: poll ``latest_telemetry`` (or raise).
    FALL_BACK = "fall_back"
    #: Poll ``latest_telemetry`` for a while, then try live again.
    COOL_DOWN = "cool_down"
    #: Reconnect after a back-off; after a few failures in a row, cool down.
    RETRY = "retry"
    #: Raise: the request itself is wrong.
    RAISE = "raise"


@attrs.frozen
class _Code:
    error: type[LiveDataError]
    action: LiveAction
    meaning: str


#: [confirmed: fact sheet §8] code -> (exception, action, meaning).  Any other error
#: status on connecting (a 5xx, an unlisted 4xx) counts as a failed connection: retried
#: with back-off, then the session falls back.
LIVE_ERROR_CODES: dict[int, _Code] = {
    461: _Code(LiveDurationError, LiveAction.RAISE, "invalid duration: under 30 s"),
    462: _Code(LiveDurationError, LiveAction.RAISE, "invalid duration: over 300 s"),
    463: _Code(LiveDurationError, LiveAction.RAISE, "invalid duration: not an integer"),
    466: _Code(
        LiveUnsupportedError,
        LiveAction.FALL_BACK,
        "unsupported gateway (firmware below 6.0.0 or not active)",
    ),
    468: _Code(LiveDataError, LiveAction.RAISE, "invalid system id"),
    472: _Code(LiveUnsupportedError, LiveAction.FALL_BACK, "live stream not supported"),
    473: _Code(GatewayNotReportingError, LiveAction.COOL_DOWN, "gateway not reporting"),
    550: _Code(LiveServerError, LiveAction.RETRY, "live service unreachable"),
    551: _Code(LiveServerError, LiveAction.RETRY, "live service unreachable"),
    552: _Code(LiveServerError, LiveAction.RETRY, "live connection not established"),
}


def live_error(code: int, detail: str | None = None, **where: Any) -> LiveDataError | None:
    """The typed error for a live error code, ``None`` when the code is not in the table."""
    spec = LIVE_ERROR_CODES.get(code)
    if spec is None:
        return None
    message = f"live_data {code}: {spec.meaning}" + (f" ({detail})" if detail else "")
    return spec.error(message, code=code, **where)


def envelope_error(body: Any) -> tuple[int | None, str | None]:
    """``(code, words)`` of a ``live_data`` error envelope, ``(None, None)`` if ``body``
    is not one.  ``words`` joins the envelope's ``status``, ``message`` and ``details``."""
    if not isinstance(body, dict):
        return None, None
    inner = body.get("error")
    if not isinstance(inner, dict):
        return None, None
    code = inner.get("code")
    if isinstance(code, str) and code.isascii() and code.isdigit():
        code = int(code)
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    words: list[str] = []
    for key in ("status", "message", "details"):
        value = inner.get(key)
        values = value if isinstance(value, list) else [value]
        words.extend(str(v) for v in values[:5] if isinstance(v, str | int) and str(v))
    return code, "; ".join(words) or None


def action_for(error: BaseException) -> LiveAction:
    """What to do about ``error`` raised while opening or reading the stream."""
    if isinstance(error, LiveDataError) and error.code in LIVE_ERROR_CODES:
        return LIVE_ERROR_CODES[error.code].action
    return LiveAction.RETRY
