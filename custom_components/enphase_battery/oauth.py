"""Enphase's OAuth2 on Home Assistant's application credentials, and the token the SDK gets.

Enphase's token endpoint differs from the form-posting OAuth2 that Home Assistant's
``LocalOAuth2Implementation`` speaks: its parameters go in the *query string*, with an
empty body, and the client authenticates with HTTP Basic (fact sheet §1).
:class:`EnphaseOAuth2Implementation` changes only that request; the rest (the authorize
URL, Home Assistant's redirect, the token bookkeeping) is Home Assistant's.

The SDK never holds a token of its own: :func:`access_token_provider` gives the client an
async callable that returns Home Assistant's current access token, refreshed through
Home Assistant's ``OAuth2Session`` when it is about to expire.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp
from homeassistant.components.application_credentials import (
    AuthImplementation,
    AuthorizationServer,
    ClientCredential,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.config_entry_oauth2_flow import OAuth2Session

from enphase_battery import AuthenticationError, EnphaseConnectionError

from .const import CONF_AUTHORIZE_URL, CONF_TOKEN_URL, DEFAULT_AUTHORIZE_URL, DEFAULT_TOKEN_URL
from .settings import integration_settings

_LOGGER = logging.getLogger(__name__)


def authorization_server(hass: HomeAssistant) -> AuthorizationServer:
    """Enphase's endpoints, or those ``configuration.yaml`` names (a simulator)."""
    settings = integration_settings(hass)
    return AuthorizationServer(
        authorize_url=settings.get(CONF_AUTHORIZE_URL, DEFAULT_AUTHORIZE_URL),
        token_url=settings.get(CONF_TOKEN_URL, DEFAULT_TOKEN_URL),
    )


class EnphaseOAuth2Implementation(AuthImplementation):
    """Application credentials whose token requests are Enphase-shaped."""

    def __init__(self, hass: HomeAssistant, auth_domain: str, credential: ClientCredential) -> None:
        super().__init__(hass, auth_domain, credential, authorization_server(hass))

    async def _token_request(self, data: dict[str, Any]) -> dict[str, Any]:
        """POST ``data`` as query parameters with Basic client authentication."""
        params = {k: str(v) for k, v in data.items() if k not in ("client_id", "client_secret")}
        session = async_get_clientsession(self.hass)
        auth = aiohttp.BasicAuth(self.client_id, self.client_secret)
        async with session.post(self.token_url, params=params, auth=auth) as resp:
            if resp.status >= 400:
                try:
                    body = await resp.json(content_type=None)
                except (aiohttp.ClientError, ValueError):
                    body = {}
                error = body.get("error", "unknown") if isinstance(body, dict) else "unknown"
                # Never the body's secrets: only the error code.
                _LOGGER.error("Enphase token request failed: HTTP %s (%s)", resp.status, error)
            resp.raise_for_status()
            return cast(dict[str, Any], await resp.json(content_type=None))


def access_token_provider(oauth_session: OAuth2Session) -> Callable[[], Awaitable[str]]:
    """The client's ``auth=``: Home Assistant's access token, refreshed when due.

    A refused refresh (the refresh token lapsed after 30 days, or was revoked) raises the
    SDK's :class:`~enphase_battery.AuthenticationError`, which the integration turns into a
    reauthentication; a network failure raises :class:`~enphase_battery.EnphaseConnectionError`.
    """

    async def access_token() -> str:
        try:
            await oauth_session.async_ensure_token_valid()
        except aiohttp.ClientResponseError as err:
            if 400 <= err.status < 500:
                raise AuthenticationError(
                    "Enphase refused the refresh token (it lapses after 30 days unused):"
                    " sign in again",
                    credential="refresh_token",
                    status=err.status,
                ) from None
            raise EnphaseConnectionError(f"token refresh failed: HTTP {err.status}") from None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise EnphaseConnectionError(f"token refresh failed: {type(err).__name__}") from None
        return str(oauth_session.token["access_token"])

    return access_token
