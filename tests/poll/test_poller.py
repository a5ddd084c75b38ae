"""The telemetry poller against the embedded simulator, over real loopback HTTP.

Every test drives the poller with the simulated clock (``speed=0``) through its public
seams only: it waits for its next poll (``poll_interval=HOUR``, observed with
``wait_idle()``) until the test moves the clock and calls ``poll_now()``, and its own
retries cost no time (``retry_wait_s=NO_WAIT``); see ``tests/support/poller.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enphase_battery import (
    AuthenticationError,
    EnphaseClient,
    InvalidRequestError,
    NotFoundError,
    QuotaExceededError,
    RateLimits,
)
from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.poll.pacing import MONTH_S, poll_interval_for
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.store.checkpoint import MemoryCheckpoint, StreamState
from tests.support.poller import (
    HOUR,
    NO_WAIT,
    REPEATING_STOPS,
    STOPS,
    Driver,
    check_exactly_once,
    key_of,
    open_env,
    reported,
    run_with_restarts,
    values_of,
)

#: The simulator's plan for the tests that inject 429s: no limit it would reach, and a
#: one-second rate window, so that a 429's reset (the window's end, which the client's
#: governor waits for) comes within a second instead of the next real minute.
ONE_SECOND_WINDOW = RateLimits(100_000, 1.0)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@pytest.mark.parametrize(
    ("span", "per_stream"),
    [
        (timedelta(days=15, minutes=50), 3),
        (timedelta(days=14), 2),  # full weeks: the last report time spares a request
        (timedelta(days=7), 1),
        (timedelta(hours=3), 1),
    ],
)
async def test_backfill_every_interval_once_with_one_request_per_week(
    span: timedelta, per_stream: int
) -> None:
    async with open_env(history=timedelta(days=16)) as env:
        sim = env.sim
        start_at = sim.clock.now() - span
        store = MemoryCheckpoint()
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            checkpoint=store,
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        sim.reset_counters()
        emitted = await driver.pull()
        assert poller.progress.caught_up
        # Discovery, then one request per stream per week of history.
        assert sim.request_count == 1 + 3 * per_stream
        assert poller.requests == sim.request_count
        expected = check_exactly_once(env, emitted, epoch(start_at))
        assert len(emitted) == sum(1 for k in expected if reported(env, k))
        assert len(emitted) >= 3 * (span // timedelta(minutes=15) - 2)
        # In order within each stream, when nothing arrives late.
        for source in poller.sources:
            ends = [iv.end_at for iv in emitted if iv.source == source]
            assert ends == sorted(ends)
        # Nothing new: the next poll is one request per stream and brings nothing.
        sim.reset_counters()
        assert await driver.tick(sim, timedelta(0)) == []
        assert sim.request_count == 3
        await driver.cancel()
        await poller.aclose()


async def test_without_start_at_the_api_day_window_sets_the_start() -> None:
    async with open_env(
        history=timedelta(days=3), start=datetime(2026, 6, 1, 15, tzinfo=UTC)
    ) as env:
        sim = env.sim
        poller = TelemetryPoller(
            env.client, env.system_id, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        system = sim.system(env.system_id)
        local_now = sim.clock.now().astimezone(system.tz)
        midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        assert min(iv.end_at for iv in emitted) == midnight + timedelta(minutes=15)
        emitted += await driver.tick(sim, timedelta(hours=1))
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(midnight))
        assert set(poller.progress.watermarks) == {BATTERY, *env.serials()}


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@pytest.mark.parametrize("stop", STOPS)
async def test_restarts_continue_without_loss_or_duplicates(
    tmp_path: Path, stop: str, store_kind: str
) -> None:
    async with open_env(history=timedelta(days=2)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=30)
        memory = MemoryCheckpoint()
        path = tmp_path / "state" / "checkpoint.db"

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=memory if store_kind == "memory" else path,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        plan = [(1, stop), (2, stop), (97, stop), (121, stop), (250, stop), (30, stop)]
        ticks = [timedelta(minutes=30)] * 24
        run = await run_with_restarts(
            env, make_poller, plan, ticks, final_advance=timedelta(hours=1)
        )
        check_exactly_once(env, run.emitted, epoch(start_at), may_repeat=run.in_hand_at_crash)
        counts = Counter(key_of(iv) for iv in run.emitted)
        repeated = sorted(k for k, n in counts.items() if n > 1)
        if stop in REPEATING_STOPS:
            # The interval in hand at each crash (or uncommitted break) comes again, and
            # nothing else.
            assert repeated == sorted(key_of(iv) for iv in run.in_hand_at_crash)
        else:
            assert repeated == []
        assert run.segments[:5] == [1, 2, 97, 121, 250] or stop == "cancel"
        assert len(run.emitted) > 5 * 96


class BlockingStore(MemoryCheckpoint):
    """A store whose ``save`` can be made to hang (an async database round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.saving = asyncio.Event()

    async def save(self, key: str, state: StreamState) -> None:
        if self.armed:
            self.saving.set()
            await asyncio.Event().wait()  # until cancelled
        await super().save(key, state)


async def test_cancellation_during_the_checkpoint_save_still_counts_the_delivery() -> None:
    """Cancelled while the save of the interval in hand is in flight: ``async with`` closes
    the poller, which must still record that interval as delivered."""
    async with open_env(history=timedelta(days=1)) as env:
        start_at = env.sim.clock.now() - timedelta(hours=3)
        store = BlockingStore()
        got: list[TelemetryInterval] = []
        have_three = asyncio.Event()
        go_on = asyncio.Event()

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=store,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        async def consumer() -> None:
            async with make_poller() as poller:
                async for interval in poller:
                    got.append(interval)
                    if len(got) == 3:
                        have_three.set()
                        await go_on.wait()

        task = asyncio.create_task(consumer())
        await have_three.wait()
        store.armed = True
        go_on.set()
        await store.saving.wait()  # the next anext is saving the delivery of the third
        store.armed = False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert len(got) == 3
        poller = make_poller()
        driver = Driver(poller)
        rest = await driver.pull()
        await driver.cancel()
        await poller.aclose()
        assert key_of(got[2]) not in {key_of(iv) for iv in rest}
        check_exactly_once(env, got + rest, epoch(start_at))


# -- skew, bounded state ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sim_start",
    [
        datetime(2017, 1, 15, 6, 7, tzinfo=UTC),  # years behind the host's clock
        datetime(2039, 11, 5, 22, 0, tzinfo=UTC),  # years ahead (and past 2038)
    ],
)
async def test_host_clock_skew_does_not_matter(sim_start: datetime) -> None:
    """The same backfill and live polls with the simulated "now" far from the host's."""
    async with open_env(start=sim_start, history=timedelta(days=9)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(days=8, hours=3)
        # A start_at years from the host's clock would be refused (it is judged locally,
        # before any request); the checkpoint's own position is not judged at all.
        store = MemoryCheckpoint()
        watermark = epoch(start_at) - epoch(start_at) % 900
        for source in (BATTERY, *env.serials()):
            await store.save(f"{env.system_id}/{source}", StreamState(watermark))
        poller = TelemetryPoller(
            env.client, env.system_id, checkpoint=store, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        sim.reset_counters()
        emitted = await driver.pull()
        assert sim.request_count == 1 + 3 * 2
        for _ in range(4):
            emitted += await driver.tick(sim, timedelta(minutes=45))
        await driver.cancel()
        await poller.aclose()
        expected = check_exactly_once(env, emitted, epoch(start_at))
        assert len(emitted) == sum(1 for k in expected if reported(env, k))
        assert max(iv.end_at for iv in emitted) > sim.clock.now() - timedelta(minutes=45)


class RecordingStore(MemoryCheckpoint):
    """Remembers the largest ``delivered`` tuple ever saved."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0
        self.max_delivered = 0

    async def save(self, key: str, state: StreamState) -> None:
        self.saves += 1
        self.max_delivered = max(self.max_delivered, len(state.delivered))
        await super().save(key, state)


async def test_state_stays_small_after_a_long_backfill_and_late_data() -> None:
    async with open_env(
        history=timedelta(days=22),
        encharges=1,
        late_probability=0.1,
        late_delay=timedelta(hours=2),
    ) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(days=21)
        store = RecordingStore()
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            checkpoint=store,
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        assert len(emitted) > 2 * 21 * 96 - 10
        newest = max(int(iv.end_at.timestamp()) for iv in emitted)
        for key, state in store.states.items():
            assert state.delivered == (), key
            assert state.watermark == newest, key
        # Live, with late intervals: only the few past a pending gap are remembered.
        for _ in range(24):
            emitted += await driver.tick(sim, timedelta(minutes=15))
        sim.clock.advance(timedelta(hours=3))
        emitted += await driver.tick(sim, timedelta(minutes=15))
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(start_at))
        assert store.saves >= len(emitted)
        assert 0 < store.max_delivered <= (2 * 3600) // 900 + 2
        assert all(len(state.delivered) <= 2 for state in store.states.values())


# -- late, out of order, partial ------------------------------------------------------------


def out_of_order(intervals: list[TelemetryInterval], source: str) -> list[TelemetryInterval]:
    """Intervals of ``source`` that came after a later one of the same stream."""
    result = []
    newest: datetime | None = None
    for iv in intervals:
        if iv.source != source:
            continue
        if newest is not None and iv.end_at < newest:
            result.append(iv)
        newest = iv.end_at if newest is None else max(newest, iv.end_at)
    return result


async def test_late_intervals_come_out_once_after_later_ones() -> None:
    """late_probability: some intervals arrive hours after later ones, in every stream."""
    async with open_env(
        seed=3,
        encharges=1,
        late_probability=0.08,
        late_delay=timedelta(hours=3),
        history=timedelta(days=1),
    ) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=6)
        poller = TelemetryPoller(
            env.client, env.system_id, start_at=start_at, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        for _ in range(40):
            emitted += await driver.tick(sim, timedelta(minutes=15))
        emitted += await driver.tick(sim, timedelta(hours=4))
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(start_at))
        (serial,) = env.serials()
        late = out_of_order(emitted, serial)
        assert late, "the scenario should have late intervals"
        # With one Encharge the system interval is missing too, and comes late as well.
        assert {iv.end_at for iv in out_of_order(emitted, BATTERY)} == {iv.end_at for iv in late}
        assert not any(iv.partial for iv in emitted)


async def test_lagging_encharge_catches_up_out_of_order() -> None:
    """One Encharge's uplink lags two hours, then recovers: its newer intervals arrive
    before the older lagged ones, which still come out, once."""
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        lagging, steady = env.serials()[1], env.serials()[0]
        start_at = sim.clock.now() - timedelta(hours=4)
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            poll_interval=HOUR,
            settle=timedelta(hours=3),
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        sim.set_device_lag(lagging, timedelta(hours=2))
        lag_from = sim.clock.now()
        for _ in range(4):
            emitted += await driver.tick(sim, timedelta(minutes=15))
        sim.set_device_lag(lagging, timedelta(0))
        for _ in range(12):
            emitted += await driver.tick(sim, timedelta(minutes=15))
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(start_at))
        late = out_of_order(emitted, lagging)
        assert late
        assert all(lag_from < iv.end_at <= lag_from + timedelta(hours=1) for iv in late)
        assert not out_of_order(emitted, steady)
        # settle (3 h) exceeds the lag: the system intervals waited and came out complete.
        assert not any(iv.partial for iv in emitted)


async def test_partial_interval_is_held_until_complete() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        lagging = env.serials()[1]
        start_at = sim.clock.now() - timedelta(hours=2)
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            poll_interval=HOUR,
            settle=timedelta(hours=1),
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        sim.set_device_lag(lagging, timedelta(minutes=40))
        lag_from = epoch(sim.clock.now())
        held_seen = False
        for _ in range(12):
            got = await driver.tick(sim, timedelta(minutes=15))
            emitted += got
            newest_steady = max(iv.end_at for iv in emitted if iv.source == env.serials()[0])
            newest_battery = max(iv.end_at for iv in emitted if iv.source == BATTERY)
            if newest_battery < newest_steady:
                held_seen = True  # the system interval waits for the lagging Encharge
            for iv in got:
                if iv.source == BATTERY:
                    assert iv.devices_reporting == iv.total_devices == 2, iv
        await driver.cancel()
        await poller.aclose()
        assert held_seen
        check_exactly_once(env, emitted, epoch(start_at))
        assert not any(iv.partial for iv in emitted)
        assert any(iv.source == BATTERY and epoch(iv.end_at) > lag_from for iv in emitted)


async def test_without_revisions_a_partial_interval_comes_out_flagged_once() -> None:
    """``revise_for=timedelta(0)``: the behaviour before revisions (the partial value stays);
    with revisions see tests/poll/test_revisions_on_simulator.py."""
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        steady, lagging = env.serials()
        settle = timedelta(hours=1)
        start_at = sim.clock.now() - timedelta(hours=2)
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            poll_interval=HOUR,
            settle=settle,
            revise_for=timedelta(0),
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        sim.set_device_lag(lagging, timedelta(hours=3))
        lag_from = epoch(sim.clock.now())
        previous_newest = poller.progress.newest_end_at
        partial: list[TelemetryInterval] = []
        for _ in range(10):
            got = await driver.tick(sim, timedelta(minutes=15))
            emitted += got
            newest = poller.progress.newest_end_at
            assert newest is not None
            assert previous_newest is not None
            for iv in got:
                if iv.partial:
                    partial.append(iv)
                    # Out as soon as it is `settle` older than the newest data, not before.
                    assert iv.end_at + settle <= newest
                    assert iv.end_at + settle > previous_newest
            previous_newest = newest
        assert partial
        truth_steady = {
            e.end_at: e for e in sim.ground_truth_encharge(env.system_id, steady, lag_from, 2e9)
        }
        for iv in partial:
            assert iv.source == BATTERY
            assert (iv.devices_reporting, iv.total_devices) == (1, 2)
            # Exactly what the reporting Encharge contributed.
            e = truth_steady[epoch(iv.end_at)]
            assert values_of(iv) == (e.charge_wh, e.discharge_wh, e.soc_percent)
        # The lagging Encharge reports at last: its own stream catches up, the system
        # intervals already delivered partial do not come again (no revisions).
        sim.clock.advance(timedelta(hours=3))
        for _ in range(2):
            emitted += await driver.tick(sim, timedelta(minutes=15))
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(start_at))
        assert {key_of(iv) for iv in partial} <= {key_of(iv) for iv in emitted if iv.partial}
        assert not any(iv.revision for iv in emitted)
        assert sum(1 for iv in emitted if iv.source == lagging and epoch(iv.end_at) > lag_from)


# -- failures -------------------------------------------------------------------------------


async def test_transient_failures_mid_stream_are_retried_inside() -> None:
    """429, 5xx, a broken body, a dropped connection: the client gives up at once
    (max_retries=0), the poller backs off and retries; nothing lost, nothing twice."""
    async with open_env(history=timedelta(days=1), max_retries=0, plan=ONE_SECOND_WINDOW) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=5)
        poller = TelemetryPoller(
            env.client, env.system_id, start_at=start_at, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        emitted = await driver.pull(limit=7)  # mid-stream
        sim.faults.fail_next(2, 429, path="telemetry")
        sim.faults.fail_next(1, 500, path="telemetry")
        sim.faults.fail_next(1, 503, path="encharges")
        emitted += await driver.pull()
        assert poller.retries == 4
        for kind in ("status", "malformed", "truncated", "drop"):
            sim.faults.configure({"kind": kind, "status": 500, "path": "telemetry"})
            emitted += await driver.tick(sim, timedelta(minutes=30))
        # aiohttp itself retries a request whose reused connection was dropped.
        assert 7 <= poller.retries <= 8
        assert poller.progress.retries == poller.retries
        assert not sim.faults.pending
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(start_at))
        assert len(emitted) > 3 * 20


async def test_server_errors_retried_by_the_client_stay_exactly_once() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=5)
        poller = TelemetryPoller(
            env.client, env.system_id, start_at=start_at, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        emitted = await driver.pull(limit=30)
        sim.faults.fail_next(2, 500, path="telemetry")
        emitted += await driver.pull()
        emitted += await driver.tick(sim, timedelta(minutes=30))
        await driver.cancel()
        await poller.aclose()
        assert sim.faults.fired.get("status") == 2
        assert poller.retries == 0  # the client's own retries sufficed
        check_exactly_once(env, emitted, epoch(start_at))


async def test_transient_failure_of_device_discovery_is_retried() -> None:
    async with open_env(history=timedelta(days=1), max_retries=0, plan=ONE_SECOND_WINDOW) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=2)
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            poll_interval=HOUR,
            rediscover_every=timedelta(0),
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        sim.faults.fail_next(1, 503, path="/devices")  # the first request: discovery
        emitted = await driver.pull()
        sim.faults.fail_next(1, 429, path="/devices")
        emitted += await driver.tick(sim, timedelta(minutes=30))
        await driver.cancel()
        await poller.aclose()
        assert poller.retries == 2
        assert set(poller.sources) == {BATTERY, *env.serials()}
        check_exactly_once(env, emitted, epoch(start_at))


async def test_expired_access_token_is_refreshed_mid_stream() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=5)
        poller = TelemetryPoller(
            env.client, env.system_id, start_at=start_at, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        emitted = await driver.pull(limit=10)
        sim.expire_access_tokens()
        emitted += await driver.pull()
        assert sim.token_grants["refresh_token"] == 1
        sim.expire_access_tokens()
        emitted += await driver.tick(sim, timedelta(minutes=45))
        assert sim.token_grants["refresh_token"] == 2
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(start_at))


async def test_short_lived_access_tokens() -> None:
    async with open_env(
        history=timedelta(days=1), access_token_lifetime=timedelta(seconds=1)
    ) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=3)
        poller = TelemetryPoller(
            env.client, env.system_id, start_at=start_at, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        for _ in range(3):
            emitted += await driver.tick(sim, timedelta(minutes=20))
        await driver.cancel()
        await poller.aclose()
        check_exactly_once(env, emitted, epoch(start_at))


async def test_revoked_refresh_token_raises_authentication_error() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=sim.clock.now() - timedelta(hours=2),
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        await driver.pull()
        sim.faults.revoke_tokens()
        with pytest.raises(AuthenticationError):
            await driver.tick(sim, timedelta(minutes=30))
        assert poller.retries == 0
        await poller.aclose()


async def test_spent_monthly_quota_raises() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=sim.clock.now() - timedelta(hours=2),
            poll_interval=HOUR,
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        await driver.pull()
        sim.faults.exhaust_monthly_quota()
        with pytest.raises(QuotaExceededError):
            await driver.tick(sim, timedelta(minutes=30))
        await poller.aclose()


@pytest.mark.parametrize("encharges", [None, ()])
async def test_unknown_system_raises_not_found(encharges: tuple[()] | None) -> None:
    async with open_env() as env:
        poller = TelemetryPoller(
            env.client, 1234567, encharges=encharges, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        with pytest.raises(NotFoundError):
            await Driver(poller).pull()
        await poller.aclose()


# -- discovery ----------------------------------------------------------------------------


async def test_new_encharge_is_picked_up() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=3)
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=start_at,
            poll_interval=HOUR,
            rediscover_every=timedelta(0),
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        emitted += await driver.tick(sim, timedelta(minutes=30))
        new = sim.add_encharge(env.system_id)
        first_end_at = sim.system(env.system_id).next_end_at
        for _ in range(8):
            emitted += await driver.tick(sim, timedelta(minutes=30))
        await driver.cancel()
        await poller.aclose()
        assert new in poller.sources
        check_exactly_once(env, emitted, epoch(start_at))
        mine = [iv for iv in emitted if iv.source == new]
        assert len(mine) >= 6
        assert epoch(mine[0].end_at) == first_end_at
        assert any(
            iv.source == BATTERY and iv.devices_reporting == iv.total_devices == 3 for iv in emitted
        )


# -- quota pacing ---------------------------------------------------------------------------


async def _token() -> str:
    return "token"


def client_with(limits: RateLimits) -> EnphaseClient:
    return EnphaseClient(api_key="key", auth=_token, rate_limits=limits)


@pytest.mark.parametrize(
    ("limits", "streams", "expected"),
    [
        (RateLimits.WATT, 1, MONTH_S / (800 - 30)),  # 57 minutes
        (RateLimits.WATT, 3, 3 * MONTH_S / (800 - 30)),
        (RateLimits.KILOWATT, 1, 900.0),  # 40,000 calls: the 15-minute floor
        (RateLimits.KILOWATT, 50, 50 * MONTH_S / (40_000 - 30)),
        (RateLimits.MEGAWATT, 3, 900.0),
        (RateLimits.PARTNER, 3, 900.0),
        (RateLimits(1000), 3, 900.0),  # no monthly cap
        (RateLimits(1, 60.0), 20, 1200.0),  # the per-minute rate sets the floor
    ],
)
async def test_poll_interval_for_each_plan(
    limits: RateLimits, streams: int, expected: float
) -> None:
    client = client_with(limits)
    assert poll_interval_for(client, streams) == pytest.approx(expected)
    if limits is RateLimits.WATT and streams == 1:
        assert round(poll_interval_for(client, 1) / 60) == 57
    await client.close()


async def test_poll_interval_for_shares_and_limits() -> None:
    watt = client_with(RateLimits.WATT)
    assert poll_interval_for(watt, 1, quota_share=0.4, extra_calls=0) == pytest.approx(
        MONTH_S / 400
    )
    assert poll_interval_for(watt, 0) == poll_interval_for(watt, 1)
    with pytest.raises(InvalidRequestError):
        poll_interval_for(client_with(RateLimits(10, 60.0, 30)), 1)
    await watt.close()


async def test_poll_interval_override_and_paced_default() -> None:
    watt = client_with(RateLimits.WATT)
    for value, seconds in ((300.0, 300.0), (timedelta(minutes=7), 420.0), (0, 0.0)):
        assert TelemetryPoller(watt, 1234567, poll_interval=value).current_poll_interval() == (
            seconds
        )
    # One stream, no discovery calls.
    assert TelemetryPoller(watt, 1234567, encharges=()).current_poll_interval() == (
        pytest.approx(MONTH_S / 800)
    )
    # Discovery once a day costs ~30 calls a month.
    assert TelemetryPoller(watt, 1234567).current_poll_interval() == pytest.approx(
        MONTH_S / (800 - MONTH_S / 86_400)
    )
    with pytest.raises(InvalidRequestError):
        TelemetryPoller(watt, 1234567, poll_interval=-1)
    await watt.close()


async def test_poller_stays_within_its_quota_share() -> None:
    """Watt's 1,000 calls a month (with a limiter fast enough for a test): the pause between
    polls times the requests per poll, plus discovery, stays within 80 %.

    The polls of a simulated day run in real seconds here: the governor (on real time)
    would rightly hold them to the month's budget line, so its burst is set out of the way
    to measure the poller's own pacing (test_poller_engine runs it on simulated time)."""
    async with open_env(
        rate_limits=RateLimits(100000, 60.0, 1000),
        governor_options={"burst_s": 31 * 86_400.0},
        history=timedelta(days=1),
    ) as env:
        sim = env.sim
        poller = TelemetryPoller(
            env.client,
            env.system_id,
            start_at=sim.clock.now() - timedelta(hours=3),
            retry_wait_s=NO_WAIT,
        )
        driver = Driver(poller)
        emitted = await driver.pull()
        interval = poller.current_poll_interval()
        assert interval == pytest.approx(3 * MONTH_S / (800 - MONTH_S / 86_400))
        per_poll = []
        for _ in range(4):
            before = sim.request_count
            emitted += await driver.tick(sim, timedelta(seconds=interval))
            per_poll.append(sim.request_count - before)
        await driver.cancel()
        await poller.aclose()
        assert len(driver.poll_waits) == 5
        assert all(interval - 60 < wait <= interval for wait in driver.poll_waits)
        assert per_poll == [3, 3, 3, 3]
        monthly = max(per_poll) * MONTH_S / interval + MONTH_S / 86_400
        assert monthly <= 0.8 * 1000 + 1e-6
        assert len(emitted) > 3 * 4 * 10


# -- property: random arrival orders and restart points -------------------------------------


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)
@given(
    seed=st.integers(0, 10_000),
    encharges=st.integers(1, 3),
    late_probability=st.sampled_from([0.0, 0.05, 0.2]),
    late_delay=st.sampled_from([timedelta(minutes=30), timedelta(hours=2)]),
    lag=st.sampled_from([timedelta(0), timedelta(minutes=40), timedelta(hours=2)]),
    settle=st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=3)]),
    backfill_hours=st.integers(1, 30),
    plan=st.lists(st.tuples(st.integers(1, 200), st.sampled_from(STOPS)), max_size=4),
    ticks=st.lists(st.sampled_from([15, 30, 45, 60, 120]), min_size=2, max_size=14),
    sqlite=st.booleans(),
)
def test_exactly_once_under_random_arrivals_and_restarts(
    seed: int,
    encharges: int,
    late_probability: float,
    late_delay: timedelta,
    lag: timedelta,
    settle: timedelta,
    backfill_hours: int,
    plan: list[tuple[int, str]],
    ticks: list[int],
    sqlite: bool,
) -> None:
    """Whatever the arrival order and wherever consumers stop, every interval that every
    device has reported comes out once (a crash may repeat the one in hand), with final
    values unless it came out flagged partial; nothing else comes out."""

    async def scenario(directory: str) -> None:
        async with open_env(
            seed=seed,
            encharges=encharges,
            late_probability=late_probability,
            late_delay=late_delay,
            history=timedelta(days=2),
        ) as env:
            sim = env.sim
            start_at = sim.clock.now() - timedelta(hours=backfill_hours)
            if lag:
                sim.set_device_lag(env.serials()[-1], lag)
            memory = MemoryCheckpoint()

            def make_poller() -> TelemetryPoller:
                return TelemetryPoller(
                    env.client,
                    env.system_id,
                    start_at=start_at,
                    checkpoint=Path(directory, "c.db") if sqlite else memory,
                    poll_interval=HOUR,
                    settle=settle,
                    retry_wait_s=NO_WAIT,
                )

            run = await run_with_restarts(
                env,
                make_poller,
                plan,
                [timedelta(minutes=m) for m in ticks],
                final_advance=late_delay + lag + timedelta(minutes=20),
            )
            expected = check_exactly_once(
                env, run.emitted, epoch(start_at), may_repeat=run.in_hand_at_crash
            )
            # The final advance let every device report every interval ending
            # before it (latency 15 min + jitter + lag + late delay).
            final = [k for k in expected if k[1] <= run.final_from]
            assert final
            assert all(reported(env, k) for k in final)

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(directory))


async def test_start_at_before_the_system_existed_starts_at_its_first_interval() -> None:
    async with open_env(history=timedelta(hours=30)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(days=5)
        poller = TelemetryPoller(
            env.client, env.system_id, start_at=start_at, poll_interval=HOUR, retry_wait_s=NO_WAIT
        )
        driver = Driver(poller)
        sim.reset_counters()
        emitted = await driver.pull()
        # Per stream: a 422 naming the first interval, then the data from there.
        assert sim.request_count == 1 + 3 * 2
        first = sim.system(env.system_id).first_end_at
        assert min(epoch(iv.end_at) for iv in emitted) == first
        check_exactly_once(env, emitted, epoch(start_at))
        await driver.cancel()
        await poller.aclose()
