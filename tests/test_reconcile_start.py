"""``reconcile()`` and ``check`` validate their start before sending, and skip the days
before the system's first interval (issue 18 item 5).

On the simulator over loopback; the CLI through the fixtures of tests/support/cli.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from enphase_battery import EnphaseClient, InvalidRequestError, RateLimits
from enphase_battery.cli.errors import EXIT_USAGE
from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import Run, SimulatorThread

#: The simulator's "now": a week of history before it.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


@pytest.fixture
async def week_sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(seed=3, start=NOW, history=timedelta(days=7)) as made:
        yield made


@pytest.fixture
async def client(week_sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with week_sim.make_client(rate_limits=RateLimits(100_000)) as made:
        yield made


async def test_a_start_over_two_years_back_is_refused_before_sending(
    week_sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = week_sim.system_ids[0]
    before = week_sim.request_count
    with pytest.raises(InvalidRequestError, match="two years"):
        await client.reconcile(system_id, NOW - timedelta(days=3 * 365))
    with pytest.raises(InvalidRequestError, match="future"):
        await client.reconcile(system_id, datetime.now(UTC) + timedelta(days=1))
    assert week_sim.request_count == before


async def test_the_days_before_the_first_interval_cost_nothing(
    week_sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = week_sim.system_ids[0]
    serials = week_sim.encharge_serials(system_id)
    first = datetime.fromtimestamp(week_sim.system(system_id).operational_at, UTC)
    before = week_sim.request_count
    result = await client.reconcile(system_id, NOW - timedelta(days=400), NOW)
    sent = week_sim.request_count - before
    assert result.requests == sent
    # The week of data: a reading per day (and the edges) and a week of intervals per
    # battery, two requests at most as the week straddles; not one reading per day
    # over 400 days.
    assert sent <= 10 + 2 * len(serials)
    assert result.spans
    assert min(s.start for s in result.spans) >= first


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(seed=3, systems=1, encharges=1, plan="partner")
    yield thread
    thread.close()


def test_check_since_three_years_back_sends_nothing(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int
) -> None:
    since = (datetime.now(UTC) - timedelta(days=3 * 365)).date().isoformat()
    before = sim.request_count
    code, _out, err = cli("check", "--system", str(system_id), "--since", since)
    assert code == EXIT_USAGE, err
    assert "two years" in err
    assert sim.request_count == before
