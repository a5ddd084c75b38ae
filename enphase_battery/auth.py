"""OAuth2 for the Enlighten v4 API: tokens, their refresh, and their persistence.

The real service's rules shape this module (fact sheet §1):

* access tokens live a day, refresh tokens 30 days; once a refresh token lapses the
  homeowner must authorize the app again;
* token requests carry their parameters in the query string and the client credentials
  in a Basic ``Authorization`` header, with an empty body;
* every refresh may rotate the refresh token (the old one is then dead), so two
  concurrent refreshes would lock the user out: refreshes are single-flight, and the new
  token is handed to ``on_refresh`` before anything uses it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import json
import logging
import os
import random
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
import attrs
import backoff

from .exceptions import (
    ApiError,
    AuthenticationError,
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    ResponseFormatError,
)
from .redaction import scrub

__all__ = [
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_TOKEN_URL",
    "AccessTokenProvider",
    "FileTokenStore",
    "OAuth2Token",
    "TokenManager",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_TOKEN_URL = "https://api.enphaseenergy.com/oauth/token"
DEFAULT_AUTHORIZE_URL = "https://api.enphaseenergy.com/oauth/authorize"
#: The redirect URI Enphase registers for apps by default (fact sheet §1).
DEFAULT_REDIRECT_URI = "https://api.enphaseenergy.com/oauth/redirect_uri"

#: A coroutine function returning a currently valid access token; the client accepts
#: one in place of a :class:`TokenManager` (Home Assistant style, where the host owns
#: the OAuth2 session).
AccessTokenProvider = Callable[[], Awaitable[str]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidRequestError("expires_at must be a timezone-aware datetime")
    return value.astimezone(UTC)


@attrs.frozen(repr=False)
class OAuth2Token:
    """An access token and the refresh token that renews it.

    ``repr()`` and ``str()`` show only the expiry: tokens never reach logs or tracebacks.
    """

    access_token: str
    refresh_token: str
    expires_at: datetime = attrs.field(converter=_to_utc)
    token_type: str = "bearer"
    scope: str | None = None

    @classmethod
    def from_response(cls, payload: Mapping[str, Any], *, now: datetime | None = None) -> Self:
        """Build a token from the token endpoint's JSON (``access_token``, ``expires_in``...)."""
        try:
            access_token = payload["access_token"]
            refresh_token = payload["refresh_token"]
            expires_in = float(payload["expires_in"])
        except (KeyError, TypeError, ValueError) as err:
            raise ResponseFormatError(
                f"token response lacks a valid {err.args[0] if err.args else 'field'!s}",
                status=200,
                body=sorted(payload) if isinstance(payload, Mapping) else None,
            ) from None
        if not isinstance(access_token, str) or not isinstance(refresh_token, str):
            raise ResponseFormatError("token response holds non-string tokens", status=200)
        issued = now or _utcnow()
        scope = payload.get("scope")
        return cls(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=issued + timedelta(seconds=expires_in),
            token_type=str(payload.get("token_type") or "bearer"),
            scope=scope if isinstance(scope, str) else None,
        )

    def expires_within(self, skew: timedelta, *, now: datetime | None = None) -> bool:
        """Whether the access token expires within ``skew`` from ``now``."""
        return (now or _utcnow()) + skew >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form :class:`FileTokenStore` writes."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat(),
            "token_type": self.token_type,
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]),
                expires_at=datetime.fromisoformat(str(data["expires_at"])),
                token_type=str(data.get("token_type") or "bearer"),
                scope=data.get("scope"),
            )
        except (KeyError, ValueError) as err:
            raise InvalidRequestError(f"stored token is malformed: {err.args[0]!s}") from None

    def __repr__(self) -> str:
        return f"OAuth2Token(expires_at={self.expires_at.isoformat()!r})"

    __str__ = __repr__


