"""Enphase Battery: IQ Batteries through the Enlighten Systems API v4, on the
``enphase_battery`` SDK.

Setting up an entry:

1. an ``EnphaseClient`` on Home Assistant's aiohttp session, whose token is Home
   Assistant's OAuth2 token (``auth=`` a coroutine: the SDK keeps no token of its own),
   on the API key's shared quota governor (:mod:`.quota`);
2. the systems' Encharges, and which access controls the plan and the homeowner's grant
   allow (:mod:`.access`): what they refuse is not created, and a repair issue says so;
3. the coordinators (power now; configuration on Megawatt and up), and one telemetry
   poller per system importing the hourly statistics (:mod:`.history`).
"""

from __future__ import annotations

from datetime import datetime

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_entry_oauth2_flow
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from enphase_battery import (
    AuthenticationError,
    EnphaseClient,
    EnphaseError,
    PermissionDeniedError,
)

from .access import discover_access, update_access_issue
from .const import (
    CONF_API_KEY,
    CONF_HISTORY_DAYS,
    CONF_HISTORY_START,
    CONF_PLAN,
    CONF_SYSTEMS,
    DEFAULT_HISTORY_DAYS,
    MIN_NOW_INTERVAL,
    MIN_SETTINGS_INTERVAL,
    Access,
)
from .coordinator import NowCoordinator, SettingsCoordinator
from .history import HistoryCoordinator, SystemHistory, history_start
from .oauth import access_token_provider
from .quota import registry
from .runtime import EnphaseRuntime, SystemInfo
from .settings import CONFIG_SCHEMA, api_base_url, store_settings
from .store import EntryStore

__all__ = ["CONFIG_SCHEMA", "async_setup", "async_setup_entry", "async_unload_entry"]

PLATFORMS = [Platform.NUMBER, Platform.SELECT, Platform.SENSOR, Platform.SWITCH]

type EnphaseConfigEntry = ConfigEntry[EnphaseRuntime]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Keep the YAML settings (API and OAuth2 URLs), if any."""
    store_settings(hass, config)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: EnphaseConfigEntry) -> bool:
    """Set up one Enphase account."""
    implementation = await config_entry_oauth2_flow.async_get_config_entry_implementation(
        hass, entry
    )
    oauth_session = config_entry_oauth2_flow.OAuth2Session(hass, entry, implementation)
    systems_data = entry.data.get(CONF_SYSTEMS, [])
    quota = await registry(hass).acquire(
        entry.entry_id, entry.data[CONF_API_KEY], entry.data[CONF_PLAN], len(systems_data)
    )
    client = EnphaseClient(
        api_key=entry.data[CONF_API_KEY],
        auth=access_token_provider(oauth_session),
        session=async_get_clientsession(hass),
        base_url=api_base_url(hass),
        governor=quota.governor,
    )
    try:
        systems = await _systems(client, systems_data)
        access = await discover_access(client, entry.data[CONF_PLAN], systems)
    except AuthenticationError as err:
        raise ConfigEntryAuthFailed(str(err)) from err
    except EnphaseError as err:
        raise ConfigEntryNotReady(str(err)) from err

    store = EntryStore(hass, entry.entry_id)
    await store.async_load()
    system_ids = tuple(systems)
    has_config = Access.CONFIG in access.allowed
    now = NowCoordinator(hass, entry, client, system_ids, MIN_NOW_INTERVAL)
    quota.pace(
        entry.entry_id, now, calls=1, part=0.5 if has_config else 1.0, floor=MIN_NOW_INTERVAL
    )
    settings = None
    if has_config:
        settings = SettingsCoordinator(hass, entry, client, system_ids, MIN_SETTINGS_INTERVAL)
        quota.pace(entry.entry_id, settings, calls=3, part=0.5, floor=MIN_SETTINGS_INTERVAL)
    # The month's count is saved (debounced) after each power reading, and on unload.
    entry.async_on_unload(now.async_add_listener(registry(hass).schedule_save))
    await now.async_config_entry_first_refresh()
    if settings is not None:
        await settings.async_config_entry_first_refresh()
    history = HistoryCoordinator(hass, entry, store)
    runtime = EnphaseRuntime(
        client=client,
        quota=quota,
        store=store,
        systems=systems,
        access=access,
        now=now,
        settings=settings,
        history=history,
    )
    entry.runtime_data = runtime
    update_access_issue(hass, entry, access)

    start = entry.data.get(CONF_HISTORY_START)
    start_at = (
        datetime.fromisoformat(start)
        if start
        else history_start(entry.data.get(CONF_HISTORY_DAYS, DEFAULT_HISTORY_DAYS))
    )

    def access_denied(refused: Access, err: PermissionDeniedError) -> None:
        access.denied_by_grant(refused, str(err))
        update_access_issue(hass, entry, access)

    for system in systems.values():
        follows_encharges = Access.DEVICE in access.allowed
        system_history = SystemHistory(
            hass,
            entry,
            client=client,
            system_id=system.system_id,
            system_name=system.name,
            encharges=tuple(e.serial for e in system.encharges) if follows_encharges else (),
            start_at=start_at,
            store=store,
            coordinator=history,
            quota_share=quota.poller_share(),
            on_auth_failed=lambda: entry.async_start_reauth(hass),
            on_access_denied=access_denied,
        )
        runtime.histories[system.system_id] = system_history
        entry.async_create_background_task(
            hass, system_history.run(), f"enphase_battery history {system.system_id}"
        )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _systems(
    client: EnphaseClient, systems_data: list[dict[str, object]]
) -> dict[int, SystemInfo]:
    """The entry's systems with their Encharges (one request each)."""
    systems: dict[int, SystemInfo] = {}
    for item in systems_data:
        system_id = int(str(item["system_id"]))
        devices = await client.get_system_devices(system_id)
        systems[system_id] = SystemInfo.from_devices(
            system_id, str(item.get("name") or f"Enphase {system_id}"), devices
        )
    return systems


async def async_unload_entry(hass: HomeAssistant, entry: EnphaseConfigEntry) -> bool:
    """Stop the pollers (their background tasks end with the entry) and the platforms."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await registry(hass).release(entry.entry_id)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: EnphaseConfigEntry) -> None:
    """Forget the entry's checkpoint and hourly state (its statistics stay)."""
    await EntryStore(hass, entry.entry_id).async_remove()
