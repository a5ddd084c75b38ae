"""The pollers' policies alone, on a stand-in for the engine's operations (``EngineOps``):
what a failure does for one system and for a fleet, and following at run time."""

from __future__ import annotations

import math
from typing import Any

import pytest

from enphase_battery.exceptions import ApiError, EnphaseConnectionError, PermissionDeniedError
from enphase_battery.poll.engine import EngineOps, StreamOutcome
from enphase_battery.poll.fleet import FleetPolicy
from enphase_battery.poll.followed import FollowedSystem
from enphase_battery.poll.poller import OneSystemPolicy
from enphase_battery.poll.scheduler import FleetScheduler, Poll
from enphase_battery.poll.stream_log import StreamLog

NOW = 1_780_000_000.0


class _Clock:
    def time(self) -> float:
        return NOW

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("a policy never sleeps")


class _Engine:
    """Just the operations a policy may use, with a real scheduler."""

    def __init__(self, scheduler: FleetScheduler) -> None:
        self.client: Any = None
        self.clock = _Clock()
        self.scheduler = scheduler
        self.systems: dict[int, FollowedSystem] = {}
        self.requests = 0
        self.pending = 0
        self.woken = 0

    def add(self, system_id: int, *, priority: bool) -> FollowedSystem:
        entry = self.scheduler.add(system_id, priority=priority, now=NOW)
        return self.systems.setdefault(system_id, FollowedSystem(entry))

    def drop(self, system_id: int) -> None:
        self.systems.pop(system_id, None)
        self.scheduler.remove(system_id)

    def wake(self) -> None:
        self.woken += 1

    def count_request(self, system: FollowedSystem | None) -> None:
        self.requests += 1

    async def discover(self, system: FollowedSystem) -> None:
        raise AssertionError("not used here")

    async def stream(self, system: FollowedSystem, source: str) -> StreamLog | None:
        raise AssertionError("not used here")

    async def fetch_stream(
        self, system: FollowedSystem, log: StreamLog, *, windows: int | None
    ) -> StreamOutcome:
        raise AssertionError("not used here")


def _one_system() -> tuple[OneSystemPolicy, _Engine]:
    policy = OneSystemPolicy(
        7,
        include_battery=True,
        encharges=None,
        poll_interval=None,
        quota_share=0.8,
        rediscover_s=86_400.0,
        retry_wait_s=(5.0, 900.0),
    )
    engine = _Engine(
        FleetScheduler(
            relist_every_s=None, rediscover_every_s=86_400.0, max_quiet_s=math.inf, discover=False
        )
    )
    ops: EngineOps = engine
    policy.attach(ops)
    return policy, engine


def test_one_system_retries_a_transient_failure_and_raises_any_other() -> None:
    policy, _ = _one_system()
    system = policy.system
    job = Poll(7)
    policy.failed(system, job, EnphaseConnectionError("down"))
    assert policy.retries == 1
    assert NOW < system.entry.backoff_until <= NOW + 5.0  # the first wait, jittered
    with pytest.raises(PermissionDeniedError):
        policy.failed(system, job, PermissionDeniedError("no", status=403))
    with pytest.raises(ApiError):
        policy.failed(system, job, ApiError("bad request", status=400))
    assert policy.retries == 1


def test_one_system_poll_now_reschedules_and_wakes() -> None:
    policy, engine = _one_system()
    policy.poll_now()
    assert engine.woken == 1
    assert not policy.caught_up


def _fleet(explicit: list[int] | None) -> tuple[FleetPolicy, _Engine]:
    policy = FleetPolicy(explicit, priority={2}, backoff=(60.0, 3600.0), fixed_relist_s=None)
    engine = _Engine(
        FleetScheduler(relist_every_s=900.0, rediscover_every_s=86_400.0, max_quiet_s=86_400.0)
    )
    policy.attach(engine)
    return policy, engine


async def test_a_fleet_failure_is_reported_and_backed_off_never_raised() -> None:
    policy, engine = _fleet([1, 2])
    await policy.begin()
    assert sorted(engine.systems) == [1, 2]
    system = engine.systems[1]
    policy.failed(system, Poll(1), PermissionDeniedError("no", status=403))
    assert system.problem is not None
    assert system.entry.backoff_until > NOW
    policy.succeeded(system, Poll(1))
    assert system.problem is None


async def test_a_fleet_follows_and_unfollows_at_run_time() -> None:
    policy, engine = _fleet([1])
    await policy.begin()
    policy.follow(3, priority=False)
    assert sorted(engine.systems) == [1, 3]
    assert engine.woken == 1
    policy.unfollow(1)
    assert sorted(engine.systems) == [3]
    assert policy.poll_over is None
