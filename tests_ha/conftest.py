"""Fixtures: Home Assistant (pytest-homeassistant-custom-component) and the SDK's simulator
on loopback HTTP, with the integration's URLs pointed at it.  Nothing of the SDK is mocked:
every request crosses a real socket to ``enphase_battery.simulator``."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from homeassistant.components.application_credentials import (
    ClientCredential,
    async_import_client_credential,
)
from homeassistant.config_entries import SOURCE_USER, ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.helpers import config_entry_oauth2_flow
from homeassistant.setup import async_setup_component

from custom_components.enphase_battery.const import DOMAIN
from enphase_battery.simulator import EnphaseSimulator

pytest_plugins = "pytest_homeassistant_custom_component"

REDIRECT = "https://example.com/auth/external/callback"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Any, enable_custom_integrations: Any, current_request_with_host: Any
) -> None:
    """A recorder (set up before Home Assistant, as it must be), Home Assistant allowed to
    load custom_components/enphase_battery, and a frontend request for the OAuth2 redirect."""


#: ``HH:MM`` (UTC): the time of day of every simulator whose ``sim`` marker does not pin
#: one (``ENPHASE_HA_SIM_AT=16:30 make test-ha`` runs the suite at that time of day).
SIM_AT_ENV = "ENPHASE_HA_SIM_AT"


def sim_start(at: str | None = None) -> datetime:
    """The simulated now: 7 minutes past a quarter hour, so that every device's newest
    finished interval has been uploaded (reporting latency 15 min + jitter of at most
    90 s) and the next has not.  The quarter hour is ``at`` (``"HH:MM"`` UTC, rounded down
    to a quarter) on today's date, else ``$ENPHASE_HA_SIM_AT``, else the real clock's.
    The date is always the real one: the integration computes the history's start
    (midnight UTC some days back) from the real clock."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    at = at or os.environ.get(SIM_AT_ENV)
    if at:
        of_day = time.fromisoformat(at)
        now = now.replace(hour=of_day.hour, minute=of_day.minute)
    return now - timedelta(minutes=now.minute % 15) + timedelta(minutes=7)


async def start_simulator(*, at: str | None = None, **options: Any) -> EnphaseSimulator:
    """A simulator serving on loopback; ``at``: its time of day (see :func:`sim_start`)."""
    options.setdefault("seed", 3)
    options.setdefault("systems", 1)
    options.setdefault("history", timedelta(days=10))
    options.setdefault("enforce_plan_access", True)
    sim = EnphaseSimulator(start=sim_start(at), **options)
    await sim.start()
    return sim


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[EnphaseSimulator]:
    """A partner-plan simulator (``@pytest.mark.sim(plan=...)`` for others; a test's
    ``sim`` markers add up, the closest winning: a parameter's ``at=`` and the test's
    late mix)."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("sim"))):
        options.update(marker.kwargs)
    options.setdefault("plan", "partner")
    simulator = await start_simulator(**options)
    yield simulator
    await simulator.close()


async def setup_integration(
    hass: HomeAssistant, sim: EnphaseSimulator, secret: str | None = None
) -> None:
    """The integration's URLs at the simulator, and the app's credentials."""
    await async_process_ha_core_config(hass, {"external_url": "https://example.com"})
    assert await async_setup_component(
        hass,
        DOMAIN,
        {
            DOMAIN: {
                "base_url": sim.base_url,
                "authorize_url": sim.authorize_url,
                "token_url": sim.token_url,
            }
        },
    )
    assert await async_setup_component(hass, "application_credentials", {})
    await async_import_client_credential(
        hass, DOMAIN, ClientCredential(sim.client_id, secret or sim.client_secret), "cred"
    )


async def authorize(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator, flow: dict[str, Any]
) -> None:
    """What the homeowner's browser does: open the authorize URL (the simulator approves at
    once and redirects), then land on Home Assistant's callback with the code."""
    state = config_entry_oauth2_flow._encode_jwt(
        hass, {"flow_id": flow["flow_id"], "redirect_uri": REDIRECT}
    )
    url = flow["url"]
    assert url.startswith(sim.authorize_url)
    assert f"state={state}" in url
    async with aiohttp.ClientSession() as browser, browser.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT)
    code = parse_qs(urlparse(location).query)["code"][0]
    client = await hass_client_no_auth()
    resp = await client.get(f"/auth/external/callback?code={code}&state={state}")
    assert resp.status == 200


async def start_flow(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> dict[str, Any]:
    """The OAuth2 part of the flow; returns the flow at its next step."""
    flow = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    return await continue_oauth(hass, hass_client_no_auth, sim, flow)


async def continue_oauth(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator, flow: dict[str, Any]
) -> dict[str, Any]:
    """From the implementation's choice (a form when no browser request started the flow)
    through the simulator's authorization to the step after the token exchange."""
    if flow["type"] == "form" and flow["step_id"] == "pick_implementation":
        flow = await hass.config_entries.flow.async_configure(
            flow["flow_id"], {"implementation": "cred"}
        )
    assert flow["type"] == "external", flow
    await authorize(hass, hass_client_no_auth, sim, flow)
    return await hass.config_entries.flow.async_configure(flow["flow_id"])


async def add_entry(
    hass: HomeAssistant,
    hass_client_no_auth: Any,
    sim: EnphaseSimulator,
    *,
    plan: str = "partner",
    history_days: int = 3,
) -> ConfigEntry:
    """Sign in through the whole flow; the entry, set up and caught up."""
    await setup_integration(hass, sim)
    flow = await start_flow(hass, hass_client_no_auth, sim)
    assert flow["type"] == "form", flow
    assert flow["step_id"] == "settings", flow
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"api_key": sim.api_key, "plan": plan, "history_days": history_days}
    )
    assert result["type"] == "create_entry", result
    entry = result["result"]
    await hass.async_block_till_done()
    await caught_up(hass, entry)
    return entry


async def caught_up(hass: HomeAssistant, entry: ConfigEntry, *, poll: bool = False) -> None:
    """Wait until every system's poller has fetched and imported all it can."""
    for history in entry.runtime_data.histories.values():
        if poll:
            history.poll_now()
        await history.wait_caught_up()
    await hass.async_block_till_done()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sim(at=None, **options): the simulator's time of day, EnphaseSimulator options"
    )
    # The plugin logs every SQL statement at INFO: a failure's report would be all SQL.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
