"""OAuth2 tokens and their persistence: :class:`OAuth2Token`, :class:`TokenStore` and
:class:`FileTokenStore`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import attrs

from enphase_battery.exceptions import InvalidRequestError, ResponseFormatError

__all__ = ["FileTokenStore", "OAuth2Token", "TokenStore", "utcnow"]


def utcnow() -> datetime:
    """Now, in UTC (token expiries are compared with it)."""
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
        issued = now or utcnow()
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
        return (now or utcnow()) + skew >= self.expires_at

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


@runtime_checkable
class TokenStore(Protocol):
    """Where a token lives when several processes (or managers) share it.

    ``TokenManager(store=...)`` refreshes under :meth:`lock`: it re-reads the stored token
    first and adopts it when another holder has refreshed already, so a rotating refresh
    token is used exactly once.
    """

    def load(self) -> OAuth2Token | None:
        """The stored token, or ``None``; called off the event loop."""
        ...

    async def save(self, token: OAuth2Token) -> None:
        """Store ``token`` durably (it replaces the stored one)."""
        ...

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Exclusive across every holder of this store, processes included, while held."""
        ...


class FileTokenStore:
    """Persists an :class:`OAuth2Token` as JSON in one file, atomically, mode 0600.

    Pass it as ``TokenManager(store=store)`` when more than one process (or manager)
    shares the file: refreshes then take :meth:`lock` (an ``flock`` on ``<file>.lock``) and
    the second refresher adopts the first one's token instead of presenting a refresh
    token that rotation has already killed.  ``TokenManager(on_refresh=store.save)`` still
    works for a file that only one process uses.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def lock_path(self) -> Path:
        """The file :meth:`lock` locks (beside the token file; it holds nothing)."""
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Hold an exclusive ``flock`` on :attr:`lock_path` (waited for in a thread).

        Each call opens its own file description, so two managers of one process exclude
        each other as two processes do.  The lock is the kernel's: a process that dies
        holding it releases it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = await asyncio.to_thread(os.open, self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        waiter = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(waiter)
        except BaseException:
            # Cancelled while the thread still waits: closing the descriptor once it
            # returns releases a lock nobody will use.
            waiter.add_done_callback(lambda _: os.close(fd))
            raise
        try:
            yield
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

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
