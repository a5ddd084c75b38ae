"""The background task that refreshes a :class:`~enphase_battery.TokenManager`'s token
ahead of its expiry, so that an idle service never presents a stale token."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta

from enphase_battery.auth.tokens import OAuth2Token, utcnow
from enphase_battery.exceptions import AuthenticationError, EnphaseError

__all__ = ["BackgroundRefresher", "refresh_delay"]

_LOGGER = logging.getLogger("enphase_battery.auth")


def refresh_delay(token: OAuth2Token | None, skew: timedelta) -> float:
    """Seconds to sleep before refreshing ``token`` (a minute when there is none).

    It wakes a little before the skew would make ``access_token()`` refresh; the margin
    stays below the skew, or short-lived tokens would be refreshed in a tight loop.
    """
    if token is None:
        return 60.0
    due = token.expires_at - skew - utcnow()
    margin = min(1.0, skew.total_seconds() / 2)
    return max(0.0, due.total_seconds() - margin)


class BackgroundRefresher:
    """Runs ``refresh`` ahead of each token's expiry until stopped or the token is dead.

    ``current`` and ``skew`` read the manager's token and its effective refresh skew;
    ``refresh(stale_access_token=...)`` is its single-flight refresh.
    """

    def __init__(
        self,
        *,
        current: Callable[[], OAuth2Token | None],
        skew: Callable[[], timedelta],
        refresh: Callable[..., Awaitable[object]],
    ) -> None:
        self._current = current
        self._skew = skew
        self._refresh = refresh
        self._task: asyncio.Task[None] | None = None
        #: Why the loop stopped by itself (a dead refresh token), else ``None``.
        self.error: BaseException | None = None

    @property
    def running(self) -> bool:
        """Whether the loop runs (started, neither stopped nor ended by itself)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (idempotent)."""
        if not self.running:
            self.error = None
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="enphase-token-refresher"
            )

    async def stop(self) -> None:
        """Cancel the loop and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        failures = 0
        while True:
            token = self._current()
            await asyncio.sleep(refresh_delay(token, self._skew()))
            try:
                await self._refresh(stale_access_token=token.access_token if token else None)
                failures = 0
            except AuthenticationError as err:
                self.error = err
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
