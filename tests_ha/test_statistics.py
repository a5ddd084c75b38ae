"""Long-term statistics against the simulator's ground truth: a backfill, late intervals,
revisions of partial ones, and a restart without a gap or a repeat."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from custom_components.enphase_battery.statistics import statistic_id
from enphase_battery import TelemetryInterval
from enphase_battery.models import BATTERY
from enphase_battery.simulator import EnphaseSimulator

from .conftest import add_entry, caught_up
from .helpers import delivered_rows, expected_rows, hour_of, imported_rows, record_deliveries

Rows = dict[datetime, tuple[float, float]]

#: Times of day (UTC) the late mix runs at (the simulated now is 7 minutes past each):
#: which intervals are late, and whether the battery idles through them, depends on it.
LATE_MIX_AT = ("00:00", "04:30", "09:15", "13:45", "18:30")


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
) -> dict[str, Rows]:
    """Every stream's imported hours equal the ground truth through the newest interval."""
    sid = sim.system_ids[0]
    start, newest = _start(entry), _newest(entry, sid)
    # The ground truth through the newest interval the API has shown is what the
    # statistics must hold only once the poller has delivered all of it: nothing late
    # still missing, no partial interval held back.
    watermarks = entry.runtime_data.histories[sid].poller.progress.watermarks
    assert set(watermarks.values()) == {newest}, f"not all delivered through {newest}: {watermarks}"
    held = {}
    for source in (BATTERY, *sim.encharge_serials(sid)):
        expected = expected_rows(_truth(sim, sid, source, start, newest))
        got = await imported_rows(hass, sid, source, start - timedelta(hours=1))
        assert got == {hour: (float(c), float(d)) for hour, (c, d) in expected.items()}, source
        held[source] = got
    return held


async def _assert_delivered_imported(
    hass: HomeAssistant,
    sid: int,
    sources: tuple[str, ...],
    start: datetime,
    delivered: list[TelemetryInterval],
) -> dict[str, Rows]:
    """Every stream's imported hours are exactly what the intervals delivered so far make:
    an hour appears once one of its intervals is delivered, is corrected when a late one
    or a revision comes, and nothing is lost or counted twice."""
    rows = {}
    for source in sources:
        expected = delivered_rows(delivered, source)
        got = await imported_rows(hass, sid, source, start)
        assert got == {hour: (float(c), float(d)) for hour, (c, d) in expected.items()}, source
        rows[source] = got
    return rows


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


@pytest.mark.parametrize(
    "at", [pytest.param(at, marks=pytest.mark.sim(at=at)) for at in LATE_MIX_AT]
)
@pytest.mark.sim(late_probability=0.2, late_delay=timedelta(hours=3))
async def test_late_intervals_and_revisions_change_the_right_hours(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    sim: EnphaseSimulator,
    monkeypatch: pytest.MonkeyPatch,
    at: str,
) -> None:
    """Late intervals (one Encharge's part of an interval hours late): the battery's
    interval goes out partial and is revised, the Encharge's comes late; each time the
    hour it belongs to and the sums after it are imported again.

    Hour by hour the statistics are exactly what the poller has delivered so far; a
    partial interval is held back for a while and a late one comes hours later, so the
    ground truth is compared only once the late mix has stopped and all of it has come.
    """
    delivered = record_deliveries(monkeypatch)
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=1)
    sid = sim.system_ids[0]
    start = _start(entry)
    sources = (BATTERY, *sim.encharge_serials(sid))
    held = await _assert_delivered_imported(hass, sid, sources, start, delivered)
    late_changes = 0
    for _ in range(8):
        seen = len(delivered)
        await _advance(hass, sim, entry, 1)
        now_held = await _assert_delivered_imported(hass, sid, sources, start, delivered)
        for source in sources:
            before, after = held[source], now_held[source]
            # An hour already imported either keeps its row or is imported anew; when one
            # changes, every later hour's sum moves with it (never a jump), and the first
            # that changed is the hour of an interval delivered meanwhile.
            moved = sorted(hour for hour in before if after[hour] != before[hour])
            if not moved:
                continue
            first = moved[0]
            hours_delivered = {hour_of(i) for i in delivered[seen:] if i.source == source}
            assert first in hours_delivered, (source, first)
            assert all(after[h] == before[h] for h in before if h < first), source
            assert all(after[h] != before[h] for h in before if h >= first), source
            # Not only the newest hour going on: an older one rewritten.
            late_changes += first < max(before)
        held = now_held
    history = entry.runtime_data.histories[sid]
    assert late_changes, "the late mix changed no older imported hour: nothing was tested"
    assert history.revisions_received > 0, "no partial interval was revised"
    # No interval is late from now on; 4 hours on (3 h late + the 15-minute upload) every
    # late one has come and every partial one is revised: the statistics equal the
    # ground truth through the newest interval.
    sim.system(sid).late_probability = 0.0
    await _advance(hass, sim, entry, 4)
    await _assert_delivered_imported(hass, sid, sources, start, delivered)
    await _assert_statistics_match(hass, sim, entry)


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
