"""Which failures of an API call are retried, and how long to wait before each retry.

Transient failures (429, 5xx, timeouts, connection errors, a 2xx with a broken body) are
retried with ``backoff``; everything else, and anything wrapped in :class:`Final`, is
raised at once.
"""

from __future__ import annotations

import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import backoff

from .exceptions import (
    ApiError,
    EnphaseConnectionError,
    EnphaseError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)

__all__ = ["CALL_STARTED", "Final", "with_retries"]

_LOGGER = logging.getLogger("enphase_battery.client")
_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])

#: When the current public call started (monotonic), for the retry budget.
CALL_STARTED: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "enphase_battery_call_started", default=None
)


class Final(Exception):
    """Carries an error past ``backoff`` so that it is raised without a retry."""

    def __init__(self, error: EnphaseError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


def with_retries(attempt: _F, *, max_retries: int, max_retry_time: float) -> _F:
    """``attempt`` wrapped so that transient failures are retried within the bounds."""

    def giveup(err: Exception) -> bool:
        return _giveup(err, max_retry_time)

    wrapped: _F = backoff.on_exception(
        # backoff sends each failure into the generator (typeshed says it sends None).
        _retry_waits,  # type: ignore[arg-type]
        EnphaseError,
        max_tries=max_retries + 1,
        max_time=max_retry_time,
        giveup=giveup,
        jitter=None,
        on_backoff=_log_retry,
        logger=None,
    )(attempt)
    return wrapped


def _giveup(err: Exception, max_retry_time: float) -> bool:
    if isinstance(err, QuotaExceededError):
        return True
    if isinstance(err, RateLimitError):
        # A reset further away than what is left of the caller's bound surfaces now
        # rather than hang, or retry early and waste a request.
        if err.retry_after is None:
            return False
        started = CALL_STARTED.get()
        elapsed = time.monotonic() - started if started is not None else 0.0
        return err.retry_after > max_retry_time - elapsed
    if isinstance(err, EnphaseConnectionError | ResponseFormatError):
        return False
    return not (type(err) is ApiError and err.status is not None and err.status >= 500)


def _retry_waits() -> Generator[float | None, Exception | None, None]:
    """backoff wait generator: it is sent each failure and yields the next wait."""
    err = yield None
    attempt = 0
    while True:
        if isinstance(err, RateLimitError) and err.retry_after is not None:
            # The window resets at period_end; a little jitter keeps many clients
            # from arriving in the same instant.
            wait = err.retry_after + random.uniform(0.05, 0.5)
        else:
            wait = random.uniform(0, min(30.0, 0.5 * 2**attempt))
        attempt += 1
        err = yield wait


def _log_retry(details: Any) -> None:
    err = details.get("exception")
    _LOGGER.debug(
        "retrying after try %s (waiting %.2f s): %s: %s",
        details.get("tries"),
        details.get("wait") or 0.0,
        type(err).__name__,
        err,
    )
