"""The single choke point every API request of :class:`~enphase_battery.EnphaseClient` takes.

quota governor (spacing and the month's count) -> access token -> send -> (one
refresh-and-retry on 401) -> map errors -> structure into a model, with :mod:`.retry`
deciding which failures are tried again.  A write (PUT) that got a 2xx is never sent
again: when its answer cannot be read, the state is read back with the matching GET.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, TypeVar

import aiohttp
import attrs
from aiohttp.abc import AbstractStreamWriter

from .auth import AccessTokenProvider, TokenManager
from .exceptions import (
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    ResponseFormatError,
)
from .governor import Admission, Outcome, QuotaGovernor
from .http_errors import api_key_refused, decode, describe_structure_error, error_for, truncate
from .limits import RateLimits
from .models import converter
from .redaction import scrub
from .retry import CallState, RetryPolicy, log_retry
from .routes import ROUTES, Route

__all__ = ["MAX_RESPONSE_BYTES", "Transport"]

# The client's logger: the choke point logs as the client users configure.
_LOGGER = logging.getLogger("enphase_battery.client")
_T = TypeVar("_T")

#: The largest answer read; a longer one is a ResponseFormatError, never held in memory.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_CHUNK = 256 * 1024


class _Final(Exception):
    """Carries an error out of a try so that it is raised without a retry."""

    def __init__(self, error: EnphaseError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class _Answer(NamedTuple):
    # A tuple: one is built per request, at a fifth of a frozen attrs class's cost.
    status: int
    #: ``None`` when the body was longer than :data:`MAX_RESPONSE_BYTES` (not read).
    raw: bytes | None
    #: The server's ``Date`` header, when it sent one.
    date: str | None
    #: The access token the request was sent with.
    token: str

    @property
    def server_time(self) -> float | None:
        """The server's clock (epoch seconds) from ``date``; parsed only when asked for
        (429 handling), as parsing costs more than the rest of a small call's bookkeeping."""
        return _server_time(self.date)


