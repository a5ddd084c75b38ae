"""The ``enphase-battery`` command line: sign in, read and change settings, stream telemetry.

Every command prints a readable table, or JSON with ``--json``.  Failures print one line
on stderr (never a traceback, never a secret) and exit with:

====  ==========================================================================
0     success
1     the API or the network failed (HTTP error, connection, unexpected answer)
2     usage: bad flags or arguments, missing credentials
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
import csv
import enum
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import parse_qs, urlsplit

import aiohttp
import attrs
from aiohttp import web

from . import __version__
from .auth import (
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TOKEN_URL,
    FileTokenStore,
    OAuth2Token,
    TokenManager,
)
from .client import DEFAULT_BASE_URL, EnphaseClient
from .exceptions import (
    ApiError,
    AuthenticationError,
    EnphaseConnectionError,
    EnphaseError,
    InvalidRequestError,
    RateLimitError,
)
from .limits import RateLimits
from .models import Granularity
from .poller import TelemetryInterval, TelemetryPoller

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

PROG = "enphase-battery"

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_RATE_LIMIT = 4
EXIT_INTERRUPTED = 130

#: Where ``auth login --listen`` listens unless told otherwise; the app's registered
#: redirect URI must then be ``http://127.0.0.1:8765/callback``.
DEFAULT_LISTEN_PORT = 8765
CALLBACK_PATH = "/callback"
PLANS = ("watt", "kilowatt", "megawatt", "partner")

_LOGGER = logging.getLogger(__name__)


class CliError(Exception):
    """A failure the CLI reports as one line on stderr with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Interrupted(Exception):
    """A stop signal arrived; the work stopped gracefully."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


# -- argument parsing ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see `{self.prog} --help`)", EXIT_USAGE)


def _hhmm(text: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected HH:MM, got {text!r}")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise argparse.ArgumentTypeError(f"not a time of day: {text!r}")
    return time(hour, minute, second)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _moment(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 date-time (UTC unless it has an offset)."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD or an ISO 8601 date-time, got {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("seconds must be >= 0")
    return value


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options every command accepts, before or after the command name.

    On sub-commands they default to SUPPRESS, so a value given before the command name
    (parsed by the top-level parser) is not overwritten by the sub-command's default.
    """
    suppress: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--json", action="store_true", help="print JSON instead of a table", **suppress
    )
    group.add_argument(
        "--api-key", metavar="KEY", help="the app's API key (env ENPHASE_API_KEY)", **suppress
    )
    group.add_argument(
        "--client-id", metavar="ID", help="the app's client id (env ENPHASE_CLIENT_ID)", **suppress
    )
    group.add_argument(
        "--client-secret",
        metavar="SECRET",
        help="the app's client secret (env ENPHASE_CLIENT_SECRET; prefer the env or config file)",
        **suppress,
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        help="config file with api_key, client_id, client_secret (env ENPHASE_CONFIG;"
        " default <config dir>/config.json)",
        **suppress,
    )
    group.add_argument(
        "--token-file",
        metavar="FILE",
        help="where the OAuth2 token is kept (env ENPHASE_TOKEN_FILE;"
        " default <config dir>/token.json)",
        **suppress,
    )
    group.add_argument(
        "--base-url", metavar="URL", help=f"API host (default {DEFAULT_BASE_URL})", **suppress
    )
    group.add_argument(
        "--token-url",
        metavar="URL",
        help=f"OAuth2 token URL (default {DEFAULT_TOKEN_URL})",
        **suppress,
    )
    group.add_argument(
        "--authorize-url",
        metavar="URL",
        help=f"OAuth2 authorize URL (default {DEFAULT_AUTHORIZE_URL})",
        **suppress,
    )
    group.add_argument(
        "--plan",
        choices=PLANS,
        help="your API plan, for rate limits and quota (env ENPHASE_PLAN; default watt)",
        **suppress,
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", help="log requests to stderr", **suppress
    )


