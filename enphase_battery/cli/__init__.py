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

import sys
from typing import TYPE_CHECKING

# Nothing heavy at the top: a Ctrl-C that lands while this module loads, before ``main``
# has taken SIGINT, would be a traceback; asyncio, the SDK and aiohttp load in main().
from enphase_battery.cli.errors import (
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
from enphase_battery.cli.interrupts import HOLD, StopSignal

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from enphase_battery.cli.settings import _Context

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
    from enphase_battery.cli.parser import build_parser as build

    return build()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``enphase-battery`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    From its first line to its last, SIGINT ends the run with 130 and one line on stderr
    (``stream`` first saves its checkpoint), never a traceback: see :mod:`.interrupts`.
    """
    stops: StopSignal | None = None
    contexts: list[_Context] = []
    try:
        stops = StopSignal()
        stops.install()
        try:
            code = _run_main(argv, stops, contexts)
        finally:
            # A plain assignment, first: from here on a Ctrl-C is held, not raised, so
            # nothing can cut the lines below short with a traceback.
            stops.mode = HOLD
        if stops.received is not None:
            # Arrived as the command finished (held): the run still says it was stopped.
            raise _Interrupted(stops.received)
        return code
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
    except Exception as err:
        from enphase_battery.cli.report import REPORTED, _exit_code_for, _message_for

        if not isinstance(err, REPORTED):
            raise  # a bug: its traceback is what a report needs
        from enphase_battery.cli.output import _one_line

        ctx = contexts[0] if contexts else None
        sys.stderr.write(f"{PROG}: error: {_one_line(_message_for(err, ctx))}\n")
        return _exit_code_for(err)
    finally:
        sys.stderr.flush()
        if stops is not None:
            stops.restore()


def _run_main(argv: Sequence[str] | None, stops: StopSignal, contexts: list[_Context]) -> int:
    """Parse ``argv`` and run its command; every failure is raised for ``main`` to report."""
    # Loaded here, under ``stops``: a Ctrl-C while they load (the first half second of a
    # run) is "interrupted", not a traceback.
    import asyncio
    import logging

    try:
        # Chosen at import from ENPHASE_BATTERY_JSON, before anything else decodes: a
        # setting that cannot be honoured is one line and exit 2, not a traceback.
        from enphase_battery.util import json_decoder  # noqa: F401
    except (ImportError, ValueError) as err:
        raise CliError(str(err), EXIT_USAGE) from None
    from enphase_battery.cli.interrupts import run_command
    from enphase_battery.cli.settings import _make_context

    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        # The SDK's requests at debug level; other libraries' debug chatter (asyncio's
        # "Using selector") would bury them, so those stay at warnings.
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s"
        )
        logging.getLogger("enphase_battery").setLevel(logging.DEBUG)
    if getattr(args, "sync_handler", None) is not None:
        # `simulate` runs its own loop and stops on Ctrl-C: SIGINT is its own, as before.
        stops.restore()
        code: int = args.sync_handler(args)
        return code
    ctx = _make_context(args)
    contexts.append(ctx)
    # Held from here until run_command takes it: asyncio.run cut while it builds the loop
    # would leave a coroutine never awaited (a warning on stderr).
    stops.mode = HOLD
    return asyncio.run(run_command(args.handler, ctx, stops))
