"""Writes (PUT) over real loopback HTTP: never applied twice, counted on the server side.

A write that got any 2xx is never sent again; a write is resent at most
``write_retries`` times, and only where the server cannot have applied it (refused
connection, 429) or where it sets the whole state.
"""

from __future__ import annotations

import socket
import time

import pytest

from enphase_battery import (
    ApiError,
    BatteryMode,
    EnphaseClient,
    EnphaseConnectionError,
    InvalidRequestError,
    ResponseFormatError,
)
from tests.support.clients import MakeClient
from tests.support.fake_api import ERRORS, SYSTEM_ID, FakeEnphase, Recorded, Reply

CONFIG = f"/api/v4/systems/config/{SYSTEM_ID}"
SETTINGS = f"{CONFIG}/battery_settings"
STORM = f"{CONFIG}/storm_guard"


def puts(fake: FakeEnphase, path: str) -> list[Recorded]:
    return [r for r in fake.requests_to(path) if r.method == "PUT"]


def gets(fake: FakeEnphase, path: str) -> list[Recorded]:
    return [r for r in fake.requests_to(path) if r.method == "GET"]


def applied_then(fake: FakeEnphase, reply: Reply) -> object:
    """A scripted handler: the fake applies the write, then answers ``reply``."""

    def handler(req: Recorded) -> Reply:
        fake.apply(req)
        return reply

    return handler


async def test_applied_write_with_unreadable_answer_is_read_back_not_resent(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    fake.script(SETTINGS, applied_then(fake, Reply(200, text="<html>proxy error</html>")))
    settings = await client.update_system_battery_settings(SYSTEM_ID, reserve_soc=55)
    assert settings.reserve_soc == 55
    assert len(puts(fake, SETTINGS)) == 1
    assert len(gets(fake, SETTINGS)) == 1
    assert fake.state["battery_settings"]["reserve_soc"] == 55


async def test_applied_write_whose_answer_is_cut_short_is_read_back(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    fake.script(STORM, applied_then(fake, Reply(200, text='{"system_id": 1, "storm_gu')))
    storm = await client.update_system_storm_guard(SYSTEM_ID, False)
    assert storm.storm_guard_status is False
    assert len(puts(fake, STORM)) == 1


async def test_applied_write_whose_read_back_fails_says_it_was_applied(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    fake.script(
        SETTINGS,
        applied_then(fake, Reply(200, text="{broken")),
        *[Reply(500, ERRORS["500"])] * 5,
    )
    with pytest.raises(ResponseFormatError, match="the write was applied") as info:
        await client.update_system_battery_settings(SYSTEM_ID, battery_mode=BatteryMode.FULL_BACKUP)
    assert info.value.method == "PUT"
    assert len(puts(fake, SETTINGS)) == 1
    assert len(gets(fake, SETTINGS)) == client.max_retries + 1


async def test_partial_write_dropped_after_sending_is_not_resent(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    await client.get_system_battery_settings(SYSTEM_ID)  # a keep-alive connection to reuse
    fake.script(SETTINGS, *[Reply(drop=True)] * 10)
    with pytest.raises(EnphaseConnectionError):
        await client.update_system_battery_settings(SYSTEM_ID, reserve_soc=40)
    # Neither the client nor aiohttp itself sent it again: the server may have applied it.
    assert len(puts(fake, SETTINGS)) == 1


async def test_partial_write_answered_500_is_not_resent(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    fake.script(SETTINGS, *[Reply(500, ERRORS["500"])] * 5)
    with pytest.raises(ApiError) as info:
        await client.update_system_battery_settings(SYSTEM_ID, reserve_soc=40)
    assert info.value.status == 500
    assert len(puts(fake, SETTINGS)) == 1


async def test_full_state_write_is_resent_once_after_a_drop(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    fake.script(STORM, Reply(drop=True))
    storm = await client.update_system_storm_guard(SYSTEM_ID, False)
    assert storm.storm_guard_status is False
    assert len(puts(fake, STORM)) == 2


async def test_full_state_write_is_resent_at_most_write_retries_times(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(max_retries=4)
    assert client.write_retries == 1
    fake.script(STORM, *[Reply(drop=True)] * 3)  # a third try would get one more drop
    with pytest.raises(EnphaseConnectionError):
        await client.update_system_storm_guard(SYSTEM_ID, True)
    assert len(puts(fake, STORM)) == 2
    fake.clear_scripts()  # the unused drop

    never = make_client(max_retries=4, write_retries=0)
    fake.script(STORM, Reply(503, text="unavailable"))
    with pytest.raises(ApiError):
        await never.update_system_storm_guard(SYSTEM_ID, True)
    assert len(puts(fake, STORM)) == 3


async def test_write_refused_with_429_is_sent_again(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    fake.script(SETTINGS, Reply(429, ERRORS["429_bare"]))
    settings = await client.update_system_battery_settings(SYSTEM_ID, reserve_soc=65)
    assert settings.reserve_soc == 65
    assert len(puts(fake, SETTINGS)) == 2


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_write_to_a_refused_port_is_tried_twice_and_fails_fast(
    make_client: MakeClient,
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{_refused_port()}", max_retries=4)
    started = time.monotonic()
    with pytest.raises(EnphaseConnectionError, match="cannot connect") as info:
        await client.update_system_battery_settings(SYSTEM_ID, reserve_soc=40)
    assert info.value.reached_server is False
    assert client.requests_sent == 2
    assert time.monotonic() - started < 2.0


def test_write_retries_must_be_a_non_negative_int(fake: FakeEnphase) -> None:
    async def provider() -> str:
        return "token"

    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidRequestError, match="write_retries"):
            EnphaseClient(api_key="k", auth=provider, write_retries=bad)  # type: ignore[arg-type]
