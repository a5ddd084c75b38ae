"""The async client: one awaitable method per battery operation of the v4 API.

:class:`EnphaseClient` holds the configuration and the transport; its endpoint methods
live in :mod:`enphase_battery.client.endpoints`, one mixin per area.  Every method validates its
arguments, then hands the request to :class:`~enphase_battery.http.calls.ApiCalls`, the
single choke point (quota, limiter, token, send, retries, error mapping, structuring).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp

from enphase_battery.auth.manager import TokenManager
from enphase_battery.auth.tokens import OAuth2Token
from enphase_battery.client.endpoints import (
    BatteryDataEndpoints,
    CommissioningEndpoints,
    ConfigurationEndpoints,
    ConfirmationEndpoints,
    DiscoveryEndpoints,
    RealtimeEndpoints,
)
from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.http.calls import AccessTokenProvider, ApiCalls, RequestObserver
from enphase_battery.http.retry import RetryPolicy
from enphase_battery.http.routes import DEFAULT_BASE_URL
from enphase_battery.models import validation
from enphase_battery.quota.governor import QuotaGovernor
from enphase_battery.quota.limits import RateLimits

if TYPE_CHECKING:
    from enphase_battery.client.environment import EnphaseSettings
    from enphase_battery.live.budget import LiveBudget, LiveLedger
    from enphase_battery.live.session import LiveSession
    from enphase_battery.reconcile import Reconciliation

__all__ = ["DEFAULT_BASE_URL", "EnphaseClient"]

_LOGGER = logging.getLogger("enphase_battery.client")


class EnphaseClient(
    DiscoveryEndpoints,
    ConfigurationEndpoints,
    CommissioningEndpoints,
    BatteryDataEndpoints,
    RealtimeEndpoints,
    ConfirmationEndpoints,
):
    """Async client for the battery operations of the Enphase v4 Monitoring API.

    Args:
        api_key: the app's API key, sent as ``key=`` on every call.
        auth: a :class:`TokenManager`, or any coroutine function returning a valid access
            token (for hosts that own the OAuth2 session, such as Home Assistant).
        session: an ``aiohttp.ClientSession`` to use; the client closes only a session it
            created itself.
        base_url: the API host (the simulator's ``base_url`` in tests and demos).
        rate_limits: the plan's limits (default :attr:`RateLimits.WATT`); every request
            passes its limiter and counts against its monthly quota.
        timeout: seconds for one HTTP request.
        max_retries: retries after the first try for transient failures of a read.
        max_retry_time: seconds one call may take from its first send to its end, every
            timeout, token refresh and retry wait included; a 429 whose reset lies further
            away raises :class:`RateLimitError` at once instead of hanging.
        quota_used: requests already spent this month (by earlier runs, other programs),
            for the default governor.
        governor: the :class:`~enphase_battery.QuotaGovernor` every request asks first
            (plan spacing, the month's count, the background share); share one between
            clients of one API key.  Default: one of ``rate_limits`` in memory.
        write_retries: how often a write (PUT) may be sent again, and only where the
            server cannot have applied it or the write sets the whole state
            (docs/concepts/errors.md); a write that got any 2xx is never sent again.

    Use as ``async with EnphaseClient(...) as client:`` or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        api_key: str,
        auth: TokenManager | AccessTokenProvider,
        session: aiohttp.ClientSession | None = None,
        base_url: str = DEFAULT_BASE_URL,
        rate_limits: RateLimits = RateLimits.WATT,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_retry_time: float = 120.0,
        quota_used: int = 0,
        governor: QuotaGovernor | None = None,
        write_retries: int = 1,
    ) -> None:
        validation.credential("api_key", api_key)
        token_manager: TokenManager | None
        token_provider: AccessTokenProvider
        if isinstance(auth, TokenManager):
            token_manager, token_provider = auth, auth.access_token
        elif callable(auth):
            token_manager, token_provider = None, auth
        else:
            raise InvalidRequestError("auth must be a TokenManager or a coroutine function")
        if governor is not None:
            if not isinstance(governor, QuotaGovernor):
                raise InvalidRequestError("governor must be a QuotaGovernor")
            rate_limits = governor.limits
        if not isinstance(rate_limits, RateLimits):
            raise InvalidRequestError("rate_limits must be a RateLimits")
        for name, value in (("max_retries", max_retries), ("write_retries", write_retries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRequestError(f"{name} must be an int >= 0")
        if not timeout > 0 or not max_retry_time > 0:
            raise InvalidRequestError("timeout and max_retry_time must be positive")
        self._transport = ApiCalls(
            api_key=api_key,
            token_manager=token_manager,
            token_provider=token_provider,
            session=session,
            base_url=validation.http_url("base_url", base_url).rstrip("/"),
            rate_limits=rate_limits,
            timeout=timeout,
            retry_policy=RetryPolicy(
                max_retries=max_retries,
                max_retry_time=max_retry_time,
                write_retries=write_retries,
            ),
            quota_used=quota_used,
            governor=governor,
        )
        self._token_manager = token_manager
        # A token manager :meth:`from_env` made for this client: started and stopped with it.
        self._owned_token_manager: TokenManager | None = None

    @classmethod
    def from_env(
        cls,
        *,
        settings: EnphaseSettings | None = None,
        config_file: str | os.PathLike[str] | None = None,
        token_file: str | os.PathLike[str] | None = None,
        plan: str | None = None,
        environ: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        governor: QuotaGovernor | None = None,
        share_usage: bool = True,
        on_refresh: Callable[[OAuth2Token], Awaitable[None]] | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_retry_time: float = 120.0,
        write_retries: int = 1,
    ) -> EnphaseClient:
        """A client set up as the ``enphase-battery`` CLI is: same variables, same files.

        ``async with EnphaseClient.from_env() as client:`` works wherever the CLI works:
        after ``enphase-battery auth login``, or in a shell holding the ``export`` lines
        ``enphase-battery simulate`` prints.  What it reads, each setting from the first
        place that has it (:mod:`enphase_battery.client.environment`):

        1. the API key, client id and client secret: ``ENPHASE_API_KEY``,
           ``ENPHASE_CLIENT_ID``, ``ENPHASE_CLIENT_SECRET``, then ``config.json``'s
           ``api_key``, ``client_id``, ``client_secret``;
        2. the URLs: ``ENPHASE_BASE_URL``, ``ENPHASE_TOKEN_URL``,
           ``ENPHASE_AUTHORIZE_URL``, then ``config.json``, then Enphase's own;
        3. the plan: ``plan=``, ``ENPHASE_PLAN``, ``config.json``'s ``plan``, else
           ``watt`` (the free plan): its :class:`RateLimits` pace the client;
        4. the token: ``token_file=``, ``ENPHASE_TOKEN_FILE``, else ``token.json``, read
           now; every refreshed token is saved back to it (under its lock, so the CLI
           and other programs on the same file refresh in turn);
        5. the month's request count: ``usage.json``, shared with the CLI
           (``share_usage=False``, or a config directory it cannot write in: this
           process's memory only, the latter with a warning; ``governor=``: yours).

        ``config.json`` is ``config_file=``, ``ENPHASE_CONFIG`` or
        ``$XDG_CONFIG_HOME/enphase-battery/config.json`` (``~/.config/...``); the token and
        usage files live in the same directory unless named.

        The client owns the :class:`TokenManager` it builds: ``async with`` the client
        runs its background refresher, and :meth:`close` stops it.  ``session``,
        ``timeout``, ``max_retries``, ``max_retry_time`` and ``write_retries`` are as for
        the constructor; ``on_refresh`` as for :class:`TokenManager`; ``settings``: an
        :class:`~enphase_battery.client.environment.EnphaseSettings` already loaded (then
        ``config_file``, ``token_file``, ``plan`` and ``environ`` are not used).

        Raises:
            SettingsError: a credential is missing (the message names the variable and
                the file to set it in, never a value), the config file or the token file
                cannot be read, or the plan is unknown.
            NotSignedInError: there is no token file yet: run ``enphase-battery auth
                login`` (a :class:`SettingsError` too).
        """
        # Imported here: ``from enphase_battery import EnphaseClient`` stays as cheap as it
        # was for programs that never read the environment.
        from enphase_battery.client.environment import USAGE_RESET_HINT
        from enphase_battery.client.environment import EnphaseSettings as Settings
        from enphase_battery.quota.file_backend import FileGovernorBackend

        if settings is None:
            settings = Settings.load(
                config_file=config_file, token_file=token_file, plan=plan, environ=environ
            )
        api_key, client_id, client_secret = settings.credentials()
        token = settings.load_token()
        manager = TokenManager(
            client_id=client_id,
            client_secret=client_secret,
            token=token,
            token_url=settings.token_url,
            authorize_url=settings.authorize_url,
            session=session,
            on_refresh=on_refresh,
            store=settings.token_store(),
        )
        if governor is None and share_usage and _can_write_in(settings.directory):
            governor = QuotaGovernor(
                settings.rate_limits,
                key=QuotaGovernor.key_for(api_key),
                backend=FileGovernorBackend(settings.usage_file),
                reset_hint=USAGE_RESET_HINT,
            )
        client = cls(
            api_key=api_key,
            auth=manager,
            session=session,
            base_url=settings.base_url,
            rate_limits=settings.rate_limits,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_time=max_retry_time,
            governor=governor,
            write_retries=write_retries,
        )
        client._owned_token_manager = manager
        return client

    def __repr__(self) -> str:
        return f"EnphaseClient(base_url={self.base_url!r}, rate_limits={self.rate_limits!r})"

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._owned_token_manager is not None:
            self._owned_token_manager.start()  # refreshes ahead of expiry while in use
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if the client created it; a caller's session stays open.

        A token manager :meth:`from_env` built for this client is stopped first.
        """
        if self._owned_token_manager is not None:
            await self._owned_token_manager.stop()
        await self._transport.close()

    @property
    def base_url(self) -> str:
        """The API host requests go to."""
        return self._transport.base_url

    @property
    def rate_limits(self) -> RateLimits:
        """The plan's limits this client paces itself by."""
        return self._transport.rate_limits

    @property
    def max_retries(self) -> int:
        """Retries after the first try for transient failures of a read."""
        return self._transport.retry_policy.max_retries

    @property
    def max_retry_time(self) -> float:
        """Seconds one call may take from its first send, timeouts and waits included."""
        return self._transport.retry_policy.max_retry_time

    @property
    def write_retries(self) -> int:
        """How often a write may be sent again where that cannot apply it twice."""
        return self._transport.retry_policy.write_retries

    def observe_requests(self, observer: RequestObserver) -> Callable[[], None]:
        """Tell ``observer`` how every try of every API request ends (an HTTP status, or
        no answer and why), for metrics such as ``enphase-battery serve``'s; returns the
        function that stops telling it.  Token requests are not API requests."""
        observers = self._transport.observers
        observers.append(observer)

        def stop() -> None:
            if observer in observers:
                observers.remove(observer)

        return stop

    @property
    def requests_sent(self) -> int:
        """HTTP requests this client has sent to the API (token requests not included)."""
        return self._transport.requests_sent

    @property
    def token_manager(self) -> TokenManager | None:
        """The :class:`TokenManager` given as ``auth`` (``None`` for a token provider)."""
        return self._token_manager

    @property
    def quota_remaining(self) -> int | None:
        """Requests left in this month's quota (``None`` when the plan has no monthly cap)."""
        return self._transport.governor.usage_now().remaining

    @property
    def quota_used(self) -> int:
        """Requests counted against this month's quota."""
        return self._transport.governor.usage_now().used

    @property
    def governor(self) -> QuotaGovernor:
        """The quota governor every request of this client asks first."""
        return self._transport.governor

    # -- managed live data and the hole check (built on the endpoint methods) ----------

    def live(
        self,
        system_id: int,
        *,
        budget: LiveBudget | None = None,
        ledger: LiveLedger | None = None,
        **options: Any,
    ) -> LiveSession:
        """Stay live: ``async with client.live(id, budget=LiveBudget(per_hour=12)) as s:
        async for frame in s: ...``.

        Reconnects as each stream expires, counts every connection against ``budget``
        (or a shared ``ledger``), and falls back to polling ``latest_telemetry`` on a
        403, 466/472, a spent budget (``frame.source`` says which).  ``options`` go to
        :class:`~enphase_battery.live.LiveSession` (``duration_s``, ``fallback``,
        ``fallback_interval_s``, ``cool_down_s``, ``idle_timeout_s``).
        """
        # Loaded with the first live session: start-up does not pay for it.
        from enphase_battery.live.session import LiveSession

        return LiveSession(
            self, validation.system_id(system_id), budget=budget, ledger=ledger, **options
        )

    async def reconcile(
        self, system_id: int, start: datetime, end: datetime | None = None, **options: Any
    ) -> Reconciliation:
        """The hole check: do the 15-minute intervals add up to the lifetime counters?

        See :func:`enphase_battery.reconcile.reconcile` for ``options``.
        """
        from enphase_battery.reconcile import reconcile

        return await reconcile(self, system_id, start, end, **options)


def _can_write_in(directory: Path) -> bool:
    """Whether ``usage.json`` can live in ``directory`` (created if missing), as the CLI
    keeps it; a service on a read-only home counts in memory instead, and says so."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        writable = False
    else:
        writable = os.access(directory, os.W_OK)
    if not writable:
        _LOGGER.warning(
            "cannot write in %s: this process counts its requests in memory only", directory
        )
    return writable
