"""Per-call cost of the SDK against a bare ``aiohttp`` call of the same URL.

A loopback ``aiohttp`` server serves pre-serialized, realistic bodies:

* a week of battery telemetry (``/telemetry/battery?granularity=week``, 672 intervals,
  about 115 KB);
* a small configuration call (``/systems/config/{id}/battery_settings``).

Two ways of fetching each share one ``aiohttp.ClientSession`` (same connector, same
keep-alive):

* bare: ``session.get(url, params=..., headers=...)``, ``json.loads`` of the body, then
  reading every field a consumer would (each interval's end time, charge, discharge and
  SoC; each setting);
* SDK: the ``EnphaseClient`` method (rate limiter with a ``max_rate`` that never waits,
  monthly quota, ``TokenManager``, retry wrapper, error mapping, parsing into the frozen
  models), then reading the same fields from the models.

Nothing is cached between calls on either side.  After a warm-up the two run
interleaved, N calls each, and the figure is the median time per call.  The SDK runs once
per JSON decoder, each in its own process (``ENPHASE_BATTERY_JSON=orjson`` and
``=stdlib``), always against the same baseline: bare ``aiohttp`` + ``json.loads``.

Goals: the week <= 1.2x with orjson (``enphase-battery[speed]``), <= 1.45x with the
standard library alone; the configuration call <= 1.1x.

Run: ``.venv/bin/python benchmarks/bench_client.py [--calls N] [--smoke]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from benchtable import Row, emit, is_smoke

from enphase_battery import EnphaseClient, OAuth2Token, RateLimits, TokenManager

SYSTEM_ID = 698905955
API_KEY = "bench-api-key"
ACCESS_TOKEN = "bench-access-token"
WEEK_START = 1716415200  # Thursday 2024-05-23 00:00 in America/Los_Angeles
INTERVALS = 672
GOALS = {("week", "orjson"): 1.2, ("week", "stdlib"): 1.45}
CONFIG_GOAL = 1.1
WEEK_FIGURE = "client: week of telemetry (672 intervals)"
SETTINGS_FIGURE = "client: battery settings (config call)"
SETTINGS_BODY = json.dumps(
    {
        "system_id": SYSTEM_ID,
        "battery_mode": "Self - Consumption",
        "reserve_soc": 30,
        "energy_independence": "enabled",
        "charge_from_grid": "disabled",
        "battery_shutdown_level": 10,
    }
).encode()


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


async def serve(week: bytes) -> tuple[web.AppRunner, str]:
    async def telemetry(request: web.Request) -> web.Response:
        return web.Response(body=week, content_type="application/json")

    async def settings(request: web.Request) -> web.Response:
        return web.Response(body=SETTINGS_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v4/systems/{system_id}/telemetry/battery", telemetry)
    app.router.add_get("/api/v4/systems/config/{system_id}/battery_settings", settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def _interleaved(
    sdk: Callable[[], Awaitable[Any]], bare: Callable[[], Awaitable[Any]], calls: int, warmup: int
) -> tuple[float, float]:
    """Median microseconds per call of ``sdk`` and ``bare``."""
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
    return statistics.median(sdk_ns) / 1000, statistics.median(bare_ns) / 1000


async def measure(calls: int, warmup: int, profile: bool = False) -> dict[str, Any]:
    """Both cases with whichever decoder this process's SDK uses.

    ``profile``: first run ``calls`` SDK week calls under cProfile and print the top
    entries (by own time) on stderr.
    """
    from enphase_battery.util import json_decoder as _json

    week = week_body()
    runner, base_url = await serve(week)
    start_at = datetime.fromtimestamp(WEEK_START, UTC)
    telemetry_url = f"{base_url}/api/v4/systems/{SYSTEM_ID}/telemetry/battery"
    settings_url = f"{base_url}/api/v4/systems/config/{SYSTEM_ID}/battery_settings"
    telemetry_params = {"key": API_KEY, "start_at": str(WEEK_START), "granularity": "week"}
    settings_params = {"key": API_KEY}
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}", "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    results: dict[str, Any] = {"backend": _json.BACKEND, "week_bytes": len(week)}

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

        async def sdk_week() -> int:
            telemetry = await client.get_battery_telemetry(SYSTEM_ID, start_at, "week")
            read = [
                (i.end_at, i.charge.enwh, i.discharge.enwh, i.soc.percent)
                for i in telemetry.intervals
            ]
            return len(read)

        async def bare_week() -> int:
            async with session.get(
                telemetry_url, params=telemetry_params, headers=headers, timeout=timeout
            ) as r:
                r.raise_for_status()
                payload = json.loads(await r.read())
            read = [
                (i["end_at"], i["charge"]["enwh"], i["discharge"]["enwh"], i["soc"]["percent"])
                for i in payload["intervals"]
            ]
            return len(read)

        async def bare_week_same_decoder() -> int:
            # The same bare call decoding with the SDK's own decoder: what is left is the
            # SDK's own work (mostly building 672 frozen intervals).
            async with session.get(
                telemetry_url, params=telemetry_params, headers=headers, timeout=timeout
            ) as r:
                r.raise_for_status()
                payload = _json.loads(await r.read())
            read = [
                (i["end_at"], i["charge"]["enwh"], i["discharge"]["enwh"], i["soc"]["percent"])
                for i in payload["intervals"]
            ]
            return len(read)

        async def sdk_settings() -> tuple[Any, ...]:
            s = await client.get_system_battery_settings(SYSTEM_ID)
            return (
                s.system_id,
                s.battery_mode,
                s.reserve_soc,
                s.energy_independence,
                s.charge_from_grid,
                s.battery_shutdown_level,
            )

        async def bare_settings() -> tuple[Any, ...]:
            async with session.get(
                settings_url, params=settings_params, headers=headers, timeout=timeout
            ) as r:
                r.raise_for_status()
                s = json.loads(await r.read())
            return (
                s["system_id"],
                s["battery_mode"],
                s["reserve_soc"],
                s["energy_independence"],
                s["charge_from_grid"],
                s["battery_shutdown_level"],
            )

        assert await sdk_week() == INTERVALS
        assert await bare_week() == INTERVALS
        assert (await sdk_settings())[2] == (await bare_settings())[2] == 30
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                await sdk_week()
            profiler.disable()
            print("== week of telemetry", file=sys.stderr)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                await sdk_settings()
            profiler.disable()
            print("== battery settings", file=sys.stderr)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        results["week"] = await _interleaved(sdk_week, bare_week, calls, warmup)
        if _json.BACKEND != "stdlib":
            results["week_same_decoder"] = await _interleaved(
                sdk_week, bare_week_same_decoder, calls, warmup
            )
        results["settings"] = await _interleaved(sdk_settings, bare_settings, calls, warmup)
        await client.close()
        await manager.close()
    await runner.cleanup()
    return results


def _run_child(backend: str, calls: int, warmup: int) -> dict[str, Any]:
    env = {**os.environ, "ENPHASE_BATTERY_JSON": backend}
    command = [sys.executable, __file__, "--child", "--calls", str(calls), "--warmup", str(warmup)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=40, help="untimed calls per variant")
    parser.add_argument("--smoke", action="store_true", help="a few calls only")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the SDK's week calls (cProfile, top entries) with this process's decoder",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    smoke = is_smoke()
    calls, warmup = (5, 2) if smoke else (args.calls, args.warmup)
    if args.child or args.profile:
        print(json.dumps(asyncio.run(measure(calls, warmup, profile=args.profile))))
        return
    rows: list[Row] = []
    for backend in ("orjson", "stdlib"):
        if backend == "orjson" and importlib.util.find_spec("orjson") is None:
            for figure in (WEEK_FIGURE, SETTINGS_FIGURE):
                rows.append(
                    Row(
                        f"{figure}, orjson",
                        None,
                        "us/call",
                        note="orjson not installed (pip install 'enphase-battery[speed]')",
                    )
                )
            continue
        result = _run_child(backend, calls, warmup)
        week_sdk, week_bare = result["week"]
        settings_sdk, settings_bare = result["settings"]
        print(
            f"SDK decoding with {result['backend']}: {INTERVALS} intervals "
            f"({result['week_bytes']:,} bytes) and battery settings, {calls} calls each"
        )
        print(f"  week      SDK {week_sdk:9.1f} us  bare {week_bare:9.1f} us  (median)")
        print(f"  settings  SDK {settings_sdk:9.1f} us  bare {settings_bare:9.1f} us  (median)")
        rows.append(
            Row(
                f"{WEEK_FIGURE}, {backend}",
                week_sdk,
                "us/call",
                baseline=week_bare,
                goal_op="<=",
                goal_value=GOALS["week", backend],
                note="baseline: bare aiohttp + json.loads",
            )
        )
        if "week_same_decoder" in result:
            same_sdk, same_bare = result["week_same_decoder"]
            print(f"  week      SDK {same_sdk:9.1f} us  bare+{backend} {same_bare:9.1f} us")
            rows.append(
                Row(
                    f"{WEEK_FIGURE}, {backend} on both sides",
                    same_sdk,
                    "us/call",
                    baseline=same_bare,
                    note=f"baseline: bare aiohttp + {backend}; no goal, for the record",
                )
            )
        rows.append(
            Row(
                f"{SETTINGS_FIGURE}, {backend}",
                settings_sdk,
                "us/call",
                baseline=settings_bare,
                goal_op="<=",
                goal_value=CONFIG_GOAL,
                note="baseline: bare aiohttp + json.loads",
            )
        )
    emit(rows, smoke=smoke)


if __name__ == "__main__":
    main()
