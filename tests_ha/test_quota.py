"""One governor per API key across entries; update intervals follow the plan."""

from __future__ import annotations

import logging
from datetime import timedelta

from homeassistant.core import HomeAssistant

from custom_components.enphase_battery.const import MIN_NOW_INTERVAL
from custom_components.enphase_battery.quota import MONTH_S, registry


async def test_one_governor_per_api_key(hass: HomeAssistant) -> None:
    quotas = registry(hass)
    first = await quotas.acquire("entry-1", "k" * 32, "watt", 1)
    second = await quotas.acquire("entry-2", "k" * 32, "watt", 2)
    other = await quotas.acquire("entry-3", "o" * 32, "watt", 1)
    assert first is second
    assert first.governor is second.governor
    assert other.governor is not first.governor
    assert first.total_systems == 3
    # Watt: the coordinators' 30 % of 1,000 requests spread over the month, per system.
    interval = first.update_interval(1, 1.0, MIN_NOW_INTERVAL)
    assert interval == timedelta(seconds=MONTH_S * 3 / 300)
    # Partner: the floor.
    partner = await quotas.acquire("entry-4", "p" * 32, "partner", 1)
    assert partner.update_interval(1, 0.5, MIN_NOW_INTERVAL) == MIN_NOW_INTERVAL
    await quotas.release("entry-2")
    assert first.total_systems == 1
    assert quotas.keys[first.key] is first


async def test_coordinators_repaced_when_an_entry_joins_the_key(hass: HomeAssistant) -> None:
    from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

    quotas = registry(hass)
    quota = await quotas.acquire("entry-1", "k" * 32, "watt", 1)
    coordinator: DataUpdateCoordinator[None] = DataUpdateCoordinator(
        hass, logging.getLogger(__name__), config_entry=None, name="test"
    )
    quota.pace("entry-1", coordinator, calls=1, part=1.0, floor=MIN_NOW_INTERVAL)
    alone = coordinator.update_interval
    assert alone == timedelta(seconds=MONTH_S / 300)
    await quotas.acquire("entry-2", "k" * 32, "watt", 2)
    assert coordinator.update_interval == 3 * alone
    await quotas.release("entry-2")
    assert coordinator.update_interval == alone


async def test_month_count_survives_a_restart(hass: HomeAssistant) -> None:
    quotas = registry(hass)
    quota = await quotas.acquire("entry-1", "k" * 32, "partner", 1)
    for _ in range(3):
        admission = await quota.governor.admit()
        del admission
    await quotas.release("entry-1")
    assert not quotas.keys
    again = await quotas.acquire("entry-1", "k" * 32, "partner", 1)
    assert again.governor is not quota.governor
    assert (await again.governor.usage()).used == 3


def test_history_start_stays_within_two_years() -> None:
    from datetime import UTC, datetime

    from custom_components.enphase_battery.const import MAX_HISTORY_DAYS
    from custom_components.enphase_battery.history import history_start
    from enphase_battery.poll import MAX_BACKFILL

    now = datetime(2026, 12, 6, 3, 40, tzinfo=UTC)
    assert history_start(3, now) == datetime(2026, 12, 3, tzinfo=UTC)
    oldest = history_start(MAX_HISTORY_DAYS, now)
    assert oldest >= now - MAX_BACKFILL + timedelta(hours=2)
    assert oldest.minute == 0
    assert oldest < now - MAX_BACKFILL + timedelta(hours=4)
