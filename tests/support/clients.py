"""Fixtures: the fake v4 API served on 127.0.0.1 (:mod:`tests.support.fake_api`), and token
managers and clients pointed at it; ``seeded_token`` for tests that build their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from enphase_battery import EnphaseClient, OAuth2Token, RateLimits, TokenManager
from tests.support.fake_api import API_KEY, CLIENT_ID, CLIENT_SECRET, FakeEnphase

#: Fast enough that the limiter never slows a test (1 ms between requests), no monthly cap.
FAST = RateLimits(1000, 1.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeEnphase]:
    api = FakeEnphase()
    server = TestServer(api.app)
    # No access log: it would print the fake's request lines, key= and all.
    await server.start_server(access_log=None)
    api.base_url = str(server.make_url("/")).rstrip("/")
    yield api
    await server.close()


def seeded_token(fake: FakeEnphase, expires_in: float = 3600) -> OAuth2Token:
    """A token the fake has issued, as the SDK would hold it."""
    payload = fake.issue_token(expires_in=expires_in)
    return OAuth2Token(
        access_token=payload["access_token"],
        refresh_token=payload["refresh_token"],
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
    )


MakeManager = Callable[..., TokenManager]
MakeClient = Callable[..., EnphaseClient]


@pytest.fixture
async def make_manager(fake: FakeEnphase) -> AsyncIterator[MakeManager]:
    managers: list[TokenManager] = []

    def make(*, expires_in: float = 3600, token: Any = "seed", **kwargs: Any) -> TokenManager:
        if token == "seed":
            token = seeded_token(fake, expires_in)
        options: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token": token,
            "token_url": fake.token_url,
            "authorize_url": fake.base_url + "/oauth/authorize",
            "max_tries": 2,
            "max_retry_time": 1.0,
            "timeout": 5.0,
        }
        options.update(kwargs)
        manager = TokenManager(**options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        await manager.stop()


@pytest.fixture
async def make_client(fake: FakeEnphase, make_manager: MakeManager) -> AsyncIterator[MakeClient]:
    clients: list[EnphaseClient] = []

    def make(*, auth: Any = None, **kwargs: Any) -> EnphaseClient:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "auth": auth if auth is not None else make_manager(),
            "base_url": fake.base_url,
            "rate_limits": FAST,
            "timeout": 5.0,
            "max_retries": 2,
            "max_retry_time": 5.0,
        }
        options.update(kwargs)
        client = EnphaseClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def client(make_client: MakeClient) -> EnphaseClient:
    return make_client()
