"""The simulator's own CPU per telemetry request: a week of one stream.

Fleet benchmarks run thousands of simulated systems; they measure the SDK only if the
simulator answers cheaply.  A timing middleware, the outermost of the simulator's
``aiohttp`` application, reads the thread's CPU clock around everything the simulator
does for a request (fault checks, credentials, plan limits, the handler, building and
encoding the JSON body); ``aiohttp``'s own HTTP parsing and writing are outside it.  The
handlers never wait on anything, so nothing else runs inside that span.

Two streams, a week (672 intervals) each, 2 % of intervals arriving late so the
visibility checks have work to do:

* the system battery (``/telemetry/battery``, two Encharges summed);
* one Encharge (``/devices/encharges/{serial}/telemetry``).

Goal: <= 2 ms of simulator CPU per request.

Run: ``.venv/bin/python benchmarks/bench_simulator.py [--requests N] [--smoke]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
from aiohttp import web
from benchtable import Row, emit, is_smoke

from enphase_battery.simulator import EnphaseSimulator

GOAL_MS = 2.0


async def measure(requests: int) -> dict[str, float]:
    """Median simulator CPU (ms) per request, per stream."""
    sim = EnphaseSimulator(
        seed=11,
        systems=1,
        encharges=2,
        history=timedelta(days=10),
        late_probability=0.02,
        plan="unlimited",  # no 429s: every timed request is a full week
    )
    cpu_ns: list[int] = []

    @web.middleware
    async def timing(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        began = time.thread_time_ns()
        response = await handler(request)
        cpu_ns.append(time.thread_time_ns() - began)
        return response

    sim.app.middlewares.insert(0, timing)
    medians: dict[str, float] = {}
    async with sim:
        system_id = sim.system_ids[0]
        serial = sim.encharge_serials(system_id)[0]
        start = str(sim.clock.epoch() - 8 * 86_400)
        api = f"{sim.base_url}/api/v4/systems/{system_id}"
        streams = {
            "battery": f"{api}/telemetry/battery",
            "encharge": f"{api}/devices/encharges/{serial}/telemetry",
        }
        params = {"key": sim.api_key, "start_at": start, "granularity": "week"}
        headers = {"Authorization": f"Bearer {sim.token.access_token}"}
        async with aiohttp.ClientSession() as session:
            for name, url in streams.items():
                async with session.get(url, params=params, headers=headers) as response:
                    body = await response.json()
                    assert response.status == 200, body
                    assert len(body["intervals"]) >= 660, len(body["intervals"])
                cpu_ns.clear()
                for _ in range(requests):
                    async with session.get(url, params=params, headers=headers) as response:
                        await response.read()
                        assert response.status == 200, response.status
                medians[name] = statistics.median(cpu_ns) / 1e6
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per stream")
    parser.add_argument("--smoke", action="store_true", help="a few requests only")
    args = parser.parse_args()
    smoke = is_smoke()
    medians = asyncio.run(measure(3 if smoke else args.requests))
    for name, ms in medians.items():
        print(f"  {name:<9} stream, a week: {ms:6.3f} ms simulator CPU per request (median)")
    emit(
        [
            Row(
                "simulator: a week, battery stream (2 Encharges)",
                medians["battery"],
                "ms CPU",
                goal_op="<=",
                goal_value=GOAL_MS,
                goal_on="sdk",
            ),
            Row(
                "simulator: a week, one Encharge stream",
                medians["encharge"],
                "ms CPU",
                goal_op="<=",
                goal_value=GOAL_MS,
                goal_on="sdk",
            ),
        ],
        smoke=smoke,
    )


if __name__ == "__main__":
    main()