def _add_system(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--system",
        type=_positive_int,
        metavar="ID",
        help="system id (see `enphase-battery systems`; env ENPHASE_SYSTEM_ID)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``enphase-battery``."""
    parser = _Parser(
        prog=PROG,
        description="Enphase IQ Battery control and telemetry over the Enlighten API v4.",
        epilog="Sign in once with `enphase-battery auth login`; see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, help_text: str, *, system: bool = True, parent: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text
        )
        _add_common(sub, top=False)
        if system:
            _add_system(sub)
        return sub

    # auth
    auth = commands.add_parser("auth", help="sign in, show the token's state, sign out")
    auth_commands = auth.add_subparsers(dest="auth_command", metavar="ACTION", required=True)
    login = command(
        "login",
        "sign in (OAuth2 authorization code) and save the token",
        system=False,
        parent=auth_commands,
    )
    login.add_argument(
        "--listen",
        nargs="?",
        type=int,
        const=DEFAULT_LISTEN_PORT,
        metavar="PORT",
        help="receive the redirect on http://127.0.0.1:PORT/callback (default port"
        f" {DEFAULT_LISTEN_PORT}; 0: any free port); the app must have that redirect URI",
    )
    login.add_argument(
        "--code",
        metavar="CODE_OR_URL",
        help="the authorization code, or the whole redirect URL, from an earlier approval",
    )
    login.add_argument(
        "--redirect-uri",
        default=DEFAULT_REDIRECT_URI,
        metavar="URI",
        help=f"the app's redirect URI when not listening (default {DEFAULT_REDIRECT_URI})",
    )
    login.add_argument(
        "--timeout",
        type=_seconds,
        default=300.0,
        metavar="S",
        help="with --listen: how long to wait for the approval (default 300 s)",
    )
    login.add_argument(
        "--save-credentials",
        action="store_true",
        help="also store the API key, client id and secret in config.json (mode 0600)",
    )
    login.set_defaults(handler=_cmd_auth_login)
    status = command(
        "status",
        "show whether you are signed in and when the token expires",
        system=False,
        parent=auth_commands,
    )
    status.set_defaults(handler=_cmd_auth_status)
    logout = command("logout", "delete the saved token", system=False, parent=auth_commands)
    logout.set_defaults(handler=_cmd_auth_logout)

    command("systems", "list the systems you can access", system=False).set_defaults(
        handler=_cmd_systems
    )
    command("devices", "list a system's devices (Encharge serials among them)").set_defaults(
        handler=_cmd_devices
    )

    settings = commands.add_parser("settings", help="battery profile, reserve, energy independence")
    settings_commands = settings.add_subparsers(
        dest="settings_command", metavar="ACTION", required=True
    )
    command("show", "show the battery settings", parent=settings_commands).set_defaults(
        handler=_cmd_settings_show
    )
    settings_set = command(
        "set", "change the battery settings (only what you give)", parent=settings_commands
    )
    settings_set.add_argument(
        "--profile",
        metavar="PROFILE",
        help='"Self-consumption", "Savings Mode" or "Full Backup" (spelling is forgiving)',
    )
    settings_set.add_argument("--reserve", type=int, metavar="PERCENT", help="backup reserve, %%")
    settings_set.add_argument("--energy-independence", choices=("on", "off"))
    settings_set.set_defaults(handler=_cmd_settings_set)

    storm = command("storm-guard", "show or switch Storm Guard")
    storm.add_argument("action", nargs="?", choices=("show", "on", "off"), default="show")
    storm.set_defaults(handler=_cmd_storm_guard)

    command("grid-status", "whether the site is on or off grid").set_defaults(
        handler=_cmd_grid_status
    )

    load = commands.add_parser("load-control", help="load-control circuits (NC1, NC2...)")
    load_commands = load.add_subparsers(dest="load_command", metavar="ACTION", required=True)
    command("show", "show the load-control circuits", parent=load_commands).set_defaults(
        handler=_cmd_load_show
    )
    load_set = command("set", "change one load-control circuit", parent=load_commands)
    load_set.add_argument("--name", required=True, help="the circuit, e.g. NC1")
    load_set.add_argument("--load-name", help="a label for the load")
    load_set.add_argument(
        "--mode",
        help="Scheduled, Basic, Advanced_BatteryPowered, Manual_always_not_powered,"
        " Manual_always_powered or Advanced_GeneratorPowered",
    )
    load_set.add_argument("--soc-low", type=int, metavar="PERCENT", help="10-90 %%")
    load_set.add_argument("--start", type=_hhmm, metavar="HH:MM", help="essential start time")
    load_set.add_argument("--end", type=_hhmm, metavar="HH:MM", help="essential end time")
    load_set.set_defaults(handler=_cmd_load_set)

    lifetime = command("lifetime", "daily battery charge and discharge")
    lifetime.add_argument("--since", type=_day, required=True, metavar="YYYY-MM-DD")
    lifetime.add_argument(
        "--until", type=_day, metavar="YYYY-MM-DD", help="last day (default: yesterday)"
    )
    lifetime.set_defaults(handler=_cmd_lifetime)

    telemetry = command("telemetry", "15-minute battery intervals over a period")
    telemetry.add_argument(
        "--since",
        type=_moment,
        required=True,
        metavar="WHEN",
        help="YYYY-MM-DD (midnight UTC) or an ISO 8601 date-time",
    )
    telemetry.add_argument(
        "--until", type=_moment, metavar="WHEN", help="end of the period (default: now)"
    )
    telemetry.add_argument(
        "--encharge", metavar="SERIAL", help="one Encharge instead of the system total"
    )
    telemetry.add_argument(
        "--granularity",
        choices=[g.value for g in Granularity],
        default=Granularity.WEEK.value,
        help="window per request: week (672 intervals, fewest calls; default), day or 15mins",
    )
    telemetry.set_defaults(handler=_cmd_telemetry)

    stream = command("stream", "follow new intervals, resuming where the last run stopped")
    stream.add_argument(
        "--encharge",
        action="append",
        metavar="SERIAL",
        help="follow this Encharge (repeatable); default: every Encharge of the system"
        " (none on the Watt plan, which has no per-Encharge telemetry)",
    )
    stream.add_argument(
        "--no-battery", action="store_true", help="skip the system-level battery stream"
    )
    stream.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="SQLite checkpoint (default <config dir>/stream-<system>.sqlite)",
    )
    stream.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    stream.add_argument(
        "--out", metavar="FILE", help="append to FILE (flushed per line) instead of stdout"
    )
    stream.add_argument(
        "--since",
        type=_moment,
        metavar="WHEN",
        help="where a new checkpoint starts (default: the system's current day)",
    )
    stream.add_argument(
        "--poll-interval",
        type=_seconds,
        metavar="S",
        help="seconds between polls (default: paced to 80%% of the plan's monthly quota)",
    )
    stream.add_argument(
        "--max-intervals", type=_positive_int, metavar="N", help="stop after N intervals"
    )
    stream.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop once everything available now has been written",
    )
    stream.set_defaults(handler=_cmd_stream)

    _add_simulate(commands)
    return parser


def _add_simulate(commands: Any) -> None:
    from .simulator.cli import add_simulate_parser, run_simulate

    simulate = add_simulate_parser(commands)
    # The simulator runs its own event loop (asyncio.run), so it is called synchronously.
    simulate.set_defaults(sync_handler=run_simulate)


# -- settings: flags, environment, config file ----------------------------------------------


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/enphase-battery``, by default ``~/.config/enphase-battery``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / PROG


