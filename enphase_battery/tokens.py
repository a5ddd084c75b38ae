"""OAuth2 tokens and their persistence: :class:`OAuth2Token` and :class:`FileTokenStore`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import attrs

from .exceptions import InvalidRequestError, ResponseFormatError

__all__ = ["FileTokenStore", "OAuth2Token", "utcnow"]


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
