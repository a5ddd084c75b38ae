"""Where a fleet's streams start (issue 17, item 2), on the simulator over loopback HTTP.

Without ``start_at`` every stream of a system starts at the system's current day, as the
API's day window answers it: the battery stream at its first poll, and each Encharge at
the same place whether it is listed before or after that poll, and across restarts.
Counted against the simulator's ground truth: nothing lost, nothing repeated.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enphase_battery import (
    EnphaseClient,
    FleetPoller,
    MemoryCheckpoint,
    QuotaGovernor,
    SqliteCheckpoint,
    TelemetryInterval,
)
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.store.checkpoint import CheckpointStore
from tests.support.cli import Run, SimulatorThread
from tests.support.fleet import consume, fleet_simulator, until
from tests.support.poller import HOUR, NO_WAIT, Driver, open_env

#: No system's local midnight (Los Angeles, New York, Amsterdam, Sydney) within 5 hours:
#: "the current day" is the same day for every poll of a test.
START = datetime(2026, 6, 1, 17, 0, tzinfo=UTC)

#: (system_id, source) -> end times (epoch seconds) delivered.
Delivered = dict[tuple[int, str], list[int]]


def delivered(rows: Iterable[tuple[int, str, int, int]]) -> Delivered:
    """``(system_id, source, end, revision)`` rows by stream; no row twice (a revision of
    a partial interval is another row, its first emission is revision 0)."""
    rows = list(rows)
    repeated = [key for key, n in Counter(rows).items() if n > 1]
    assert not repeated, f"delivered twice: {repeated[:5]}"
    by_stream: Delivered = defaultdict(list)
    for system_id, source, end, revision in rows:
        if revision == 0:
            by_stream[(system_id, source)].append(end)
    return by_stream


async def check_same_start(
    sim: EnphaseSimulator, store: CheckpointStore, got: Delivered, system_ids: Iterable[int]
) -> int:
    """Each Encharge starts where its system's battery stream started, and every interval
    of it from there to its saved watermark came out (once: see :func:`delivered`).
    Returns how many Encharge intervals were checked."""
    checked = 0
    for system_id in system_ids:
        battery = got.get((system_id, "battery"))
        assert battery, f"system {system_id}: no battery interval"
        began = min(battery) - 900
        for serial in sim.encharge_serials(system_id):
            state = await store.load(f"{system_id}/{serial}")
            assert state is not None, f"{system_id}/{serial} was never started"
            mine = set(got.get((system_id, serial), ()))
            truth = [t.end_at for t in sim.ground_truth_encharge(system_id, serial, began, 2e9)]
            truth = [end for end in truth if end <= state.watermark]
            lost = sorted(set(truth) - mine)
            assert not lost, (
                f"{system_id}/{serial}: {len(lost)} of {len(truth)} intervals from the"
                f" battery stream's start never delivered (first {lost[:3]})"
            )
            assert mine, f"{system_id}/{serial}: nothing delivered"
            assert min(mine) == began + 900, (system_id, serial)
            checked += len(truth)
    return checked


async def consume_until_settled(
    poller: FleetPoller, sink: list[TelemetryInterval], streams: int, deadline_s: float = 120.0
) -> None:
    """Store every interval in ``sink`` until the fleet is idle with no problem and every
    system follows ``streams`` streams with data delivered (a back-off leaves the fleet
    idle before that: its retry is due later)."""

    async def take() -> None:
        async for interval in poller:
            sink.append(interval)

    def settled() -> bool:
        return not poller.problems and all(
            (p := poller.progress_of(s)).streams == streams and p.newest_delivered is not None
            for s in poller.system_ids
        )

    async with poller:
        consumer = asyncio.ensure_future(take())
        try:
            async with asyncio.timeout(deadline_s):
                while True:
                    idle = asyncio.ensure_future(poller.wait_idle())
                    done, _ = await asyncio.wait(
                        {consumer, idle}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if consumer in done:
                        consumer.result()
                        raise AssertionError("the poller stopped")
                    if settled():
                        return
                    await asyncio.sleep(0.05)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)


def start_client(sim: EnphaseSimulator) -> EnphaseClient:
    """A client on the simulator's clock that does not retry: an injected 503 is a failed
    poll the fleet backs off from (so the Encharges may be listed before it)."""
    limits = sim.limiter.limits
    assert limits is not None
    governor = QuotaGovernor(limits, clock=sim.clock)
    return sim.make_client(governor=governor, max_retry_time=30.0, max_retries=0)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 1000),
    # Per system: failed first polls of its battery stream.  None: the battery stream is
    # polled, and its intervals handed out, before the Encharges are listed; one or two:
    # the listing may come first.
    failures=st.lists(st.integers(0, 2), min_size=3, max_size=3),
    runs=st.lists(st.floats(0.05, 0.6), max_size=2),
)
def test_the_fleet_starts_every_stream_of_a_system_at_its_battery_streams_start(
    seed: int, failures: list[int], runs: list[float]
) -> None:
    async def scenario() -> None:
        async with fleet_simulator(
            seed=seed,
            systems=3,
            encharges=2,
            fleet_mix=None,
            start=START,
            speed=600.0,
            history=timedelta(days=1),
        ) as sim:
            for system_id, count in zip(sim.system_ids, failures, strict=True):
                if count:
                    sim.faults.fail_next(count, 503, path=f"/systems/{system_id}/telemetry/battery")
            store = MemoryCheckpoint()
            sink: list[TelemetryInterval] = []
            # Runs cut after random real durations (restarts on the same checkpoint),
            # then one until the fleet has nothing due.
            for seconds in [*runs, None]:
                async with start_client(sim) as client:
                    poller = FleetPoller(client, checkpoint=store, backoff=(1.0, 60.0))
                    if seconds is None:
                        await consume_until_settled(poller, sink, streams=3)
                    else:
                        await consume(poller, sink, seconds)
            sim.clock.speed = 0
            got = delivered(
                (iv.system_id, iv.source, int(iv.end_at.timestamp()), iv.revision) for iv in sink
            )
            assert await check_same_start(sim, store, got, sim.system_ids) > 0

    asyncio.run(scenario())


async def test_encharges_listed_before_and_after_the_battery_streams_first_poll() -> None:
    """Both orders in one fleet, seen through the public API: at the battery stream's
    first interval a system follows one stream (its Encharges are listed after) or
    three (listed before: its first poll failed and discovery came first)."""
    async with fleet_simulator(
        seed=11, systems=6, encharges=2, fleet_mix=None, start=START, speed=600.0
    ) as sim:
        for system_id in sim.system_ids[:3]:
            sim.faults.fail_next(2, 503, path=f"/systems/{system_id}/telemetry/battery")
        store = MemoryCheckpoint()
        sink: list[TelemetryInterval] = []
        streams_at_first: dict[int, int] = {}
        async with start_client(sim) as client:
            poller = FleetPoller(client, checkpoint=store, backoff=(1.0, 60.0))

            async def take() -> None:
                async for iv in poller:
                    sink.append(iv)
                    if iv.source == "battery" and iv.system_id not in streams_at_first:
                        streams_at_first[iv.system_id] = poller.progress_of(iv.system_id).streams

            async with poller:
                consumer = asyncio.ensure_future(take())
                try:
                    async with asyncio.timeout(120):
                        while poller.problems or not all(
                            poller.progress_of(s).streams == 3 for s in poller.system_ids
                        ):
                            await poller.wait_idle()
                            await asyncio.sleep(0.05)
                        await poller.wait_idle()
                finally:
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)
        sim.clock.speed = 0
        got = delivered(
            (iv.system_id, iv.source, int(iv.end_at.timestamp()), iv.revision) for iv in sink
        )
        assert await check_same_start(sim, store, got, sim.system_ids) > 0
        # Both orders: listed after the battery stream's first poll (1 stream then), and
        # before it (3: a failed first poll left the listing to come first).
        assert set(streams_at_first.values()) == {1, 3}, streams_at_first


async def test_encharges_first_listed_after_a_restart_start_at_the_systems_day() -> None:
    """Run 1 polls the battery streams but cannot list the devices; run 2, on the same
    checkpoint and the same day, lists them: the Encharges start at the system's day,
    where the battery streams started, not where run 1 left them."""
    async with fleet_simulator(
        seed=5, systems=2, encharges=2, fleet_mix=None, start=START, speed=600.0
    ) as sim:
        for system_id in sim.system_ids:
            sim.faults.fail_next(10**6, 503, path=f"/systems/{system_id}/devices")
        store = MemoryCheckpoint()
        sink: list[TelemetryInterval] = []
        async with start_client(sim) as client:
            poller = FleetPoller(client, checkpoint=store, backoff=(1.0, 60.0))

            async def take() -> None:
                async for iv in poller:
                    sink.append(iv)

            async with poller:
                consumer = asyncio.ensure_future(take())
                try:
                    await until(
                        lambda: (
                            poller.pending == 0
                            and all(
                                poller.progress_of(s).newest_delivered is not None
                                for s in poller.system_ids
                            )
                            and len(poller.system_ids) == len(sim.system_ids)
                        ),
                        "run 1 delivered the battery streams",
                    )
                finally:
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)
                assert all(poller.progress_of(s).streams == 1 for s in poller.system_ids)
        sim.faults.clear()
        async with start_client(sim) as client:
            poller = FleetPoller(client, checkpoint=store, backoff=(1.0, 60.0))
            await consume_until_settled(poller, sink, streams=3)
        sim.clock.speed = 0
        got = delivered(
            (iv.system_id, iv.source, int(iv.end_at.timestamp()), iv.revision) for iv in sink
        )
        assert await check_same_start(sim, store, got, sim.system_ids) > 0


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(
        seed=9, systems=10, encharges=2, plan="partner", history=timedelta(days=1), start=START
    )
    yield thread
    thread.close()


@pytest.mark.slow
def test_stream_all_systems_without_since_starts_encharges_at_the_systems_day(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, tmp_path: Path, config_dir: Path
) -> None:
    # The measured case of issue 17: 10 systems x (battery + 2 Encharges), no --since,
    # run until caught up.
    out = tmp_path / "fleet.jsonl"
    code, _, err = cli("stream", "--all-systems", "--until-caught-up", "--out", str(out))
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines() if line]
    got = delivered(
        (
            int(r["system_id"]),
            str(r["source"]),
            int(datetime.fromisoformat(str(r["end_at"])).timestamp()),
            int(str(r.get("revision", 0))),
        )
        for r in rows
    )
    assert {system_id for system_id, _ in got} == set(sim.system_ids)

    async def check() -> int:
        store = SqliteCheckpoint(config_dir / "stream-fleet.sqlite")
        try:
            return await check_same_start(sim, store, got, sim.system_ids)
        finally:
            await store.close()

    # The simulator's clock stands still: every Encharge interval of the day is there.
    assert asyncio.run(check()) > 10 * 2 * 4


# -- an Encharge installed long after the run began ----------------------------------------


async def test_an_encharge_installed_weeks_into_a_run_starts_at_its_first_data() -> None:
    """Without ``start_at``: the new Encharge starts where the battery stream began, but no
    more than a week before its watermark; the API's ``first_interval`` answer moves it to
    its first data.  A few requests, never a backfill through weeks of empty windows."""
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            poll_interval=HOUR,
            rediscover_every=timedelta(0),
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        first_battery = min(iv.end_at for iv in emitted if iv.source == "battery")
        emitted += await driver.tick(sim, timedelta(days=20))
        new = sim.add_encharge(env.system_id)
        first_end_at = sim.system(env.system_id).next_end_at
        before = poller.requests
        emitted += await driver.tick(sim, timedelta(hours=2))
        spent = poller.requests - before
        await driver.cancel()
        await poller.aclose()
        mine = sorted(int(iv.end_at.timestamp()) for iv in emitted if iv.source == new)
        assert mine
        assert mine[0] == first_end_at
        assert len(mine) == len(set(mine)) >= 6
        # Devices, one request for each of the three streams it had, at most three for
        # the new one (the week before the battery's watermark, the jump, its data).
        assert spent <= 1 + 3 + 3, spent
        assert min(iv.end_at for iv in emitted if iv.source == "battery") == first_battery
