"""Diagnostics: the month's quota use and forecast, the pollers' progress, the access
report; the API key, the tokens and the client secret are redacted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_API_KEY

if TYPE_CHECKING:
    from . import EnphaseConfigEntry

TO_REDACT = {
    CONF_API_KEY,
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "client_id",
    "jti",
    "enl_uid",
    "enl_cid",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: EnphaseConfigEntry
) -> dict[str, Any]:
    """What support needs, without a secret."""
    runtime = entry.runtime_data
    usage = await runtime.quota.governor.usage()
    histories = {}
    for system_id, history in runtime.histories.items():
        poller = history.poller
        progress = poller.progress if poller is not None else None
        histories[str(system_id)] = {
            "streams": sorted(
                key for key in runtime.store.data["checkpoint"] if key.startswith(f"{system_id}/")
            ),
            "intervals_received": history.intervals_received,
            "revisions_received": history.revisions_received,
            "points_imported": history.points_imported,
            "newest_interval": progress.newest_end_at.isoformat()
            if progress and progress.newest_end_at
            else None,
            "caught_up": progress.caught_up if progress else None,
            "poll_interval_s": poller.current_poll_interval() if poller is not None else None,
            "last_error": history.last_error,
        }
    return {
        "entry": async_redact_data(dict(entry.data), TO_REDACT),
        "quota": {
            "plan": usage.plan,
            "month_start": usage.month_start.isoformat(),
            "month_end": usage.month_end.isoformat(),
            "used": usage.used,
            "used_background": usage.used_background,
            "monthly_quota": usage.monthly_quota,
            "remaining": usage.remaining,
            "forecast": usage.forecast,
            "background_budget": usage.background_budget,
            "exhausted_until": usage.exhausted_until.isoformat() if usage.exhausted_until else None,
            "entries_on_key": len(runtime.quota.systems),
            "systems_on_key": runtime.quota.total_systems,
        },
        "update_intervals_s": {
            "power": runtime.now.update_interval.total_seconds()
            if runtime.now.update_interval
            else None,
            "settings": runtime.settings.update_interval.total_seconds()
            if runtime.settings is not None and runtime.settings.update_interval
            else None,
        },
        "access": {
            "plan": runtime.access.plan,
            "allowed": sorted(runtime.access.allowed),
            "missing": [f"{access}: {why}" for access, why in runtime.access.missing()],
        },
        "systems": {
            str(sid): {"encharges": len(system.encharges)}
            for sid, system in runtime.systems.items()
        },
        "history": histories,
    }
