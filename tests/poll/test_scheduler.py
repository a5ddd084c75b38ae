"""The fleet scheduler's choices, as pure logic (no HTTP, no clock)."""

from __future__ import annotations

from enphase_battery.poll.scheduler import Discover, FleetScheduler, Poll, Relist


def make(**options: object) -> FleetScheduler:
    defaults: dict[str, object] = {
        "relist_every_s": 900.0,
        "rediscover_every_s": 86_400.0,
        "max_quiet_s": 86_400.0,
    }
    defaults.update(options)
    return FleetScheduler(**defaults)  # type: ignore[arg-type]


def drain(s: FleetScheduler, now: float) -> list[object]:
    jobs = []
    while True:
        job = s.next_job(now)
        if job is None or isinstance(job, float):
            return jobs
        jobs.append(job)
        if isinstance(job, Relist):
            s.relisted(now, ok=True)
        else:
            if isinstance(job, Poll):
                s.started(job, now)
            s.finished(job, now, ok=True)


def test_start_up_polls_every_battery_stream_before_any_discovery() -> None:
    s = make(secondary_every=10**6)
    for system_id in range(1, 6):
        s.add(system_id, now=0.0)
    jobs = drain(s, 0.0)
    assert jobs[0] == Relist()
    polls = [j for j in jobs if isinstance(j, Poll)]
    discovers = [j for j in jobs if isinstance(j, Discover)]
    assert len(polls) == 5
    assert len(discovers) == 5
    assert jobs.index(discovers[0]) > jobs.index(polls[-1])


def test_only_systems_that_reported_are_polled_stalest_first() -> None:
    s = make(discover=False)
    for system_id in (1, 2, 3):
        s.add(system_id, now=0.0)
        s.listed(system_id, 100)
    drain(s, 0.0)
    s.listed(1, 100)  # no news
    s.listed(2, 200)
    s.listed(3, 200)
    jobs = drain(s, 10.0)
    assert [j.system_id for j in jobs if isinstance(j, Poll)] == [2, 3]
    # 3 is now the stalest with news: it goes first next time.
    s.systems[2].last_polled_at = 20.0  # polled more recently than 3
    s.listed(2, 300)
    s.listed(3, 300)
    jobs = drain(s, 30.0)
    assert [j.system_id for j in jobs if isinstance(j, Poll)] == [3, 2]


def test_priority_systems_go_first() -> None:
    s = make(discover=False)
    for system_id in (1, 2, 3):
        s.add(system_id, priority=system_id == 3, now=0.0)
    assert s.next_job(0.0) == Relist()
    s.relisted(0.0, ok=True)
    assert s.next_job(0.0) == Poll(3)


def test_backfill_runs_from_spare_picks_without_starving_the_live_edge() -> None:
    s = make(discover=False, secondary_every=4)
    for system_id in range(1, 21):
        s.add(system_id, now=0.0)
    s.next_job(0.0)
    s.relisted(0.0, ok=True)
    first = s.next_job(0.0)
    assert isinstance(first, Poll)
    s.started(first, 0.0)
    s.finished(first, 0.0, ok=True, backlog=True)  # its window came back full
    picks = []
    for _ in range(12):
        job = s.next_job(1.0)
        assert isinstance(job, Poll)
        picks.append(job)
        if job.backfill:
            s.finished(job, 1.0, ok=True, backlog=True)
    backfills = [p for p in picks if p.backfill]
    assert 2 <= len(backfills) <= 4  # about one pick in four while live work waits
    assert len(picks) - len(backfills) >= 8


def test_a_failing_system_is_backed_off_alone_and_comes_back() -> None:
    s = make(discover=False)
    s.add(1, now=0.0)
    s.add(2, now=0.0)
    s.next_job(0.0)
    s.relisted(0.0, ok=True)
    job = s.next_job(0.0)
    assert isinstance(job, Poll)
    s.started(job, 0.0)
    s.finished(job, 0.0, ok=False, retry_after_s=600.0)
    other = s.next_job(0.0)
    assert isinstance(other, Poll)
    assert other.system_id != job.system_id
    s.started(other, 0.0)
    s.finished(other, 0.0, ok=True)
    assert s.next_job(100.0) == 600.0  # nothing due before the backoff ends
    assert s.next_job(600.0) == Poll(job.system_id)


def test_a_quiet_system_is_polled_after_max_quiet() -> None:
    s = make(discover=False, max_quiet_s=3600.0, relist_every_s=None)
    s.add(1, now=0.0)
    s.listed(1, 100)
    job = s.next_job(0.0)
    assert job == Poll(1)
    s.started(job, 0.0)
    s.finished(job, 0.0, ok=True)
    assert s.next_job(10.0) == 3600.0
    assert s.next_job(3600.0) == Poll(1)


def test_a_quiet_poll_is_forced_past_what_the_list_says() -> None:
    s = make(discover=False, max_quiet_s=3600.0, relist_every_s=None)
    s.add(1, now=0.0)
    s.listed(1, 100)
    job = s.next_job(0.0)
    assert isinstance(job, Poll)
    s.started(job, 0.0)
    s.finished(job, 0.0, ok=True)
    assert not s.systems[1].forced
    assert s.next_job(3600.0) == Poll(1)
    # The list shows nothing new: the engine must fetch every stream all the same.
    assert s.systems[1].forced


def test_relist_interval_lists_often_only_while_the_polls_keep_up() -> None:
    from enphase_battery.poll.scheduler import relist_interval

    partner_rate = 1_200_000 / (30 * 86_400)  # 80 % of Partner, requests a second
    # Behind (systems with news still queued): listing sooner finds nothing fetchable.
    assert relist_interval(10, partner_rate, keeping_up=False) == 1200.0
    assert relist_interval(1, partner_rate, keeping_up=False) == 900.0
    assert relist_interval(100, partner_rate, keeping_up=False) == 3600.0
    # Keeping up: a tenth of the budget's pace, once a minute at most.
    assert relist_interval(1, partner_rate, keeping_up=True) == 60.0
    assert 200 < relist_interval(10, partner_rate, keeping_up=True) < 230
    # The Watt plan's 800 requests a month can't pay for frequent lists.
    watt_rate = 800 / (30 * 86_400)
    assert relist_interval(1, watt_rate, keeping_up=True) == 900.0
    assert relist_interval(1, None, keeping_up=True) == 60.0
    assert relist_interval(1, 0.0, keeping_up=True) == 900.0


def test_news_is_polled_a_gather_time_later_so_the_whole_upload_is_in() -> None:
    s = make(discover=False, gather_s=120.0)
    s.add(1, now=0.0)
    s.listed(1, 100, 0.0)
    # Never polled: at once, whatever the gather time.
    assert [j for j in drain(s, 0.0) if isinstance(j, Poll)] == [Poll(1)]
    s.listed(1, 1000, 500.0)
    assert drain(s, 500.0) == []
    assert s.next_job(500.0) == 620.0  # the gather timer is what wakes the workers
    assert [j for j in drain(s, 619.0) if isinstance(j, Poll)] == []
    # A later list within the gather time doesn't push the poll further out.
    s.listed(1, 1100, 600.0)
    assert [j for j in drain(s, 620.0) if isinstance(j, Poll)] == [Poll(1)]
