"""OAuth2 against the fake token endpoint: requests, refresh, rotation, persistence."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from enphase_battery import (
    AuthenticationError,
    EnphaseClient,
    FileTokenStore,
    InvalidRequestError,
    OAuth2Token,
    TokenManager,
)
from enphase_battery.auth.manager import DEFAULT_REDIRECT_URI
from tests.support.clients import MakeClient, MakeManager, seeded_token
from tests.support.fake_api import (
    ACCESS_PREFIX,
    AUTH_CODE,
    CLIENT_ID,
    CLIENT_SECRET,
    ERRORS,
    SYSTEM_ID,
    FakeEnphase,
    Reply,
)
from tests.support.fake_api import basic_header as fake_basic_header

GRID = f"/api/v4/systems/config/{SYSTEM_ID}/grid_status"


def basic_header() -> str:
    return fake_basic_header(CLIENT_ID, CLIENT_SECRET)


# -- token requests as the real API wants them -----------------------------------------


async def test_refresh_request_shape(fake: FakeEnphase, make_manager: MakeManager) -> None:
    manager = make_manager()
    old = manager.token
    assert old is not None
    new = await manager.refresh()
    (rec,) = fake.token_requests
    assert rec.method == "POST"
    assert rec.path == "/oauth/token"
    assert rec.query == {"grant_type": "refresh_token", "refresh_token": old.refresh_token}
    assert rec.body == b""
    assert rec.headers["Authorization"] == basic_header()
    assert new.access_token != old.access_token
    assert new.refresh_token == fake.current_refresh
    assert manager.token == new
    assert manager.refresh_count == 1


async def test_token_from_response(fake: FakeEnphase, make_manager: MakeManager) -> None:
    manager = make_manager()
    before = datetime.now(UTC)
    token = await manager.refresh()
    after = datetime.now(UTC)
    assert before + timedelta(seconds=86393) <= token.expires_at
    assert token.expires_at <= after + timedelta(seconds=86393)
    assert token.expires_at.tzinfo is not None
    assert token.token_type == "bearer"
    assert token.scope == "read write"


async def test_rotation_uses_the_new_refresh_token(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    manager = make_manager()
    first = await manager.refresh()
    second = await manager.refresh()  # the fake refuses the previous refresh token
    assert fake.token_requests[1].query["refresh_token"] == first.refresh_token
    assert second.refresh_token == fake.current_refresh


async def test_exchange_code(fake: FakeEnphase, make_manager: MakeManager) -> None:
    seen: list[OAuth2Token] = []

    async def on_refresh(token: OAuth2Token) -> None:
        seen.append(token)

    manager = make_manager(token=None, on_refresh=on_refresh)
    token = await manager.exchange_code(AUTH_CODE, redirect_uri="https://example.test/cb")
    (rec,) = fake.token_requests
    assert rec.method == "POST"
    assert rec.query == {
        "grant_type": "authorization_code",
        "code": AUTH_CODE,
        "redirect_uri": "https://example.test/cb",
    }
    assert rec.body == b""
    assert rec.headers["Authorization"] == basic_header()
    assert manager.token == token
    assert seen == [token]


async def test_exchange_code_default_redirect(fake: FakeEnphase, make_manager: MakeManager) -> None:
    manager = make_manager(token=None)
    await manager.exchange_code(AUTH_CODE)
    assert fake.token_requests[0].query["redirect_uri"] == DEFAULT_REDIRECT_URI


async def test_exchange_bad_code(fake: FakeEnphase, make_manager: MakeManager) -> None:
    manager = make_manager(token=None)
    with pytest.raises(AuthenticationError):
        await manager.exchange_code("not-the-code")
    with pytest.raises(InvalidRequestError):
        await manager.exchange_code("")
    assert len(fake.token_requests) == 1
    assert manager.token is None


def test_authorization_url() -> None:
    manager = TokenManager(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    url = manager.authorization_url("https://example.test/cb?x=1", state="st4te")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "api.enphaseenergy.com",
        "/oauth/authorize",
    )
    query = parse_qs(parts.query)
    assert query == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": ["https://example.test/cb?x=1"],
        "state": ["st4te"],
    }
    assert CLIENT_SECRET not in url
    default = parse_qs(urlsplit(manager.authorization_url()).query)
    assert default["redirect_uri"] == [DEFAULT_REDIRECT_URI]


def test_manager_rejects_bad_credentials() -> None:
    with pytest.raises(InvalidRequestError):
        TokenManager(client_id="", client_secret=CLIENT_SECRET)
    with pytest.raises(InvalidRequestError):
        TokenManager(client_id="a:b", client_secret=CLIENT_SECRET)


async def test_token_endpoint_500_is_retried(fake: FakeEnphase, make_manager: MakeManager) -> None:
    manager = make_manager(max_tries=2, max_retry_time=5.0)
    fake.token_script.append(Reply(500, {"error": "server_error"}))
    token = await manager.refresh()
    assert len(fake.token_requests) == 2
    assert token.refresh_token == fake.current_refresh


async def test_no_token_raises(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    client = make_client(auth=make_manager(token=None))
    with pytest.raises(AuthenticationError, match="sign in"):
        await client.get_system_grid_status(SYSTEM_ID)
    assert fake.requests == []
    assert fake.token_requests == []


# -- refresh through the client ----------------------------------------------------------


async def test_expired_token_is_refreshed_before_the_call(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    client = make_client(auth=make_manager(expires_in=-1))
    await client.get_system_grid_status(SYSTEM_ID)
    assert fake.grants == ["refresh_token"]
    (rec,) = fake.requests
    assert rec.bearer == f"{ACCESS_PREFIX}0002"


async def test_a_token_about_to_expire_is_refreshed_before_the_call(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    # Valid for another 2 minutes: inside the default 5-minute skew, so it is stale.
    client = make_client(auth=make_manager(expires_in=120))
    await client.get_system_grid_status(SYSTEM_ID)
    assert fake.grants == ["refresh_token"]
    assert fake.requests[-1].bearer == f"{ACCESS_PREFIX}0002"


async def test_changing_refresh_skew_applies_to_the_current_token(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=600)
    client = make_client(auth=manager)
    await client.get_system_grid_status(SYSTEM_ID)
    assert fake.grants == []  # 10 minutes left, 5 minutes of skew: fresh
    manager.refresh_skew = timedelta(minutes=15)
    await client.get_system_grid_status(SYSTEM_ID)
    assert fake.grants == ["refresh_token"]
    assert fake.requests[-1].bearer == f"{ACCESS_PREFIX}0002"
    assert manager.refresh_skew == timedelta(minutes=15)


async def test_50_concurrent_calls_refresh_once(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    fake.token_delay = 0.05  # every caller arrives while the refresh is in flight
    client = make_client(auth=make_manager(expires_in=-30))
    results = await asyncio.gather(*(client.get_system_grid_status(SYSTEM_ID) for _ in range(50)))
    assert len(results) == 50
    assert len(fake.token_requests) == 1
    assert len(fake.requests) == 50
    assert {rec.bearer for rec in fake.requests} == {f"{ACCESS_PREFIX}0002"}


async def test_401_on_valid_token_refreshes_once_and_retries(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client()
    fake.script(GRID, Reply(401, ERRORS["401"]))
    grid = await client.get_system_grid_status(SYSTEM_ID)
    assert grid.system_id == SYSTEM_ID
    assert fake.grants == ["refresh_token"]
    first, second = fake.requests
    assert first.bearer == f"{ACCESS_PREFIX}0001"
    assert second.bearer == f"{ACCESS_PREFIX}0002"


async def test_second_401_raises_authentication_error(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client()
    fake.script(GRID, Reply(401, ERRORS["401"]), Reply(401, ERRORS["401"]))
    with pytest.raises(AuthenticationError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.status == 401
    assert len(fake.requests) == 2  # a third try would have succeeded
    assert len(fake.token_requests) == 1


async def test_concurrent_401s_refresh_once(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client()
    fake.revoke_access_tokens()  # the server refuses the token the client believes valid
    results = await asyncio.gather(*(client.get_system_grid_status(SYSTEM_ID) for _ in range(10)))
    assert len(results) == 10
    assert len(fake.token_requests) == 1


async def test_dead_refresh_token(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-1)
    fake.issue_token()  # someone else rotated it: ours is dead (400 invalid_grant)
    client = make_client(auth=manager)
    with pytest.raises(AuthenticationError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert "sign in again" in str(info.value)
    assert "invalid_grant" in str(info.value)
    assert info.value.status == 400
    assert fake.requests == []
    assert len(fake.token_requests) == 1  # not retried


async def test_401_then_dead_refresh_token(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client()
    fake.script(GRID, Reply(401, ERRORS["401"]))
    fake.token_script.append(Reply(400, ERRORS["invalid_grant"]))
    with pytest.raises(AuthenticationError, match="sign in again"):
        await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 1


async def test_on_refresh_is_awaited_before_the_new_token_is_used(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    async def on_refresh(token: OAuth2Token) -> None:
        await asyncio.sleep(0.05)  # a slow disk: nothing may use the token meanwhile
        fake.events.append(("hook", token.access_token))

    client = make_client(auth=make_manager(expires_in=-1, on_refresh=on_refresh))
    await asyncio.gather(*(client.get_system_grid_status(SYSTEM_ID) for _ in range(5)))
    new = f"{ACCESS_PREFIX}0002"
    assert fake.events[:3] == [
        ("issued", f"{ACCESS_PREFIX}0001"),
        ("issued", new),
        ("hook", new),
    ]
    assert fake.events[3:] == [("request", new)] * 5


async def test_on_refresh_failure_propagates_but_keeps_token(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    calls = 0

    async def on_refresh(token: OAuth2Token) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")

    manager = make_manager(expires_in=-1, on_refresh=on_refresh)
    client = make_client(auth=manager)
    with pytest.raises(OSError, match="disk full"):
        await client.get_system_grid_status(SYSTEM_ID)
    assert fake.requests == []
    # The rotated token is kept in memory: the next call needs no refresh.
    await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.token_requests) == 1
    assert fake.requests[0].bearer == f"{ACCESS_PREFIX}0002"


async def test_reentrant_on_refresh_does_not_deadlock(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager
) -> None:
    holder: list[EnphaseClient] = []
    inner: list[object] = []

    async def on_refresh(token: OAuth2Token) -> None:
        # A hook that calls back into the client (e.g. to log the site's state).
        inner.append(await holder[0].get_system_grid_status(SYSTEM_ID))

    manager = make_manager(expires_in=-1, on_refresh=on_refresh)
    client = make_client(auth=manager)
    holder.append(client)
    outer = await asyncio.wait_for(client.get_system_grid_status(SYSTEM_ID), timeout=5)
    assert outer.system_id == SYSTEM_ID
    assert len(inner) == 1
    assert len(fake.token_requests) == 1
    assert [rec.bearer for rec in fake.requests] == [f"{ACCESS_PREFIX}0002"] * 2


async def test_reentrant_refresh_in_hook(fake: FakeEnphase, make_manager: MakeManager) -> None:
    manager: TokenManager

    async def on_refresh(token: OAuth2Token) -> None:
        assert await manager.access_token() == token.access_token
        assert await manager.refresh() == token

    manager = make_manager(expires_in=-1, on_refresh=on_refresh)
    token = await asyncio.wait_for(manager.refresh(), timeout=5)
    assert len(fake.token_requests) == 1
    assert manager.token == token


async def test_file_store_as_on_refresh(
    fake: FakeEnphase, make_client: MakeClient, make_manager: MakeManager, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    manager = make_manager(expires_in=-1, on_refresh=store.save)
    client = make_client(auth=manager)
    await client.get_system_grid_status(SYSTEM_ID)
    stored = store.load()
    assert stored is not None
    assert stored.refresh_token == fake.current_refresh
    assert stored == manager.token


# -- a host-owned token provider -----------------------------------------------------


async def test_async_token_provider(fake: FakeEnphase, make_client: MakeClient) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return "HOST-TOKEN-1"

    fake.accept_access_token("HOST-TOKEN-1")
    client = make_client(auth=provider)
    grid = await client.get_system_grid_status(SYSTEM_ID)
    assert grid.system_id == SYSTEM_ID
    assert calls == 1
    assert fake.requests[0].bearer == "HOST-TOKEN-1"
    assert fake.token_requests == []


async def test_async_token_provider_401_asks_again(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    tokens = iter(["HOST-TOKEN-OLD", "HOST-TOKEN-NEW"])

    async def provider() -> str:
        return next(tokens)

    fake.accept_access_token("HOST-TOKEN-NEW")
    client = make_client(auth=provider)
    await client.get_system_grid_status(SYSTEM_ID)
    assert [rec.bearer for rec in fake.requests] == ["HOST-TOKEN-OLD", "HOST-TOKEN-NEW"]


async def test_async_token_provider_same_token_401(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    async def provider() -> str:
        return "HOST-TOKEN-REVOKED"

    client = make_client(auth=provider)
    with pytest.raises(AuthenticationError):
        await client.get_system_grid_status(SYSTEM_ID)
    assert len(fake.requests) == 1


def test_auth_must_be_callable() -> None:
    with pytest.raises(InvalidRequestError):
        EnphaseClient(api_key="k", auth="a-static-token")  # type: ignore[arg-type]


# -- the background refresher -------------------------------------------------------------


async def test_background_refresher_refreshes_ahead_of_expiry(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=2.5, refresh_skew=timedelta(seconds=1))
    old = manager.token
    assert old is not None
    async with manager:
        deadline = time.monotonic() + 5
        while not fake.token_requests and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert len(fake.token_requests) == 1
    assert fake.token_requests[0].at < old.expires_at.timestamp()
    assert manager.token is not None
    assert manager.token.access_token != old.access_token


async def test_background_refresher_short_lived_tokens_no_storm(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    fake.token_lifetime = 2  # every token lives 2 s (a simulator, say)
    manager = make_manager(expires_in=2)
    async with manager:
        await asyncio.sleep(1.6)
    # About one refresh per quarter lifetime (~4 here), not a loop hammering the endpoint.
    assert 1 <= len(fake.token_requests) <= 6


async def test_background_refresher_closes_its_session(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-1)
    async with manager:
        await manager.access_token()
        session = manager._session
        assert session is not None
        assert not session.closed
    assert session.closed


async def test_manager_keeps_a_callers_session(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    async with aiohttp.ClientSession() as session:
        manager = make_manager(expires_in=-1, session=session)
        async with manager:
            await manager.access_token()
        assert not session.closed


async def test_background_refresher_stops_on_dead_token(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-1)
    fake.issue_token()  # ours is dead now
    async with manager:
        await asyncio.sleep(0.3)
        assert not manager._refresher.running
    assert len(fake.token_requests) == 1


# -- FileTokenStore ------------------------------------------------------------------


def _token(n: int = 1) -> OAuth2Token:
    return OAuth2Token(
        access_token=f"a-{n}",
        refresh_token=f"r-{n}",
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        scope="read write",
    )


def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "nested" / "token.json")
    assert store.load() is None
    store.save_sync(_token(1))
    assert store.load() == _token(1)
    store.save_sync(_token(2))
    assert store.load() == _token(2)
    assert sorted(p.name for p in (tmp_path / "nested").iterdir()) == ["token.json"]
    data = json.loads((tmp_path / "nested" / "token.json").read_text())
    assert data["refresh_token"] == "r-2"


async def test_file_store_async_save(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    await store.save(_token(3))
    assert store.load() == _token(3)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_store_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    path.write_text("{}")
    path.chmod(0o644)  # a pre-existing, too open file is replaced by a private one
    FileTokenStore(path).save_sync(_token())
    assert _mode(path) == 0o600


def test_file_store_mode_0600_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "token.json"
        FileTokenStore(path).save_sync(_token())
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_file_store_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        calls.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    path = tmp_path / "token.json"
    FileTokenStore(path).save_sync(_token())
    ((src, dst),) = calls
    assert dst == str(path)
    assert Path(src).parent == tmp_path  # same directory: rename is atomic
    assert not Path(src).exists()


def test_file_store_failure_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token.json"
    store = FileTokenStore(path)
    store.save_sync(_token(1))

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.save_sync(_token(2))
    assert store.load() == _token(1)
    assert [p.name for p in tmp_path.iterdir()] == ["token.json"]


def test_file_store_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    path.write_text("not json")
    with pytest.raises(InvalidRequestError):
        FileTokenStore(path).load()
    path.write_text('{"access_token": "a"}')
    with pytest.raises(InvalidRequestError):
        FileTokenStore(path).load()


def test_token_repr_hides_secrets(fake: FakeEnphase) -> None:
    token = seeded_token(fake)
    for text in (repr(token), str(token)):
        assert token.access_token not in text
        assert token.refresh_token not in text
    manager = TokenManager(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token=token)
    assert CLIENT_SECRET not in repr(manager)
    assert token.access_token not in repr(manager)
    assert repr(FileTokenStore("/tmp/x.json")) == "FileTokenStore('/tmp/x.json')"


def test_token_requires_aware_expiry() -> None:
    with pytest.raises(InvalidRequestError):
        OAuth2Token(access_token="a", refresh_token="r", expires_at=datetime(2030, 1, 1))


# -- which credential was refused (issue 8, item 13) ----------------------------------------


async def test_wrong_client_secret_says_so_and_not_sign_in_again(
    fake: FakeEnphase, make_manager: MakeManager
) -> None:
    manager = make_manager(expires_in=-10, client_secret="not-the-secret")
    with pytest.raises(AuthenticationError) as info:
        await manager.refresh()
    assert info.value.credential == "client_secret"
    assert "client secret" in str(info.value)
    assert "auth login" not in str(info.value)
    assert "not-the-secret" not in str(info.value)
    assert len(fake.token_requests) == 1


async def test_wrong_api_key_is_named_and_costs_no_token_refresh(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(api_key="WRONG-api-key-5678")
    with pytest.raises(AuthenticationError) as info:
        await client.get_system_grid_status(SYSTEM_ID)
    assert info.value.credential == "api_key"
    assert "API key" in str(info.value)
    assert "WRONG-api-key-5678" not in str(info.value)
    # Refreshing the token cannot fix a wrong key (and would rotate it for nothing).
    assert fake.grants == []
    assert len(fake.requests) == 1
