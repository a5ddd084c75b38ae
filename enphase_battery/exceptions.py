"""Exceptions raised by enphase_battery.

Every exception derives from :class:`EnphaseError`, so ``except EnphaseError`` catches
everything the SDK raises on purpose.  Each subclass is something a caller would handle
differently: re-authorize, slow down, fix the arguments, retry later.

No exception ever carries the API key, the client secret or a token: messages are built
from the request's method and path (never its query string, which holds ``key=``), and
from the server's error body.
"""

from __future__ import annotations

from typing import Any

from enphase_battery.util.redaction import printable

__all__ = [
    "ApiError",
    "AuthenticationError",
    "CheckpointError",
    "CheckpointInUseError",
    "EnphaseConnectionError",
    "EnphaseError",
    "InvalidRequestError",
    "NoBatteryError",
    "NotFoundError",
    "NotSignedInError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "ResponseFormatError",
    "SettingsError",
]


class EnphaseError(Exception):
    """Base class of every error raised by enphase_battery.

    ``str()`` of any of them is one line of at most a few hundred characters, without
    control characters, whatever a server put into its error body.
    """

    def __str__(self) -> str:
        return printable(super().__str__())


class InvalidRequestError(EnphaseError, ValueError):
    """The arguments are invalid; raised before any request is sent."""


class SettingsError(InvalidRequestError):
    """A setting read from the environment, ``config.json`` or the token file is missing
    or unusable (:meth:`EnphaseClient.from_env <enphase_battery.EnphaseClient.from_env>`,
    the CLI); raised before any request is sent.

    The message names the setting and every place it was looked for, never a value.

    Attributes:
        setting: what is missing or wrong: ``"api_key"``, ``"client_id"``,
            ``"client_secret"``, ``"plan"``, ``"system_id"``, ``"config"`` (the config
            file) or ``"token"`` (the token file).
        looked_in: where it was looked for, in order (variable names, file paths).
    """

    def __init__(self, message: str, *, setting: str, looked_in: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.setting = setting
        self.looked_in = looked_in


class NotSignedInError(SettingsError):
    """No usable token in the token file: the homeowner must sign in first
    (``enphase-battery auth login``), which writes it.

    Attributes:
        token_file: the file that holds no token (``setting`` is ``"token"``).
    """

    def __init__(self, message: str, *, token_file: str) -> None:
        super().__init__(message, setting="token", looked_in=(token_file,))
        self.token_file = token_file


class EnphaseConnectionError(EnphaseError):
    """The API could not be reached: a network error, a dropped connection or a timeout.

    Attributes:
        reached_server: ``False`` when the request cannot have reached the server
            (connection refused, unknown host, connect timeout): a write was not applied.
            ``True`` when it may have (the connection dropped or timed out after sending).
    """

    def __init__(self, message: str, *, reached_server: bool = True) -> None:
        super().__init__(message)
        self.reached_server = reached_server


class ApiError(EnphaseError):
    """The API answered with an error status.

    Attributes:
        status: the HTTP status code, or ``None`` where the error was decided locally
            (a spent monthly quota, a token that cannot be refreshed).
        body: the parsed JSON error body (a ``dict``), the raw text where it was not JSON,
            or ``None``.
        method / path: the request that failed (never with its query string).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: Any = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.method = method
        self.path = path

    @property
    def details(self) -> str | None:
        """The ``details`` (or ``message``) field of the error body, when there is one."""
        if isinstance(self.body, dict):
            for key in ("details", "message", "error_description", "error"):
                value = self.body.get(key)
                if isinstance(value, str) and value:
                    return value
        return None

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method and self.path else ""
        status = f"HTTP {self.status}: " if self.status is not None else ""
        return printable(f"{status}{self.message}{where}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, path={self.path!r})"
        )


class AuthenticationError(ApiError):
    """The credentials were refused.

    Raised for a 401 that persists after one refresh-and-retry, and when the refresh
    token itself is dead (Enlighten refresh tokens lapse after 30 days, and a rotated one
    is dead once used): the homeowner must authorize the app again
    (``enphase-battery auth login``).

    Attributes:
        credential: which credential was refused, when known: ``"api_key"`` or
            ``"client_secret"`` (the app's own credentials: signing in again cannot
            help, fix the credential), ``"refresh_token"`` or ``"access_token"`` (sign in
            again), ``"authorization_code"``; ``None`` when the server did not say.
    """

    def __init__(
        self,
        message: str,
        *,
        credential: str | None = None,
        status: int | None = None,
        body: Any = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body, method=method, path=path)
        self.credential = credential


class PermissionDeniedError(ApiError):
    """403: the API plan or the homeowner's grant lacks access to this operation."""


class NotFoundError(ApiError):
    """404: the system, Encharge or path does not exist for this account."""


class NoBatteryError(ApiError):
    """422: the system has no batteries (a PV-only site), so a battery setting does not apply.

    The configuration operations answer ``"System doesn't have encharges"`` and the
    Commissioning API's ``battery_mode`` ``"This is a PV only site..."`` (fact sheet §3, §8).
    Asking again cannot help; the site needs an Enphase battery first.
    """


class RateLimitError(ApiError):
    """429 after the retries were spent (or a wait longer than the caller allows).

    Attributes:
        retry_after: seconds to wait before the limit resets, when known.
        period: ``"minute"`` or ``"month"``, as the API reported it.
        limit: the plan's limit for that period, when reported.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        period: str | None = None,
        limit: int | None = None,
        status: int | None = 429,
        body: Any = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body, method=method, path=path)
        self.retry_after = retry_after
        self.period = period
        self.limit = limit


class QuotaExceededError(RateLimitError):
    """The monthly request quota is spent: counted locally, or a 429 with ``period: month``.

    Raised before sending when the client's own count says the quota is gone, so a
    spent quota never costs another request.
    """


class ResponseFormatError(ApiError):
    """A 2xx response whose body is not the JSON shape the API documents."""


class CheckpointError(EnphaseError):
    """The poller's checkpoint cannot be read or written (corrupt, empty, unwritable).

    The message names the file (``path``) and what to do; nothing was delivered past
    the last state that was saved.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class CheckpointInUseError(CheckpointError):
    """Another poller (this process or another) holds the checkpoint: two pollers on one
    checkpoint would both deliver everything.  Stop the other one, or use another
    checkpoint."""
