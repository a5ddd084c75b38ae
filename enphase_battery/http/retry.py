"""Which failures of an API call are retried, how often, and how long to wait between tries.

The rules (docs/concepts/errors.md, "Retries"):

* **reads** (GET) are retried on 429, 5xx, timeouts, dropped connections and 2xx answers
  whose body is broken, up to ``max_retries`` times;
* **writes** (PUT) are resent at most ``write_retries`` times, and only where the server
  cannot have applied them (the connection was refused or never opened, a 429) or where
  the write sets the whole state, so that applying it twice is the same as once.  A
  write that got any 2xx is never resent (the transport reads the state back instead);
* a request that never reached the server (connection refused, unknown host) is tried
  once more after a short pause at most: a dead host fails in about a second;
* ``max_retry_time`` bounds the whole call from its first send: every try's timeout is
  cut to what is left of it, and no wait runs past it.

The waits between tries come from ``backoff`` (:func:`jittered_waits`: its exponential
series, each step drawn with its full jitter), for API calls and token requests alike.
The API's loop itself stays in the transport rather than under ``backoff.on_exception``:
the decorator's own coroutine would be one more frame on every call's hot path (each
await passes through it), and the choice of wait depends on the error (a 429's reset
time, a refused connection's short pause) and on the call's budget, which are ours.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator

import attrs

from enphase_battery.exceptions import (
    ApiError,
    EnphaseConnectionError,
    EnphaseError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)

__all__ = ["CallState", "RetryPolicy", "jittered_waits"]

_LOGGER = logging.getLogger("enphase_battery.client")

#: Retries of a request that never reached the server (refused, unknown host).
CONNECT_RETRIES = 1
#: The shortest try worth starting: with less of the budget left, the call gives up.
MIN_TRY_S = 0.05
#: The API's waits between transient failures: 0.5 s doubling, 30 s at most (full jitter).
API_WAIT_FIRST_S = 0.5
API_WAIT_LONGEST_S = 30.0


def jittered_waits(first_s: float, longest_s: float | None = None) -> Iterator[float]:
    """Waits between tries: ``backoff``'s exponential series (``first_s`` doubling, up to
    ``longest_s``), each step drawn with its full jitter (uniform from 0 to the step)."""
    # Loaded with the first retry: a client whose calls succeed never pays for it.
    import backoff

    series = backoff.expo(factor=first_s, max_value=longest_s)
    next(series)  # backoff's generators are primed with a first send(None)
    return (backoff.full_jitter(step) for step in series)


@attrs.define
class CallState:
    """What one call has spent so far: tries, resent writes, and its deadline."""

    budget_s: float
    tries: int = 0
    resent_writes: int = 0
    connect_retries: int = 0
    #: ``time.monotonic()`` by which the call must end; set at its first send.
    deadline: float | None = None
    #: The call's exponential waits (made at its first transient failure).
    waits: Iterator[float] | None = None

    def start_clock(self) -> None:
        """Start the budget (at the first send; waiting for the governor is not counted)."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.budget_s

    def remaining(self) -> float:
        """Seconds left of the budget."""
        if self.deadline is None:
            return self.budget_s
        return self.deadline - time.monotonic()


@attrs.frozen
class RetryPolicy:
    """The retry bounds of a client: tries, resent writes and the time budget of a call."""

    max_retries: int
    max_retry_time: float
    write_retries: int

    def new_call(self) -> CallState:
        """The state of a new call."""
        return CallState(budget_s=self.max_retry_time)

    def wait_before_retry(
        self, err: EnphaseError, call: CallState, *, writes: bool, full_state: bool
    ) -> float | None:
        """Seconds to wait before trying ``call`` again after ``err``; ``None``: give up.

        ``writes``: the call changes the system; ``full_state``: it sets every field the
        operation takes, so applying it twice is the same as once.
        """
        call.tries += 1
        if call.tries > self.max_retries:
            return None
        wait = self._wait_for(err, call, writes=writes, full_state=full_state)
        if wait is None:
            return None
        left = call.remaining()
        if isinstance(err, RateLimitError) and err.retry_after is not None:
            # A reset further away than what is left of the budget surfaces now rather
            # than hang, or retry early and waste a request.
            if wait + MIN_TRY_S > left:
                return None
        elif wait > left / 2:
            # Cut the wait so that the retry still has half of what is left.
            if left / 2 < MIN_TRY_S:
                return None
            wait = left / 2
        if writes:
            call.resent_writes += 1
        return wait

    def _wait_for(
        self, err: EnphaseError, call: CallState, *, writes: bool, full_state: bool
    ) -> float | None:
        may_resend = call.resent_writes < self.write_retries
        if isinstance(err, QuotaExceededError):
            return None
        if isinstance(err, RateLimitError):
            # A 429 was refused, not applied: a write may go again.
            if writes and not may_resend:
                return None
            if err.retry_after is not None:
                # A little jitter keeps many clients from arriving in the same instant.
                return err.retry_after + random.uniform(0.05, 0.5)
            return self._backoff(call)
        if isinstance(err, EnphaseConnectionError) and not err.reached_server:
            if call.connect_retries >= CONNECT_RETRIES or (writes and not may_resend):
                return None
            call.connect_retries += 1
            return random.uniform(0.1, 0.5)
        transient = isinstance(err, EnphaseConnectionError | ResponseFormatError) or (
            type(err) is ApiError and err.status is not None and err.status >= 500
        )
        if not transient:
            return None
        if writes and not (full_state and may_resend):
            # The server may have applied it: only a write that sets the whole state
            # can safely go again.
            return None
        return self._backoff(call)

    @staticmethod
    def _backoff(call: CallState) -> float:
        if call.waits is None:
            call.waits = jittered_waits(API_WAIT_FIRST_S, API_WAIT_LONGEST_S)
        return next(call.waits)


def log_retry(err: EnphaseError, call: CallState, wait: float) -> None:
    """Log a retry at DEBUG (the error is already scrubbed of secrets)."""
    _LOGGER.debug(
        "retrying after try %s (waiting %.2f s): %s: %s",
        call.tries,
        wait,
        type(err).__name__,
        err,
    )