@dataclass
class _Context:
    """Everything a command needs: parsed args and resolved settings."""

    args: argparse.Namespace
    directory: Path
    config_path: Path
    token_path: Path
    config: dict[str, Any]
    base_url: str
    token_url: str
    authorize_url: str
    plan: str
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def credential(self, name: str, *, required: bool = True) -> str | None:
        """``api_key``, ``client_id`` or ``client_secret``: flag, then env, then config."""
        flag = "--" + name.replace("_", "-")
        env = "ENPHASE_" + name.upper()
        value = getattr(self.args, name, None)
        source = flag
        if not value:
            value, source = os.environ.get(env), env
        if not value:
            value, source = self.config.get(name), f"{self.config_path.name}"
        if not value:
            if required:
                raise CliError(
                    f"missing {name.replace('_', ' ')}: pass {flag}, set {env}"
                    f" or add {name!r} to {self.config_path}",
                    EXIT_USAGE,
                )
            return None
        if not isinstance(value, str):
            raise CliError(f"{name} in {self.config_path} must be a string", EXIT_USAGE)
        _SECRETS.add(value)
        self.sources[name] = source
        return value

    def system_id(self) -> int:
        value = getattr(self.args, "system", None)
        if value is None:
            raw = os.environ.get("ENPHASE_SYSTEM_ID") or self.config.get("system_id")
            if raw is None:
                raise CliError(
                    "missing --system: pass --system ID (see `enphase-battery systems`)"
                    " or set ENPHASE_SYSTEM_ID",
                    EXIT_USAGE,
                )
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise CliError(f"system id must be a number, got {raw!r}", EXIT_USAGE) from None
        return int(value)


#: Every secret seen in this run, removed from any error message as a last line of defence.
_SECRETS: set[str] = set()


def _make_context(args: argparse.Namespace) -> _Context:
    directory = config_dir()
    config_path = Path(
        getattr(args, "config", None)
        or os.environ.get("ENPHASE_CONFIG")
        or directory / "config.json"
    ).expanduser()
    token_path = Path(
        getattr(args, "token_file", None)
        or os.environ.get("ENPHASE_TOKEN_FILE")
        or directory / "token.json"
    ).expanduser()
    if args.command == "simulate":
        # simulate's own --token-file is where it writes a token; nothing else applies.
        config: dict[str, Any] = {}
    else:
        config = _load_config(config_path)

    def pick(flag: str, env: str, key: str, default: str) -> str:
        value = getattr(args, flag, None) or os.environ.get(env) or config.get(key) or default
        return str(value)

    plan = pick("plan", "ENPHASE_PLAN", "plan", "watt").strip().lower()
    if plan not in PLANS:
        raise CliError(f"unknown plan {plan!r}; expected one of {', '.join(PLANS)}", EXIT_USAGE)
    return _Context(
        args=args,
        directory=directory,
        config_path=config_path,
        token_path=token_path,
        config=config,
        base_url=pick("base_url", "ENPHASE_BASE_URL", "base_url", DEFAULT_BASE_URL),
        token_url=pick("token_url", "ENPHASE_TOKEN_URL", "token_url", DEFAULT_TOKEN_URL),
        authorize_url=pick(
            "authorize_url", "ENPHASE_AUTHORIZE_URL", "authorize_url", DEFAULT_AUTHORIZE_URL
        ),
        plan=plan,
    )


