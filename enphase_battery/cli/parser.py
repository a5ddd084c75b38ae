"""The argument parser of ``enphase-battery``: every command, its flags and its handler."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from enphase_battery.auth.manager import (
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TOKEN_URL,
)
from enphase_battery.cli.argtypes import (
    _day,
    _duration,
    _hhmm,
    _moment,
    _percent,
    _positive_int,
    _positive_seconds,
    _revise_for,
    _seconds,
)
from enphase_battery.cli.auth import (
    DEFAULT_LISTEN_PORT,
    _cmd_auth_login,
    _cmd_auth_logout,
    _cmd_auth_status,
)
from enphase_battery.cli.commands import (
    _cmd_devices,
    _cmd_grid_status,
    _cmd_lifetime,
    _cmd_load_set,
    _cmd_load_show,
    _cmd_settings_set,
    _cmd_settings_show,
    _cmd_storm_guard,
    _cmd_systems,
)
from enphase_battery.cli.commissioning import (
    _cmd_battery_mode_set,
    _cmd_battery_mode_show,
    _cmd_tariff,
)
from enphase_battery.cli.errors import EXIT_USAGE, PROG, CliError
from enphase_battery.cli.live import add_live_commands
from enphase_battery.cli.stream import _cmd_stream
from enphase_battery.cli.telemetry import _cmd_telemetry
from enphase_battery.cli.usage import _cmd_usage
from enphase_battery.cli.writes import add_wait_arguments
from enphase_battery.client.environment import PLANS
from enphase_battery.http.routes import DEFAULT_BASE_URL
from enphase_battery.models import Granularity
from enphase_battery.poll.settings import DEFAULT_REVISE_FOR
from enphase_battery.util.version import VERSION as __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see `{self.prog} --help`)", EXIT_USAGE)


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
    settings_set.add_argument(
        "--reserve", type=_percent(0, 100), metavar="PERCENT", help="backup reserve, 0-100 %%"
    )
    settings_set.add_argument("--energy-independence", choices=("on", "off"))
    add_wait_arguments(settings_set)
    settings_set.set_defaults(handler=_cmd_settings_set)

    storm = command("storm-guard", "show or switch Storm Guard")
    storm.add_argument("action", nargs="?", choices=("show", "on", "off"), default="show")
    add_wait_arguments(storm)
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
    load_set.add_argument("--soc-low", type=_percent(10, 90), metavar="PERCENT", help="10-90 %%")
    load_set.add_argument("--start", type=_hhmm, metavar="HH:MM", help="essential start time")
    load_set.add_argument("--end", type=_hhmm, metavar="HH:MM", help="essential end time")
    add_wait_arguments(load_set)
    load_set.set_defaults(handler=_cmd_load_set)

    command(
        "tariff", "the time-of-use tariff: seasons, periods, grid charging (Partner plan)"
    ).set_defaults(handler=_cmd_tariff)

    battery_mode = commands.add_parser(
        "battery-mode",
        help="charge from grid / discharge to grid (Partner plan: the Commissioning API)",
    )
    battery_mode_commands = battery_mode.add_subparsers(
        dest="battery_mode_command", metavar="ACTION", required=True
    )
    command(
        "show",
        "whether the battery may charge from the grid and discharge to it",
        parent=battery_mode_commands,
    ).set_defaults(handler=_cmd_battery_mode_show)
    battery_mode_set = command(
        "set",
        "allow or forbid charging from the grid and discharging to it (both at once)",
        parent=battery_mode_commands,
    )
    battery_mode_set.add_argument(
        "--cfg", choices=("on", "off"), required=True, help="charge from grid (CFG_allowed)"
    )
    battery_mode_set.add_argument(
        "--dtg", choices=("on", "off"), required=True, help="discharge to grid (DTG_allowed)"
    )
    add_wait_arguments(battery_mode_set)
    battery_mode_set.set_defaults(handler=_cmd_battery_mode_set)

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

    stream = command(
        "stream", "follow new intervals, resuming where the last run stopped", system=False
    )
    stream.add_argument(
        "--system",
        dest="systems",
        type=_positive_int,
        action="append",
        metavar="ID",
        help="system id (repeatable: several systems share one checkpoint; env ENPHASE_SYSTEM_ID)",
    )
    stream.add_argument(
        "--all-systems",
        action="store_true",
        help="every system the token can see (re-listed, so new systems join), one checkpoint",
    )
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
        metavar="FILE|DSN",
        help="SQLite checkpoint (default <config dir>/stream-<system>.sqlite), or a"
        " postgresql:// DSN shared by several runs at once (they split the systems)",
    )
    stream.add_argument(
        "--pg-schema",
        metavar="NAME",
        default="enphase",
        help="schema of the PostgreSQL checkpoint, leases and quota count (default enphase)",
    )
    stream.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    stream.add_argument(
        "--hourly",
        action="store_true",
        help="write hourly rows per stream (energy, running sums, SoC mean/min/max),"
        " re-written when a late or revised interval changes them (table battery_hour"
        " with a database --out)",
    )
    stream.add_argument(
        "--out",
        metavar="FILE|URL",
        help="append to FILE (flushed per line) instead of stdout; or a table:"
        " sqlite:///PATH (checkpoint in the same file unless --checkpoint),"
        " postgresql://DSN (the checkpoint too), influxdb://HOST:PORT/DB (credentials"
        " from ENPHASE_INFLUXDB_USER/_PASSWORD or config.json)",
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
        "--revise-for",
        type=_revise_for,
        default=DEFAULT_REVISE_FOR,
        metavar="DURATION",
        help="re-read an interval written partial for this long and write it again, with"
        " revision + 1, when its values change (e.g. 6h; 0: never; default 6h)",
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

    _add_serve(command)

    usage = command(
        "usage",
        "this month's request count (kept in usage.json), or --reset it",
        system=False,
    )
    usage.add_argument(
        "--reset",
        action="store_true",
        help="forget the plan's local count (after a plan change, or a month 429 you know is over)",
    )
    usage.set_defaults(handler=_cmd_usage)

    add_live_commands(command)
    _add_simulate(commands)
    return parser


def _add_serve(command: Any) -> None:
    from enphase_battery.cli.serve import DEFAULT_LISTEN, _cmd_serve

    serve = command(
        "serve",
        "a long-running exporter: Prometheus /metrics and /healthz while it follows the"
        " systems (and writes their intervals to --out)",
        system=False,
    )
    serve.add_argument(
        "--system",
        dest="systems",
        type=_positive_int,
        action="append",
        metavar="ID",
        help="system id (repeatable; env ENPHASE_SYSTEM_ID)",
    )
    serve.add_argument("--all-systems", action="store_true", help="every system the token can see")
    serve.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="SQLite checkpoint (default <config dir>/serve.sqlite; with --out sqlite:///PATH"
        " that file), or a postgresql:// DSN shared with other runs (they split the systems)",
    )
    serve.add_argument(
        "--pg-schema",
        metavar="NAME",
        default="enphase",
        help="schema of a PostgreSQL checkpoint (default enphase)",
    )
    serve.add_argument(
        "--since",
        type=_moment,
        metavar="WHEN",
        help="where a new checkpoint starts (default: each system's current day)",
    )
    serve.add_argument(
        "--out",
        metavar="URL",
        help="also write every interval, exactly once: sqlite:///PATH, postgresql://DSN"
        " (the checkpoint too) or influxdb://HOST:PORT/DB (see `stream --out`)",
    )
    serve.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where /metrics and /healthz are served (default {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "--stall-after",
        type=_positive_seconds,
        default=3 * 3600.0,
        metavar="S",
        help="/healthz answers 503 after this many seconds without an answered API request"
        " (default 10800: the free plan polls about once an hour)",
    )
    serve.add_argument(
        "--relist-every",
        type=_duration,
        metavar="DURATION",
        help="how often the systems list is read for news (default: paced by the quota)",
    )
    serve.add_argument(
        "--revise-for",
        type=_revise_for,
        default=DEFAULT_REVISE_FOR,
        metavar="DURATION",
        help="re-read an interval delivered partial for this long (default 6h)",
    )
    serve.set_defaults(handler=_cmd_serve, format="jsonl", hourly=False)


def _add_simulate(commands: Any) -> None:
    from enphase_battery.simulator.cli import add_simulate_parser, run_simulate

    simulate = add_simulate_parser(commands)
    # The simulator runs its own event loop (asyncio.run), so it is called synchronously.
    simulate.set_defaults(sync_handler=run_simulate)
