"""The async client: one awaitable method per battery operation of the v4 API.

:class:`EnphaseClient` holds the configuration and the transport; its endpoint methods
live in :mod:`enphase_battery.endpoints`, one mixin per area.  Every method validates its
arguments, then hands the request to :class:`~enphase_battery.transport.Transport`, the
single choke point (quota, limiter, token, send, retries, error mapping, structuring).
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp

from . import validation
from .auth import AccessTokenProvider, TokenManager
from .endpoints import (
    BatteryDataEndpoints,
    ConfigurationEndpoints,
    DiscoveryEndpoints,
    RealtimeEndpoints,
)
from .exceptions import InvalidRequestError
from .governor import QuotaGovernor
from .limits import RateLimits
from .retry import RetryPolicy
from .transport import Transport

if TYPE_CHECKING:
    from .live.budget import LiveBudget, LiveLedger
    from .live.session import LiveSession
    from .reconcile import Reconciliation

__all__ = ["DEFAULT_BASE_URL", "EnphaseClient"]

DEFAULT_BASE_URL = "https://api.enphaseenergy.com"


class EnphaseClient(
    DiscoveryEndpoints, ConfigurationEndpoints, BatteryDataEndpoints, RealtimeEndpoints
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
            server cannot have applied it or the write sets the whole state (README,
            "Errors and retries"); a write that got any 2xx is never sent again.

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
        self._transport = Transport(
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

    def __repr__(self) -> str:
        return f"EnphaseClient(base_url={self.base_url!r}, rate_limits={self.rate_limits!r})"

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if the client created it; a caller's session stays open."""
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

    @property
    def requests_sent(self) -> int:
        """HTTP requests this client has sent to the API (token requests not included)."""
        return self._transport.requests_sent

    @property
    def token_manager(self) -> TokenManager | None:
        """The :class:`TokenManager` given as ``auth`` (``None`` for a token provider)."""
        return self._transport.token_manager

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
        from .live.session import LiveSession

        return LiveSession(
            self, validation.system_id(system_id), budget=budget, ledger=ledger, **options
        )

    async def reconcile(
        self, system_id: int, start: datetime, end: datetime | None = None, **options: Any
    ) -> Reconciliation:
        """The hole check: do the 15-minute intervals add up to the lifetime counters?

        See :func:`enphase_battery.reconcile.reconcile` for ``options``.
        """
        from .reconcile import reconcile

        return await reconcile(self, system_id, start, end, **options)
