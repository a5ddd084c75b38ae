"""Helpers for the poller tests: the simulator behind a real client, a driver that runs the
poller poll by poll on the simulated clock, and ground-truth bookkeeping.

Only the poller's public seams drive it: ``poll_interval=HOUR`` keeps it waiting for its
next poll until the test moves the simulated clock and calls ``poll_now()``;
``poller.idle`` / ``wait_idle()`` make "the poller has caught up" an observable event (no
timeouts, no real waiting); ``retry_wait_s=NO_WAIT`` makes its own retries cost no time
(``poller.retries`` counts them); ``poller.last_poll_wait_s`` is the wait it chose before
each poll.  Every request the poller makes is one the test asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs

from enphase_battery import EnphaseClient, QuotaGovernor, RateLimits, TokenManager
from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.store.checkpoint import LockingCheckpointStore

#: Rate limits that never slow a test down, without a monthly quota.
FAST = RateLimits(100000)
#: Poll interval for tests: polls start only when the test calls ``poll_now()``.
HOUR = 3600.0
#: ``retry_wait_s`` for tests: the poller's own retries cost no time.
NO_WAIT = (0.0, 0.0)

Key = tuple[str, int]


async def wake(poller: TelemetryPoller) -> None:
    """``poll_now()``, then let the poller leave its wait for the next poll.

    ``poller.idle`` stays set until the parked poller has run; only call this while a
    task is parked in the poller's ``anext`` (``idle`` is set).
    """
    poller.poll_now()
    for _ in range(10_000):
        if not poller.idle:
            return
        await asyncio.sleep(0)
    raise AssertionError("the poller did not leave its wait after poll_now()")


@attrs.define
class Env:
    """A running simulator, and a client of it."""

    sim: EnphaseSimulator
    client: EnphaseClient
    auth: TokenManager

    @property
    def system_id(self) -> int:
        return self.sim.system_ids[0]

    def serials(self) -> tuple[str, ...]:
        return self.sim.encharge_serials(self.system_id)


@contextlib.asynccontextmanager
async def open_env(
    *,
    rate_limits: RateLimits = FAST,
    max_retries: int = 4,
    governor_options: dict[str, Any] | None = None,
    **sim_options: Any,
) -> AsyncIterator[Env]:
    """``EnphaseSimulator(**sim_options)`` (one system, two Encharges by default);
    ``governor_options`` go to the client's :class:`QuotaGovernor` (real time)."""
    options: dict[str, Any] = {"seed": 1, "systems": 1, "encharges": 2}
    options.update(sim_options)
    async with EnphaseSimulator(**options) as sim:
        auth = TokenManager(
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            token=sim.token,
            token_url=sim.token_url,
            max_tries=2,
            max_retry_time=2.0,
        )
        client = EnphaseClient(
            api_key=sim.api_key,
            auth=auth,
            base_url=sim.base_url,
            rate_limits=rate_limits,
            governor=QuotaGovernor(rate_limits, **governor_options) if governor_options else None,
            timeout=10.0,
            max_retries=max_retries,
            max_retry_time=5.0,
        )
        try:
            yield Env(sim, client, auth)
        finally:
            await client.close()
            await auth.stop()


