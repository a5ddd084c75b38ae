"""A dead, silent, slow, lying or flooding server, over real loopback HTTP.

The retry budget bounds a whole call; 429 waits are judged by the server's clock; error
messages stay short and clean; bodies are capped; unreachable hosts fail fast.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from email.utils import formatdate

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from enphase_battery import (
    ApiError,
    EnphaseClient,
    EnphaseConnectionError,
    InvalidRequestError,
    RateLimitError,
    RateLimits,
    ResponseFormatError,
    TokenManager,
)
from tests.support.clients import MakeClient, MakeManager
from tests.support.fake_api import API_KEY, ERRORS, SYSTEM_ID, FakeEnphase, Reply

GRID = f"/api/v4/systems/config/{SYSTEM_ID}/grid_status"
#: What a call may take beyond its budget: one event-loop turn, a connect, a jitter.
SLACK_S = 0.75


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the retry budget bounds the whole call (item 8) ------------------------------------


async def test_silent_server_call_ends_within_the_budget(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(timeout=30.0, max_retries=4, max_retry_time=1.0)
    fake.script("*", *[Reply(delay=60.0)] * 5)
    started = time.monotonic()
    with pytest.raises(EnphaseConnectionError, match="no answer"):
        await client.get_system_grid_status(SYSTEM_ID)
    assert time.monotonic() - started < 1.0 + SLACK_S


async def test_silent_token_endpoint_ends_within_the_token_budget(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-10, timeout=30.0, max_tries=4, max_retry_time=1.0)
    fake.token_delay = 60.0
    started = time.monotonic()
    with pytest.raises(EnphaseConnectionError):
        await manager.refresh()
    assert time.monotonic() - started < 1.0 + SLACK_S


async def test_slow_token_endpoint_is_bounded_by_the_call_and_its_token_kept(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-10, timeout=30.0, max_retry_time=30.0)
    client = make_client(auth=manager, max_retry_time=0.5)
    fake.token_delay = 1.0
    started = time.monotonic()
    with pytest.raises(EnphaseConnectionError, match="retry budget"):
        await client.get_system_grid_status(SYSTEM_ID)
    assert time.monotonic() - started < 0.5 + SLACK_S
    # The refresh was not cut off: its rotated refresh token is not lost.
    await asyncio.sleep(1.0)
    assert manager.refresh_count == 1
    assert manager.token is not None
    assert manager.token.refresh_token == fake.current_refresh
    assert (await client.get_system_grid_status(SYSTEM_ID)).system_id == SYSTEM_ID
    assert fake.grants == ["refresh_token"]


# -- 429 against the server's clock (item 9) ----------------------------------------------


async def test_429_period_end_is_judged_by_the_servers_clock(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    # The local clock is 2 h slow: period_end, on the server's clock, is 1 s away.
    server_now = time.time() + 7200
    body = {**ERRORS["429_minute"], "period_end": int(server_now) + 1}
    fake.script("*", Reply(429, body, headers={"Date": formatdate(server_now, usegmt=True)}))
    client = make_client(max_retry_time=10.0)
    started = time.monotonic()
    grid = await client.get_system_grid_status(SYSTEM_ID)
    assert grid.system_id == SYSTEM_ID
    assert time.monotonic() - started < 4.0
    assert len(fake.requests) == 2


async def test_429_minute_wait_is_capped_at_a_minute(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    # A server whose own clock and period_end disagree by hours.
    body = {**ERRORS["429_minute"], "period_end": int(time.time()) + 7200}
    fake.script("*", Reply(429, body))
    client = make_client(max_retry_time=5.0)
    with pytest.raises(RateLimitError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 60.0
    assert len(fake.requests) == 1


# -- error messages and body sizes (item 10) ------------------------------------------------


async def test_huge_error_details_are_cut_and_control_characters_stripped(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(max_retries=0)
    details = "\x1b]0;pwned\x07\x1b[2J" + "x" * 5_000_000
    fake.script("*", Reply(422, {"message": "Unprocessable", "details": details, "code": 422}))
    with pytest.raises(ApiError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    message = str(info.value)
    assert len(message) < 1000
    assert "\x1b" not in message
    assert "\x07" not in message
    assert message.startswith("HTTP 422: ")
    assert "more characters" in message


async def test_error_message_from_a_text_body_is_one_clean_line(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(max_retries=0)
    fake.script("*", Reply(502, text="bad\x1b[31m gateway\r\n\x07second line"))
    with pytest.raises(ApiError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    message = str(info.value)
    assert "\n" not in message
    assert "\x1b" not in message
    assert "\x07" not in message
    assert "gateway" in message


@pytest.fixture
async def flood() -> AsyncIterator[str]:
    """A server answering every request with an endless (or huge declared) body."""

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"[" + b"0," * 32767
        try:
            while True:
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def declared(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 500 * 1024 * 1024
        await response.prepare(request)
        await response.write(b"[")
        await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_get("/endless" + GRID, endless)
    app.router.add_get("/declared" + GRID, declared)
    server = TestServer(app)
    await server.start_server(access_log=None)
    yield str(server.make_url("/")).rstrip("/")
    await server.close()


@pytest.mark.parametrize("kind", ["endless", "declared"])
async def test_runaway_body_is_refused_at_16_mib(
    flood: str, kind: str, make_client: MakeClient
) -> None:
    async def provider() -> str:
        return "token"

    client = make_client(auth=provider, base_url=f"{flood}/{kind}", max_retries=0)
    started = time.monotonic()
    with pytest.raises(ResponseFormatError, match="16 MiB") as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.status == 200
    assert time.monotonic() - started < 3.0


# -- unreachable hosts fail fast (item 11) ---------------------------------------------------


async def test_refused_connection_fails_fast_on_the_watt_plan(make_client: MakeClient) -> None:
    # The Watt plan spaces requests 6 s apart; a request that never reached the server
    # must not wait for that spacing before its one short retry.
    client = make_client(
        base_url=f"http://127.0.0.1:{_refused_port()}",
        rate_limits=RateLimits.WATT,
        max_retries=4,
        max_retry_time=120.0,
    )
    started = time.monotonic()
    with pytest.raises(EnphaseConnectionError, match="cannot connect") as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert time.monotonic() - started < 1.5
    assert info.value.reached_server is False
    assert client.requests_sent == 2
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["notaurl", "ftp://example.com", "http://", "https://h:port"])
def test_invalid_base_url_is_refused_before_any_request(url: str) -> None:
    async def provider() -> str:
        return "token"

    with pytest.raises(InvalidRequestError, match="base_url"):
        EnphaseClient(api_key=API_KEY, auth=provider, base_url=url)


def test_invalid_token_url_is_refused_at_construction() -> None:
    with pytest.raises(InvalidRequestError, match="token_url"):
        TokenManager(client_id="id", client_secret="secret", token_url="notaurl")
