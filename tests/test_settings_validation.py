"""Every fleet, poller, client and CLI setting is validated before anything is sent
(issue 18 item 6): each bad value gets a clear ``InvalidRequestError`` (the CLI: exit 2).

On the simulator over loopback: its request count shows that nothing was sent.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from enphase_battery import (
    EnphaseClient,
    FleetPoller,
    InvalidRequestError,
    RateLimits,
    TelemetryPoller,
)
from enphase_battery.cli.errors import EXIT_USAGE
from enphase_battery.live import LiveBudget
from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import Run, SimulatorThread

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
async def own_sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(seed=3, start=NOW, history=timedelta(days=2)) as made:
        yield made


@pytest.fixture
async def client(own_sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with own_sim.make_client(rate_limits=RateLimits(100_000)) as made:
        yield made


FLEET_SETTINGS: list[tuple[str, Any]] = [
    ("relist_every", timedelta(minutes=-1)),
    ("relist_every", timedelta(0) - timedelta(microseconds=1)),
    ("max_quiet", timedelta(hours=-1)),
    ("max_quiet", timedelta(0)),
    ("rediscover_every", timedelta(0)),
    ("rediscover_every", 0),
    ("max_pending", -1),
    ("max_pending", 0),
    ("backoff", (1, math.inf)),
    ("backoff", (math.nan, 10)),
    ("backoff", (1,)),
    ("start_at", NOW - timedelta(days=3 * 365)),
    ("start_at", NOW + timedelta(days=5 * 365)),
]


@pytest.mark.parametrize(("name", "value"), FLEET_SETTINGS)
async def test_fleet_poller_settings(
    own_sim: EnphaseSimulator, client: EnphaseClient, name: str, value: Any
) -> None:
    before = own_sim.request_count
    with pytest.raises(InvalidRequestError, match=name):
        FleetPoller(client, own_sim.system_ids, **{name: value})
    assert own_sim.request_count == before


async def test_a_fleet_with_good_settings_still_builds(
    own_sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    poller = FleetPoller(
        client,
        own_sim.system_ids,
        relist_every=timedelta(minutes=5),
        max_quiet=timedelta(hours=2),
        rediscover_every=timedelta(hours=1),
        max_pending=1,
        backoff=(1, 60),
        start_at=NOW - timedelta(days=1),
    )
    await poller.aclose()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("poll_interval", math.nan),
        ("poll_interval", math.inf),
        ("poll_interval", -1.0),
        ("retry_wait_s", (1.0, math.inf)),
        ("rediscover_every", timedelta(hours=-1)),
    ],
)
async def test_telemetry_poller_settings(
    own_sim: EnphaseSimulator, client: EnphaseClient, name: str, value: Any
) -> None:
    before = own_sim.request_count
    with pytest.raises(InvalidRequestError, match=name):
        TelemetryPoller(client, own_sim.system_ids[0], **{name: value})
    assert own_sim.request_count == before


async def test_leased_fleet_settings_are_checked_when_it_is_built(client: EnphaseClient) -> None:
    from enphase_battery.poll import LeasedFleet

    # No server at this address: a setting checked only on connecting would not be.
    dsn = "postgresql://nobody@127.0.0.1:9/nowhere"
    for options in (
        {"relist_every": timedelta(0)},
        {"max_pending": 0},
        {"backoff": (5, math.inf)},
        {"max_quiet": timedelta(seconds=-1)},
        {"no_such_option": 1},
        {"systems": [True]},
    ):
        with pytest.raises(InvalidRequestError):
            LeasedFleet(client, dsn, **options)


@pytest.mark.parametrize(
    "make_call",
    [
        lambda c, s: c.get_storage_meter_readings(s, datetime(1970, 1, 1, tzinfo=UTC)),
        lambda c, s: c.get_storage_meter_readings(s, NOW + timedelta(days=2)),
        lambda c, s: c.get_system_summary(s, date(1, 1, 1)),
        lambda c, s: c.get_system_summary(s, date.today() + timedelta(days=30)),
    ],
    ids=["readings-1970", "readings-future", "summary-year-1", "summary-future"],
)
async def test_now_endpoints_refuse_dates_the_api_cannot_serve(
    own_sim: EnphaseSimulator, client: EnphaseClient, make_call: Callable[..., Any]
) -> None:
    before = own_sim.request_count
    with pytest.raises(InvalidRequestError):
        await make_call(client, own_sim.system_ids[0])
    assert own_sim.request_count == before


@pytest.mark.parametrize("key", ["abc\n", "ab c", "key\r\nX-Evil: 1", "é-key", ""])
async def test_an_api_key_that_cannot_go_into_a_url_is_refused(key: str) -> None:
    async def token() -> str:
        return "t"

    with pytest.raises(InvalidRequestError, match="api_key") as caught:
        EnphaseClient(api_key=key, auth=token)
    if key:
        assert key not in str(caught.value)  # a secret stays out of the message


@pytest.mark.parametrize("text", ["$1e9999", "$NaN", "$inf", "$-5", "$5000000000", "1e3usd"])
def test_live_budget_amounts_are_plain_numbers(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        LiveBudget.parse(text)
    with pytest.raises(InvalidRequestError):
        LiveBudget(max_spend=text.strip("$").removesuffix("usd"))


def test_live_budget_still_reads_the_usual_amounts() -> None:
    assert str(LiveBudget.parse("$12.50").max_spend) == "12.50"
    assert str(LiveBudget.parse("5usd, 12/h").max_spend) == "5"


# -- the CLI: exit 2 before any request ---------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(seed=3, systems=1, encharges=1, plan="partner")
    yield thread
    thread.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["devices", "--system", "١٢٣"],  # Arabic-Indic digits: int() reads them as 123
        ["devices", "--system", "\uff11\uff12\uff13"],  # fullwidth digits
        ["stream", "--system", "{system}", "--poll-interval", "nan"],
        ["stream", "--system", "{system}", "--poll-interval", "inf"],
        ["live", "--system", "{system}", "--budget", "$1e9999"],
        ["live", "--system", "{system}", "--budget", "3", "--poll-interval", "nan"],
    ],
)
def test_cli_refuses_before_sending(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int, argv: list[str]
) -> None:
    before = sim.request_count
    code, _out, err = cli(*(a.format(system=system_id) for a in argv))
    assert code == EXIT_USAGE, err
    assert sim.request_count == before
