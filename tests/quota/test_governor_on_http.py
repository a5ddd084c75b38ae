"""The governor behind a real client on loopback HTTP: no overshoot, refunds, 429s."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from enphase_battery import EnphaseConnectionError, QuotaExceededError, RateLimits
from enphase_battery.quota.governor import QuotaGovernor
from tests.support.clients import MakeClient
from tests.support.fake_api import ERRORS, SYSTEM_ID, FakeEnphase, Reply


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_concurrent_calls_never_send_more_than_the_quota(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    # Regression: the quota used to be checked before the wait in the limiter, so every
    # waiting call passed the check and the client overshot the quota.
    client = make_client(rate_limits=RateLimits(200, 1.0, monthly_quota=20))
    results = await asyncio.gather(
        *(client.get_system_grid_status(SYSTEM_ID) for _ in range(60)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, QuotaExceededError)]
    assert len(fake.requests) == 20
    assert len(refused) == 40
    assert client.quota_used == 20


async def test_a_request_that_never_reached_the_server_costs_no_quota_and_no_spacing(
    make_client: MakeClient,
) -> None:
    # The Watt plan spaces requests 6 s apart and counts 1,000 a month.
    client = make_client(
        base_url=f"http://127.0.0.1:{_free_port()}", rate_limits=RateLimits.WATT, max_retries=2
    )
    started = time.monotonic()
    with pytest.raises(EnphaseConnectionError):
        await client.get_system_grid_status(SYSTEM_ID)
    # Two tries (a refused connection gets one short retry), no 6 s spacing between them.
    assert time.monotonic() - started < 5.0
    assert client.requests_sent == 2
    assert client.quota_used == 0


async def test_a_minute_429_is_not_counted(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client(rate_limits=RateLimits(1000, 1.0, monthly_quota=100))
    now = time.time()
    body = {**ERRORS["429_minute"], "period_start": now - 59.7, "period_end": now + 0.3}
    fake.script("*", Reply(429, body))
    await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 2
    assert client.quota_used == 1  # the server counted only the one it answered


async def test_two_clients_on_one_governor_share_the_plan(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    governor = QuotaGovernor(RateLimits(500, 1.0, monthly_quota=30))
    one = make_client(governor=governor)
    two = make_client(governor=governor)
    results = await asyncio.gather(
        *(c.get_system_grid_status(SYSTEM_ID) for _ in range(25) for c in (one, two)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 30
    assert len(fake.requests) == 30
    assert one.quota_used == two.quota_used == 30
