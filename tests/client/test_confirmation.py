"""Confirmed writes against the simulator's gateway: applied, still pending, overridden.

The simulator applies a write ``write_delay_s`` after accepting it, or refuses it, or
reverts it (:mod:`enphase_battery.simulator.gateway`); the confirmation reads the write's
GET through the client until it shows the change or its time is up.  Real loopback HTTP,
real (short) waits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enphase_battery import EnphaseClient, InvalidRequestError, PermissionDeniedError, RateLimits
from enphase_battery.models import (
    BatteryMode,
    BatteryModeSettings,
    BatteryModeUpdate,
    BatterySettings,
    LoadControlMode,
    StormGuard,
    WriteConfirmation,
    WriteOutcome,
)
from enphase_battery.simulator import EnphaseSimulator

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
FAST = RateLimits(100_000)
#: How long the simulated gateway takes, and how often the confirmation reads.
DELAY_S = 0.3
INTERVAL_S = 0.05
WAIT: dict[str, Any] = {"confirm": True, "timeout_s": 3.0, "interval_s": INTERVAL_S}


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(
        seed=31, systems=1, encharges=2, start=START, history=timedelta(hours=6),
        write_delay_s=DELAY_S,
    ) as simulator:  # fmt: skip
        yield simulator


@pytest.fixture
async def client(sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with sim.make_client(rate_limits=FAST, max_retry_time=5) as api:
        yield api


@pytest.fixture
def system_id(sim: EnphaseSimulator) -> int:
    return sim.system_ids[0]


def mode_path(system_id: int) -> str:
    return f"/api/v4/activations/{system_id}/battery_mode"


async def test_battery_mode_applied_after_the_gateway_delay(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    before = await client.get_battery_mode(system_id)
    wanted = not before.cfg_allowed
    used_before = client.quota_used
    started = time.monotonic()
    result = await client.update_battery_mode(
        system_id, cfg_allowed=wanted, dtg_allowed=True, **WAIT
    )
    assert isinstance(result, WriteConfirmation)
    assert result.outcome is WriteOutcome.APPLIED
    assert result.applied
    assert result.answer == BatteryModeUpdate("Battery mode updated successfully")
    assert result.observed == BatteryModeSettings(cfg_allowed=wanted, dtg_allowed=True)
    assert result.requested == {"cfg_allowed": wanted, "dtg_allowed": True}
    assert result.mismatched == ()
    # It waited for the gateway (not just the first read) and no longer than needed.
    assert DELAY_S <= time.monotonic() - started < 2.0
    assert result.reads >= 2
    # Every confirmation read is a request counted like any other: the PUT + the reads.
    assert client.quota_used - used_before == 1 + result.reads
    assert sim.path_counts[mode_path(system_id)] == 1 + 1 + result.reads


async def test_without_confirm_the_put_answers_before_the_gateway_applies_it(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    before = await client.get_battery_mode(system_id)
    update = await client.update_battery_mode(
        system_id, cfg_allowed=not before.cfg_allowed, dtg_allowed=not before.dtg_allowed
    )
    assert update.message == "Battery mode updated successfully"
    # The regression this feature is for: the answer says "updated", the GET does not yet.
    assert await client.get_battery_mode(system_id) == before


async def test_a_refused_write_is_pending_when_the_time_is_up(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    before = await client.get_battery_mode(system_id)
    sim.writes.refuse_next()
    started = time.monotonic()
    result = await client.update_battery_mode(
        system_id,
        cfg_allowed=not before.cfg_allowed,
        dtg_allowed=True,
        confirm=True,
        timeout_s=0.6,
        interval_s=INTERVAL_S,
    )
    waited = time.monotonic() - started
    assert result.outcome is WriteOutcome.PENDING
    assert not result.applied
    assert result.observed == before
    assert "cfg_allowed" in result.mismatched
    # Bounded: it gave up at its timeout (plus the PUT and scheduling noise).
    assert 0.6 <= waited < 0.6 + 1.0
    assert result.waited_s <= 0.6 + 0.5
    assert sim.writes.counts["refused"] == 1


async def test_a_reverted_write_is_overridden(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    before = await client.get_battery_mode(system_id)
    sim.writes.revert_next()
    # Shown for 0.5 s: a read every 0.05 s sees it, and settle_s outlasts it by a second.
    sim.writes.revert_after_s = 0.5
    result = await client.update_battery_mode(
        system_id,
        cfg_allowed=not before.cfg_allowed,
        dtg_allowed=True,
        confirm=True,
        timeout_s=4.0,
        interval_s=INTERVAL_S,
        settle_s=1.5,  # keep watching after the first match: the revert comes within it
    )
    assert result.outcome is WriteOutcome.OVERRIDDEN
    assert result.observed == before
    assert set(result.mismatched) >= {"cfg_allowed"}
    assert sim.writes.counts["reverted"] == 1


async def test_settle_keeps_watching_a_write_that_stays(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    started = time.monotonic()
    result = await client.update_system_storm_guard(
        system_id, True, confirm=True, timeout_s=3.0, interval_s=INTERVAL_S, settle_s=0.4
    )
    assert result.outcome is WriteOutcome.APPLIED
    assert time.monotonic() - started >= DELAY_S + 0.4


async def test_every_update_method_confirms(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    settings = await client.update_system_battery_settings(
        system_id, battery_mode="savings", reserve_soc=45, **WAIT
    )
    assert settings.outcome is WriteOutcome.APPLIED
    assert isinstance(settings.observed, BatterySettings)
    assert settings.observed.reserve_soc == 45
    assert settings.observed.battery_mode is BatteryMode.SAVINGS
    assert isinstance(settings.answer, BatterySettings)

    storm = await client.update_system_storm_guard(system_id, True, **WAIT)
    assert storm.outcome is WriteOutcome.APPLIED
    assert storm.observed == StormGuard(system_id, True, False)

    load = await client.update_system_load_control(
        system_id, name="NC2", mode=LoadControlMode.BASIC, essential_start_time=3600, **WAIT
    )
    assert load.outcome is WriteOutcome.APPLIED
    assert load.requested == {"mode": LoadControlMode.BASIC, "essential_start_time": 3600}
    assert load.observed is not None
    circuit = next(c for c in load.observed.load_control_data if c.name == "NC2")
    assert circuit.mode is LoadControlMode.BASIC
    assert circuit.essential_start_time == 3600


async def test_pending_for_the_older_writes_too(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    sim.writes.refuse_next(2)
    result = await client.update_system_battery_settings(
        system_id, reserve_soc=77, confirm=True, timeout_s=0.3, interval_s=INTERVAL_S
    )
    assert result.outcome is WriteOutcome.PENDING
    assert result.mismatched == ("reserve_soc",)
    # The API answered the state asked for; the gateway shows the old one.
    assert result.answer.reserve_soc == 77
    assert result.observed is not None
    assert result.observed.reserve_soc != 77
    load = await client.update_system_load_control(
        system_id, name="NC1", soc_low=55, confirm=True, timeout_s=0.3, interval_s=INTERVAL_S
    )
    assert load.outcome is WriteOutcome.PENDING


async def test_wait_applied_confirms_a_write_sent_earlier(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    await client.update_battery_mode(system_id, cfg_allowed=True, dtg_allowed=False)
    result = await client.wait_applied(
        "update_battery_mode",
        system_id,
        cfg_allowed=True,
        dtg_allowed=False,
        timeout_s=3.0,
        interval_s=INTERVAL_S,
    )
    assert result.outcome is WriteOutcome.APPLIED
    assert result.answer is None
    assert result.operation_id == "update_battery_mode"
    storm = await client.wait_applied(
        "update_system_storm_guard", system_id, enabled=False, timeout_s=1.0, interval_s=0.1
    )
    assert storm.applied  # Storm Guard starts disabled: the first read shows it
    assert storm.reads == 1


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": float("inf")}, "timeout_s"),
        ({"timeout_s": 3601}, "timeout_s"),
        ({"interval_s": 0}, "interval_s"),
        ({"interval_s": "1"}, "interval_s"),
        ({"settle_s": 5.0, "timeout_s": 5.0}, "settle_s"),
        ({"settle_s": -0.5}, "settle_s"),
    ],
)
async def test_bad_bounds_are_refused_before_anything_is_sent(
    sim: EnphaseSimulator,
    client: EnphaseClient,
    system_id: int,
    arguments: dict[str, Any],
    words: str,
) -> None:
    with pytest.raises(InvalidRequestError, match=words):
        await client.update_battery_mode(
            system_id, cfg_allowed=True, dtg_allowed=True, confirm=True, **arguments
        )
    with pytest.raises(InvalidRequestError, match=words):
        await client.wait_applied("update_system_storm_guard", system_id, enabled=True, **arguments)
    assert sim.request_count == 0
    assert sim.writes.counts["accepted"] == 0


async def test_wait_applied_refuses_unknown_writes_and_arguments(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    with pytest.raises(InvalidRequestError, match="unknown write"):
        await client.wait_applied("get_battery_mode", system_id)
    with pytest.raises(InvalidRequestError, match="update_battery_mode"):
        await client.wait_applied("update_battery_mode", system_id, cfg_allowed=True)
    with pytest.raises(InvalidRequestError):
        await client.wait_applied("update_system_battery_settings", system_id, reserve_soc=101)
    with pytest.raises(InvalidRequestError):
        await client.wait_applied("update_system_storm_guard", 0, enabled=True)
    assert sim.request_count == 0


async def test_a_slow_read_cannot_stretch_the_wait(
    sim: EnphaseSimulator, client: EnphaseClient, system_id: int
) -> None:
    sim.faults.set_latency(2.0, path="/battery_mode")
    started = time.monotonic()
    result = await client.wait_applied(
        "update_battery_mode",
        system_id,
        cfg_allowed=True,
        dtg_allowed=True,
        timeout_s=0.4,
        interval_s=INTERVAL_S,
    )
    assert time.monotonic() - started < 1.5  # the read alone would take 2 s
    assert result.outcome is WriteOutcome.PENDING
    assert result.observed is None
    assert result.reads == 0


async def test_a_failing_read_raises_and_says_the_write_was_sent() -> None:
    async with (
        EnphaseSimulator(seed=4, systems=1, plan="partner", start=START, write_delay_s=0.2) as sim,
        sim.make_client(rate_limits=FAST, max_retries=0) as client,
    ):
        system_id = sim.system_ids[0]
        await client.update_system_storm_guard(system_id, True)
        sim.faults.fail_next(1, 403, path="/storm_guard")
        with pytest.raises(PermissionDeniedError) as info:
            await client.wait_applied(
                "update_system_storm_guard", system_id, enabled=True, timeout_s=2.0,
                interval_s=INTERVAL_S,
            )  # fmt: skip
        assert any("reading it back" in note for note in info.value.__notes__)
