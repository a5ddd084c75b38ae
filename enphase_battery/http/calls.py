"""The single choke point every API request of :class:`~enphase_battery.EnphaseClient` takes.

quota governor (spacing and the month's count) -> access token -> send (the
:class:`~enphase_battery.http.wire.Sender`) -> (one refresh-and-retry on 401) -> map errors
-> structure into a model, with :mod:`.retry` deciding which failures are tried again.  A
write (PUT) that got a 2xx is never sent again: when its answer cannot be read, the state
is read back with the matching GET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
import attrs

from enphase_battery.exceptions import (
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    ResponseFormatError,
)
from enphase_battery.http.errors import api_key_refused, decode, describe_structure_error, truncate
from enphase_battery.http.retry import CallState, RetryPolicy, log_retry
from enphase_battery.http.routes import ROUTES, Route
from enphase_battery.http.wire import MAX_RESPONSE_BYTES, Answer, FinalError, Sender
from enphase_battery.quota.governor import QuotaGovernor
from enphase_battery.quota.limits import RateLimits
from enphase_battery.quota.state import Admission, Outcome
from enphase_battery.util.json_decoder import loads
from enphase_battery.util.redaction import scrub

__all__ = [
    "MAX_RESPONSE_BYTES",
    "AccessTokenProvider",
    "ApiCalls",
    "RefreshingTokens",
    "RequestObserver",
    "RequestOutcome",
]

# The client's logger: the choke point logs as the client users configure.
_LOGGER = logging.getLogger("enphase_battery.client")
_T = TypeVar("_T")
_NO_PARAMS: Mapping[str, Any] = {}

#: A coroutine function returning a currently valid access token; the client accepts
#: one in place of a :class:`~enphase_battery.TokenManager` (Home Assistant style, where
#: the host owns the OAuth2 session).
AccessTokenProvider = Callable[[], Awaitable[str]]


class RefreshingTokens(Protocol):
    """The token manager as the choke point uses it: :class:`~enphase_battery.TokenManager`
    has this shape (the HTTP layer sits below the auth package and never imports it)."""

    def current_access_token(self) -> str | None: ...

    async def access_token(self) -> str: ...

    async def refresh(self, *, stale_access_token: str | None = None) -> object: ...

    def lend_session(self, session: aiohttp.ClientSession) -> None: ...

    def secrets(self) -> tuple[str, ...]: ...


@attrs.frozen
class RequestOutcome:
    """How one try of one API request ended, for a :data:`RequestObserver`.

    Attributes:
        operation_id: the route's operationId (``get_battery_telemetry``...).
        status: the HTTP status of the answer; ``None`` when no answer came (no
            connection, a timeout, a broken connection).
        error: for a try without an answer, what happened (one line, no secrets).
    """

    operation_id: str
    status: int | None
    error: str | None = None


#: Told of every try of every API request as it ends (a retried request, once per try).
#: It runs on the event loop and must not block; what it raises is logged and ignored.
RequestObserver = Callable[[RequestOutcome], None]


class ApiCalls:
    """Sends one API call with its retries; owns the session, and asks the quota governor
    before every request."""

    def __init__(
        self,
        *,
        api_key: str,
        token_manager: RefreshingTokens | None,
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
        self.base_url = base_url
        self.rate_limits = rate_limits
        self.governor = governor or QuotaGovernor(
            rate_limits, key=QuotaGovernor.key_for(api_key), used=quota_used
        )
        self.retry_policy = retry_policy
        self._sender = Sender(
            api_key=api_key,
            session=session,
            base_url=base_url,
            governor=self.governor,
            timeout=timeout,
            max_retry_time=retry_policy.max_retry_time,
            redact=self.redact,
        )
        self.closed = False
        #: Told of every try's outcome (:meth:`EnphaseClient.observe_requests`).
        self.observers: list[RequestObserver] = []
        # The converter's hook per model, looked up once (cattrs dispatches on every call).
        self._hooks: dict[Any, Callable[[Any, Any], Any]] = {}
        if token_manager is not None and session is not None:
            # One connection pool for the API and the token endpoint.
            token_manager.lend_session(session)

    async def close(self) -> None:
        """Close the HTTP session if this transport created it; a caller's session stays open."""
        self.closed = True
        await self._sender.close()

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent to the API (token requests not included)."""
        return self._sender.requests_sent

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
        call = CallState(self.retry_policy.max_retry_time)  # new_call(), one frame fewer
        return self._run(route, path, params or _NO_PARAMS, body, parse, call, full_state)

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
        # The common case (admitted at once, a fresh token, a 2xx) runs in this one frame
        # and the sender's: each function on the way costs far more inside the event loop
        # (its code and data fetched again after aiohttp's) than a micro-benchmark shows.
        governor = self.governor
        manager = self.token_manager
        while True:
            try:
                # Counted when admitted (after the wait for its slot), in the same atomic
                # step that checks the month: concurrent callers cannot overshoot it.
                admission = await governor.admit()
                if call.deadline is None:
                    # The budget runs from the first admission: waiting for the governor
                    # paces a call, it does not fail it.
                    call.deadline = time.monotonic() + call.budget_s
                token = manager.current_access_token() if manager is not None else None
                if token is None:
                    token = await self._admitted_token(admission, call, None)
                answer = await self._sender.send(route, path, params, body, token, call, admission)
                if self.observers:
                    self._tell(RequestOutcome(route.operation_id, answer.status))
                if answer.status == 401 and not api_key_refused(answer.raw):
                    # A token can be refused just after passing the freshness check (clock
                    # skew, revocation): refresh once, retry once; a second 401 is final.
                    _LOGGER.debug(
                        "%s %s -> 401; refreshing the access token once", route.method, path
                    )
                    answer = await self._send_refreshed(route, path, params, body, call, answer)
                    if self.observers:
                        self._tell(RequestOutcome(route.operation_id, answer.status))
                if not (route.writes and 200 <= answer.status < 300):
                    return self._structure(route, path, answer, parse)
                try:
                    return self._structure(route, path, answer, parse)
                except ResponseFormatError as unreadable:
                    # The server took the write: sending it again could apply it twice.
                    return await self._read_back(route, path, parse, call, unreadable)
            except FinalError as final:
                raise final.error from None
            except EnphaseError as err:
                if self.observers and isinstance(err, EnphaseConnectionError):
                    self._tell(
                        RequestOutcome(route.operation_id, None, f"{type(err).__name__}: {err}")
                    )
                wait = self.retry_policy.wait_before_retry(
                    err, call, writes=route.writes, full_state=full_state
                )
                if wait is None:
                    raise
                log_retry(err, call, wait)
                await asyncio.sleep(wait)

    def _tell(self, outcome: RequestOutcome) -> None:
        for observer in tuple(self.observers):
            try:
                observer(outcome)
            except Exception:  # an observer's bug must not fail the request it watches
                _LOGGER.warning("a request observer failed on %s", outcome, exc_info=True)

    def _structure(self, route: Route, path: str, answer: Answer, parse: type[_T]) -> _T:
        status, raw = answer.status, answer.raw
        if 200 <= status < 300 and raw is not None:
            try:
                payload = loads(raw)
            except ValueError:
                payload = decode(route, path, status, raw, redact=self.redact)  # it raises
        else:
            # Only an error needs the server's clock.
            server_time = None if 200 <= status < 300 else answer.server_time
            payload = decode(route, path, status, raw, redact=self.redact, server_time=server_time)
        hook = self._hooks.get(parse)
        if hook is None:
            # Imported here: cattrs loads with the first answer, not at start-up.
            from enphase_battery.models import converter

            hook = self._hooks[parse] = converter.get_structure_hook(parse)
        try:
            result: _T = hook(payload, parse)
            return result
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
            raise FinalError(
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

    async def _send_refreshed(
        self,
        route: Route,
        path: str,
        params: Mapping[str, Any],
        body: Any,
        call: CallState,
        refused: Answer,
    ) -> Answer:
        """The request again after a 401, admitted again, with a refreshed token; the
        refused answer as it stands when the refresh brings no new token."""
        admission = await self.governor.admit()
        token = await self._admitted_token(admission, call, refused.token)
        if token == refused.token:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            return refused
        return await self._sender.send(route, path, params, body, token, call, admission)

    async def _admitted_token(
        self, admission: Admission, call: CallState, refused: str | None
    ) -> str:
        """:meth:`_fresh_token` for an admitted request, which is refunded if none comes."""
        try:
            return await self._fresh_token(call, refused)
        except BaseException:
            await self.governor.settle(admission, Outcome.NOT_SENT)
            raise

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
            raise FinalError(
                EnphaseConnectionError(
                    "no access token within the retry budget of"
                    f" {self.retry_policy.max_retry_time:g} s (the token endpoint is slow)"
                )
            ) from None
        except EnphaseError as err:
            # The token manager has retried its own transient failures already; retrying
            # the API call would multiply its token requests.
            raise FinalError(err) from None

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
        except FinalError as final:
            raise final.error from None
        for attempt in range(2):
            response = await self._sender.open_stream(
                route, path, params or {}, headers or {}, token, client_timeout
            )
            if response.status == 401 and attempt == 0:
                try:
                    new_token = await self._fresh_token(call, refused=token)
                except FinalError as final:
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
        return self._sender.get_session()

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The current session, ``None`` before the first request or after closing."""
        return self._sender.session

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
