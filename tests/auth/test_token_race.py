"""Refreshes shared through one token store: single-flight across managers and processes.

Refresh tokens rotate (the old one dies on use), so two holders of one token file that
refresh at the same moment must not both present the same refresh token: the second
would get ``invalid_grant`` and the user would have to sign in again.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enphase_battery import AuthenticationError, FileTokenStore, OAuth2Token, TokenStore
from tests.support.cli import ROOT, SimulatorThread
from tests.support.clients import MakeManager, seeded_token
from tests.support.fake_api import FakeEnphase


def _expired(token: OAuth2Token) -> OAuth2Token:
    return OAuth2Token(
        access_token=token.access_token,
        refresh_token=token.refresh_token,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )


# -- in one process: two managers on one store -----------------------------------------


async def test_two_managers_on_one_store_refresh_once(
    fake: FakeEnphase, make_manager: MakeManager, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    assert isinstance(store, TokenStore)
    store.save_sync(seeded_token(fake, -60))
    # A slow token endpoint: without the store's lock both refreshes would be in flight.
    fake.token_delay = 0.3
    first = make_manager(token=store.load(), store=store)
    second = make_manager(token=store.load(), store=store)
    tokens = await asyncio.wait_for(
        asyncio.gather(first.access_token(), second.access_token()), timeout=10
    )
    assert len(fake.token_requests) == 1
    assert tokens[0] == tokens[1]
    assert first.refresh_count + second.refresh_count == 1
    saved = store.load()
    assert saved is not None
    assert saved.access_token == tokens[0]
    assert saved.refresh_token == fake.current_refresh
    assert first.token == second.token == saved


async def test_a_stale_stored_token_is_refreshed_with_its_own_refresh_token(
    fake: FakeEnphase, make_manager: MakeManager, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    old = seeded_token(fake, -60)
    other = make_manager(token=old, store=store)
    rotated = await other.refresh()
    # Hours later the other process's access token has expired too; this manager still
    # holds the refresh token that rotation killed.
    store.save_sync(_expired(rotated))
    behind = make_manager(token=old, store=store)
    access = await behind.access_token()
    (_, second) = fake.token_requests
    assert second.query["refresh_token"] == rotated.refresh_token
    saved = store.load()
    assert saved is not None
    assert saved.access_token == access
    assert saved.refresh_token == fake.current_refresh


async def test_a_manager_without_token_reads_the_store(
    fake: FakeEnphase, make_manager: MakeManager, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    fresh = seeded_token(fake, 3600)
    store.save_sync(fresh)
    manager = make_manager(token=None, store=store)
    assert await manager.access_token() == fresh.access_token
    assert fake.token_requests == []
    assert manager.refresh_count == 0


async def test_on_refresh_hook_may_use_the_client_and_the_store(
    fake: FakeEnphase, make_manager: MakeManager, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    seen: list[tuple[str, OAuth2Token | None]] = []

    async def hook(new: OAuth2Token) -> None:
        # Back into the manager and into the store's lock: neither may deadlock.
        access = await manager.access_token()
        async with store.lock():
            seen.append((access, store.load()))

    manager = make_manager(expires_in=-1, store=store, on_refresh=hook)
    token = await asyncio.wait_for(manager.refresh(), timeout=5)
    assert seen == [(token.access_token, token)]


async def test_a_dead_stored_refresh_token_is_not_echoed(
    fake: FakeEnphase, make_manager: MakeManager, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    dead = OAuth2Token(
        "dead-access-0123456789", "dead-refresh-0123456789", datetime(2000, 1, 1, tzinfo=UTC)
    )
    store.save_sync(dead)
    manager = make_manager(token=None, store=store)
    with pytest.raises(AuthenticationError) as info:
        await manager.access_token()
    # The fake echoes the refused refresh token in its error description.
    assert "dead-refresh-0123456789" not in str(info.value)
    assert "dead-refresh-0123456789" not in repr(info.value)


async def test_a_cancelled_lock_waiter_leaves_the_lock_usable(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    async with store.lock():
        waiter = asyncio.create_task(store.lock().__aenter__())
        await asyncio.sleep(0.1)
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with asyncio.timeout(5), store.lock():
        pass
    assert stat.S_IMODE(os.stat(store.lock_path).st_mode) == 0o600


# -- across processes: CLI runs on one token file ---------------------------------------


def test_cli_runs_sharing_a_token_file_refresh_once(tmp_path: Path) -> None:
    simulator = SimulatorThread(seed=5, systems=1, plan="partner", history=timedelta(days=1))
    try:
        sim = simulator.sim
        config = tmp_path / "config"
        token_path = config / "enphase-battery" / "token.json"
        # Both runs find an expired access token; the refresh token is the live one.
        FileTokenStore(token_path).save_sync(_expired(sim.token))

        def slow_token_endpoint() -> None:
            # Wide enough that, without the lock, both refreshes are in flight at once.
            sim.faults.include_token_endpoint = True
            sim.faults.set_latency(1.0, path="/oauth/token")

        simulator.call(slow_token_endpoint)
        env = {key: value for key, value in os.environ.items() if not key.startswith("ENPHASE_")}
        env.update(
            XDG_CONFIG_HOME=str(config),
            HOME=str(tmp_path / "home"),
            ENPHASE_API_KEY=sim.api_key,
            ENPHASE_CLIENT_ID=sim.client_id,
            ENPHASE_CLIENT_SECRET=sim.client_secret,
            ENPHASE_BASE_URL=sim.base_url,
            ENPHASE_TOKEN_URL=sim.token_url,
            ENPHASE_AUTHORIZE_URL=sim.authorize_url,
            ENPHASE_PLAN="partner",
        )
        start_at = time.time() + 4.0
        racers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.support.token_racer", str(start_at), "systems"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [racer.communicate(timeout=60) for racer in racers]
        for racer, (out, err) in zip(racers, results, strict=True):
            assert racer.returncode == 0, err
            assert str(sim.system_ids[0]) in out
        assert simulator.call(lambda: sim.token_grants["refresh_token"]) == 1
        saved = FileTokenStore(token_path).load()
        assert saved is not None
        assert saved.refresh_token != sim.token.refresh_token
        assert stat.S_IMODE(os.stat(token_path).st_mode) == 0o600
        # The file holds the live refresh token: the server still honours it.
        simulator.call(sim.oauth.refresh, saved.refresh_token)
        for out, err in results:
            for secret in (saved.access_token, saved.refresh_token, sim.client_secret):
                assert secret not in out + err
    finally:
        simulator.close()
