"""Long-term statistics against the simulator's ground truth: a backfill, late intervals,
revisions of partial ones, and a restart without a gap or a repeat."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from custom_components.enphase_battery.statistics import statistic_id
from enphase_battery.models import BATTERY
from enphase_battery.simulator import EnphaseSimulator

from .conftest import add_entry, caught_up
from .helpers import expected_rows, imported_rows


def _start(entry: ConfigEntry) -> datetime:
    return datetime.fromisoformat(entry.data["history_start"])


def _newest(entry: ConfigEntry, system_id: int) -> datetime:
    poller = entry.runtime_data.histories[system_id].poller
    assert poller is not None
    newest = poller.progress.newest_end_at
    assert newest is not None
    return newest


def _truth(
    sim: EnphaseSimulator, system_id: int, source: str, start: datetime, end: datetime
) -> Any:
    if source == BATTERY:
        return sim.ground_truth_battery(system_id, start, end)
    return sim.ground_truth_encharge(system_id, source, start, end)


async def _assert_statistics_match(
    hass: HomeAssistant, sim: EnphaseSimulator, entry: ConfigEntry
) -> dict[str, dict[datetime, tuple[float, float]]]:
    """Every stream's imported hours equal the ground truth through the newest interval."""
    sid = sim.system_ids[0]
    start, newest = _start(entry), _newest(entry, sid)
    held = {}
    for source in (BATTERY, *sim.encharge_serials(sid)):
        expected = expected_rows(_truth(sim, sid, source, start, newest))
        got = await imported_rows(hass, sid, source, start - timedelta(hours=1))
        assert got == {hour: (float(c), float(d)) for hour, (c, d) in expected.items()}, source
        held[source] = got
    return held


async def _advance(
    hass: HomeAssistant, sim: EnphaseSimulator, entry: ConfigEntry, hours: float
) -> None:
    sim.clock.advance(timedelta(hours=hours))
    await caught_up(hass, entry, poll=True)


async def test_backfill_equals_ground_truth(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=3)
    held = await _assert_statistics_match(hass, sim, entry)
    hours = held[BATTERY]
    # Three days and today so far: every hour, each with the sums counted from the start.
    assert len(hours) >= 3 * 24
    assert min(hours) == _start(entry)
    # The metadata the recorder keeps: a sum statistic in Wh, the SoC as a mean.
    from homeassistant.components.recorder import get_instance
    from homeassistant.components.recorder.statistics import get_metadata

    sid = sim.system_ids[0]
    ids = {statistic_id(sid, BATTERY, kind) for kind in ("charged", "soc")}
    metadata = await get_instance(hass).async_add_executor_job(
        lambda: get_metadata(hass, statistic_ids=ids)
    )
    charged = metadata[statistic_id(sid, BATTERY, "charged")][1]
    soc = metadata[statistic_id(sid, BATTERY, "soc")][1]
    assert charged["has_sum"] is True
    assert charged["unit_of_measurement"] == "Wh"
    assert charged["source"] == "enphase_battery"
    assert int(soc["mean_type"]) == 1
    assert soc["has_sum"] is False

    # Going on: two more hours land in their hours, the sums continue.
    await _advance(hass, sim, entry, 2)
    await _assert_statistics_match(hass, sim, entry)


@pytest.mark.sim(late_probability=0.2, late_delay=timedelta(hours=3))
async def test_late_intervals_and_revisions_change_the_right_hours(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    """Late intervals (one Encharge's part of an interval hours late): the battery's
    interval goes out partial and is revised, the Encharge's comes late; each time the
    hour it belongs to and the sums after it are imported again."""
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=1)
    sid = sim.system_ids[0]
    before: dict[datetime, tuple[float, float]] = {}
    changed_hours: set[datetime] = set()
    for _ in range(8):
        before = await imported_rows(hass, sid, BATTERY, _start(entry))
        await _advance(hass, sim, entry, 1)
        after = await imported_rows(hass, sid, BATTERY, _start(entry))
        # An hour already imported either keeps its row or is imported anew; when one
        # changes, every later hour's sum moves with it (never a jump).
        moved = sorted(hour for hour in before if after[hour] != before[hour])
        if moved:
            first = moved[0]
            changed_hours.add(first)
            assert all(after[h] == before[h] for h in before if h < first)
            assert all(after[h] != before[h] for h in before if h >= first)
    # Everything late has arrived: the statistics equal the ground truth.
    await _advance(hass, sim, entry, 4)
    await _assert_statistics_match(hass, sim, entry)
    history = entry.runtime_data.histories[sid]
    assert changed_hours, "the late mix changed no imported hour: nothing was tested"
    assert history.revisions_received > 0, "no partial interval was revised"


async def test_restart_resumes_without_gap_or_repeat(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=1)
    sid = sim.system_ids[0]
    streams = 1 + len(sim.encharge_serials(sid))
    first_run = entry.runtime_data.histories[sid].intervals_received
    newest_before = _newest(entry, sid)

    # Home Assistant stops; three hours pass; it starts again.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    sim.clock.advance(timedelta(hours=3))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await caught_up(hass, entry, poll=True)

    newest_after = _newest(entry, sid)
    second_run = entry.runtime_data.histories[sid].intervals_received
    # Exactly the intervals that ended in between, each once, for every stream.
    new_intervals = int((newest_after - newest_before) / timedelta(minutes=15))
    assert new_intervals >= 11
    assert second_run == streams * new_intervals
    total = int((newest_after - _start(entry)) / timedelta(minutes=15))
    assert first_run + second_run == streams * total
    await _assert_statistics_match(hass, sim, entry)


async def test_a_failed_commit_replays_the_batch_without_double_counting(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    """The store's write fails after the batch's rows reached the recorder (a crash at the
    worst moment): the poller starts again from the checkpoint, the same batch comes again
    from the same hourly state, and its rows are imported again, identical."""
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=1)
    sid = sim.system_ids[0]
    history = entry.runtime_data.histories[sid]
    history.retry_wait_s = (0.05, 0.1)
    store = entry.runtime_data.store
    saved_before = dict(store.data["checkpoint"])
    real_write = store.async_write
    failures = []

    async def failing_write() -> None:
        if not failures:
            failures.append(True)
            raise OSError("disk full")
        await real_write()

    store.async_write = failing_write  # type: ignore[method-assign]
    await _advance(hass, sim, entry, 2)
    assert failures
    assert history.last_error is None
    assert store.data["checkpoint"] != saved_before
    await _assert_statistics_match(hass, sim, entry)
