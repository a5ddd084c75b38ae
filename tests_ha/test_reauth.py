"""Reauthentication when Enphase no longer takes the refresh token, and diagnostics."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.enphase_battery.diagnostics import async_get_config_entry_diagnostics
from enphase_battery.simulator import EnphaseSimulator

from .conftest import add_entry, caught_up, continue_oauth


async def test_reauth_when_the_refresh_token_lapses(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=0)
    old_refresh = entry.data["token"]["refresh_token"]
    # Every token dies (a lapsed refresh token), and Home Assistant's access token is due.
    sim.faults.revoke_tokens()
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, "token": {**entry.data["token"], "expires_at": time.time() - 10}}
    )
    await entry.runtime_data.now.async_refresh()
    await hass.async_block_till_done()

    flows = [
        f
        for f in hass.config_entries.flow.async_progress()
        if f["context"]["source"] == SOURCE_REAUTH
    ]
    assert len(flows) == 1
    flow = await hass.config_entries.flow.async_configure(flows[0]["flow_id"])
    assert flow["step_id"] == "reauth_confirm"
    flow = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    result = await continue_oauth(hass, hass_client_no_auth, sim, flow)
    assert result["type"] == "abort"
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert entry.data["token"]["refresh_token"] != old_refresh
    # The history goes on with the new sign-in.
    sim.clock.advance(timedelta(hours=1))
    await caught_up(hass, entry, poll=True)
    assert entry.runtime_data.histories[sim.system_ids[0]].last_error is None


async def test_diagnostics_redact_secrets(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=1)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    text = repr(diagnostics)
    for secret in (
        sim.api_key,
        sim.client_secret,
        entry.data["token"]["access_token"],
        entry.data["token"]["refresh_token"],
    ):
        assert secret not in text
    quota = diagnostics["quota"]
    assert quota["plan"] == "partner"
    assert quota["used"] > 0
    assert quota["forecast"] >= quota["used"]
    assert quota["monthly_quota"] == 1_500_000
    history = diagnostics["history"][str(sim.system_ids[0])]
    assert history["intervals_received"] > 0
    assert history["caught_up"] is True
