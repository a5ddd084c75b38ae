"""The single choke point every API request of :class:`~enphase_battery.EnphaseClient` takes.

quota governor (spacing and the month's count) -> access token -> send -> (one
refresh-and-retry on 401) -> map errors -> structure into a model, with :mod:`.retry`
retrying the transient failures (429, 5xx, timeouts, connection errors, a 2xx with a broken body).
"""

from __future__ import annotations

import contextlib
import json
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
    ResponseFormatError,
)
from .governor import Admission, Outcome, QuotaGovernor
from .http_errors import decode, describe_structure_error, error_for, truncate
from .limits import RateLimits
from .models import converter
from .redaction import scrub
from .retry import CALL_STARTED, Final, with_retries
from .routes import Route

__all__ = ["Transport"]

# The client's logger: the choke point logs as the client users configure.
_LOGGER = logging.getLogger("enphase_battery.client")
_T = TypeVar("_T")


class Transport:
    """Sends one API call with its retries; owns the session, and asks the quota governor
    before every request."""

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
        governor: QuotaGovernor | None = None,
    ) -> None:
        self._api_key = api_key
        self.token_manager = token_manager
        self._token_provider = token_provider
        self._session = session
        self._owns_session = session is None
        self.base_url = base_url
        self.rate_limits = rate_limits
        self.governor = governor or QuotaGovernor(
            rate_limits, key=QuotaGovernor.key_for(api_key), used=quota_used
        )
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
        payload = decode(route, path, status, raw, redact=self.redact)
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
        # Counted when admitted (after the wait for its slot), in the same atomic step
        # that checks the month: concurrent callers cannot overshoot the quota.
        admission = await self.governor.admit()
        session = self.get_session()
        query = {"key": self._api_key, **params}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
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
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as err:
            # Never reached the server (refused, unknown host, bad URL): it costs no quota
            # and holds no slot.
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise EnphaseConnectionError(
                f"{route.method} {path}: {type(err).__name__}: {self.redact(str(err))}"
            ) from None
        except aiohttp.ClientError as err:
            # Not chained: aiohttp's own messages may carry the URL with its key= query.
            raise EnphaseConnectionError(
                f"{route.method} {path}: {type(err).__name__}: {self.redact(str(err))}"
            ) from None
        if _LOGGER.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            _LOGGER.debug("%s %s -> %s in %.1f ms", route.method, path, status, elapsed_ms)
        if status == 429:
            await self._rate_limited(admission, raw)
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
            admission = await self.governor.admit()
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
            except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as err:
                await self.governor.settle(admission, Outcome.NOT_SENT)
                raise EnphaseConnectionError(
                    f"{route.method} {path}: {type(err).__name__}: {self.redact(str(err))}"
                ) from None
            except aiohttp.ClientError as err:
                raise EnphaseConnectionError(
                    f"{route.method} {path}: {type(err).__name__}: {self.redact(str(err))}"
                ) from None
            if response.status == 429:
                # The governor hears what the 429 said; the caller gets the usual error.
                try:
                    raw = await response.read()
                finally:
                    response.release()
                await self._rate_limited(admission, raw)
                raise error_for(route, path, 429, raw, redact=self.redact)
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

    async def _rate_limited(self, admission: Admission, raw: bytes) -> None:
        """Tell the governor what a 429 said: a minute window, or the month spent."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        info = body if isinstance(body, dict) else {}

        def epoch(name: str) -> float | None:
            value = info.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return None

        start, end = epoch("period_start"), epoch("period_end")
        if info.get("period") == "month":
            limit = info.get("limit")
            await self.governor.month_spent(
                period_start=start,
                period_end=end,
                limit=limit if isinstance(limit, int) else None,
            )
            return
        # A minute window (or an unnamed period): the server didn't count it.
        wait = None
        if start is not None and end is not None and end > start:
            # Judged from the window's own length, not our clock against the server's.
            wait = min(end - start, max(0.0, end - self.governor.clock.time()))
        await self.governor.settle(admission, Outcome.MINUTE_LIMIT, retry_after_s=wait)

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
