"""EnphaseClient.observe_requests: every try of every API request, as it ended, told to
the observers (what enphase-battery serve counts), over real loopback HTTP."""

from __future__ import annotations

import socket

import pytest

from enphase_battery import ApiError, EnphaseConnectionError
from enphase_battery.http.calls import RequestOutcome
from tests.support.clients import MakeClient
from tests.support.fake_api import ERRORS, SYSTEM_ID, FakeEnphase, Reply


async def test_each_try_is_told_with_its_status(fake: FakeEnphase, make_client: MakeClient) -> None:
    client = make_client()
    seen: list[RequestOutcome] = []
    client.observe_requests(seen.append)
    fake.script("*", Reply(503, text="Service Unavailable"))
    await client.get_system_battery_settings(SYSTEM_ID)
    op = "get_system_battery_settings"
    assert seen == [RequestOutcome(op, 503), RequestOutcome(op, 200)]


async def test_a_lasting_error_is_told_once_per_try(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    client = make_client(max_retries=2)
    seen: list[RequestOutcome] = []
    client.observe_requests(seen.append)
    fake.script("*", *[Reply(500, ERRORS["500"])] * 3)
    with pytest.raises(ApiError):
        await client.get_system_battery_settings(SYSTEM_ID)
    assert [o.status for o in seen] == [500, 500, 500]


async def test_no_answer_is_told_with_what_happened(make_client: MakeClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}", max_retries=1)
    seen: list[RequestOutcome] = []
    client.observe_requests(seen.append)
    with pytest.raises(EnphaseConnectionError):
        await client.get_system_battery_settings(SYSTEM_ID)
    assert len(seen) == 2
    assert all(o.status is None for o in seen)
    assert all(o.error is not None and "cannot connect" in o.error for o in seen)


async def test_stopping_and_a_failing_observer(
    fake: FakeEnphase, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    seen: list[RequestOutcome] = []
    stop = client.observe_requests(seen.append)

    def broken(outcome: RequestOutcome) -> None:
        raise RuntimeError("observer bug")

    client.observe_requests(broken)
    settings = await client.get_system_battery_settings(SYSTEM_ID)  # not failed by the bug
    assert settings.reserve_soc == 30
    assert "a request observer failed" in caplog.text
    stop()
    stop()  # twice is harmless
    await client.get_system_battery_settings(SYSTEM_ID)
    assert len(seen) == 1