class _SendOnce(aiohttp.BytesPayload):
    """A write's JSON body that aiohttp does not replay on its own.

    aiohttp resends a PUT once by itself when the connection drops after sending
    (RFC 9112 allows it for idempotent methods); a body that reports itself consumed once
    written makes it raise instead, so only :mod:`.retry`'s rules decide a resend.
    """

    def __init__(self, value: Any) -> None:
        super().__init__(json.dumps(value).encode("utf-8"), content_type="application/json")
        self._written = False

    @property
    def consumed(self) -> bool:
        return self._written

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        self._written = True
        await super().write_with_length(writer, content_length)


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
        retry_policy: RetryPolicy,
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
        self._timeout_s = timeout
        # What every request sends, built once: the common case (no query of its own, the
        # whole timeout left, the same token as the last request) allocates nothing.
        # aiohttp copies both into its own structures and never changes them.
        self._key_query: Mapping[str, str] = {"key": api_key}
        self._full_timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers: tuple[str, Mapping[str, str]] = ("", {})
        self.retry_policy = retry_policy
        self.closed = False
        self.requests_sent = 0

    async def close(self) -> None:
        """Close the HTTP session if this transport created it; a caller's session stays open."""
        self.closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def request(
        self,
        route: Route,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        parse: type[_T],
        full_state: bool = False,
    ) -> Coroutine[Any, Any, _T]:
        """Send ``route`` to ``path`` and structure the answer as ``parse`` (await it).

        ``full_state``: a write that sets every field of the operation (applying it twice
        is the same as once), so it may be resent after a failure that may have applied it.
        """
        # Not a coroutine itself (a closed client raises at once): every frame between the
        # caller and the socket is passed through again at each of the request's waits.
        if self.closed:
            raise InvalidRequestError("the client is closed")
        call = self.retry_policy.new_call()
        return self._run(route, path, params or {}, body, parse, call, full_state)

    async def _run(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        parse: type[_T],
        call: CallState,
        full_state: bool,
    ) -> _T:
        while True:
            try:
                return await self._attempt(route, path, params, body, parse, call)
            except _Final as final:
                raise final.error from None
            except EnphaseError as err:
                wait = self.retry_policy.wait_before_retry(
                    err, call, writes=route.writes, full_state=full_state
                )
                if wait is None:
                    raise
                log_retry(err, call, wait)
                await asyncio.sleep(wait)

    async def _attempt(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        parse: type[_T],
        call: CallState,
    ) -> _T:
        answer = await self._admitted_send(route, path, params, body, call, None)
        if answer.status == 401 and not api_key_refused(answer.raw):
            # A token can be refused just after passing the freshness check (clock skew,
            # revocation): refresh once, retry once; a second 401 is final.
            _LOGGER.debug("%s %s -> 401; refreshing the access token once", route.method, path)
            answer = await self._admitted_send(route, path, params, body, call, answer)
        if not (route.writes and 200 <= answer.status < 300):
            return self._structure(route, path, answer, parse)
        try:
            return self._structure(route, path, answer, parse)
        except ResponseFormatError as unreadable:
            # The server took the write: sending it again could apply it twice.
            return await self._read_back(route, path, parse, call, unreadable)

    def _structure(self, route: Route, path: str, answer: _Answer, parse: type[_T]) -> _T:
        payload = decode(
            route,
            path,
            answer.status,
            answer.raw,
            redact=self.redact,
            # Only an error needs the server's clock.
            server_time=None if 200 <= answer.status < 300 else answer.server_time,
        )
        try:
            return converter.structure(payload, parse)
        except Exception as err:
            raise ResponseFormatError(
                f"response does not match {parse.__name__}: {describe_structure_error(err)}",
                status=answer.status,
                body=self.redact(truncate(answer.raw or b"")),
                method=route.method,
                path=path,
            ) from None

    async def _read_back(
        self,
        route: Route,
        path: str,
        parse: type[_T],
        call: CallState,
        unreadable: ResponseFormatError,
    ) -> _T:
        """The state after an applied write whose answer was unreadable, from its GET."""
        read = next(
            r for r in ROUTES.values() if r.method == "GET" and r.template == route.template
        )
        _LOGGER.warning(
            "%s %s was applied (HTTP %s) but its answer is unreadable; reading the state back",
            route.method,
            path,
            unreadable.status,
        )
        read_call = attrs.evolve(self.retry_policy.new_call(), deadline=call.deadline)
        try:
            return await self._run(read, path, {}, None, parse, read_call, False)
        except EnphaseError as err:
            raise _Final(
                ResponseFormatError(
                    f"the write was applied (HTTP {unreadable.status}) but its answer is"
                    f" unreadable ({unreadable.message}) and reading the state back failed"
                    f" ({err}); check the state before sending it again",
                    status=unreadable.status,
                    body=unreadable.body,
                    method=route.method,
                    path=path,
                )
            ) from None

    async def _admitted_send(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        call: CallState,
        refused: _Answer | None,
    ) -> _Answer:
        """Admission by the governor, a fresh token, then the send.

        ``refused``: the 401 answer of the first send, whose token is to be refreshed; it
        is returned as it stands when the refresh brings no new token.
        """
        # Counted when admitted (after the wait for its slot), in the same atomic step
        # that checks the month: concurrent callers cannot overshoot the quota.
        admission = await self.governor.admit()
        # The budget runs from here: waiting for the governor paces a call, it does not
        # fail it.
        call.start_clock()
        try:
            if refused is None:
                token = self._cached_token() or await self._fresh_token(call)
            else:
                token = await self._fresh_token(call, refused=refused.token)
                if token == refused.token:
                    await self.governor.settle(admission, Outcome.NOT_SENT)
                    return refused
        except BaseException:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise
        return await self._send(route, path, params, body, token, call, admission)

    def _cached_token(self) -> str | None:
        """The manager's access token while it is fresh (no await); else ``None``."""
        manager = self.token_manager
        if manager is None:
            return None
        manager.lend_session(self.get_session())
        return manager.current_access_token()

    async def _fresh_token(self, call: CallState, refused: str | None = None) -> str:
        """A valid access token (a new one when ``refused`` was refused by the API)."""
        manager = self.token_manager
        if manager is not None:
            manager.lend_session(self.get_session())
            if refused is None and (current := manager.current_access_token()) is not None:
                return current

        async def fetch() -> str:
            if manager is None:
                return await self._token_provider()
            if refused is not None:
                await manager.refresh(stale_access_token=refused)
            return await manager.access_token()

        try:
            return await _within(fetch(), call.remaining())
        except TimeoutError:
            raise _Final(
                EnphaseConnectionError(
                    "no access token within the retry budget of"
                    f" {self.retry_policy.max_retry_time:g} s (the token endpoint is slow)"
                )
            ) from None
        except EnphaseError as err:
            # The token manager has retried its own transient failures already; retrying
            # the API call would multiply its token requests.
            raise _Final(err) from None

    async def _send(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        token: str,
        call: CallState,
        admission: Admission,
    ) -> _Answer:
        left = call.remaining()
        if left <= 0:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise _Final(
                EnphaseConnectionError(
                    f"{route.method} {path}: the retry budget of"
                    f" {self.retry_policy.max_retry_time:g} s is spent",
                    reached_server=False,
                )
            )
        if left >= self._timeout_s:
            timeout_s, timeout = self._timeout_s, self._full_timeout
        else:
            timeout_s = left
            timeout = aiohttp.ClientTimeout(total=left)
        session = self.get_session()
        query = {"key": self._api_key, **params} if params else self._key_query
        headers = self._headers_for(token)
        data = _SendOnce(body) if body is not None else None
        self.requests_sent += 1
        started = time.perf_counter()
        try:
            async with session.request(
                route.method,
                self.base_url + path,
                params=query,
                data=data,
                headers=headers,
                timeout=timeout,
            ) as response:
                status = response.status
                # Only an error needs the server's clock.
                date = None if 200 <= status < 300 else response.headers.get("Date")
                length = response.content_length
                raw: bytes | None
                if length is not None and length <= MAX_RESPONSE_BYTES:
                    raw = await response.read()  # the common case, inline: one frame fewer
                else:
                    raw = await _read_capped(response)
        except aiohttp.InvalidURL:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise _Final(InvalidRequestError(f"invalid API URL {self.base_url!r}")) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            # Never connected: the server cannot have seen the request; it costs no quota
            # and holds no slot.
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise EnphaseConnectionError(
                f"{route.method} {path}: cannot connect to {self.base_url}: {_reason(err)}",
                reached_server=False,
            ) from None
        except TimeoutError:
            raise EnphaseConnectionError(
                f"{route.method} {path}: no answer within {timeout_s:g} s"
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
        return _Answer(status, raw, date, token)

    def _headers_for(self, token: str) -> Mapping[str, str]:
        last_token, headers = self._headers
        if token != last_token:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            self._headers = (token, headers)
        return headers

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
        call = self.retry_policy.new_call()
        call.start_clock()
        try:
            token = await self._fresh_token(call)
        except _Final as final:
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
                    new_token = await self._fresh_token(call, refused=token)
                except _Final as final:
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

    async def _rate_limited(self, admission: Admission, raw: bytes | None) -> None:
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


async def _within(awaitable: Awaitable[str], seconds: float) -> str:
    """``awaitable``'s result within ``seconds`` (else ``TimeoutError``).

    The work goes on when the time is up: a token refresh cut short could lose a rotated
    refresh token, so it completes (and its token is kept) in the background.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout=max(seconds, 0.0))
    except BaseException:
        # Time up or cancelled: collect the late outcome so that it is never reported
        # as unretrieved.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or ``None`` when it is longer than :data:`MAX_RESPONSE_BYTES`."""
    length = response.content_length
    if length is not None:
        if length > MAX_RESPONSE_BYTES:
            return None
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            return None
    return bytes(body)


def _server_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _reason(err: aiohttp.ClientError) -> str:
    os_error = getattr(err, "os_error", None)
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    return type(err).__name__
