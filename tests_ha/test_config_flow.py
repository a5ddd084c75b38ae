"""The config flow against the simulator: success, a wrong client secret, a wrong API key,
a plan without access."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.enphase_battery.const import DOMAIN
from enphase_battery.simulator import EnphaseSimulator

from .conftest import add_entry, setup_integration, start_flow


async def test_flow_success(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data["plan"] == "partner"
    assert entry.data["token"]["refresh_token"]
    assert [s["system_id"] for s in entry.data["systems"]] == list(sim.system_ids)
    assert entry.unique_id == sim.oauth.issue()["enl_uid"]
    # The token exchange went to the simulator as Enphase wants it (query + Basic).
    assert sim.token_grants["authorization_code"] == 1


async def test_flow_wrong_client_secret(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    await setup_integration(hass, sim, secret="not-the-secret")
    result = await start_flow(hass, hass_client_no_auth, sim)
    assert result["type"] == "abort"
    assert result["reason"] == "oauth_unauthorized"
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_flow_wrong_api_key(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    await setup_integration(hass, sim)
    flow = await start_flow(hass, hass_client_no_auth, sim)
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"api_key": "x" * 32, "plan": "partner", "history_days": 1}
    )
    assert result["type"] == "form"
    assert result["errors"] == {"api_key": "invalid_api_key"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"api_key": sim.api_key, "plan": "partner", "history_days": 1}
    )
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()


async def test_flow_no_access_at_all(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    await setup_integration(hass, sim)
    flow = await start_flow(hass, hass_client_no_auth, sim)
    sim.faults.fail_next(1, 403, path="/systems")
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"api_key": sim.api_key, "plan": "watt", "history_days": 1}
    )
    assert result["type"] == "abort"
    assert result["reason"] == "no_access"


async def test_flow_same_account_twice(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    await add_entry(hass, hass_client_no_auth, sim, history_days=0)
    flow = await start_flow(hass, hass_client_no_auth, sim)
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"api_key": sim.api_key, "plan": "partner", "history_days": 1}
    )
    assert result["type"] == "abort"
    assert result["reason"] == "already_configured"
