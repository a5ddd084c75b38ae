"""A live session falls back instead of dying, bounds the server's ``retry:``, and sessions
sharing a ledger never overspend it (issue 18, items 2, 3 and 7).

Against the tests' raw SSE server on loopback (:mod:`tests.support.sse_server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from enphase_battery import ApiError, EnphaseClient, InvalidRequestError
from enphase_battery.live import LiveBudget, LiveLedger, LiveSession
from enphase_battery.models.live import LiveFrame, LiveSource
from tests.support.sse_server import SYSTEM_ID, RawLiveServer, serve


@pytest.fixture
async def raw() -> AsyncIterator[tuple[RawLiveServer, EnphaseClient]]:
    async with serve() as pair:
        yield pair


async def first_frame(session: LiveSession, timeout: float = 10.0) -> LiveFrame:
    async def run() -> LiveFrame:
        async for frame in session:
            return frame
        raise AssertionError("the session ended without a frame")

    return await asyncio.wait_for(run(), timeout)


# -- item 2: a 5xx or an unlisted 4xx on connecting is a failure, not the end -----------


@pytest.mark.parametrize("status", [500, 502, 503, 464, 465, 470, 471])
async def test_error_statuses_on_connecting_retry_then_fall_back(
    raw: tuple[RawLiveServer, EnphaseClient], status: int
) -> None:
    server, client = raw
    for _ in range(3):
        server.add(status=status)
    async with client.live(
        SYSTEM_ID,
        budget=LiveBudget(total=10),
        fallback_interval_s=0.05,
        reconnect_backoff_s=0.01,
        cool_down_s=60,
    ) as session:
        frame = await first_frame(session)
        reason = session.stats.fallback_reason
    assert frame.source is LiveSource.LATEST
    assert len(server.connections) == 3  # retried, then fell back
    assert server.latest_requests == 1
    assert reason is not None
    assert "in a row" in reason


async def test_a_500_then_a_stream_recovers_with_the_default_back_off(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(status=500)
    server.add(b'data: {"data": {"battery_soc": 50}, "timestamp_epoch": 1780000000000}\n\n')
    async with client.live(SYSTEM_ID, budget=LiveBudget(total=10)) as session:
        frame = await first_frame(session)
    assert frame.source is LiveSource.LIVE
    assert len(server.connections) == 2


async def test_without_fallback_the_error_comes_after_the_retries(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    for _ in range(3):
        server.add(status=503)
    async with client.live(
        SYSTEM_ID, budget=LiveBudget(total=10), fallback=False, reconnect_backoff_s=0.01
    ) as session:
        with pytest.raises(ApiError) as caught:
            await first_frame(session)
    assert caught.value.status == 503
    assert len(server.connections) == 3
    assert server.latest_requests == 0


async def test_reconnect_backoff_is_validated(raw: tuple[RawLiveServer, EnphaseClient]) -> None:
    _server, client = raw
    for bad in (-1.0, float("nan"), 31.0):
        with pytest.raises(InvalidRequestError):
            client.live(SYSTEM_ID, budget=LiveBudget(total=1), reconnect_backoff_s=bad)


# -- item 3: the server's retry: is capped, and the fallback runs meanwhile ---------------


async def test_a_day_long_retry_field_is_capped_and_the_fallback_runs_meanwhile(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(b"retry: 86400000\n\n")  # no frame: a failed connection
    async with client.live(
        SYSTEM_ID, budget=LiveBudget(total=10), fallback_interval_s=0.05
    ) as session:
        frame = await first_frame(session, timeout=5.0)
        reason = session.stats.fallback_reason
    assert frame.source is LiveSource.LATEST
    assert len(server.connections) == 1
    # 30 s (MAX_RECONNECT_WAIT_S), not the 24 h the server asked for.
    assert reason == "reconnecting in 30 s after a failed live connection"


# -- item 7: a shared ledger is checked and charged in one step --------------------------


async def test_sessions_sharing_a_ledger_never_overspend_it(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    for _ in range(12):
        server.add(b"retry: 10\n\n")  # every connection fails: each session retries
    ledger = LiveLedger(LiveBudget(total=4))
    sessions = [client.live(SYSTEM_ID, ledger=ledger, fallback_interval_s=0.05) for _ in range(3)]
    try:
        frames = await asyncio.gather(*(first_frame(s) for s in sessions))
    finally:
        for session in sessions:
            await session.aclose()
    assert all(f.source is LiveSource.LATEST for f in frames)
    assert ledger.connections == 4
    assert len(server.connections) == 4
