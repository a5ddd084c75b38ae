"""The single choke point every API request of :class:`~enphase_battery.EnphaseClient` takes.

monthly quota -> rate limiter -> access token -> send -> (one refresh-and-retry on 401)
-> map errors -> structure into a model, with :mod:`.retry` retrying the transient
failures (429, 5xx, timeouts, connection errors, a 2xx with a broken body).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import aiohttp

from .auth import AccessTokenProvider, TokenManager
from .exceptions import (
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    QuotaExceededError,
    ResponseFormatError,
)
from .http_errors import decode, describe_structure_error, truncate
from .limits import MonthlyQuota, RateLimits
from .models import converter
from .redaction import scrub
from .retry import CALL_STARTED, Final, with_retries
from .routes import Route

__all__ = ["Transport"]

# The client's logger: the choke point logs as the client users configure.
_LOGGER = logging.getLogger("enphase_battery.client")
_T = TypeVar("_T")


class Transport:
    """Sends one API call with its retries; owns the session, limiter and quota count."""

    def __init__(
        self,
        *,
        api_key: str,
        token_manager: TokenManager | None,
        token_provider: AccessTokenProvider,
        session: aiohttp.ClientSession | None,
        base_url: str,
        rate_limits: RateLimits,
        timeout: float,
        max_retries: int,
        max_retry_time: float,
        quota_used: int,
    ) -> None:
        self._api_key = api_key
        self.token_manager = token_manager
        self._token_provider = token_provider
        self._session = session
        self._owns_session = session is None
        self.base_url = base_url
        self.rate_limits = rate_limits
        self._limiter = rate_limits.make_limiter()
        self.quota = MonthlyQuota(rate_limits.monthly_quota, used=quota_used)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_s = timeout
        self.max_retries = max_retries
        self.max_retry_time = max_retry_time
        self.closed = False
        self.requests_sent = 0
        self._with_retries = with_retries(
            self._attempt, max_retries=max_retries, max_retry_time=max_retry_time
        )

    async def close(self) -> None:
        """Close the HTTP session if this transport created it; a caller's session stays open."""
        self.closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def request(
        self,
        route: Route,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        parse: type[_T],
    ) -> _T:
        """Send ``route`` to ``path`` (retrying transient failures) and structure as ``parse``."""
        if self.closed:
            raise InvalidRequestError("the client is closed")
        marker = CALL_STARTED.set(time.monotonic())
        try:
            result: _T = await self._with_retries(route, path, params or {}, body, parse)
        except Final as final:
            raise final.error from None
        finally:
            CALL_STARTED.reset(marker)
        return result

    async def _attempt(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        parse: type[_T],
    ) -> _T:
        status, raw = await self._send_authorized(route, path, params, body)
        payload = decode(route, path, status, raw, redact=self.redact, quota=self.quota)
        try:
            return converter.structure(payload, parse)
        except Exception as err:
            raise ResponseFormatError(
                f"response does not match {parse.__name__}: {describe_structure_error(err)}",
                status=status,
                body=self.redact(truncate(raw)),
                method=route.method,
                path=path,
            ) from None

    async def _send_authorized(
        self, route: Route, path: str, params: Mapping[str, Any], body: Any
    ) -> tuple[int, bytes]:
        token = await self._fresh_token()
        status, raw = await self._send(route, path, params, body, token)
        if status != 401:
            return status, raw
        # A token can be refused just after passing the freshness check (clock skew,
        # revocation): refresh once, retry once; a second 401 is final.
        _LOGGER.debug("%s %s -> 401; refreshing the access token once", route.method, path)
        new_token = await self._fresh_token(refused=token)
        if new_token == token:
            return status, raw
        return await self._send(route, path, params, body, new_token)

    async def _fresh_token(self, refused: str | None = None) -> str:
        """A valid access token (a new one when ``refused`` was refused by the API)."""
        manager = self.token_manager
        try:
            if manager is None:
                return await self._token_provider()
            manager.lend_session(self.get_session())
            if refused is not None:
                await manager.refresh(stale_access_token=refused)
            return await manager.access_token()
        except EnphaseError as err:
            # The token manager has retried its own transient failures already; retrying
            # the API call would multiply its token requests.
            raise Final(err) from None

    async def _send(
        self, route: Route, path: str, params: Mapping[str, Any], body: Any, token: str
    ) -> tuple[int, bytes]:
        remaining = self.quota.remaining
        if remaining is not None and remaining <= 0:
            raise QuotaExceededError(
                "the monthly request quota of the API plan is spent; no request was sent",
                status=None,
                period="month",
                limit=self.quota.quota,
                method=route.method,
                path=path,
            )
        await self._limiter.acquire()
        session = self.get_session()
        query = {"key": self._api_key, **params}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.quota.record()
        self.requests_sent += 1
        started = time.perf_counter()
        try:
            async with session.request(
                route.method,
                self.base_url + path,
                params=query,
                json=body,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            raise EnphaseConnectionError(
                f"{route.method} {path}: no answer within {self._timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as err:
            # Not chained: aiohttp's own messages may carry the URL with its key= query.
            raise EnphaseConnectionError(
                f"{route.method} {path}: {type(err).__name__}: {self.redact(str(err))}"
            ) from None
        if _LOGGER.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            _LOGGER.debug("%s %s -> %s in %.1f ms", route.method, path, status, elapsed_ms)
        return status, raw

    @contextlib.asynccontextmanager
    async def stream(
        self,
        route: Route,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        client_timeout: aiohttp.ClientTimeout,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a long-lived GET (``live_data``) through the same quota, limiter and token.

        The response is yielded unread, whatever its status (the caller maps errors and
        reads the body as it streams); a 401 gets one refresh and one more try.  No
        retries here: a stream's caller decides when to reconnect.
        """
        if self.closed:
            raise InvalidRequestError("the client is closed")
        try:
            token = await self._fresh_token()
        except Final as final:
            raise final.error from None
        for attempt in range(2):
            remaining = self.quota.remaining
            if remaining is not None and remaining <= 0:
                raise QuotaExceededError(
                    "the monthly request quota of the API plan is spent; no request was sent",
                    status=None,
                    period="month",
                    limit=self.quota.quota,
                    method=route.method,
                    path=path,
                )
            await self._limiter.acquire()
            self.quota.record()
            self.requests_sent += 1
            query = {"key": self._api_key, **(params or {})}
            sent = {"Authorization": f"Bearer {token}", **(headers or {})}
            try:
                response = await self.get_session().request(
                    route.method,
                    self.base_url + path,
                    params=query,
                    headers=sent,
                    timeout=client_timeout,
                )
            except TimeoutError:
                raise EnphaseConnectionError(f"{route.method} {path}: no answer in time") from None
            except aiohttp.ClientError as err:
                raise EnphaseConnectionError(
                    f"{route.method} {path}: {type(err).__name__}: {self.redact(str(err))}"
                ) from None
            if response.status == 401 and attempt == 0:
                try:
                    new_token = await self._fresh_token(refused=token)
                except Final as final:
                    response.release()
                    raise final.error from None
                if new_token != token:
                    response.release()
                    token = new_token
                    continue
            try:
                yield response
            finally:
                response.close()
            return

    def get_session(self) -> aiohttp.ClientSession:
        """The session requests go through (created on first use when none was given)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The current session, ``None`` before the first request or after closing."""
        return self._session

    def _secrets(self) -> tuple[str, ...]:
        values: list[str] = [self._api_key]
        if self.token_manager is not None:
            values.extend(self.token_manager.secrets())
        return tuple(v for v in values if v)

    def redact(self, value: Any) -> Any:
        """``value`` with every secret the client holds replaced."""
        return scrub(value, self._secrets())