class FileTokenStore:
    """Persists an :class:`OAuth2Token` as JSON in one file, atomically, mode 0600.

    Usable directly as ``TokenManager(on_refresh=store.save)``, so a rotated refresh token
    is on disk before the new access token is used.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    def load(self) -> OAuth2Token | None:
        """Read the stored token, or ``None`` when the file does not exist."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidRequestError(f"token file {self.path} is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidRequestError(f"token file {self.path} does not hold a token")
        return OAuth2Token.from_dict(data)

    def save_sync(self, token: OAuth2Token) -> None:
        """Write ``token`` atomically: a 0600 temp file in the same directory, then rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(token.to_dict(), indent=2).encode("utf-8")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            # mkstemp already creates the file 0600; fchmod makes it explicit whatever umask.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    async def save(self, token: OAuth2Token) -> None:
        """Async form of :meth:`save_sync`, run off the event loop."""
        await asyncio.to_thread(self.save_sync, token)


#: Set while a TokenManager awaits its ``on_refresh`` hook, so a hook that calls back
#: into the client gets the new token instead of deadlocking on the refresh lock.
_REFRESHING: contextvars.ContextVar[tuple[TokenManager, OAuth2Token] | None] = (
    contextvars.ContextVar("enphase_battery_refreshing", default=None)
)


class _TransientTokenError(EnphaseError):
    """A token-endpoint failure worth retrying (5xx, 429, network); internal only."""

    def __init__(self, cause: EnphaseError) -> None:
        super().__init__(str(cause))
        self.cause = cause


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
        self._token = token
        self.token_url = token_url
        self.authorize_url = authorize_url
        self._session = session
        self._owns_session = False
        self._on_refresh = on_refresh
        self.refresh_skew = refresh_skew
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_tries = max(1, max_tries)
        self._max_retry_time = max_retry_time
        self._lock = asyncio.Lock()
        self._lifetime: timedelta | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._refresher_error: BaseException | None = None
        self.refresh_count = 0
        # Tokens replaced by a refresh, still redacted should a server echo one back
        # (whether a refresh kills the old refresh token is undocumented).
        self._retired: collections.deque[str] = collections.deque(maxlen=8)

    def __repr__(self) -> str:
        expiry = self._token.expires_at.isoformat() if self._token else None
        return f"TokenManager(client_id={self.client_id!r}, expires_at={expiry!r})"

    # -- public API -----------------------------------------------------------------

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
            token = await self._token_request(params)
            await self._adopt(token)
        return token

    async def access_token(self) -> str:
        """A valid access token, refreshed first when it expires within the skew."""
        pending = _REFRESHING.get()
        if pending is not None and pending[0] is self:
            return pending[1].access_token
        token = self._token
        if token is not None and not token.expires_within(self._effective_skew()):
            return token.access_token
        async with self._lock:
            # Re-check: whoever held the lock may have refreshed already.
            token = self._token
            if token is not None and not token.expires_within(self._effective_skew()):
                return token.access_token
            return (await self._refresh_locked()).access_token

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
            return await self._refresh_locked()

    def start(self) -> None:
        """Start the background refresher (idempotent)."""
        if self._refresher is None or self._refresher.done():
            self._refresher_error = None
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_loop(), name="enphase-token-refresher"
            )

    async def stop(self) -> None:
        """Stop the background refresher and close a session this manager created."""
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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

    def _effective_skew(self) -> timedelta:
        # A token that lives less than twice the skew (simulators, tests) would otherwise
        # be refreshed on every call.
        if self._lifetime is not None:
            return min(self.refresh_skew, self._lifetime / 2)
        return self.refresh_skew

    async def _refresh_locked(self) -> OAuth2Token:
        if self._token is None:
            raise AuthenticationError(
                "no token: sign in first (enphase-battery auth login) or pass token="
            )
        params = {"grant_type": "refresh_token", "refresh_token": self._token.refresh_token}
        token = await self._token_request(params)
        await self._adopt(token)
        return token

    async def _adopt(self, token: OAuth2Token) -> None:
        old = self._token
        if old is not None:
            self._retired.extend((old.access_token, old.refresh_token))
        self._token = token
        self._lifetime = token.expires_at - _utcnow()
        self.refresh_count += 1
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
        @backoff.on_exception(
            backoff.expo,
            _TransientTokenError,
            max_tries=self._max_tries,
            max_time=self._max_retry_time,
            jitter=backoff.full_jitter,
            on_backoff=_log_token_retry,
            logger=None,
        )
        async def attempt() -> OAuth2Token:
            return await self._token_request_once(params)

        try:
            return await attempt()
        except _TransientTokenError as err:
            raise err.cause from None

    async def _token_request_once(self, params: dict[str, str]) -> OAuth2Token:
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self.client_id, self._client_secret),
            "Accept": "application/json",
        }
        grant = params.get("grant_type", "")
        path = f"token ({grant})"
        try:
            async with self._get_session().post(
                self.token_url, params=params, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            # Never chain: aiohttp's messages can include the URL and its query string.
            raise _TransientTokenError(
                EnphaseConnectionError(f"token endpoint unreachable: {type(err).__name__}")
            ) from None
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw[:500].decode("utf-8", "replace")
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise _TransientTokenError(
                    ResponseFormatError(
                        "token response is not a JSON object",
                        status=status,
                        method="POST",
                        path=path,
                    )
                )
            return OAuth2Token.from_response(body)
        body = scrub(body, self.secrets() + tuple(params.values()))
        if status == 429 or status >= 500:
            raise _TransientTokenError(
                ApiError(
                    "token endpoint failed", status=status, body=body, method="POST", path=path
                )
            )
        error = body.get("error") if isinstance(body, dict) else None
        if grant == "refresh_token":
            raise AuthenticationError(
                "the refresh token was refused"
                + (f" ({error})" if error else "")
                + ": it lapses after 30 days unused or once rotated; sign in again with"
                " `enphase-battery auth login`",
                status=status,
                body=body,
                method="POST",
                path=path,
            )
        raise AuthenticationError(
            "the token request was refused" + (f" ({error})" if error else ""),
            status=status,
            body=body,
            method="POST",
            path=path,
        )

    async def _refresh_loop(self) -> None:
        failures = 0
        while True:
            token = self._token
            if token is None:
                delay = 60.0
            else:
                skew = self._effective_skew()
                due = token.expires_at - skew - _utcnow()
                # Wake up a little before the skew would make access_token() refresh; the
                # margin stays below the skew, or short-lived tokens would be refreshed
                # in a tight loop.
                margin = min(1.0, skew.total_seconds() / 2)
                delay = max(0.0, due.total_seconds() - margin)
            await asyncio.sleep(delay)
            try:
                await self.refresh(stale_access_token=token.access_token if token else None)
                failures = 0
            except AuthenticationError as err:
                self._refresher_error = err
                _LOGGER.error("background token refresh stopped: %s", err)
                return
            except EnphaseError as err:
                failures += 1
                wait = min(300.0, 2.0**failures) * random.uniform(0.5, 1.0)
                _LOGGER.warning(
                    "background token refresh failed (%s); retrying in %.0f s", err, wait
                )
                await asyncio.sleep(wait)
            except Exception:
                _LOGGER.exception("background token refresh failed in on_refresh")
                await asyncio.sleep(5.0)


def _log_token_retry(details: Any) -> None:
    exc = details.get("exception")
    _LOGGER.debug(
        "retrying token request (try %s, waiting %.2f s): %s",
        details.get("tries"),
        details.get("wait", 0.0),
        exc,
    )
