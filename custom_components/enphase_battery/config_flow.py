"""Sign-in: Home Assistant's OAuth2 flow on the app's application credentials, then the
API key, the plan and how far back the history starts.

The homeowner authorizes the app at Enphase (the code comes back through Home
Assistant's own redirect); the API key and plan are then tried with one request
(``GET /systems``), which also lists the systems the entry follows.  When the refresh
token lapses (Enphase's last 30 days unused), the entry asks to be reauthorized: the same
OAuth2 flow, for the same account.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import SOURCE_REAUTH, ConfigFlowResult
from homeassistant.helpers import config_entry_oauth2_flow
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)

from enphase_battery import (
    AuthenticationError,
    EnphaseClient,
    EnphaseError,
    PermissionDeniedError,
    RateLimits,
)

from .const import (
    CONF_API_KEY,
    CONF_HISTORY_DAYS,
    CONF_HISTORY_START,
    CONF_PLAN,
    CONF_SYSTEMS,
    DEFAULT_HISTORY_DAYS,
    DOMAIN,
    MAX_HISTORY_DAYS,
    PLANS,
)
from .history import history_start
from .settings import api_base_url

_LOGGER = logging.getLogger(__name__)


class EnphaseBatteryFlowHandler(config_entry_oauth2_flow.AbstractOAuth2FlowHandler, domain=DOMAIN):
    """The config flow: OAuth2, then the API key, the plan and the history's start."""

    DOMAIN = DOMAIN
    VERSION = 1

    def __init__(self) -> None:
        super().__init__()
        self._oauth_data: dict[str, Any] = {}

    @property
    def logger(self) -> logging.Logger:
        return _LOGGER

    async def async_oauth_create_entry(self, data: dict[str, Any]) -> ConfigFlowResult:
        """Signed in: on reauth, update the entry; else ask for the API key and plan."""
        self._oauth_data = data
        if self.source == SOURCE_REAUTH:
            entry = self._get_reauth_entry()
            account = _account_id(data["token"])
            if account is not None:
                await self.async_set_unique_id(account)
                self._abort_if_unique_id_mismatch(reason="wrong_account")
            return self.async_update_reload_and_abort(entry, data_updates={"token": data["token"]})
        return await self.async_step_settings()

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The API key, the plan and how many days of history to import."""
        errors: dict[str, str] = {}
        if user_input is not None:
            api_key = user_input[CONF_API_KEY].strip()
            plan = user_input[CONF_PLAN]
            try:
                systems = await self._list_systems(api_key, plan)
            except AuthenticationError:
                errors[CONF_API_KEY] = "invalid_api_key"
            except PermissionDeniedError:
                return self.async_abort(reason="no_access")
            except EnphaseError as err:
                _LOGGER.warning("Enphase could not be reached: %s", err)
                errors["base"] = "cannot_connect"
            else:
                if not systems:
                    return self.async_abort(reason="no_systems")
                account = _account_id(self._oauth_data["token"]) or str(systems[0]["system_id"])
                await self.async_set_unique_id(account)
                self._abort_if_unique_id_configured()
                days = int(user_input[CONF_HISTORY_DAYS])
                title = systems[0]["name"] if len(systems) == 1 else f"{len(systems)} systems"
                return self.async_create_entry(
                    title=f"Enphase {title}",
                    data={
                        **self._oauth_data,
                        CONF_API_KEY: api_key,
                        CONF_PLAN: plan,
                        CONF_HISTORY_DAYS: days,
                        CONF_HISTORY_START: history_start(days).isoformat(),
                        CONF_SYSTEMS: systems,
                    },
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_API_KEY): cv.string,
                vol.Required(CONF_PLAN, default="watt"): SelectSelector(
                    SelectSelectorConfig(
                        options=list(PLANS),
                        mode=SelectSelectorMode.DROPDOWN,
                        translation_key="plan",
                    )
                ),
                vol.Required(CONF_HISTORY_DAYS, default=DEFAULT_HISTORY_DAYS): vol.All(
                    vol.Coerce(int), vol.Range(min=0, max=MAX_HISTORY_DAYS)
                ),
            }
        )
        return self.async_show_form(step_id="settings", data_schema=schema, errors=errors)

    async def _list_systems(self, api_key: str, plan: str) -> list[dict[str, Any]]:
        """``GET /systems`` with the new token and this key (one request)."""
        token = str(self._oauth_data["token"]["access_token"])

        async def access_token() -> str:
            return token

        client = EnphaseClient(
            api_key=api_key,
            auth=access_token,
            session=async_get_clientsession(self.hass),
            base_url=api_base_url(self.hass),
            rate_limits=RateLimits.for_plan(plan),
            max_retries=1,
        )
        try:
            systems = await client.list_systems()
        finally:
            await client.close()
        return [
            {"system_id": s.system_id, "name": s.name or f"system {s.system_id}"} for s in systems
        ]

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The refresh token lapsed (or was revoked): sign in again."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Say why, then run the OAuth2 flow again."""
        if user_input is None:
            return self.async_show_form(step_id="reauth_confirm")
        return await self.async_step_user()


def _account_id(token: Mapping[str, Any]) -> str | None:
    """The Enlighten user the token belongs to (``enl_uid``), when the token says."""
    uid = token.get("enl_uid")
    return None if uid in (None, "") else str(uid)