class Driver:
    """Runs one poller: ``pull()`` until it has caught up, ``tick()`` to move the simulated
    clock and start the next poll."""

    def __init__(self, poller: TelemetryPoller) -> None:
        self.poller = poller
        #: The wait the poller chose before each poll it parked for, in order.
        self.poll_waits: list[float] = []
        self._pending: asyncio.Task[TelemetryInterval] | None = None
        self._wait_seen = False

    async def pull(self, limit: int | None = None) -> list[TelemetryInterval]:
        """Intervals until the poller waits for its next poll, or ``limit`` of them."""
        out: list[TelemetryInterval] = []
        while limit is None or len(out) < limit:
            if self._pending is None:
                self._pending = asyncio.ensure_future(anext(self.poller))
            idle = asyncio.ensure_future(self.poller.wait_idle())
            try:
                await asyncio.wait({self._pending, idle}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                idle.cancel()
            if not self._pending.done():
                # Caught up: the task stays parked in the wait for the next poll.
                if not self._wait_seen:
                    assert self.poller.last_poll_wait_s is not None
                    self.poll_waits.append(self.poller.last_poll_wait_s)
                    self._wait_seen = True
                break
            task, self._pending = self._pending, None
            out.append(task.result())
        return out

    async def tick(self, sim: EnphaseSimulator, delta: timedelta) -> list[TelemetryInterval]:
        """Advance the simulated clock, start the next poll, pull until caught up."""
        sim.clock.advance(delta)
        await wake(self.poller)
        self._wait_seen = False
        return await self.pull()

    async def cancel(self) -> None:
        """Cancel the parked ``anext`` (a consumer task cancelled while it waits)."""
        task, self._pending = self._pending, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- ground truth ------------------------------------------------------------------------


class OneSystem(Protocol):
    """What the ground-truth helpers read: the simulator and the system followed (an
    :class:`Env`, or a simulator served from another thread, read on its loop)."""

    @property
    def sim(self) -> EnphaseSimulator: ...

    @property
    def system_id(self) -> int: ...

    def serials(self) -> tuple[str, ...]: ...


def truth(
    env: OneSystem, start: int, sources: Iterable[str] | None = None
) -> dict[Key, tuple[int, ...]]:
    """Final values ``(charge_wh, discharge_wh, soc_percent)`` of every computed interval
    with end_at in ``(start, now]``, by ``(source, end_at)``."""
    sim, system_id = env.sim, env.system_id
    now = sim.clock.timestamp()
    result: dict[Key, tuple[int, ...]] = {}
    for source in sources if sources is not None else (BATTERY, *env.serials()):
        if source == BATTERY:
            for b in sim.ground_truth_battery(system_id, start, now):
                if b.devices:
                    result[(source, b.end_at)] = (b.charge_wh, b.discharge_wh, b.soc_percent)
        else:
            for e in sim.ground_truth_encharge(system_id, source, start, now):
                result[(source, e.end_at)] = (e.charge_wh, e.discharge_wh, e.soc_percent)
    return result


def reported(env: OneSystem, key: Key) -> bool:
    """Whether every device of the interval has reported it (the API shows it complete)."""
    sim = env.sim
    source, end_at = key
    system = sim.system(env.system_id)
    now = sim.clock.timestamp()
    devices = [
        d
        for d in system.encharges
        if (source == BATTERY or d.serial == source) and 0 <= d.index(end_at) < len(d)
    ]
    return bool(devices) and all(sim.arrival.visible_at(d, d.index(end_at)) <= now for d in devices)


def key_of(interval: TelemetryInterval) -> Key:
    return (interval.source, int(interval.end_at.timestamp()))


def emission_of(interval: TelemetryInterval) -> tuple[str, int, int]:
    """One emission of an interval: its key and its revision."""
    return (interval.source, int(interval.end_at.timestamp()), interval.revision)


def last_emissions(emitted: Iterable[TelemetryInterval]) -> dict[Key, TelemetryInterval]:
    """The newest revision of each interval emitted (what an upserting consumer holds)."""
    last: dict[Key, TelemetryInterval] = {}
    for iv in emitted:
        key = key_of(iv)
        if key not in last or iv.revision >= last[key].revision:
            last[key] = iv
    return last


def values_of(interval: TelemetryInterval) -> tuple[int, ...]:
    return (interval.charge_wh, interval.discharge_wh, interval.soc_percent or 0)


def check_exactly_once(
    env: OneSystem,
    emitted: list[TelemetryInterval],
    start: int,
    *,
    may_repeat: Iterable[TelemetryInterval] = (),
    sources: Iterable[str] | None = None,
) -> dict[Key, tuple[int, ...]]:
    """Assert the exactly-once contract against the simulator's ground truth, now.

    * nothing comes twice (but each of ``may_repeat``, the intervals in the consumer's
      hands at a crash, may come once more);
    * every interval every device has reported by now came out;
    * everything that came out exists, with its final values unless flagged partial (then
      with fewer devices, and no more energy than the final values).

    Returns the ground truth used.
    """
    expected = truth(env, start, sources)
    counts = Counter(map(key_of, emitted))
    emissions = Counter(map(emission_of, emitted))
    repeatable = Counter(map(emission_of, may_repeat))
    twice = {k: n for k, n in emissions.items() if n > 1 + repeatable[k]}
    assert not twice, f"delivered more than once: {sorted(twice.items())[:10]}"
    revisions: dict[Key, set[int]] = {}
    for source, end, revision in emissions:
        revisions.setdefault((source, end), set()).add(revision)
    for key, seen in revisions.items():
        # Revision n goes out only after revision n - 1 was delivered.
        assert seen == set(range(len(seen))), f"revisions of {key}: {sorted(seen)}"
    missing = sorted(k for k in expected if k not in counts and reported(env, k))
    assert not missing, f"{len(missing)} reported intervals never delivered: {missing[:10]}"
    for iv in emitted:
        key = key_of(iv)
        assert key in expected, f"delivered an interval that does not exist: {iv}"
        assert key[1] > start, f"delivered an interval before start: {iv}"
        if iv.partial:
            assert iv.devices_reporting is not None
            assert iv.total_devices is not None
            assert iv.devices_reporting < iv.total_devices, iv
            assert iv.charge_wh <= expected[key][0], iv
            assert iv.discharge_wh <= expected[key][1], iv
        else:
            assert values_of(iv) == expected[key], (iv, expected[key])
            assert iv.devices_reporting == iv.total_devices, iv
    return expected


# -- consumers that stop and restart ---------------------------------------------------

#: How a consumer stops after its k-th interval: ``break`` and ``aclose`` call
#: ``commit()`` first (as the README recipes do); ``uncommitted`` breaks out of
#: ``async with`` without it, so the last interval comes again, like after a crash.
STOPS = ("break", "aclose", "cancel", "crash", "uncommitted")
#: Stops after which the last interval taken comes again.
REPEATING_STOPS = ("crash", "uncommitted")


@attrs.define
class Run:
    """What a run of consumers saw."""

    emitted: list[TelemetryInterval] = attrs.Factory(list)
    #: Intervals in the consumer's hands when it crashed (they may come once more).
    in_hand_at_crash: list[TelemetryInterval] = attrs.Factory(list)
    #: Intervals each consumer got.
    segments: list[int] = attrs.Factory(list)
    #: Simulated time before the final advance (epoch seconds).
    final_from: int = 0


async def process_died(poller: TelemetryPoller) -> None:
    """What the OS does for a process that died: its hold on the checkpoint ends (the
    poller itself is simply dropped, unsaved state and all)."""
    store = poller.checkpoint
    if isinstance(store, LockingCheckpointStore):
        await store.release()


async def consume(
    poller: TelemetryPoller,
    sim: EnphaseSimulator,
    k: int,
    stop: str,
    ticks: list[timedelta],
) -> tuple[list[TelemetryInterval], bool]:
    """One consumer: take ``k`` intervals, then stop the ``stop`` way.

    Whenever the poller has caught up, the next of ``ticks`` moves the simulated clock
    and starts the next poll.  When ``ticks`` run out first, the consumer is cancelled
    (``break``/``aclose``/``cancel`` then close the poller, ``crash`` does not).
    Returns the intervals and whether the last one may come again.
    """
    got: list[TelemetryInterval] = []
    reached = asyncio.Event()

    async def consumer() -> None:
        if stop in ("break", "uncommitted"):
            async with poller:
                async for interval in poller:
                    got.append(interval)
                    if len(got) >= k:
                        if stop == "break":
                            await poller.commit()
                        break
        elif stop == "aclose":
            try:
                async for interval in poller:
                    got.append(interval)
                    if len(got) >= k:
                        await poller.commit()
                        return
            finally:
                await poller.aclose()
        elif stop == "crash":
            async for interval in poller:
                got.append(interval)
                if len(got) >= k:
                    return
        elif stop == "cancel":
            async with poller:
                async for interval in poller:
                    got.append(interval)
                    if len(got) >= k:
                        reached.set()  # keeps consuming until the task is cancelled
        else:
            raise ValueError(stop)

    task = asyncio.create_task(consumer())
    while True:
        idle = asyncio.ensure_future(poller.wait_idle())
        enough = asyncio.ensure_future(reached.wait())
        try:
            await asyncio.wait({task, idle, enough}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            enough.cancel()
        if task.done():
            task.result()
            if stop == "crash":
                await process_died(poller)
            return got, stop in REPEATING_STOPS
        if reached.is_set() or not ticks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if stop == "crash":
                await process_died(poller)
            return got, stop in REPEATING_STOPS
        sim.clock.advance(ticks.pop(0))
        await wake(poller)


async def run_with_restarts(
    env: Env,
    make_poller: Any,
    plan: Iterable[tuple[int, str]],
    ticks: Iterable[timedelta],
    *,
    final_advance: timedelta,
) -> Run:
    """Consumers one after another (``plan``: how many intervals each takes and how it
    stops), each on a new poller from ``make_poller()``, the clock moving by ``ticks``
    whenever a poller has caught up; then a last poller after ``final_advance``, drained.
    """
    run = Run()
    pending_ticks = list(ticks)
    for k, stop in plan:
        got, crashed = await consume(make_poller(), env.sim, k, stop, pending_ticks)
        run.emitted += got
        run.segments.append(len(got))
        if crashed and got:
            run.in_hand_at_crash.append(got[-1])
    for delta in pending_ticks:
        env.sim.clock.advance(delta)
    run.final_from = env.sim.clock.epoch()
    env.sim.clock.advance(final_advance)
    poller = make_poller()
    driver = Driver(poller)
    got = await driver.pull()
    run.emitted += got
    run.segments.append(len(got))
    await driver.cancel()
    await poller.aclose()
    return run


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


#: The realistic late mix of the issue: 5 % of Encharge uploads 2 h late, settle 1 h.
LATE = {"late_probability": 0.05, "late_delay": timedelta(hours=2), "encharges": 3}


def wrong_final(env: Env, emitted: list[TelemetryInterval], start: int) -> list[TelemetryInterval]:
    """The intervals whose last emission differs from their final value (or is still
    flagged partial) although every device has reported them."""
    expected = truth(env, start)
    return [
        iv
        for key, iv in last_emissions(emitted).items()
        if reported(env, key) and (iv.partial or values_of(iv) != expected[key])
    ]
