"""The ``enphase-battery`` command line: sign in, read and change settings, stream telemetry.

Every command prints a readable table, or JSON with ``--json``.  Failures print one line
on stderr (never a traceback, never a secret) and exit with:

====  ==========================================================================
0     success
1     the API or the network failed (HTTP error, connection, unexpected answer)
2     usage: bad flags or arguments, missing or refused app credentials (API key,
      client secret), a named config file that does not exist, an unknown Encharge
3     sign-in needed: no token, or the refresh token was refused
4     rate limit or monthly quota spent
130   interrupted (Ctrl-C; ``stream`` saves its checkpoint first), 143 on SIGTERM
====  ==========================================================================

Settings come from flags, then the environment, then ``config.json`` in the config
directory (``$XDG_CONFIG_HOME/enphase-battery``, by default ``~/.config/enphase-battery``),
which also holds ``token.json`` (the OAuth2 token, mode 0600), ``usage.json`` (this
month's request count per API key, so the quota shown survives between runs) and the
``stream`` checkpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import (
    AuthenticationError,
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    RateLimitError,
)
from .errors import (
    EXIT_API_ERROR,
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RATE_LIMIT,
    EXIT_USAGE,
    PROG,
    CliError,
    _Interrupted,
)
from .output import _one_line

if TYPE_CHECKING:
    from .settings import _Context

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RATE_LIMIT",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``enphase-battery`` argument parser: every command and option."""
    from .parser import build_parser as build

    return build()


#: The app's own credentials: when refused, signing in again cannot help.
_APP_CREDENTIALS = {"api_key": ("api_key",), "client_secret": ("client_id", "client_secret")}


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


async def _run(handler: Callable[[_Context], Coroutine[Any, Any, int]], ctx: _Context) -> int:
    """Run ``handler``; SIGINT/SIGTERM cancel it so that ``async with`` blocks clean up."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    installed: list[int] = []
    for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
        # Only possible in the main thread; elsewhere Ctrl-C falls back to asyncio.run's.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)
            installed.append(signum)
    try:
        return await handler(ctx)
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        raise _Interrupted(received[0]) from None
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``enphase-battery`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    ctx: _Context | None = None
    try:
        # The commands (and with them the SDK and aiohttp) load here, inside the try: a
        # Ctrl-C in the first half second is then "interrupted", not a traceback.
        from .settings import _make_context

        args = build_parser().parse_args(argv)
        if getattr(args, "verbose", False):
            # The SDK's requests at debug level; other libraries' debug chatter (asyncio's
            # "Using selector") would bury them, so those stay at warnings.
            logging.basicConfig(
                level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s"
            )
            logging.getLogger("enphase_battery").setLevel(logging.DEBUG)
        if getattr(args, "sync_handler", None) is not None:
            code: int = args.sync_handler(args)
            return code
        ctx = _make_context(args)
        return asyncio.run(_run(args.handler, ctx))
    except SystemExit as exit_:
        # --help and --version.
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except _Interrupted as stop:
        # Only what was interrupted can say what it kept (stream prints its own count).
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 128 + stop.signum
    except (CliError, EnphaseError, OSError) as err:
        sys.stderr.write(f"{PROG}: error: {_one_line(_message_for(err, ctx))}\n")
        return _exit_code_for(err)
    finally:
        sys.stderr.flush()
