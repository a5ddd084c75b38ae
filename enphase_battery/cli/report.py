"""How a failure reads on stderr (one line, the setting to fix) and the exit code it gets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enphase_battery.cli.errors import (
    EXIT_API_ERROR,
    EXIT_AUTH,
    EXIT_RATE_LIMIT,
    EXIT_USAGE,
    PROG,
    CliError,
)
from enphase_battery.exceptions import (
    AuthenticationError,
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    RateLimitError,
)

if TYPE_CHECKING:
    from enphase_battery.cli.settings import _Context

#: The app's own credentials: when refused, signing in again cannot help.
_APP_CREDENTIALS = {"api_key": ("api_key",), "client_secret": ("client_id", "client_secret")}

#: What ``main`` reports as one line; anything else is a bug, and keeps its traceback.
REPORTED = (CliError, EnphaseError, OSError)


def _exit_code_for(err: BaseException) -> int:
    if isinstance(err, CliError):
        return err.exit_code
    if isinstance(err, InvalidRequestError):
        return EXIT_USAGE
    if isinstance(err, AuthenticationError):
        # A wrong API key or client secret is a setting to fix, not a sign-in to redo.
        return EXIT_USAGE if err.credential in _APP_CREDENTIALS else EXIT_AUTH
    if isinstance(err, RateLimitError):
        return EXIT_RATE_LIMIT
    return EXIT_API_ERROR


def _message_for(err: BaseException, ctx: _Context | None = None) -> str:
    if isinstance(err, AuthenticationError) and err.credential in _APP_CREDENTIALS:
        names = _APP_CREDENTIALS[err.credential]
        sources = ctx.sources if ctx is not None else {}
        origins = [
            f"the {name.replace('_', ' ')} came from {sources[name]}"
            for name in names
            if name in sources
        ]
        return f"{err}" + (f"; {' and '.join(origins)}" if origins else "")
    if isinstance(err, AuthenticationError) and "auth login" not in str(err):
        return f"{err}; if this persists, sign in again with `{PROG} auth login`"
    if isinstance(err, EnphaseConnectionError):
        return f"cannot reach the API: {err}"
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror or err}{where}"
    return str(err) or type(err).__name__
