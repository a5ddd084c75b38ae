"""Entities and their states against the simulator, per plan; Storm Guard, the profile
and the reserve reaching it; the repair issue for what a plan does not allow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from custom_components.enphase_battery.access import issue_id
from custom_components.enphase_battery.const import DOMAIN
from enphase_battery.simulator import EnphaseSimulator

from .conftest import add_entry
from .helpers import entity_id


def _state(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    eid = entity_id(hass, platform, unique_id)
    assert eid is not None, unique_id
    state = hass.states.get(eid)
    assert state is not None, eid
    return state.state


async def test_partner_entities_and_states(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=2)
    sid = sim.system_ids[0]
    serials = sim.encharge_serials(sid)
    start = datetime.fromisoformat(entry.data["history_start"])
    history = entry.runtime_data.histories[sid]
    assert history.poller is not None
    newest = history.poller.progress.newest_end_at
    assert newest is not None

    truth = sim.ground_truth_battery(sid, start, newest)
    assert _state(hass, "sensor", f"{sid}_soc") == str(truth[-1].soc_percent)
    assert _state(hass, "sensor", f"{sid}_charged_energy") == str(sum(i.charge_wh for i in truth))
    assert _state(hass, "sensor", f"{sid}_discharged_energy") == str(
        sum(i.discharge_wh for i in truth)
    )
    for serial in serials:
        device_truth = sim.ground_truth_encharge(sid, serial, start, newest)
        assert _state(hass, "sensor", f"{serial}_charged_energy") == str(
            sum(i.charge_wh for i in device_truth)
        )
        assert _state(hass, "sensor", f"{serial}_soc") == str(device_truth[-1].soc_percent)

    # Power and direction: what latest_telemetry says (read with the SDK, as a user would).
    async with sim.make_client() as client:
        latest = await client.get_latest_telemetry(sid)
        storm = await client.get_system_storm_guard(sid)
        settings = await client.get_system_battery_settings(sid)
    assert _state(hass, "sensor", f"{sid}_battery_power") == str(latest.battery_discharge_w)
    assert latest.battery_state is not None
    assert _state(hass, "sensor", f"{sid}_battery_state") == latest.battery_state.name.lower()
    assert _state(hass, "sensor", f"{sid}_grid_state") == "on_grid"
    assert _state(hass, "switch", f"{sid}_storm_guard") == (
        "on" if storm.storm_guard_status else "off"
    )
    assert _state(hass, "number", f"{sid}_reserve_soc") == str(settings.reserve_soc)
    assert _state(hass, "select", f"{sid}_profile") == "self_consumption"

    # Devices: the system, its Encharges under it; unique ids from the API's identifiers.
    devices = dr.async_get(hass)
    system_device = devices.async_get_device({(DOMAIN, str(sid))})
    assert system_device is not None
    for serial in serials:
        device = devices.async_get_device({(DOMAIN, serial)})
        assert device is not None
        assert device.via_device_id == system_device.id
    assert not ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry))

    # The unique ids survive a restart: the same entities, nothing new.
    before = {
        e.unique_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    after = {
        e.unique_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }
    assert after == before


async def test_storm_guard_profile_reserve_reach_the_simulator(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim, history_days=0)
    sid = sim.system_ids[0]
    system = sim.system(sid)
    assert system.storm_guard_enabled is False
    switch = entity_id(hass, "switch", f"{sid}_storm_guard")
    await hass.services.async_call("switch", "turn_on", {"entity_id": switch}, blocking=True)
    assert sim.system(sid).storm_guard_enabled is True
    assert hass.states.get(switch).state == "on"
    await hass.services.async_call("switch", "turn_off", {"entity_id": switch}, blocking=True)
    assert sim.system(sid).storm_guard_enabled is False
    assert hass.states.get(switch).state == "off"

    select = entity_id(hass, "select", f"{sid}_profile")
    await hass.services.async_call(
        "select", "select_option", {"entity_id": select, "option": "full_backup"}, blocking=True
    )
    assert sim.system(sid).settings.battery_mode == "Full Backup"
    assert hass.states.get(select).state == "full_backup"

    number = entity_id(hass, "number", f"{sid}_reserve_soc")
    await hass.services.async_call(
        "number", "set_value", {"entity_id": number, "value": 35}, blocking=True
    )
    assert sim.system(sid).settings.reserve_soc == 35
    assert hass.states.get(number).state == "35"

    # A refusal reaches the user as an error of the service call; the state stays.
    sim.faults.fail_next(1, 403, path="storm_guard")
    with pytest.raises(HomeAssistantError, match="Enphase refused the change"):
        await hass.services.async_call("switch", "turn_on", {"entity_id": switch}, blocking=True)
    assert sim.system(sid).storm_guard_enabled is False
    assert hass.states.get(switch).state == "off"
    del entry


@pytest.mark.sim(plan="watt")
async def test_watt_plan_entities_and_repair_issue(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    entry = await add_entry(hass, hass_client_no_auth, sim, plan="watt", history_days=1)
    sid = sim.system_ids[0]
    registry = er.async_get(hass)
    unique_ids = {e.unique_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)}
    assert unique_ids == {
        f"{sid}_{key}"
        for key in ("soc", "charged_energy", "discharged_energy", "battery_power", "battery_state")
    }
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry))
    assert issue is not None
    missing = issue.translation_placeholders["missing"]
    assert "per-Encharge" in missing
    assert "Kilowatt plan" in missing
    assert "Storm Guard" in missing
    assert "Megawatt plan" in missing
    # The Watt plan's coordinator spends its share of the month, not a request a minute.
    interval = entry.runtime_data.now.update_interval
    assert interval is not None
    assert interval.total_seconds() > 2 * 3600


@pytest.mark.sim(plan="watt")
async def test_plan_claimed_but_grant_refuses(
    hass: HomeAssistant, hass_client_no_auth: Any, sim: EnphaseSimulator
) -> None:
    """The user says Megawatt; the API (here a Watt key) refuses the configuration and
    device routes: no such entity, and the issue says the grant refused them."""
    entry = await add_entry(hass, hass_client_no_auth, sim, plan="megawatt", history_days=1)
    sid = sim.system_ids[0]
    assert entity_id(hass, "switch", f"{sid}_storm_guard") is None
    assert entity_id(hass, "sensor", f"{sid}_grid_state") is None
    assert entity_id(hass, "sensor", f"{sid}_soc") is not None
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry))
    assert issue is not None
    assert "refused by the homeowner's grant" in issue.translation_placeholders["missing"]
