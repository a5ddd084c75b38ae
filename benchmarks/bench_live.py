"""Live data: SSE parsing speed, and the gap when a stream expires and is renewed.

1. **Frames per second parsed.**  A loopback ``aiohttp`` server writes N pre-built
   ``live_data`` events (the simulator's shape, with ``id:`` lines and a keep-alive
   comment every 10 events) as fast as the socket takes them.  Over the same bytes:

   * bare: ``async for line in response.content`` (aiohttp's line reader), counting
     ``data:`` lines; and the same plus ``loads`` of each (the SDK's JSON decoder, orjson
     when installed), the least a reader must do to get a frame's values;
   * SDK: :class:`SseDecoder` over ``iter_any()`` (events, like the bare line reader's
     lines), and the same plus :func:`frame_from_event` (the typed :class:`LiveFrame`),
     exactly what :class:`LiveSession` runs per chunk.

   Goal: at most 1.5x the bare line reader, for decoding alone, and for typed frames
   against the reader with and without ``loads``.

2. **Reconnect gap.**  A :class:`LiveSession` on the simulator with streams of 0.15 s
   (``duration`` 30 s x ``live_duration_scale`` 0.005) and a frame every 10 ms,
   reconnecting R times.  Printed: the gap from a stream's end to the next stream's
   answer (``stats.reconnect_gaps_s``) and from the last frame of one stream to the
   first of the next, p50 / p95 / max.  Goal: p95 <= 1 s on loopback.

Run: ``.venv/bin/python benchmarks/bench_live.py [--events N] [--reconnects R] [--smoke]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time

import aiohttp
from aiohttp import web
from benchtable import Row, emit, is_smoke

from enphase_battery import LiveBudget, RateLimits
from enphase_battery.http.sse import SseDecoder
from enphase_battery.live.frames import frame_from_event
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.util.json_decoder import BACKEND, loads

PARSE_TARGET = 1.5
GAP_TARGET_S = 1.0
SMOKE = is_smoke()
ROWS: list[Row] = []


def stream_body(events: int) -> bytes:
    parts = [b"retry: 1000\n\n"]
    for n in range(events):
        body = {
            "data": {
                "pv_power": 3000 + n % 500,
                "grid_power": -400 + n % 50,
                "battery_power": -1500 + n % 300,
                "battery_soc": 40 + n % 60,
                "battery_mode": "Self-consumption",
                "grid_status": "On Grid",
                "consumption_power": 1100 + n % 200,
                "generator_power": 0,
                "envoy_serial_number": ["122100800001"],
            },
            "timestamp_epoch": 1_780_000_000_000 + n * 1000,
            "type": "live_data",
        }
        parts.append(f"id: 1-{n}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode())
        if n % 10 == 9:
            parts.append(b": keep-alive\n\n")
    return b"".join(parts)


async def serve_bytes(body: bytes) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(body), 16_384):
            await response.write(body[i : i + 16_384])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/live", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/live"


async def bare_lines(session: aiohttp.ClientSession, url: str, decode: bool) -> int:
    frames = 0
    async with session.get(url) as response:
        async for line in response.content:
            if line.startswith(b"data:"):
                if decode:
                    loads(line[5:])
                frames += 1
    return frames


async def sdk_frames(session: aiohttp.ClientSession, url: str, typed: bool) -> int:
    frames = 0
    decoder = SseDecoder()
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                if not typed or frame_from_event(event) is not None:
                    frames += 1
    return frames


async def bench_parse(events: int, rounds: int) -> None:
    body = stream_body(events)
    runner, url = await serve_bytes(body)
    times: dict[str, list[float]] = {"bare": [], "bare+json": [], "sdk": [], "sdk+frames": []}
    try:
        async with aiohttp.ClientSession() as session:
            await sdk_frames(session, url, typed=True)  # warm-up
            for _ in range(rounds):
                for name in times:
                    started = time.perf_counter()
                    if name.startswith("sdk"):
                        count = await sdk_frames(session, url, typed=name == "sdk+frames")
                    else:
                        count = await bare_lines(session, url, decode=name == "bare+json")
                    times[name].append(time.perf_counter() - started)
                    assert count == events, (name, count)
    finally:
        await runner.cleanup()
    best = {name: min(values) for name, values in times.items()}
    print(f"SSE parsing, {events} events ({len(body) / 1e6:.1f} MB), best of {rounds}:")
    for name, seconds in best.items():
        print(f"  {name:<11} {events / seconds:>10,.0f} frames/s  ({seconds * 1000:.1f} ms)")
    pairs = (
        ("live: SSE events decoded vs aiohttp line reader", "sdk", "bare"),
        (f"live: typed frames vs line reader + {BACKEND} loads", "sdk+frames", "bare+json"),
        ("live: typed frames vs bare line reader", "sdk+frames", "bare"),
    )
    for figure, sdk, base in pairs:
        ratio = best[sdk] / best[base]
        print(f"  {figure}: {ratio:.2f}x")
        goal_op = "<="
        ROWS.append(
            Row(
                figure=figure,
                sdk=best[sdk] / events * 1e6,
                baseline=best[base] / events * 1e6,
                unit="us/frame",
                goal_op=goal_op,
                goal_value=PARSE_TARGET,
            )
        )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def bench_reconnect(reconnects: int) -> None:
    # Streams scaled to 0.15 s make the session warn that they closed early: expected here.
    logging.getLogger("enphase_battery.live.session").setLevel(logging.ERROR)
    async with EnphaseSimulator(
        seed=1, plan="partner", live_frame_period_s=0.01, live_duration_scale=0.005
    ) as sim:
        sim.live.retry_ms = None
        async with sim.make_client(rate_limits=RateLimits(100_000)) as client:
            system_id = sim.system_ids[0]
            frame_gaps: list[float] = []
            last_frame_at: float | None = None
            last_conn: str | None = None
            async with client.live(
                system_id, budget=LiveBudget(total=reconnects + 1), duration_s=30
            ) as live:
                async for frame in live:
                    now = time.perf_counter()
                    conn = (frame.event_id or "").split("-")[0]
                    if last_conn is not None and conn != last_conn and last_frame_at:
                        frame_gaps.append(now - last_frame_at)
                    if frame.source.value != "live":
                        break
                    last_frame_at, last_conn = now, conn
                gaps = list(live.stats.reconnect_gaps_s)
    print(f"Reconnect gap over {len(gaps)} reconnects (streams of 0.15 s, loopback):")
    for name, values in (("end -> next answer", gaps), ("last -> next frame", frame_gaps)):
        print(
            f"  {name:<20} p50 {statistics.median(values) * 1000:6.1f} ms"
            f"  p95 {percentile(values, 0.95) * 1000:6.1f} ms"
            f"  max {max(values) * 1000:6.1f} ms"
        )
    ROWS.append(
        Row(
            figure="live: reconnect gap p95, last frame -> next frame",
            sdk=percentile(frame_gaps, 0.95) * 1000,
            unit="ms",
            goal_op="<=",
            goal_value=GAP_TARGET_S * 1000,
            goal_on="sdk",
        )
    )
    ROWS.append(
        Row(
            figure="live: reconnect gap p95, stream end -> next answer",
            sdk=percentile(gaps, 0.95) * 1000,
            unit="ms",
            goal_op="<=",
            goal_value=GAP_TARGET_S * 1000,
            goal_on="sdk",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500 if SMOKE else 20_000)
    parser.add_argument("--rounds", type=int, default=1 if SMOKE else 5)
    parser.add_argument("--reconnects", type=int, default=5 if SMOKE else 100)
    parser.add_argument("--smoke", action="store_true", help="a few iterations only")
    args = parser.parse_args()
    asyncio.run(bench_parse(args.events, args.rounds))
    asyncio.run(bench_reconnect(args.reconnects))
    emit(ROWS, smoke=SMOKE)


if __name__ == "__main__":
    main()
