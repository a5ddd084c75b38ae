"""Per-call overhead of the SDK for a week of battery telemetry (672 intervals).

A loopback ``aiohttp`` server serves one pre-serialized, realistic
``/telemetry/battery?granularity=week`` body.  Two ways of fetching it share one
``aiohttp.ClientSession`` (same connector, same keep-alive):

* bare: ``session.get(url, params=..., headers=...)`` then ``json.loads`` of the body;
* SDK: ``EnphaseClient.get_battery_telemetry``, i.e. the rate limiter (a high
  ``max_rate`` so it never waits), the monthly quota, the ``TokenManager``, the retry
  wrapper, error mapping and parsing into ``BatteryTelemetry`` models.

After a warm-up the two run interleaved, N calls each, and the script prints the median
and mean time per call, the SDK's overhead in microseconds, and the ratio.
Target: ratio <= 1.5x.

Run: ``.venv/bin/python benchmarks/bench_client.py [--calls N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web

from enphase_battery import EnphaseClient, OAuth2Token, RateLimits, TokenManager

SYSTEM_ID = 698905955
API_KEY = "bench-api-key"
ACCESS_TOKEN = "bench-access-token"
WEEK_START = 1716415200  # Thursday 2024-05-23 00:00 in America/Los_Angeles
INTERVALS = 672
TARGET_RATIO = 1.5


def week_body(seed: int = 7) -> bytes:
    """A realistic week of 15-minute battery intervals: charge from solar around midday,
    discharge in the evening and at night, SoC following, cloudy days and noise."""
    rng = random.Random(seed)
    intervals = []
    soc = 42.0
    capacity_wh = 10_080.0  # two IQ Battery 5P
    cloudiness = [rng.uniform(0.3, 1.0) for _ in range(7)]
    for i in range(INTERVALS):
        end_at = WEEK_START + (i + 1) * 900
        hour = ((i % 96) + 1) / 4
        day = i // 96
        charge = discharge = 0
        if 8 <= hour < 16:
            sun = math.sin(math.pi * (hour - 8) / 8) * cloudiness[day]
            charge = max(0, round(sun * 780 * rng.uniform(0.8, 1.1)))
        elif hour >= 17 or hour < 7:
            discharge = max(0, round(rng.gauss(210 if hour >= 17 else 95, 35)))
        if soc >= 99.5:
            charge = 0
        if soc <= 10.5:
            discharge = 0
        soc = min(100.0, max(10.0, soc + (charge * 0.96 - discharge) / capacity_wh * 100))
        reporting = 2 if rng.random() > 0.01 else 1
        intervals.append(
            {
                "end_at": end_at,
                "charge": {"enwh": charge, "devices_reporting": reporting},
                "discharge": {"enwh": discharge, "devices_reporting": reporting},
                "soc": {"percent": round(soc), "devices_reporting": 2},
            }
        )
    body = {
        "system_id": SYSTEM_ID,
        "granularity": "week",
        "total_devices": 2,
        "start_at": WEEK_START,
        "end_at": WEEK_START + INTERVALS * 900,
        "items": "intervals",
        "intervals": intervals,
        "last_reported_aggregate_soc": f"{round(soc)}%",
    }
    return json.dumps(body).encode()


async def serve(body: bytes) -> tuple[web.AppRunner, str]:
    async def telemetry(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v4/systems/{system_id}/telemetry/battery", telemetry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}"


async def main(calls: int, warmup: int) -> float:
    body = week_body()
    runner, base_url = await serve(body)
    start_at = datetime.fromtimestamp(WEEK_START, UTC)
    url = f"{base_url}/api/v4/systems/{SYSTEM_ID}/telemetry/battery"
    params = {"key": API_KEY, "start_at": str(WEEK_START), "granularity": "week"}
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}", "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession() as session:
        manager = TokenManager(
            client_id="bench-client",
            client_secret="bench-secret",
            token=OAuth2Token(
                access_token=ACCESS_TOKEN,
                refresh_token="bench-refresh",
                expires_at=datetime.now(UTC) + timedelta(days=1),
            ),
            token_url=base_url + "/oauth/token",
            session=session,
        )
        client = EnphaseClient(
            api_key=API_KEY,
            auth=manager,
            session=session,
            base_url=base_url,
            rate_limits=RateLimits(10_000_000, 1.0),
            timeout=30,
        )

        async def sdk() -> int:
            telemetry = await client.get_battery_telemetry(SYSTEM_ID, start_at, "week")
            return len(telemetry.intervals)

        async def bare() -> int:
            async with session.get(url, params=params, headers=headers, timeout=timeout) as r:
                r.raise_for_status()
                payload = json.loads(await r.read())
            return len(payload["intervals"])

        assert await sdk() == INTERVALS
        assert await bare() == INTERVALS
        for _ in range(warmup):
            await sdk()
            await bare()

        sdk_ns: list[int] = []
        bare_ns: list[int] = []
        order = [(sdk, sdk_ns), (bare, bare_ns)]
        perf = time.perf_counter_ns
        for i in range(calls):
            # Interleave, alternating which goes first, so drift hits both alike.
            for fn, sink in order if i % 2 == 0 else order[::-1]:
                started = perf()
                await fn()
                sink.append(perf() - started)

        await client.close()
        await manager.close()
    await runner.cleanup()

    sdk_us = statistics.median(sdk_ns) / 1000
    bare_us = statistics.median(bare_ns) / 1000
    ratio = sdk_us / bare_us
    print(
        f"week of battery telemetry: {INTERVALS} intervals, {len(body):,} bytes, {calls} calls each"
    )
    print(
        f"  bare aiohttp + json.loads : {bare_us:9.1f} us/call (median), "
        f"{statistics.fmean(bare_ns) / 1000:9.1f} mean"
    )
    print(
        f"  enphase_battery SDK       : {sdk_us:9.1f} us/call (median), "
        f"{statistics.fmean(sdk_ns) / 1000:9.1f} mean"
    )
    print(f"  SDK overhead              : {sdk_us - bare_us:9.1f} us/call")
    verdict = "OK" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"  ratio SDK / bare          : {ratio:9.2f}x   (target <= {TARGET_RATIO}x: {verdict})")
    return ratio


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=40, help="untimed calls per variant")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.warmup))