def _load_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror}", EXIT_USAGE) from None
    try:
        data = json.loads(text)
    except ValueError:
        raise CliError(f"{path} is not valid JSON", EXIT_USAGE) from None
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON object", EXIT_USAGE)
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and any(
        data.get(k) for k in ("client_secret", "api_key")
    ):
        # ssh does the same for private keys: a secret others can read is worth a warning.
        _warn(f"{path} is readable by other users; run: chmod 600 {path}")
    return data


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (it may hold secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _UsageLedger:
    """This month's request count per API key, kept in ``usage.json`` between runs.

    Each CLI run is a new process whose client would otherwise believe the whole monthly
    quota is left.  Keyed by a hash of the API key (the quota is per app), never the key.
    Runs add their own requests to the stored count, so concurrent runs do not overwrite
    each other's.
    """

    def __init__(self, path: Path, api_key: str) -> None:
        self.path = path
        self.key = hashlib.sha256(api_key.encode()).hexdigest()[:16]
        self._synced = 0

    @staticmethod
    def _month() -> str:
        return datetime.now(UTC).strftime("%Y-%m")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def used(self) -> int:
        """Requests counted this month by earlier runs."""
        entry = self._read().get(self.key)
        if isinstance(entry, dict) and entry.get("month") == self._month():
            used = entry.get("used")
            if isinstance(used, int) and used >= 0:
                self._synced = used
                return used
        self._synced = 0
        return 0

    def sync(self, client: EnphaseClient) -> None:
        """Add the requests ``client`` sent since the last sync to the stored count."""
        delta = client.quota_used - self._synced
        if delta <= 0:
            return
        data = self._read()
        entry = data.get(self.key)
        month = self._month()
        stored = 0
        if isinstance(entry, dict) and entry.get("month") == month:
            used = entry.get("used")
            stored = used if isinstance(used, int) else 0
        data[self.key] = {"month": month, "used": stored + delta}
        try:
            _write_private_json(self.path, data)
        except OSError as err:
            _LOGGER.debug("cannot record usage in %s: %s", self.path, err)
            return
        self._synced = client.quota_used


# -- output -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Models to JSON-ready data: datetimes ISO 8601, enums their API string."""
    if attrs.has(type(value)):
        return {f.name: _jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    raw_rows = [list(row) for row in rows]
    cells = [[_cell(v) for v in row] for row in raw_rows]
    numeric = [
        all(
            (isinstance(r[i], int | float) and not isinstance(r[i], bool)) or r[i] is None
            for r in raw_rows
        )
        and any(r[i] is not None for r in raw_rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def _pairs(pairs: Iterable[tuple[str, Any]]) -> str:
    items = list(pairs)
    width = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in items)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _print_json(data: Any) -> None:
    _out(json.dumps(data, indent=2, ensure_ascii=False))


def _warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {message}\n")
    sys.stderr.flush()


def _one_line(message: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if len(secret) >= 4:
            message = message.replace(secret, "***")
    return " ".join(message.split())


# -- the client ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _open_client(ctx: _Context) -> AsyncIterator[EnphaseClient]:
    """An :class:`EnphaseClient` signed in with the saved token; rotated tokens are saved."""
    api_key = ctx.credential("api_key")
    client_id = ctx.credential("client_id")
    client_secret = ctx.credential("client_secret")
    assert api_key is not None
    assert client_id is not None
    assert client_secret is not None
    store = FileTokenStore(ctx.token_path)
    token = _load_token(store)
    if token is None:
        raise CliError(
            f"not signed in (no token at {ctx.token_path}): run `{PROG} auth login`", EXIT_AUTH
        )
    _SECRETS.update((token.access_token, token.refresh_token))
    ledger = _UsageLedger(ctx.directory / "usage.json", api_key)

    async def save_token(new: OAuth2Token) -> None:
        _SECRETS.update((new.access_token, new.refresh_token))
        await store.save(new)

    async with aiohttp.ClientSession() as session:
        manager = TokenManager(
            client_id=client_id,
            client_secret=client_secret,
            token=token,
            token_url=ctx.token_url,
            authorize_url=ctx.authorize_url,
            session=session,
            on_refresh=save_token,
        )
        client = EnphaseClient(
            api_key=api_key,
            auth=manager,
            session=session,
            base_url=ctx.base_url,
            rate_limits=RateLimits.for_plan(ctx.plan),
            quota_used=ledger.used(),
        )
        try:
            yield client
        finally:
            ledger.sync(client)
            await client.close()


def _load_token(store: FileTokenStore) -> OAuth2Token | None:
    try:
        return store.load()
    except InvalidRequestError as err:
        raise CliError(f"{err}; run `{PROG} auth login` again", EXIT_AUTH) from None
    except OSError as err:
        raise CliError(f"cannot read {store.path}: {err.strerror}", EXIT_AUTH) from None


# -- auth ---------------------------------------------------------------------------------------


async def _cmd_auth_login(ctx: _Context) -> int:
    args = ctx.args
    client_id = ctx.credential("client_id")
    client_secret = ctx.credential("client_secret")
    assert client_id is not None
    assert client_secret is not None
    api_key = ctx.credential("api_key", required=bool(args.save_credentials))
    if args.listen is not None and args.code:
        raise CliError("give --listen or --code, not both", EXIT_USAGE)
    store = FileTokenStore(ctx.token_path)

    async def save_token(token: OAuth2Token) -> None:
        _SECRETS.update((token.access_token, token.refresh_token))
        await store.save(token)

    async with aiohttp.ClientSession() as session:
        manager = TokenManager(
            client_id=client_id,
            client_secret=client_secret,
            token_url=ctx.token_url,
            authorize_url=ctx.authorize_url,
            session=session,
            on_refresh=save_token,
        )
        if args.listen is not None:
            code, redirect_uri = await _receive_code(manager, args.listen, args.timeout)
        else:
            redirect_uri = args.redirect_uri
            if args.code:
                code = _code_from(args.code, expected_state=None)
            else:
                state = secrets.token_urlsafe(16)
                _instructions(manager.authorization_url(redirect_uri, state), listening=False)
                code = _code_from(await _prompt_code(), expected_state=state)
        token = await manager.exchange_code(code, redirect_uri)
    if args.save_credentials:
        assert api_key is not None
        config = dict(ctx.config)
        config.update(api_key=api_key, client_id=client_id, client_secret=client_secret)
        _write_private_json(ctx.config_path, config)
    if ctx.json:
        _print_json(
            {
                "signed_in": True,
                "token_file": str(ctx.token_path),
                "expires_at": token.expires_at.isoformat(),
                "credentials_saved": str(ctx.config_path) if args.save_credentials else None,
            }
        )
    else:
        _out(f"Signed in. Token saved to {ctx.token_path} (mode 0600).")
        _out(f"Access token expires {_cell(token.expires_at)}; it is refreshed automatically.")
        if args.save_credentials:
            _out(f"Credentials saved to {ctx.config_path} (mode 0600).")
    return EXIT_OK


def _instructions(url: str, *, listening: bool) -> None:
    # stderr: the URL is for the person at the keyboard; stdout stays for the result.
    sys.stderr.write("Open this URL in a browser and approve access to your system:\n\n")
    sys.stderr.write(f"  {url}\n\n")
    if listening:
        sys.stderr.write("Waiting for the redirect...\n")
    sys.stderr.flush()


def _settle(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)


async def _prompt_code() -> str:
    sys.stderr.write("Then paste the URL you were sent to (or just its code): ")
    sys.stderr.flush()
    # A daemon thread, not asyncio.to_thread: Ctrl-C at the prompt must not leave
    # asyncio.run waiting for a blocked readline at shutdown.
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            text = sys.stdin.readline()
        except (OSError, ValueError):
            text = ""
        loop.call_soon_threadsafe(_settle, answer, text)

    threading.Thread(target=read, name="enphase-battery-prompt", daemon=True).start()
    line = await answer
    if not line.strip():
        raise CliError("no authorization code given", EXIT_USAGE)
    return line.strip()


def _code_from(text: str, *, expected_state: str | None) -> str:
    """The code from a pasted redirect URL (checking its state) or a bare code."""
    text = text.strip()
    if "=" not in text and "?" not in text:
        return text
    query = urlsplit(text).query if "?" in text else text
    params = {k: v[0] for k, v in parse_qs(query).items() if v}
    if "error" in params:
        raise CliError(f"authorization refused ({params['error']})", EXIT_AUTH)
    code = params.get("code")
    if not code:
        raise CliError("the redirect URL carries no code", EXIT_USAGE)
    state = params.get("state")
    if expected_state is not None and state is not None and state != expected_state:
        raise CliError(
            "the redirect's state does not match this sign-in (a stale or forged"
            " redirect); run `enphase-battery auth login` again",
            EXIT_AUTH,
        )
    return code


async def _receive_code(manager: TokenManager, port: int, timeout_s: float) -> tuple[str, str]:
    """Listen on loopback for the authorization redirect; returns (code, redirect_uri)."""
    state = secrets.token_urlsafe(16)
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[str] = loop.create_future()

    async def callback(request: web.Request) -> web.StreamResponse:
        query = request.query
        if outcome.done():
            return web.Response(status=409, text="This sign-in is already finished.\n")
        error: CliError | None = None
        if "error" in query:
            error = CliError(f"authorization refused ({query['error']})", EXIT_AUTH)
            text, status = "Access was not granted. You can close this tab.\n", 400
        elif not secrets.compare_digest(query.get("state", ""), state):
            error = CliError(
                "the redirect's state does not match this sign-in (a stale or forged"
                " redirect); run `enphase-battery auth login` again",
                EXIT_AUTH,
            )
            text, status = "This redirect does not belong to the sign-in in progress.\n", 400
        elif not query.get("code"):
            return web.Response(status=400, text="The redirect carries no code.\n")
        else:
            text, status = "Signed in to enphase-battery. You can close this tab.\n", 200
        response = web.Response(status=status, text=text)
        # Send the page before the listener is torn down by the waiting coroutine.
        await response.prepare(request)
        await response.write_eof()
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(query["code"])
        return response

    app = web.Application()
    app.router.add_get(CALLBACK_PATH, callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as err:
            raise CliError(
                f"cannot listen on 127.0.0.1:{port}: {err.strerror}", EXIT_API_ERROR
            ) from None
        bound_port = runner.addresses[0][1]
        redirect_uri = f"http://127.0.0.1:{bound_port}{CALLBACK_PATH}"
        _instructions(manager.authorization_url(redirect_uri, state), listening=True)
        try:
            code = await asyncio.wait_for(outcome, timeout_s)
        except TimeoutError:
            raise CliError(f"no approval arrived within {timeout_s:g} s", EXIT_AUTH) from None
    finally:
        await runner.cleanup()
    return code, redirect_uri


async def _cmd_auth_status(ctx: _Context) -> int:
    token = _load_token(FileTokenStore(ctx.token_path))
    credentials = {}
    for name in ("api_key", "client_id", "client_secret"):
        found = ctx.credential(name, required=False) is not None
        credentials[name] = ctx.sources[name] if found else None
    if token is None:
        if ctx.json:
            _print_json(
                {"signed_in": False, "token_file": str(ctx.token_path), "credentials": credentials}
            )
        else:
            _out(f"Not signed in (no token at {ctx.token_path}): run `{PROG} auth login`.")
        return EXIT_AUTH
    now = datetime.now(UTC)
    expired = token.expires_at <= now
    if ctx.json:
        _print_json(
            {
                "signed_in": True,
                "token_file": str(ctx.token_path),
                "expires_at": token.expires_at.isoformat(),
                "expired": expired,
                "credentials": credentials,
            }
        )
        return EXIT_OK
    left = token.expires_at - now
    if expired:
        when = (
            f"expired {_cell(token.expires_at)} ({_duration(-left)} ago); the next command"
            " refreshes it, unless the refresh token has lapsed (30 days unused)"
        )
    else:
        when = f"expires {_cell(token.expires_at)} (in {_duration(left)})"
    rows: list[tuple[str, Any]] = [
        ("token file", str(ctx.token_path)),
        ("access token", when),
    ]
    for name, source in credentials.items():
        rows.append((name.replace("_", " "), f"set ({source})" if source else "missing"))
    _out("Signed in.")
    _out(_pairs(rows))
    return EXIT_OK


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


async def _cmd_auth_logout(ctx: _Context) -> int:
    try:
        ctx.token_path.unlink()
        removed = True
    except FileNotFoundError:
        removed = False
    if ctx.json:
        _print_json({"signed_out": True, "token_file": str(ctx.token_path), "removed": removed})
    elif removed:
        _out(f"Signed out: deleted {ctx.token_path}.")
    else:
        _out(f"Not signed in (no token at {ctx.token_path}).")
    return EXIT_OK


# -- read and write commands ------------------------------------------------------------------


async def _cmd_systems(ctx: _Context) -> int:
    async with _open_client(ctx) as client:
        systems = await client.list_systems()
    if ctx.json:
        _print_json(_jsonable(systems))
        return EXIT_OK
    _out(
        _table(
            ["SYSTEM", "NAME", "TIMEZONE", "STATUS", "LAST REPORT"],
            [(s.system_id, s.name, s.timezone, s.status, s.last_report_at) for s in systems],
        )
    )
    return EXIT_OK


async def _cmd_devices(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        devices = await client.get_system_devices(system_id)
    if ctx.json:
        _print_json(_jsonable(devices))
        return EXIT_OK
    rows = []
    for group in attrs.fields(type(devices.devices)):
        for device in getattr(devices.devices, group.name):
            rows.append(
                (
                    group.name,
                    device.serial_number,
                    device.product_name or device.name,
                    device.status,
                    device.last_report_at,
                )
            )
    _out(_table(["GROUP", "SERIAL", "PRODUCT", "STATUS", "LAST REPORT"], rows))
    return EXIT_OK


def _settings_rows(settings: Any) -> list[tuple[str, Any]]:
    return [
        ("system", settings.system_id),
        ("profile", settings.battery_mode),
        ("reserve", None if settings.reserve_soc is None else f"{settings.reserve_soc} %"),
        ("energy independence", settings.energy_independence),
        ("charge from grid", settings.charge_from_grid),
        (
            "shutdown level",
            None
            if settings.battery_shutdown_level is None
            else f"{settings.battery_shutdown_level} %",
        ),
    ]


async def _cmd_settings_show(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        settings = await client.get_system_battery_settings(system_id)
    _out(
        json.dumps(_jsonable(settings), indent=2) if ctx.json else _pairs(_settings_rows(settings))
    )
    return EXIT_OK


async def _cmd_settings_set(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    if args.profile is None and args.reserve is None and args.energy_independence is None:
        raise CliError(
            "nothing to change: give --profile, --reserve or --energy-independence", EXIT_USAGE
        )
    independence = None if args.energy_independence is None else args.energy_independence == "on"
    async with _open_client(ctx) as client:
        settings = await client.update_system_battery_settings(
            system_id,
            battery_mode=args.profile,
            reserve_soc=args.reserve,
            energy_independence=independence,
        )
    _out(
        json.dumps(_jsonable(settings), indent=2) if ctx.json else _pairs(_settings_rows(settings))
    )
    return EXIT_OK


async def _cmd_storm_guard(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        if ctx.args.action == "show":
            guard = await client.get_system_storm_guard(system_id)
        else:
            guard = await client.update_system_storm_guard(system_id, ctx.args.action == "on")
    if ctx.json:
        _print_json(_jsonable(guard))
    else:
        _out(
            _pairs([("storm guard", guard.storm_guard_status), ("storm alert", guard.storm_alert)])
        )
    return EXIT_OK


async def _cmd_grid_status(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        status = await client.get_system_grid_status(system_id)
    if ctx.json:
        _print_json(_jsonable(status))
    else:
        _out(_pairs([("grid", status.grid_state), ("last report", status.last_report_date)]))
    return EXIT_OK


def _clock(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}"


def _print_load_control(ctx: _Context, control: Any) -> None:
    if ctx.json:
        _print_json(_jsonable(control))
        return
    _out(
        _table(
            ["NAME", "LOAD", "MODE", "SOC LOW", "SOC HIGH", "STATUS", "ESSENTIAL"],
            [
                (
                    c.name,
                    c.load_name,
                    c.mode,
                    c.soc_low,
                    c.soc_high,
                    c.status,
                    None
                    if c.essential_start_time is None
                    else f"{_clock(c.essential_start_time)}-{_clock(c.essential_end_time)}",
                )
                for c in control.load_control_data
            ],
        )
    )


async def _cmd_load_show(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        control = await client.get_system_load_control(system_id)
    _print_load_control(ctx, control)
    return EXIT_OK


async def _cmd_load_set(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        control = await client.update_system_load_control(
            system_id,
            name=args.name,
            load_name=args.load_name,
            mode=args.mode,
            soc_low=args.soc_low,
            essential_start_time=args.start,
            essential_end_time=args.end,
        )
    _print_load_control(ctx, control)
    return EXIT_OK


async def _cmd_lifetime(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    if args.until is not None and args.until < args.since:
        raise CliError("--until is before --since", EXIT_USAGE)
    async with _open_client(ctx) as client:
        lifetime = await client.get_battery_lifetime(system_id, args.since, args.until)
    days = lifetime.days
    if ctx.json:
        _print_json(
            {
                "system_id": lifetime.system_id,
                "start_date": lifetime.start_date.isoformat(),
                "days": [_jsonable(d) for d in days],
            }
        )
        return EXIT_OK
    rows: list[tuple[Any, ...]] = [(d.date.isoformat(), d.charge_wh, d.discharge_wh) for d in days]
    rows.append(("total", sum(d.charge_wh for d in days), sum(d.discharge_wh for d in days)))
    _out(_table(["DATE", "CHARGE Wh", "DISCHARGE Wh"], rows))
    return EXIT_OK


# -- telemetry ------------------------------------------------------------------------------------


_FIRST_INTERVAL = re.compile(r"first_interval\D{0,8}(\d{9,11})")


def _first_interval(err: ApiError) -> datetime | None:
    """The ``first_interval`` a 422 "date range is invalid" names, if any."""
    if err.status != 422:
        return None
    match = _FIRST_INTERVAL.search(json.dumps(err.body) if err.body is not None else "")
    return None if match is None else datetime.fromtimestamp(int(match[1]), UTC)


def _interval_record(interval: TelemetryInterval) -> dict[str, Any]:
    data: dict[str, Any] = _jsonable(interval)
    data["end_at"] = interval.end_at.astimezone(UTC).isoformat()
    return data


_RECORD_FIELDS = [f.name for f in attrs.fields(TelemetryInterval)]


async def _fetch_window(
    client: EnphaseClient,
    system_id: int,
    serial: str | None,
    start: datetime,
    granularity: Granularity,
    found: dict[datetime, TelemetryInterval],
) -> datetime | None:
    """One request: the window after ``start`` into ``found``; returns the window's end."""
    window_end: datetime | None
    if serial is None:
        battery = await client.get_battery_telemetry(system_id, start, granularity)
        total = battery.total_devices
        window_end = battery.end_at
        for iv in battery.intervals:
            found[iv.end_at] = TelemetryInterval(
                system_id,
                "battery",
                iv.end_at,
                iv.charge.enwh,
                iv.discharge.enwh,
                iv.soc.percent,
                iv.devices_reporting,
                total,
                partial=(
                    iv.devices_reporting is not None
                    and total is not None
                    and iv.devices_reporting < total
                ),
            )
    else:
        encharge = await client.get_encharge_telemetry(system_id, serial, start, granularity)
        window_end = encharge.end_at
        for ev in encharge.intervals:
            found[ev.end_at] = TelemetryInterval(
                system_id,
                serial,
                ev.end_at,
                ev.charge.enwh,
                ev.discharge.enwh,
                ev.soc.percent,
                1,
                1,
            )
    return window_end


async def _fetch_telemetry(
    client: EnphaseClient,
    system_id: int,
    serial: str | None,
    since: datetime,
    until: datetime | None,
    granularity: Granularity,
) -> list[TelemetryInterval]:
    """Every interval ending in (since, until], one request per window.

    Without ``until``, windows continue until the API answers with a window cut short
    at its "now": the server's clock decides what "now" is, not ours.
    """
    span = timedelta(seconds=granularity.span_s)
    start = since
    found: dict[datetime, TelemetryInterval] = {}
    while until is None or start < until:
        try:
            window_end = await _fetch_window(client, system_id, serial, start, granularity, found)
        except ApiError as err:
            first = _first_interval(err)
            if first is None or first - timedelta(minutes=15) <= start:
                raise
            # The period starts before the system (or Encharge) has data: begin at its
            # first interval, as the API tells us, instead of failing.
            start = first - timedelta(minutes=15)
            continue
        if window_end is None or window_end < start + span:
            break  # the window was cut short at the API's now: nothing newer exists
        start += span
    return [
        iv
        for end_at, iv in sorted(found.items())
        if end_at > since and (until is None or end_at <= until)
    ]


async def _cmd_telemetry(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    if args.until is not None and args.until <= args.since:
        raise CliError("--until must be after --since", EXIT_USAGE)
    async with _open_client(ctx) as client:
        intervals = await _fetch_telemetry(
            client, system_id, args.encharge, args.since, args.until, Granularity(args.granularity)
        )
    if ctx.json:
        _print_json([_interval_record(iv) for iv in intervals])
        return EXIT_OK
    _out(_interval_table(intervals))
    return EXIT_OK


def _interval_table(intervals: Sequence[TelemetryInterval]) -> str:
    return _table(
        ["END (UTC)", "SOURCE", "CHARGE Wh", "DISCHARGE Wh", "SOC %", "DEVICES"],
        [
            (
                iv.end_at,
                iv.source,
                iv.charge_wh,
                iv.discharge_wh,
                iv.soc_percent,
                f"{_cell(iv.devices_reporting)}/{_cell(iv.total_devices)}"
                + (" partial" if iv.partial else ""),
            )
            for iv in intervals
        ],
    )


# -- stream -------------------------------------------------------------------------------------


class _IntervalWriter:
    """Writes intervals as JSON lines or CSV rows, flushed one at a time."""

    def __init__(self, handle: TextIO, fmt: str, *, header: bool) -> None:
        self.handle = handle
        self.fmt = fmt
        self._csv = csv.DictWriter(handle, fieldnames=_RECORD_FIELDS, lineterminator="\n")
        if fmt == "csv" and header:
            self._csv.writeheader()
            handle.flush()

    def write(self, interval: TelemetryInterval) -> None:
        record = _interval_record(interval)
        if self.fmt == "csv":
            self._csv.writerow(record)
        else:
            self.handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        # Flushed before the poller is asked for the next interval: that request is what
        # marks this one delivered in the checkpoint.
        self.handle.flush()


class _ProgressLine:
    """The stream's progress on stderr: rewritten in place on a terminal, else throttled."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = -1e9
        self._dirty = False
        self._announced_caught_up = False
        self.written = 0
        self.newest_written: datetime | None = None

    def record(self, interval: TelemetryInterval) -> None:
        """Count one interval written."""
        self.written += 1
        if self.newest_written is None or interval.end_at > self.newest_written:
            self.newest_written = interval.end_at

    def update(
        self, poller: TelemetryPoller, client: EnphaseClient, *, force: bool = False
    ) -> None:
        """Show the progress, unless it was shown very recently (``force``: show now)."""
        loop_time = asyncio.get_running_loop().time()
        progress = poller.progress
        if (progress.caught_up or poller.idle) and not self._announced_caught_up:
            self._announced_caught_up = force = True
        # Sticky: each later poll starts "not caught up" until it has fetched its windows.
        caught_up = self._announced_caught_up
        if not force and loop_time - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = loop_time
        left = client.quota_remaining
        phase = "live" if caught_up else "backfilling"
        text = (
            f"{phase}: {self.written} intervals written, up to {_cell(self.newest_written)}; "
            f"{progress.requests} requests" + ("" if left is None else f", {left} left this month")
        )
        if caught_up:
            text += f"; next poll every {poller.current_poll_interval() / 60:.0f} min"
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._dirty:
            self.stream.write("\n")
            self.stream.flush()


def _checkpoint_path(ctx: _Context, system_id: int) -> Path:
    """``--checkpoint``, else one SQLite file per system next to the token."""
    if ctx.args.checkpoint:
        return Path(ctx.args.checkpoint).expanduser()
    return ctx.directory / f"stream-{system_id}.sqlite"


def _stream_encharges(ctx: _Context) -> list[str] | tuple[()] | None:
    """``--encharge`` serials; else all (``None``: discovered), or none on the Watt plan.

    Per-Encharge telemetry needs Kilowatt or above: on Watt the API would answer 403.
    """
    if ctx.args.encharge:
        return list(ctx.args.encharge)
    if ctx.plan == "watt":
        if ctx.args.no_battery:
            raise CliError(
                "the Watt plan has no per-Encharge telemetry: drop --no-battery, or give"
                " --plan and --encharge if your plan has it",
                EXIT_USAGE,
            )
        return ()
    return None


def _stream_since(checkpoint: Path, since: datetime | None) -> datetime | None:
    """``--since``, remembered next to the checkpoint for runs that do not repeat it.

    The poller saves a stream's position once it has delivered from it; a stream that a
    short first run never reached has no saved position yet, and must start from the
    same ``--since`` when a later run is given none, or the intervals in between would
    be skipped.
    """
    sidecar = checkpoint.with_name(checkpoint.name + ".since")
    if since is not None:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        sidecar.write_text(since.isoformat() + "\n", encoding="utf-8")
        return since
    try:
        text = sidecar.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    try:
        return _moment(text)
    except argparse.ArgumentTypeError:
        return None


def _open_output(path: str | None) -> tuple[TextIO, bool, bool]:
    """(handle, whether we own it, whether a CSV header is due): ``path`` opened to append."""
    if path is None:
        return sys.stdout, False, True
    out_path = Path(path).expanduser()
    header = not out_path.exists() or out_path.stat().st_size == 0
    return out_path.open("a", encoding="utf-8", newline=""), True, header


async def _cmd_stream(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    checkpoint = _checkpoint_path(ctx, system_id)
    out_handle, owns_handle, header = _open_output(args.out)
    writer = _IntervalWriter(out_handle, args.format, header=header)
    progress = _ProgressLine(sys.stderr)
    try:
        async with _open_client(ctx) as client:
            ledger_sync = _ledger_syncer(ctx, client)
            poller = TelemetryPoller(
                client,
                system_id,
                encharges=_stream_encharges(ctx),
                include_battery=not args.no_battery,
                start_at=_stream_since(checkpoint, args.since),
                checkpoint=checkpoint,
                poll_interval=args.poll_interval,
            )
            async with poller:
                while args.max_intervals is None or progress.written < args.max_intervals:
                    interval = await _next_interval(
                        poller,
                        until_caught_up=args.until_caught_up,
                        tick=lambda: progress.update(poller, client),
                    )
                    if interval is None:
                        break
                    writer.write(interval)
                    progress.record(interval)
                    progress.update(poller, client)
                    ledger_sync()
            progress.update(poller, client, force=True)
    finally:
        progress.close()
        if owns_handle:
            out_handle.close()
    return EXIT_OK


def _ledger_syncer(ctx: _Context, client: EnphaseClient) -> Callable[[], None]:
    """Keep usage.json current during a long stream, at most once a minute."""
    api_key = ctx.credential("api_key")
    assert api_key is not None
    ledger = _UsageLedger(ctx.directory / "usage.json", api_key)
    ledger.used()
    last = [asyncio.get_running_loop().time()]
    seen = [client.quota_used]

    def sync() -> None:
        now = asyncio.get_running_loop().time()
        if now - last[0] >= 60.0 and client.quota_used != seen[0]:
            ledger.sync(client)
            last[0], seen[0] = now, client.quota_used

    return sync


#: With --poll-interval 0 the poller never idles between polls; a poll that has come back
#: caught up and stays so this long counts as "caught up" for --until-caught-up.
_DRAIN_GRACE_S = 1.0
#: How often the progress line is refreshed while the poller works.
_TICK_S = 0.25


async def _next_interval(
    poller: TelemetryPoller, *, until_caught_up: bool, tick: Callable[[], None]
) -> TelemetryInterval | None:
    """The poller's next interval, calling ``tick`` while waiting for it.

    With ``until_caught_up``, ``None`` once the poller has delivered everything available
    and waits for its next poll (``poller.idle``).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(anext(poller))
    idle = asyncio.ensure_future(poller.wait_idle()) if until_caught_up else None
    waiters: set[asyncio.Future[Any]] = {task} if idle is None else {task, idle}
    caught_up_since: float | None = None
    try:
        while True:
            done, _ = await asyncio.wait(
                waiters, timeout=_TICK_S, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                break
            tick()
            if not until_caught_up:
                continue
            stop = idle in done
            if not stop and poller.progress.caught_up:
                now = loop.time()
                caught_up_since = now if caught_up_since is None else caught_up_since
                stop = now - caught_up_since >= _DRAIN_GRACE_S
            if stop:
                task.cancel()
                await asyncio.wait({task})
                break
    except asyncio.CancelledError:
        # Ctrl-C: stop the pending fetch before the poller is closed, so that closing
        # (which saves the checkpoint) never runs alongside it.
        task.cancel()
        await asyncio.wait({task})
        raise
    finally:
        if idle is not None:
            idle.cancel()
    if task.cancelled():
        return None
    try:
        # An interval handed out just as we cancelled must still be used.
        return task.result()
    except StopAsyncIteration:
        return None


# -- entry point ----------------------------------------------------------------------------------


def _exit_code_for(err: BaseException) -> int:
    if isinstance(err, CliError):
        return err.exit_code
    if isinstance(err, InvalidRequestError):
        return EXIT_USAGE
    if isinstance(err, AuthenticationError):
        return EXIT_AUTH
    if isinstance(err, RateLimitError):
        return EXIT_RATE_LIMIT
    return EXIT_API_ERROR


def _message_for(err: BaseException) -> str:
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
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "verbose", False):
            logging.basicConfig(
                level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s"
            )
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
        sys.stderr.write(f"{PROG}: interrupted; progress saved\n")
        return 128 + stop.signum
    except (CliError, EnphaseError, OSError) as err:
        sys.stderr.write(f"{PROG}: error: {_one_line(_message_for(err))}\n")
        return _exit_code_for(err)
    finally:
        sys.stderr.flush()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
