"""What the poller refuses: bogus intervals in an answer (an aiohttp fake API on loopback)
and a ``start_at`` outside what the API serves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enphase_battery import EnphaseClient, InvalidRequestError
from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.store.checkpoint import MemoryCheckpoint
from tests.support.clients import MakeClient
from tests.support.fake_api import SYSTEM_ID, FakeEnphase, Recorded, Reply
from tests.support.poller import HOUR, NO_WAIT, open_env

BATTERY_PATH = f"/api/v4/systems/{SYSTEM_ID}/telemetry/battery"
Y2056 = int(datetime(2056, 3, 1, tzinfo=UTC).timestamp())


def interval(end: int) -> dict[str, Any]:
    return {
        "end_at": end,
        "charge": {"enwh": 10, "devices_reporting": 2},
        "discharge": {"enwh": 0, "devices_reporting": 2},
        "soc": {"percent": 50, "devices_reporting": 2},
    }


def answer(start: int, end: int, ends: list[int]) -> Reply:
    return Reply(
        200,
        {
            "system_id": SYSTEM_ID,
            "granularity": "week",
            "total_devices": 2,
            "start_at": start,
            "end_at": end,
            "items": "intervals",
            "intervals": [interval(e) for e in ends],
        },
    )


async def until_idle(poller: TelemetryPoller) -> list[TelemetryInterval]:
    got: list[TelemetryInterval] = []
    while True:
        step = asyncio.ensure_future(anext(poller))
        idle = asyncio.ensure_future(poller.wait_idle())
        await asyncio.wait({step, idle}, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        if not step.done():
            step.cancel()
            await asyncio.wait({step})
            return got
        got.append(step.result())


async def test_intervals_outside_the_answers_window_are_dropped_and_never_move_the_watermark(
    fake: FakeEnphase, client: EnphaseClient, caplog: pytest.LogCaptureFixture
) -> None:
    now = int(time.time())
    now -= now % 900
    start = now - 4 * 3600
    seen: list[int] = []

    def first(req: Recorded) -> Reply:
        seen.append(int(req.query["start_at"]))
        good = [start + 900 * i for i in range(1, 5)]
        # 2056, a day ahead (inside the week asked for but past the answer's own end,
        # the server's "now"), and one before the window.
        return answer(start, start + 3600, [*good, Y2056, start + 86_400, start - 900])

    def second(req: Recorded) -> Reply:
        seen.append(int(req.query["start_at"]))
        begin = int(req.query["start_at"])
        return answer(begin, begin + 1800, [begin + 900, begin + 1800])

    fake.script(BATTERY_PATH, first, second)
    store = MemoryCheckpoint()
    poller = TelemetryPoller(
        client,
        SYSTEM_ID,
        encharges=(),
        start_at=datetime.fromtimestamp(start, UTC),
        checkpoint=store,
        poll_interval=3600,
        retry_wait_s=(0.0, 0.0),
    )
    with caplog.at_level(logging.WARNING):
        async with poller:
            got = await until_idle(poller)
            assert [int(iv.end_at.timestamp()) for iv in got] == [
                start + 900 * i for i in range(1, 5)
            ]
            assert store.states[f"{SYSTEM_ID}/battery"].watermark == start + 3600
            poller.poll_now()
            got += await until_idle(poller)
            await poller.commit()
    # The next poll asked from the last true interval, not from 2056.
    assert seen == [start, start + 3600]
    assert [int(iv.end_at.timestamp()) for iv in got][-2:] == [start + 4500, start + 5400]
    assert store.states[f"{SYSTEM_ID}/battery"].watermark == start + 5400
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dropped 3 interval(s)" in w and "2056-03-01" in w for w in warnings), warnings


@pytest.mark.parametrize(
    "offset",
    [timedelta(days=1), timedelta(days=30 * 365), -timedelta(days=731), -timedelta(days=3650)],
)
async def test_start_at_in_the_future_or_over_two_years_back_is_refused_before_any_request(
    fake: FakeEnphase, make_client: MakeClient, offset: timedelta
) -> None:
    client = make_client()
    start_at = datetime.now(UTC) + offset
    with pytest.raises(InvalidRequestError, match="two years back") as caught:
        TelemetryPoller(client, SYSTEM_ID, start_at=start_at)
    assert start_at.isoformat() in str(caught.value)
    assert fake.requests == []
    assert fake.token_requests == []


async def test_start_at_just_inside_two_years_is_accepted(make_client: MakeClient) -> None:
    client = make_client()
    poller = TelemetryPoller(client, SYSTEM_ID, start_at=datetime.now(UTC) - timedelta(days=729))
    await poller.aclose()


async def test_wait_idle_right_after_poll_now_waits_for_that_poll() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=sim.clock.now() - timedelta(hours=2),
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        got: list[TelemetryInterval] = []

        async def consume() -> None:
            async for interval in poller:
                got.append(interval)

        consumer = asyncio.create_task(consume())
        await poller.wait_idle()
        first, requests = len(got), poller.requests
        sim.clock.advance(timedelta(hours=1))
        poller.poll_now()
        await poller.wait_idle()  # at once: must wait for the poll just asked for
        assert poller.requests > requests
        assert len(got) >= first + 3 * 3  # an hour more of three streams, minus latency
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await poller.aclose()
