"""The retry rules as pure logic: which failure is tried again, how often, within what budget."""

from __future__ import annotations

import time

import pytest

from enphase_battery import (
    ApiError,
    AuthenticationError,
    EnphaseConnectionError,
    QuotaExceededError,
    RateLimitError,
    ResponseFormatError,
)
from enphase_battery.exceptions import EnphaseError
from enphase_battery.http.retry import RetryPolicy

POLICY = RetryPolicy(max_retries=4, max_retry_time=120.0, write_retries=1)

DROPPED = EnphaseConnectionError("dropped after sending")
REFUSED = EnphaseConnectionError("refused", reached_server=False)
SERVER_ERROR = ApiError("boom", status=503)
BROKEN = ResponseFormatError("broken body", status=200)
MINUTE = RateLimitError("slow down", retry_after=2.0, period="minute")


def tries(err: EnphaseError, *, writes: bool, full_state: bool = False) -> int:
    """How many times a call failing with ``err`` every time is sent in all."""
    call = POLICY.new_call()
    call.start_clock()
    sent = 1
    while POLICY.wait_before_retry(err, call, writes=writes, full_state=full_state) is not None:
        sent += 1
    return sent


@pytest.mark.parametrize("err", [DROPPED, SERVER_ERROR, BROKEN, MINUTE])
def test_reads_are_retried_max_retries_times(err: EnphaseError) -> None:
    assert tries(err, writes=False) == 5


@pytest.mark.parametrize("err", [DROPPED, SERVER_ERROR])
def test_a_partial_write_that_may_have_been_applied_is_sent_once(err: EnphaseError) -> None:
    assert tries(err, writes=True) == 1
    assert tries(err, writes=True, full_state=True) == 2


@pytest.mark.parametrize("err", [REFUSED, MINUTE])
def test_a_write_the_server_cannot_have_applied_is_resent_write_retries_times(
    err: EnphaseError,
) -> None:
    assert tries(err, writes=True) == 2


def test_a_refused_connection_gets_one_short_retry() -> None:
    assert tries(REFUSED, writes=False) == 2
    call = POLICY.new_call()
    wait = POLICY.wait_before_retry(REFUSED, call, writes=False, full_state=False)
    assert wait is not None
    assert wait < 1.0


@pytest.mark.parametrize(
    "err",
    [
        QuotaExceededError("spent", period="month"),
        AuthenticationError("no", status=401),
        ApiError("bad range", status=422),
    ],
)
def test_final_errors_are_never_retried(err: EnphaseError) -> None:
    assert tries(err, writes=False) == 1


def test_no_wait_runs_past_the_budget() -> None:
    policy = RetryPolicy(max_retries=100, max_retry_time=1.0, write_retries=1)
    call = policy.new_call()
    call.start_clock()
    assert call.deadline is not None
    call.deadline = time.monotonic() + 0.5
    wait = policy.wait_before_retry(SERVER_ERROR, call, writes=False, full_state=False)
    assert wait is not None
    assert wait <= 0.25  # half of what is left, so the retry has time for its answer
    # A 429 whose reset lies beyond the budget surfaces now instead of waiting for it.
    late = RateLimitError("later", retry_after=5.0, period="minute")
    assert policy.wait_before_retry(late, call, writes=False, full_state=False) is None
    call.deadline = time.monotonic()
    assert policy.wait_before_retry(SERVER_ERROR, call, writes=False, full_state=False) is None


def test_transient_failures_wait_backoffs_exponential_series_with_full_jitter() -> None:
    """The waits come from ``backoff`` (0.5 s doubling, 30 s at most, full jitter): the
    n-th wait of a call lies in [0, step n], and across calls each step is reached."""
    policy = RetryPolicy(max_retries=12, max_retry_time=1e9, write_retries=0)
    steps = [min(30.0, 0.5 * 2**n) for n in range(12)]
    highest = [0.0] * 12
    for _ in range(400):
        call = policy.new_call()
        call.start_clock()
        for n in range(12):
            wait = policy.wait_before_retry(SERVER_ERROR, call, writes=False, full_state=False)
            assert wait is not None
            assert 0.0 <= wait <= steps[n]
            highest[n] = max(highest[n], wait)
    # Full jitter: the draws spread over the whole step (not a fixed fraction of it).
    assert all(high > 0.9 * step for high, step in zip(highest, steps, strict=True))
