"""The live stream's error codes and what the SDK does with each.

``live_data`` reports problems with codes of its own (fact sheet §7 [secondary]), as the
HTTP status of the answer or as an error event inside the stream; the SDK treats both
the same way, through :data:`LIVE_ERROR_CODES`, the one table to change.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ..exceptions import ApiError

__all__ = [
    "LIVE_ERROR_CODES",
    "GatewayNotReportingError",
    "LiveAction",
    "LiveBudgetExhaustedError",
    "LiveDataError",
    "LiveDurationError",
    "LiveServerError",
    "LiveUnsupportedError",
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


#: [secondary] code -> (exception, action, meaning).  461-463 are the three invalid-
#: duration codes (which one means what is not documented).
LIVE_ERROR_CODES: dict[int, _Code] = {
    461: _Code(LiveDurationError, LiveAction.RAISE, "invalid duration"),
    462: _Code(LiveDurationError, LiveAction.RAISE, "invalid duration"),
    463: _Code(LiveDurationError, LiveAction.RAISE, "invalid duration"),
    466: _Code(LiveUnsupportedError, LiveAction.FALL_BACK, "gateway firmware not supported"),
    472: _Code(LiveUnsupportedError, LiveAction.FALL_BACK, "live stream not supported"),
    473: _Code(GatewayNotReportingError, LiveAction.COOL_DOWN, "gateway not reporting"),
    550: _Code(LiveServerError, LiveAction.RETRY, "live service error"),
    551: _Code(LiveServerError, LiveAction.RETRY, "live service error"),
    552: _Code(LiveServerError, LiveAction.RETRY, "live service error"),
}


def live_error(code: int, detail: str | None = None, **where: Any) -> LiveDataError | None:
    """The typed error for a live error code, ``None`` when the code is not in the table."""
    spec = LIVE_ERROR_CODES.get(code)
    if spec is None:
        return None
    message = f"live_data {code}: {spec.meaning}" + (f" ({detail})" if detail else "")
    return spec.error(message, code=code, **where)


def action_for(error: BaseException) -> LiveAction:
    """What to do about ``error`` raised while opening or reading the stream."""
    if isinstance(error, LiveDataError) and error.code in LIVE_ERROR_CODES:
        return LIVE_ERROR_CODES[error.code].action
    return LiveAction.RETRY
