"""LiveSession against a raw SSE server of the tests' own: cuts, comments, retry:, errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from enphase_battery import EnphaseClient, PermissionDeniedError, ResponseFormatError
from enphase_battery.live import (
    GatewayNotReportingError,
    LiveBudget,
    LiveBudgetExhaustedError,
    LiveDataError,
    LiveDurationError,
    LiveLedger,
    LiveServerError,
    LiveSession,
    LiveUnsupportedError,
)
from enphase_battery.models.live import LiveFrame, LiveSource
from tests.support.sse_server import (
    ABORT,
    LATEST_DISCHARGE_W,
    SYSTEM_ID,
    RawLiveServer,
    error_event,
    frame_event,
    serve,
)

BUDGET = LiveBudget(total=10)


@pytest.fixture
async def raw() -> AsyncIterator[tuple[RawLiveServer, EnphaseClient]]:
    async with serve() as pair:
        yield pair


async def take(session: LiveSession, count: int, timeout: float = 5.0) -> list[LiveFrame]:
    frames: list[LiveFrame] = []

    async def run() -> None:
        async for frame in session:
            frames.append(frame)
            if len(frames) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return frames


def session(client: EnphaseClient, **options: object) -> LiveSession:
    options.setdefault("budget", BUDGET)
    options.setdefault("fallback_interval_s", 0.05)
    return client.live(SYSTEM_ID, **options)  # type: ignore[arg-type]


async def test_frames_survive_awkward_chunks_comments_and_multiline_data(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(
        b": hello\n\nretry: 1500\n",
        b'id: a1\nevent: live_data\ndata: {"data": {"battery_soc": "87%",',
        0.02,
        b'\ndata: "battery_power": -2100.4, "battery_mode": "self-consumption",',
        b' "grid_status": "Off Grid", "envoy_serial_number": "1221"},\r\ndata: ',
        0.02,
        b'"timestamp_epoch": 1780000123456}\r\n\r',
        b"\n: keep-alive\n\n",
        frame_event(2, event_id="a2"),
    )
    async with session(client) as live:
        first, second = await take(live, 2)
        stats = live.stats
    assert first.source is LiveSource.LIVE
    assert first.battery_soc == 87
    assert first.battery_power == -2100
    assert first.battery_mode is not None
    assert first.battery_mode.value == "Self-consumption"
    assert first.grid_status is not None
    assert first.grid_status.value == "Off Grid"
    assert first.envoy_serial_numbers == ("1221",)
    assert first.timestamp == datetime.fromtimestamp(1780000123.456, UTC)
    assert first.event_id == "a1"
    assert second.pv_power == 3002
    assert second.event_id == "a2"
    assert stats.keepalives == 2


async def test_a_stream_cut_mid_event_loses_nothing_whole_and_reconnects_at_once(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(frame_event(1, event_id="e1"), b'id: e2\ndata: {"data": {"battery_s', ABORT)
    server.add(frame_event(3, event_id="e3"))
    async with session(client) as live:
        frames = await take(live, 2)
        stats = live.stats
    assert [f.pv_power for f in frames] == [3001, 3003]
    assert stats.cut_events == 1
    assert stats.connections == 2
    # The reconnect tells the server where it got to: the last complete event.
    assert server.connections[1].headers.get("Last-Event-ID") == "e1"


async def test_server_close_after_duration_reconnects_with_a_small_gap(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    for n in range(4):
        server.add(frame_event(n))
    async with session(client, duration_s=120) as live:
        await take(live, 4)
        stats = live.stats
    assert stats.connections == 4
    assert stats.reconnects == 3
    assert len(stats.reconnect_gaps_s) == 3
    # Each connection asked for the duration in the header the spec declares, only there.
    assert {c.headers.get("duration") for c in server.connections} == {"120"}
    assert all("duration" not in c.query for c in server.connections)
    assert all(c.headers.get("Accept") == "text/event-stream" for c in server.connections)


async def test_retry_field_is_the_wait_after_a_connection_that_brought_nothing(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(b"retry: 300\n\n")
    server.add(frame_event(1))
    async with session(client) as live:
        await take(live, 1)
    first, second = server.connections
    assert first.closed_at is not None
    assert second.opened_at - first.closed_at >= 0.25


@pytest.mark.parametrize("code", [466, 472])
async def test_unsupported_gateway_falls_back_to_latest_for_good(
    raw: tuple[RawLiveServer, EnphaseClient], code: int
) -> None:
    server, client = raw
    server.add(frame_event(1), error_event(code))
    async with session(client) as live:
        frames = await take(live, 4)
        stats = live.stats
    assert [f.source for f in frames] == [LiveSource.LIVE] + [LiveSource.LATEST] * 3
    latest = frames[1]
    assert latest.battery_power == LATEST_DISCHARGE_W
    assert latest.battery_mode is None  # latest_telemetry carries no profile
    assert latest.timestamp == datetime.fromtimestamp(1780000100, UTC)
    assert latest.battery_soc is None
    assert str(code) in (stats.fallback_reason or "")
    assert len(server.connections) == 1
    assert server.latest_requests == 3


@pytest.mark.parametrize("code", [466, 472])
async def test_unsupported_as_http_status_falls_back_too(
    raw: tuple[RawLiveServer, EnphaseClient], code: int
) -> None:
    server, client = raw
    server.add(status=code)
    async with session(client) as live:
        (frame,) = await take(live, 1)
    assert frame.source is LiveSource.LATEST


async def test_403_plan_falls_back_or_raises(raw: tuple[RawLiveServer, EnphaseClient]) -> None:
    server, client = raw
    server.add(status=403)
    server.add(status=403)
    async with session(client) as live:
        (frame,) = await take(live, 1)
        assert frame.source is LiveSource.LATEST
        assert "403" in (live.stats.fallback_reason or "")
    async with session(client, fallback=False) as live:
        with pytest.raises(PermissionDeniedError):
            await take(live, 1)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (461, LiveDurationError),
        (462, LiveDurationError),
        (463, LiveDurationError),
        (466, LiveUnsupportedError),
        (472, LiveUnsupportedError),
        (473, GatewayNotReportingError),
    ],
)
async def test_error_events_are_typed_without_fallback(
    raw: tuple[RawLiveServer, EnphaseClient], code: int, error: type[LiveDataError]
) -> None:
    server, client = raw
    server.add(error_event(code))
    async with session(client, fallback=False) as live:
        with pytest.raises(error) as caught:
            await take(live, 1)
    assert caught.value.code == code


async def test_invalid_duration_raises_even_with_fallback(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(status=462)
    async with session(client) as live:
        with pytest.raises(LiveDurationError):
            await take(live, 1)


async def test_gateway_not_reporting_cools_down_then_goes_live_again(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(error_event(473))
    server.add(frame_event(1))
    sources: list[LiveSource] = []
    async with session(client, cool_down_s=0.2) as live:

        async def until_live() -> None:
            async for frame in live:
                sources.append(frame.source)
                if frame.source is LiveSource.LIVE:
                    return

        await asyncio.wait_for(until_live(), 5)
    assert sources[0] is LiveSource.LATEST
    assert len(sources) >= 3  # polled through the cool-down
    assert len(server.connections) == 2


@pytest.mark.parametrize("code", [550, 551, 552])
async def test_server_side_errors_reconnect(
    raw: tuple[RawLiveServer, EnphaseClient], code: int
) -> None:
    server, client = raw
    server.add(b"retry: 10\n\n", error_event(code))
    server.add(frame_event(1))
    async with session(client) as live:
        (frame,) = await take(live, 1)
    assert frame.source is LiveSource.LIVE
    assert len(server.connections) == 2


async def test_repeated_server_errors_cool_down_or_raise(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    for _ in range(3):
        server.add(b"retry: 10\n\n", error_event(550))
    async with session(client, fallback=False) as live:
        with pytest.raises(LiveServerError):
            await take(live, 1)
    assert len(server.connections) == 3


async def test_a_minute_429_on_connecting_waits_for_the_window_then_reconnects(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(status=429)
    server.add(frame_event(1))
    async with session(client) as live:
        (frame,) = await take(live, 1)
    assert frame.source is LiveSource.LIVE
    first, second = server.connections
    assert first.closed_at is not None
    # period_end was one (whole) second ahead: not hammered, not abandoned.
    assert second.opened_at - first.closed_at >= 0.3


async def test_budget_spent_falls_back_and_counts_every_connection(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(frame_event(1))
    server.add(frame_event(2))
    async with session(client, budget=LiveBudget(total=2)) as live:
        frames = await take(live, 4)
        spend = live.spend
        stats = live.stats
    assert [f.source for f in frames] == [LiveSource.LIVE] * 2 + [LiveSource.LATEST] * 2
    assert len(server.connections) == 2
    assert spend.connections == 2
    assert str(spend.spent) == "0.20"
    assert spend.exhausted
    assert stats.fallback_reason == "live budget spent"
    async with session(client, budget=LiveBudget(total=0), fallback=False) as live:
        with pytest.raises(LiveBudgetExhaustedError):
            await take(live, 1)
    assert len(server.connections) == 2


async def test_live_resumes_when_the_hourly_budget_frees_up(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(frame_event(1))
    server.add(frame_event(2))
    clock = [1_780_000_000.0]
    ledger = LiveLedger(LiveBudget(per_hour=1), clock=lambda: clock[0])
    sources: list[LiveSource] = []
    async with client.live(SYSTEM_ID, ledger=ledger, fallback_interval_s=0.02) as live:

        async def run() -> None:
            async for frame in live:
                sources.append(frame.source)
                if sources.count(LiveSource.LATEST) == 3:
                    clock[0] += 3601  # the hour has passed
                if len(sources) > 3 and frame.source is LiveSource.LIVE:
                    return

        await asyncio.wait_for(run(), 5)
    assert sources[:4] == [LiveSource.LIVE, *[LiveSource.LATEST] * 3]
    assert sources[-1] is LiveSource.LIVE
    assert len(server.connections) == 2
    assert ledger.connections == 2


async def test_a_silent_stream_is_treated_as_dead(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(frame_event(1), 30.0)
    server.add(frame_event(2))
    async with session(client, idle_timeout_s=0.3) as live:
        frames = await take(live, 2)
    assert [f.pv_power for f in frames] == [3001, 3002]


async def test_aclose_and_cancel_close_the_connection(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(frame_event(1), 30.0)
    server.add(frame_event(1), 30.0)
    live = session(client)
    await take(live, 1)
    assert server.open_now == 1
    await live.aclose()
    await _until(lambda: server.open_now == 0)
    assert [f async for f in live] == []

    async def consume() -> None:
        async with session(client) as other:
            async for _frame in other:
                pass

    task = asyncio.create_task(consume())
    await _until(lambda: server.open_now == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until(lambda: server.open_now == 0)


async def test_a_non_stream_answer_is_a_format_error(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.content_type = "application/json"
    server.add(b'{"hello": 1}')
    async with session(client) as live:
        with pytest.raises(ResponseFormatError):
            await take(live, 1)


async def test_a_json_answer_with_a_live_code_is_that_error(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.content_type = "application/json"
    server.add(b'{"code": 472, "message": "Live stream not supported"}')
    async with session(client) as live:
        (frame,) = await take(live, 1)
    assert frame.source is LiveSource.LATEST
    assert "472" in (live.stats.fallback_reason or "")


async def test_bad_arguments_fail_before_any_request(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    from enphase_battery import InvalidRequestError

    with pytest.raises(InvalidRequestError):
        client.live(SYSTEM_ID)  # no budget: it costs money
    with pytest.raises(InvalidRequestError):
        client.live(SYSTEM_ID, budget=BUDGET, duration_s=20)
    with pytest.raises(InvalidRequestError):
        client.live(0, budget=BUDGET)
    with pytest.raises(InvalidRequestError):
        client.open_live_stream(SYSTEM_ID, duration_s=301)
    assert server.connections == []


async def test_stream_live_data_yields_one_connection(
    raw: tuple[RawLiveServer, EnphaseClient],
) -> None:
    server, client = raw
    server.add(frame_event(1), frame_event(2))
    frames = [f async for f in client.stream_live_data(SYSTEM_ID, duration_s=30)]
    assert [f.pv_power for f in frames] == [3001, 3002]
    server.add(frame_event(1), error_event(472))
    with pytest.raises(LiveUnsupportedError):
        async for _frame in client.stream_live_data(SYSTEM_ID):
            pass
    assert len(server.connections) == 2


async def _until(condition: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_no_secret_in_errors_or_debug_logs(
    raw: tuple[RawLiveServer, EnphaseClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, client = raw
    caplog.set_level(logging.DEBUG, logger="enphase_battery")
    server.add(frame_event(1), b'data: {"da', ABORT)
    server.add(status=472)
    async with session(client, fallback=False) as live:
        with pytest.raises(LiveUnsupportedError) as caught:
            await take(live, 5)
    texts = [caplog.text, str(caught.value), repr(caught.value), str(caught.value.body)]
    for secret in ("test-key", "test-access-token"):
        assert all(secret not in text for text in texts)
    # The connections did carry them: the check above is not vacuous.
    assert server.connections[0].query["key"] == "test-key"
