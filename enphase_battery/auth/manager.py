"""OAuth2 for the Enlighten v4 API: tokens, their refresh, and their persistence.

The real service's rules shape this module (fact sheet §1):

* access tokens live a day, refresh tokens 30 days; once a refresh token lapses the
  homeowner must authorize the app again;
* token requests carry their parameters in the query string and the client credentials
  in a Basic ``Authorization`` header, with an empty body;
* every refresh may rotate the refresh token (the old one is then dead), so two
  concurrent refreshes would lock the user out: refreshes are single-flight, and the new
  token is handed to ``on_refresh`` before anything uses it;
* processes sharing one token (several CLI terminals, workers on one account) share a
  :class:`TokenStore`: a refresh holds its lock, re-reads it and adopts a token another
  process has just obtained rather than spend a refresh token rotation already killed.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import TracebackType
from typing import Self
from urllib.parse import urlencode

import aiohttp

from enphase_battery.auth.endpoint import TokenEndpoint
from enphase_battery.auth.refresher import BackgroundRefresher
from enphase_battery.auth.tokens import FileTokenStore, OAuth2Token, TokenStore, utcnow
from enphase_battery.exceptions import AuthenticationError, InvalidRequestError
from enphase_battery.http.calls import AccessTokenProvider
from enphase_battery.models import validation

__all__ = [
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_TOKEN_URL",
    "AccessTokenProvider",
    "FileTokenStore",
    "OAuth2Token",
    "TokenManager",
    "TokenStore",
]

_LOGGER = logging.getLogger("enphase_battery.auth")

DEFAULT_TOKEN_URL = "https://api.enphaseenergy.com/oauth/token"
DEFAULT_AUTHORIZE_URL = "https://api.enphaseenergy.com/oauth/authorize"
#: The redirect URI Enphase registers for apps by default (fact sheet §1).
DEFAULT_REDIRECT_URI = "https://api.enphaseenergy.com/oauth/redirect_uri"


#: Set while a TokenManager awaits its ``on_refresh`` hook, so a hook that calls back
#: into the client gets the new token instead of deadlocking on the refresh lock.
_REFRESHING: contextvars.ContextVar[tuple[TokenManager, OAuth2Token] | None] = (
    contextvars.ContextVar("enphase_battery_refreshing", default=None)
)


class TokenManager:
    """Owns the current OAuth2 token and keeps it valid.

    ``await manager.access_token()`` returns a token that is valid for at least
    ``refresh_skew`` (default 5 minutes), refreshing first when needed.  However many
    coroutines ask at once, one refresh request goes out and all of them get its result.

    ``on_refresh`` (an async callable taking the new :class:`OAuth2Token`) is awaited
    before the new token is used, so a service persists a rotated refresh token before
    anything else happens.  A hook may call back into the client: it then sees the new
    token.  If the hook raises, the new token is still kept in memory (the old refresh
    token is already dead) and the hook's exception propagates to the caller.

    ``store`` (a :class:`TokenStore` such as :class:`FileTokenStore`) makes refreshes
    single-flight across every manager and process sharing it: under the store's lock the
    manager re-reads the stored token and adopts it when another holder has refreshed it
    (and it is still fresh), else refreshes with the stored refresh token and saves the
    result before releasing the lock.  Without ``token`` the stored one is read on first
    use.  ``on_refresh`` is awaited for every token the manager starts using, adopted ones
    included, once the store has it.

    Use ``async with manager`` (or :meth:`start` / :meth:`stop`) to run a background task
    that refreshes ahead of expiry, so an idle service never presents a stale token.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        token: OAuth2Token | None = None,
        token_url: str = DEFAULT_TOKEN_URL,
        authorize_url: str = DEFAULT_AUTHORIZE_URL,
        session: aiohttp.ClientSession | None = None,
        on_refresh: Callable[[OAuth2Token], Awaitable[None]] | None = None,
        store: TokenStore | None = None,
        refresh_skew: timedelta = timedelta(minutes=5),
        timeout: float = 30.0,
        max_tries: int = 4,
        max_retry_time: float = 60.0,
    ) -> None:
        if not client_id or not client_secret:
            raise InvalidRequestError("client_id and client_secret are required")
        if ":" in client_id:
            raise InvalidRequestError("client_id must not contain ':' (RFC 7617)")
        self.client_id = client_id
        self._client_secret = client_secret
        self._store = store
        self._token = token
        self.authorize_url = validation.http_url("authorize_url", authorize_url)
        self._session = session
        self._owns_session = False
        self._on_refresh = on_refresh
        self._lifetime: timedelta | None = None
        self.refresh_skew = refresh_skew  # sets the freshness deadline too
        self._endpoint = TokenEndpoint(
            token_url=validation.http_url("token_url", token_url),
            client_id=client_id,
            client_secret=client_secret,
            timeout=timeout,
            max_tries=max_tries,
            max_retry_time=max_retry_time,
        )
        self._lock = asyncio.Lock()
        self._refresher = BackgroundRefresher(
            current=lambda: self._token, skew=self._effective_skew, refresh=self.refresh
        )
        self.refresh_count = 0
        # Tokens replaced by a refresh, still redacted should a server echo one back
        # (whether a refresh kills the old refresh token is undocumented).
        self._retired: collections.deque[str] = collections.deque(maxlen=8)

    def __repr__(self) -> str:
        expiry = self._token.expires_at.isoformat() if self._token else None
        return f"TokenManager(client_id={self.client_id!r}, expires_at={expiry!r})"

    # -- public API -----------------------------------------------------------------

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint this manager requests tokens from."""
        return self._endpoint.token_url

    @property
    def token(self) -> OAuth2Token | None:
        """The current token (``None`` before sign-in)."""
        return self._token

    def secrets(self) -> tuple[str, ...]:
        """Every secret this manager holds, for redaction; never log the result."""
        values = [self._client_secret]
        if self._token is not None:
            values += [self._token.access_token, self._token.refresh_token]
        values += self._retired
        return tuple(v for v in values if v)

    def authorization_url(self, redirect_uri: str = DEFAULT_REDIRECT_URI, state: str = "") -> str:
        """The URL where the homeowner approves this app (authorization-code flow)."""
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri}
        if state:
            query["state"] = state
        return f"{self.authorize_url}?{urlencode(query)}"

    async def exchange_code(
        self, code: str, redirect_uri: str = DEFAULT_REDIRECT_URI
    ) -> OAuth2Token:
        """Trade an authorization code for a token, adopt it and hand it to ``on_refresh``."""
        if not code or not isinstance(code, str):
            raise InvalidRequestError("an authorization code is required")
        params = {"grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code}
        async with self._lock:
            if self._store is None:
                token = await self._token_request(params)
            else:
                async with self._store.lock():
                    token = await self._token_request(params)
                    await self._save(token)
            await self._adopt(token)
        return token

    @property
    def refresh_skew(self) -> timedelta:
        """How long before its expiry a token counts as stale (and is refreshed)."""
        return self._refresh_skew

    @refresh_skew.setter
    def refresh_skew(self, value: timedelta) -> None:
        self._refresh_skew = value
        self._set_fresh_until()

    def current_access_token(self) -> str | None:
        """The access token if it stays valid for the skew, else ``None``; sends nothing."""
        pending = _REFRESHING.get()
        if pending is not None and pending[0] is self:
            return pending[1].access_token
        token = self._token
        # While a refresh holds the lock, the new token may be in its on_refresh hook:
        # nothing may use it before the hook has run.  Every API call asks: one float
        # comparison instead of datetime arithmetic.
        if token is not None and time.time() < self._fresh_until and not self._lock.locked():
            return token.access_token
        return None

    async def access_token(self) -> str:
        """A valid access token, refreshed first when it expires within the skew."""
        pending = _REFRESHING.get()
        if pending is not None and pending[0] is self:
            return pending[1].access_token
        current = self.current_access_token()
        if current is not None:
            return current
        async with self._lock:
            # Re-check: whoever held the lock may have refreshed already.
            token = self._token
            if token is not None and not token.expires_within(self._effective_skew()):
                return token.access_token
            stale = token.access_token if token is not None else None
            return (await self._refresh_locked(stale)).access_token

    async def refresh(self, *, stale_access_token: str | None = None) -> OAuth2Token:
        """Refresh now, single-flight.

        With ``stale_access_token`` (the token a request was refused with), nothing is sent
        when another coroutine has already replaced that token: its result is returned.
        """
        pending = _REFRESHING.get()
        if pending is not None and pending[0] is self:
            return pending[1]
        async with self._lock:
            token = self._token
            if (
                stale_access_token is not None
                and token is not None
                and token.access_token != stale_access_token
            ):
                return token
            return await self._refresh_locked(stale_access_token)

    def start(self) -> None:
        """Start the background refresher (idempotent)."""
        self._refresher.start()

    async def stop(self) -> None:
        """Stop the background refresher and close a session this manager created."""
        await self._refresher.stop()
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this manager created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
            self._owns_session = False

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- internals --------------------------------------------------------------------

    def _set_fresh_until(self) -> None:
        # The epoch until which the token needs no refresh (``expires_within`` the skew).
        token = self._token
        self._fresh_until = (
            token.expires_at.timestamp() - self._effective_skew().total_seconds()
            if token is not None
            else -math.inf
        )

    def _effective_skew(self) -> timedelta:
        # A token that lives less than twice the skew (simulators, tests) would otherwise
        # be refreshed on every call.
        if self._lifetime is not None:
            return min(self._refresh_skew, self._lifetime / 2)
        return self._refresh_skew

    async def _refresh_locked(self, stale_access_token: str | None = None) -> OAuth2Token:
        """Refresh (the in-process lock held); through the store's lock when there is one.

        ``stale_access_token``: the access token found wanting; a stored token carrying
        another, still fresh, is adopted instead of refreshing.
        """
        if self._store is None:
            token = await self._refresh_with(self._token)
            await self._adopt(token)
            return token
        async with self._store.lock():
            stored = await asyncio.to_thread(self._store.load)
            base = self._token
            if stored is not None and stored != base:
                # Another holder of the store refreshed (or signed in) since we read it:
                # our refresh token may be dead already; the stored one is the live one.
                if stored.access_token != stale_access_token and not stored.expires_within(
                    self._effective_skew()
                ):
                    adopted = stored
                else:
                    adopted = None
                base = stored
            else:
                adopted = None
            if adopted is None:
                token = await self._refresh_with(base)
                await self._save(token)
        if adopted is not None:
            _LOGGER.debug("adopted the token another holder of the store refreshed")
            await self._adopt(adopted, requested=False)
            return adopted
        await self._adopt(token)
        return token

    async def _refresh_with(self, base: OAuth2Token | None) -> OAuth2Token:
        if base is None:
            raise AuthenticationError(
                "no token: sign in first (enphase-battery auth login) or pass token="
            )
        params = {"grant_type": "refresh_token", "refresh_token": base.refresh_token}
        if base is not self._token:
            # The stored refresh token is about to be presented: redact it from errors.
            self._retired.extend((base.access_token, base.refresh_token))
        return await self._token_request(params)

    async def _save(self, token: OAuth2Token) -> None:
        assert self._store is not None
        try:
            await self._store.save(token)
        except BaseException:
            # The old refresh token is dead: keep the new one in memory at least.
            self._install(token, requested=True)
            _LOGGER.error("saving the new token failed; it is kept in memory only")
            raise

    def _install(self, token: OAuth2Token, *, requested: bool) -> None:
        old = self._token
        if old is not None and old != token:
            self._retired.extend((old.access_token, old.refresh_token))
        self._token = token
        if requested or self._lifetime is None:
            self._lifetime = token.expires_at - utcnow()
        self._set_fresh_until()
        if requested:
            self.refresh_count += 1

    async def _adopt(self, token: OAuth2Token, *, requested: bool = True) -> None:
        self._install(token, requested=requested)
        _LOGGER.debug("new access token, expires at %s", token.expires_at.isoformat())
        if self._on_refresh is None:
            return
        marker = _REFRESHING.set((self, token))
        try:
            await self._on_refresh(token)
        except Exception:
            _LOGGER.error(
                "on_refresh hook failed; the new token is kept in memory only",
                exc_info=False,
            )
            raise
        finally:
            _REFRESHING.reset(marker)

    def lend_session(self, session: aiohttp.ClientSession) -> None:
        """Use ``session`` (not closed by this manager) while it has none of its own.

        The client lends its session so that one connection pool serves both; a session
        the manager created itself, or was given, is kept.
        """
        if self._session is None or (self._session.closed and not self._owns_session):
            self._session = session
            self._owns_session = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def _token_request(self, params: dict[str, str]) -> OAuth2Token:
        return await self._endpoint.request(self._get_session(), params, self.secrets())
